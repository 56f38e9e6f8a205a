//! Helpers of the upload tests: tiny files that sniff right, hand-built multipart bodies, and a
//! client for the stack's own bucket to see what really landed there.
#![allow(dead_code, clippy::unwrap_used)]

use aws_sdk_s3::{
    Client,
    config::{BehaviorVersion, Credentials, Region},
};
use bytes::Bytes;
use hilo_e2e::{Options, Stack};
use reqwest::header;
use serde_json::Value;

use crate::common::{User, http, random, stack_with};

pub const MIB: usize = 1024 * 1024;

// Tiny files that sniff right: their magic numbers, then filler.
pub fn png(len: usize) -> Vec<u8> {
    filled(
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89",
        len,
    )
}
pub fn jpeg(len: usize) -> Vec<u8> {
    filled(
        b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0",
        len,
    )
}
pub fn pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n".to_vec()
}
pub fn mp3(len: usize) -> Vec<u8> {
    filled(b"ID3\x03\0\0\0\0\0\0\xff\xfb\x90\x64\0\0\0\0", len)
}
pub fn mp4(len: usize) -> Vec<u8> {
    filled(b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2", len)
}
pub fn text() -> Vec<u8> {
    b"just some words, certainly not a picture\n".to_vec()
}
pub fn filled(magic: &[u8], len: usize) -> Vec<u8> {
    let mut bytes = magic.to_vec();
    bytes.resize(len.max(magic.len()), 0);
    bytes
}

/// One file of a form: field, file name, declared type, bytes.
pub type FilePart<'a> = (&'a str, &'a str, &'a str, Vec<u8>);

pub const BOUNDARY: &str = "hilo-e2e-boundary-7d1f";

/// A multipart/form-data body, built by hand so tests control every byte.
pub fn form(parts: Vec<FilePart<'_>>) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, filename, content_type, bytes) in parts {
        body.extend_from_slice(part_head(field, filename, content_type).as_bytes());
        body.extend_from_slice(&bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub fn part_head(field: &str, filename: &str, content_type: &str) -> String {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
}

/// POSTs a form body to an upload route as `user`.
pub async fn post_form(
    base: &str,
    route: &str,
    user: Option<&User>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    try_post_form(base, route, user, body)
        .await
        .expect("the gateway answers")
}

/// [`post_form`], returning transport errors: a server that refuses a body while it is still
/// being sent closes the connection, and the client may see that (a broken pipe while
/// writing) before it reads the answer.
pub async fn try_post_form(
    base: &str,
    route: &str,
    user: Option<&User>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Result<(u16, Value)> {
    let mut request = http()
        .post(format!("{base}/api/uploads/{route}"))
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body);
    if let Some(user) = user {
        request = request.header(header::AUTHORIZATION, user.bearer());
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// A stack whose uploads write to a bucket of its own, so the test sees only its objects;
/// [`drop_bucket`] removes it at the end.
pub async fn stack_with_own_bucket(options: Options) -> Stack {
    stack_with(Options {
        s3_bucket: Some(format!("hilo-e2e-{}", random(12))),
        ..options
    })
    .await
}

/// A client for the stack's bucket, to see what really landed there.
pub fn s3(stack: &Stack) -> Client {
    let s3 = &stack.s3;
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(s3.region.clone()))
        .endpoint_url(&s3.endpoint)
        .credentials_provider(Credentials::new(
            &s3.access_key_id,
            &s3.secret_access_key,
            None,
            None,
            "e2e",
        ))
        .force_path_style(true)
        .build();
    Client::from_conf(config)
}

/// Every key in the stack's bucket under `prefix`.
pub async fn keys(stack: &Stack, prefix: &str) -> Vec<String> {
    let out = s3(stack)
        .list_objects_v2()
        .bucket(&stack.s3.bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

/// `(size, content type)` of an object, `None` when it does not exist.
pub async fn head(stack: &Stack, key: &str) -> Option<(i64, String)> {
    let out = s3(stack)
        .head_object()
        .bucket(&stack.s3.bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    Some((
        out.content_length().unwrap_or_default(),
        out.content_type().unwrap_or_default().to_owned(),
    ))
}

/// Multipart uploads started and neither completed nor aborted.
pub async fn pending_multipart(stack: &Stack) -> usize {
    let out = s3(stack)
        .list_multipart_uploads()
        .bucket(&stack.s3.bucket)
        .send()
        .await
        .unwrap();
    out.uploads().len()
}

/// Empties and deletes the stack's own bucket.
pub async fn drop_bucket(stack: &Stack) {
    let client = s3(stack);
    for key in keys(stack, "").await {
        client
            .delete_object()
            .bucket(&stack.s3.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
    }
    client
        .delete_bucket()
        .bucket(&stack.s3.bucket)
        .send()
        .await
        .unwrap();
}

/// Peak resident memory of a process so far (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Checks one stored file of a success body against the bucket.
pub async fn assert_stored(stack: &Stack, file: &Value, folder: &str, mime: &str, size: usize) {
    let key = file["key"].as_str().unwrap();
    assert!(key.starts_with(&format!("{folder}/")), "{key} in {folder}");
    assert_eq!(file["fileKey"], key);
    assert_eq!(file["mimeType"], mime, "{file}");
    assert_eq!(file["contentType"], mime);
    assert_eq!(file["size"], size);
    let url = format!("{}/{key}", stack.s3.public_url);
    assert_eq!(
        (file["url"].as_str(), file["publicUrl"].as_str()),
        (Some(url.as_str()), Some(url.as_str()))
    );
    assert_eq!(
        head(stack, key).await,
        Some((size as i64, mime.to_owned())),
        "{key} stored with the sniffed type"
    );
}

/// A form whose one file is `magic` followed by zeros forever (or up to `size` bytes in all):
/// the body is made while it is sent, so neither side can hold it.
pub fn endless_form(field: &str, magic: &[u8], size: Option<usize>) -> reqwest::Body {
    let head = [
        part_head(field, "big.png", "image/png").into_bytes(),
        magic.to_vec(),
    ]
    .concat();
    let zeros = Bytes::from(vec![0u8; 64 * 1024]);
    let rest = size.map(|s| s - magic.len());
    let chunks = rest.map_or(usize::MAX, |r| r / zeros.len());
    let tail = rest.map_or(0, |r| r % zeros.len());
    let body = std::iter::once(Bytes::from(head))
        .chain(std::iter::repeat_n(zeros, chunks))
        .chain(std::iter::once(Bytes::from(vec![0u8; tail])))
        .chain(std::iter::once(Bytes::from(format!(
            "\r\n--{BOUNDARY}--\r\n"
        ))))
        .map(Ok::<_, std::io::Error>);
    reqwest::Body::wrap_stream(tokio_stream::iter(body))
}
