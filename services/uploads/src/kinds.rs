//! What may be uploaded where: the original's classes of files (size limit, allowed types), its
//! twelve routes as kinds (folder, class, files per request), and object keys. One table, so
//! the limits `/info` shows are the limits enforced.

use uuid::Uuid;

const MIB: u64 = 1024 * 1024;

/// Image types (docs/api.md §6).
/// S3's longest object key, in bytes: a longer key names no object.
pub const MAX_KEY: usize = 1024;

pub const IMAGES: &[&str] = &["image/jpeg", "image/png", "image/webp", "image/gif"];
/// Document types.
pub const DOCUMENTS: &[&str] = &[
    "application/pdf",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "text/plain",
    "text/csv",
];
/// Video types.
pub const VIDEOS: &[&str] = &["video/mp4", "video/webm", "video/ogg", "video/quicktime"];
/// Audio types.
pub const AUDIOS: &[&str] = &[
    "audio/mpeg",
    "audio/mp4",
    "audio/ogg",
    "audio/wav",
    "audio/webm",
    "audio/aac",
];
/// IMAGES, DOCUMENTS, VIDEOS and AUDIOS, in that order (19 types).
pub const ALL_ATTACHMENTS: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "application/pdf",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "text/plain",
    "text/csv",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/quicktime",
    "audio/mpeg",
    "audio/mp4",
    "audio/ogg",
    "audio/wav",
    "audio/webm",
    "audio/aac",
];

/// A class of files: how large and of which types.
#[derive(Debug, PartialEq, Eq)]
pub struct Class {
    /// The name `/info` lists it under.
    pub name: &'static str,
    /// Largest file, in bytes.
    pub max_size: u64,
    /// Allowed types, in the order `/info` lists them.
    pub types: &'static [&'static str],
}

/// Pictures in messages.
pub const IMAGE: Class = Class {
    name: "image",
    max_size: 10 * MIB,
    types: IMAGES,
};
/// Documents: listed by `/info` as the original did, though no route uses it alone.
pub const DOCUMENT: Class = Class {
    name: "document",
    max_size: 25 * MIB,
    types: DOCUMENTS,
};
/// Avatars, banners and channel icons: pictures kept small.
pub const PROFILE: Class = Class {
    name: "profile",
    max_size: 5 * MIB,
    types: IMAGES,
};
/// Videos in messages.
pub const VIDEO: Class = Class {
    name: "video",
    max_size: 25 * MIB,
    types: VIDEOS,
};
/// Audio in messages: the largest files.
pub const AUDIO: Class = Class {
    name: "audio",
    max_size: 50 * MIB,
    types: AUDIOS,
};
/// Generic attachments: any allowed type, capped like documents (so audio over 25 MiB must
/// use the audio routes, as in the original).
pub const ATTACHMENT: Class = Class {
    name: "attachment",
    max_size: 25 * MIB,
    types: ALL_ATTACHMENTS,
};

/// Every class, in `/info` order (`document` has no route of its own, as in the original).
pub const CLASSES: [&Class; 6] = [&IMAGE, &DOCUMENT, &PROFILE, &VIDEO, &AUDIO, &ATTACHMENT];

/// Files per request of the multi-file routes, as `/info` names them.
pub const MAX_FILES: [(&str, u32); 4] = [
    ("images", 10),
    ("attachments", 10),
    ("videos", 5),
    ("audios", 5),
];

/// An upload route of the original API.
#[derive(Debug, PartialEq, Eq)]
pub struct Kind {
    /// The route below `/api/uploads/`, e.g. `profile/avatar`.
    pub name: &'static str,
    /// Folder of its keys.
    pub folder: &'static str,
    /// Size limit and allowed types of each file.
    pub class: &'static Class,
    /// Files one request may carry (1 for single-file routes).
    pub max_files: u32,
}

impl Kind {
    /// True for routes that take several files (field `files`).
    pub fn multi(&self) -> bool {
        self.max_files > 1
    }
}

const fn kind(name: &'static str, folder: &'static str, class: &'static Class, n: u32) -> Kind {
    Kind {
        name,
        folder,
        class,
        max_files: n,
    }
}

/// The twelve routes (docs/api.md §6). Kinds sharing a folder share its rules.
pub const KINDS: [Kind; 12] = [
    kind("profile/avatar", "profiles/avatars", &PROFILE, 1),
    kind("profile/banner", "profiles/banners", &PROFILE, 1),
    kind("channel/icon", "channels/icons", &PROFILE, 1),
    kind("channel/banner", "channels/banners", &PROFILE, 1),
    kind("message/image", "messages/images", &IMAGE, 1),
    kind("message/attachment", "messages/attachments", &ATTACHMENT, 1),
    kind("message/video", "messages/videos", &VIDEO, 1),
    kind("message/audio", "messages/audios", &AUDIO, 1),
    kind("message/images", "messages/images", &IMAGE, 10),
    kind(
        "message/attachments",
        "messages/attachments",
        &ATTACHMENT,
        10,
    ),
    kind("message/videos", "messages/videos", &VIDEO, 5),
    kind("message/audios", "messages/audios", &AUDIO, 5),
];

