//! The type of a file, decided from its first bytes: magic numbers (the `infer` crate), else
//! text when the bytes decode as text. The client's declared type only chooses between
//! equivalent names of what was sniffed (an Ogg file is `audio/ogg` or `video/ogg`), so a
//! script declared as `image/png` is still text.

/// How many leading bytes are sniffed: enough for the ZIP entries that tell a DOCX apart.
pub const SNIFF_LEN: usize = 64 * 1024;

/// The sniffed type of a file whose first bytes are `head`, under the names the allow-lists use.
pub fn sniff(head: &[u8]) -> &'static str {
    match infer::get(head).map(|t| t.mime_type()) {
        Some("audio/x-wav") => "audio/wav",
        Some("audio/m4a") => "audio/mp4",
        Some("video/x-m4v") => "video/mp4",
        Some("audio/opus") => "audio/ogg",
        Some(other) => other,
        None if is_text(head) => "text/plain",
        None => "application/octet-stream",
    }
}

/// Names the same bytes may rightly go by: containers that hold audio or video, and text.
fn equivalents(sniffed: &'static str, declared: &str) -> Vec<&'static str> {
    match sniffed {
        "audio/ogg" => vec!["audio/ogg", "video/ogg"],
        "video/webm" => vec!["video/webm", "audio/webm"],
        "video/mp4" => vec!["video/mp4", "audio/mp4"],
        "text/plain" => vec!["text/plain", "text/csv"],
        // An OLE compound file too large to parse from its head: Word 97 if the client says so.
        "application/x-ole-storage" if declared == "application/msword" => {
            vec!["application/msword"]
        }
        other => vec![other],
    }
}

/// The type to store a file as under `allowed`: the declared type when it is a name of what
/// was sniffed, else the first allowed name of it. `Err(sniffed type)` when none is allowed.
pub fn decide(
    head: &[u8],
    declared: &str,
    allowed: &[&'static str],
) -> Result<&'static str, &'static str> {
    let sniffed = sniff(head);
    let declared = declared
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let names = equivalents(sniffed, &declared);
    let preferred = names.iter().find(|n| **n == declared);
    preferred
        .into_iter()
        .chain(names.iter())
        .find(|n| allowed.contains(n))
        .copied()
        .ok_or(sniffed)
}

/// UTF-8 (a character cut at the end of `head` is fine) without NULs or control characters
/// other than tab, line breaks, form feed and escape.
fn is_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    };
    valid
        && !head.is_empty()
        && head
            .iter()
            .all(|b| *b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{ALL_ATTACHMENTS, AUDIOS, IMAGES, VIDEOS};

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0";
    const PDF: &[u8] = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n";
    const MP3: &[u8] = b"ID3\x03\0\0\0\0\0\x0f\xff\xfb\x90\x64\0\0\0\0";
    const OGG: &[u8] = b"OggS\0\x02\0\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0";

    #[test]
    fn magic_numbers_win_over_the_declared_type() {
        assert_eq!(decide(PNG, "image/jpeg", IMAGES), Ok("image/png"));
        assert_eq!(decide(JPEG, "", IMAGES), Ok("image/jpeg"));
        assert_eq!(decide(PDF, "image/png", IMAGES), Err("application/pdf"));
        assert_eq!(
            decide(PDF, "application/pdf", ALL_ATTACHMENTS),
            Ok("application/pdf")
        );
        assert_eq!(decide(MP3, "audio/mpeg", AUDIOS), Ok("audio/mpeg"));
    }

    #[test]
    fn text_is_text_whatever_it_claims() {
        let text = b"hello, this is not a picture\n";
        assert_eq!(decide(text, "image/png", IMAGES), Err("text/plain"));
        assert_eq!(
            decide(text, "text/plain", ALL_ATTACHMENTS),
            Ok("text/plain")
        );
        assert_eq!(
            decide(b"a,b\n1,2\n", "text/csv; charset=utf-8", ALL_ATTACHMENTS),
            Ok("text/csv")
        );
        assert_eq!(
            decide(b"<html><script>", "text/plain", ALL_ATTACHMENTS),
            Err("text/html")
        );
        assert_eq!(sniff("naïve café".as_bytes()), "text/plain");
        assert_eq!(sniff(&"é".as_bytes()[..1]), "text/plain", "a cut character");
        assert_eq!(sniff(b"\0\x01\x02binary"), "application/octet-stream");
    }

    #[test]
    fn containers_take_the_name_the_route_allows() {
        assert_eq!(decide(OGG, "video/ogg", VIDEOS), Ok("video/ogg"));
        assert_eq!(decide(OGG, "", AUDIOS), Ok("audio/ogg"));
        assert_eq!(decide(OGG, "video/ogg", ALL_ATTACHMENTS), Ok("video/ogg"));
        assert_eq!(decide(OGG, "", IMAGES), Err("audio/ogg"));
    }
}