/// The kind named `name`.
pub fn find(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// The (single-file) kind whose folder holds `key`, with the rest of the key.
fn by_key(key: &str) -> Option<(&'static Kind, &str)> {
    KINDS.iter().find_map(|k| {
        let rest = key.strip_prefix(k.folder)?.strip_prefix('/')?;
        Some((k, rest))
    })
}

/// A file name safe in a key: the last path segment, every character outside
/// `[A-Za-z0-9._-]` replaced by `_` (as the original did), at most 100 characters (keeping the
/// end, where the extension is), `file` when nothing is left.
pub fn sanitize(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: Vec<char> = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean: String = clean[clean.len().saturating_sub(100)..].iter().collect();
    if clean.trim_matches('.').is_empty() {
        "file".to_owned()
    } else {
        clean
    }
}

/// Key of a streamed upload: `<folder>/<uuidv7>-<name>`. The UUID makes keys unguessable and
/// never equal, so no upload overwrites another.
pub fn key(kind: &Kind, filename: &str) -> String {
    format!("{}/{}-{filename}", kind.folder, Uuid::now_v7())
}

/// Key of a presigned upload: `<folder>/<owner>/<uuidv7>-<name>`, so completing it can check
/// that the caller is the one it was issued to.
pub fn owned_key(kind: &Kind, owner: &str, filename: &str) -> String {
    format!(
        "{}/{}/{}-{filename}",
        kind.folder,
        sanitize(owner),
        Uuid::now_v7()
    )
}

/// Where presigned PUTs land until `/complete` has checked their bytes: a prefix no public
/// URL serves (docs/security.md), and no key a client names may be in.
pub const QUARANTINE: &str = "quarantine/";

/// The quarantine twin of a presigned upload's key.
pub fn quarantined(key: &str) -> String {
    format!("{QUARANTINE}{key}")
}

/// The kind and owner of a presigned upload's key; `None` when the key is not one.
pub fn owner_of(key: &str) -> Option<(&'static Kind, &str)> {
    let (kind, rest) = by_key(key)?;
    let (owner, file) = rest.split_once('/')?;
    (!owner.is_empty() && !file.is_empty() && !file.contains('/')).then_some((kind, owner))
}

/// True when `owner` (a user id) owns keys with `segment` as their owner part.
pub fn is_owner(segment: &str, owner: &str) -> bool {
    segment == sanitize(owner)
}

/// Megabytes with `decimals` digits, as the original's messages print sizes.
pub fn megabytes(bytes: u64, decimals: usize) -> String {
    format!("{:.*}MB", decimals, bytes as f64 / MIB as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised_like_the_original_and_bounded() {
        assert_eq!(sanitize("my photo (1).png"), "my_photo__1_.png");
        assert_eq!(sanitize("../../etc/passwd"), "passwd");
        assert_eq!(sanitize("C:\\Users\\ada\\é.txt"), "_.txt");
        assert_eq!(sanitize(""), "file");
        assert_eq!(sanitize(".."), "file");
        let long = format!("{}.png", "a".repeat(300));
        assert_eq!(sanitize(&long).len(), 100);
        assert!(sanitize(&long).ends_with(".png"));
    }

    #[test]
    fn keys_are_unique_and_owned_keys_name_their_owner() {
        let avatar = find("profile/avatar").expect("a kind");
        let a = key(avatar, "a.png");
        assert!(a.starts_with("profiles/avatars/") && a.ends_with("-a.png"));
        assert_ne!(a, key(avatar, "a.png"));

        let images = find("message/images").expect("a kind");
        let owned = owned_key(images, "user-1", "x.png");
        let (kind, owner) = owner_of(&owned).expect("an owned key");
        assert_eq!(kind.folder, "messages/images");
        assert!(is_owner(owner, "user-1"));
        assert!(!is_owner(owner, "user-2"));
        assert_eq!(owner_of(&a), None, "a streamed key has no owner part");
        assert_eq!(owner_of("elsewhere/user-1/x.png"), None);
        assert_eq!(owner_of("profiles/avatars/user-1/a/b.png"), None);
    }

    #[test]
    fn the_table_matches_the_original() {
        assert_eq!(ALL_ATTACHMENTS.len(), 19);
        let concatenated: Vec<_> = [IMAGES, DOCUMENTS, VIDEOS, AUDIOS].concat();
        assert_eq!(ALL_ATTACHMENTS, concatenated.as_slice());
        assert_eq!(find("message/audios").map(|k| k.max_files), Some(5));
        assert_eq!(
            find("channel/icon").map(|k| k.class.max_size),
            Some(5 * MIB)
        );
        assert!(find("message/images").is_some_and(Kind::multi));
        assert!(find("tmp/uploads").is_none());
        assert_eq!(megabytes(6 * MIB + MIB / 2, 2), "6.50MB");
        assert_eq!(megabytes(5 * MIB, 1), "5.0MB");
    }
}
