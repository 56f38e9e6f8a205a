//! `/api/uploads`: every file route against the real S3 server (SeaweedFS, which checks
//! signatures): types decided by content, limits enforced while streaming, all-or-nothing
//! multi-file requests, `/validate`, `/info`, and sessions. Each stack writes to a bucket of its
//! own, so "nothing left behind" is checked by listing it; the bucket is dropped at the end.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;
#[path = "common/uploads.rs"]
mod files;

use std::time::{Duration, Instant};

use common::*;
use files::*;
use hilo_e2e::Options;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn every_file_route_stores_real_files_sniffed_with_the_union_shape() {
    let stack = stack_with_own_bucket(Options::default()).await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;

    // Single-file routes: the declared type is a hint; the content decides.
    let singles: [(&str, &str, Vec<u8>, &str, &str); 8] = [
        (
            "profile/avatar",
            "profiles/avatars",
            png(300),
            "image/jpeg",
            "image/png",
        ),
        (
            "profile/banner",
            "profiles/banners",
            jpeg(400),
            "image/jpeg",
            "image/jpeg",
        ),
        (
            "channel/icon",
            "channels/icons",
            png(200),
            "image/png",
            "image/png",
        ),
        (
            "channel/banner",
            "channels/banners",
            jpeg(500),
            "application/octet-stream",
            "image/jpeg",
        ),
        (
            "message/image",
            "messages/images",
            png(6 * MIB),
            "image/png",
            "image/png",
        ),
        (
            "message/attachment",
            "messages/attachments",
            pdf(),
            "application/pdf",
            "application/pdf",
        ),
        (
            "message/video",
            "messages/videos",
            mp4(2048),
            "video/mp4",
            "video/mp4",
        ),
        (
            "message/audio",
            "messages/audios",
            mp3(4096),
            "audio/mpeg",
            "audio/mpeg",
        ),
    ];
    for (route, folder, bytes, declared, sniffed) in singles {
        let size = bytes.len();
        let (status, body) = post_form(
            base,
            route,
            Some(&ada),
            form(vec![("file", "my photo (1).bin", declared, bytes)]),
        )
        .await;
        assert_eq!(status, 200, "{route}: {body}");
        assert_eq!(body["success"], true);
        assert_eq!(body["data"]["filename"], "my_photo__1_.bin", "{route}");
        assert_stored(&stack, &body["data"], folder, sniffed, size).await;
    }

    // Multi-file routes: every file, in request order (one over a part size: multipart).
    let multis: [(&str, &str, Vec<FilePart<'_>>, [&str; 2]); 4] = [
        (
            "message/images",
            "messages/images",
            vec![
                ("files", "a.png", "image/png", png(100)),
                ("files", "b.jpg", "image/jpeg", jpeg(6 * MIB)),
            ],
            ["image/png", "image/jpeg"],
        ),
        (
            "message/attachments",
            "messages/attachments",
            vec![
                ("files", "doc.pdf", "application/pdf", pdf()),
                ("files", "notes.txt", "text/plain", text()),
            ],
            ["application/pdf", "text/plain"],
        ),
        (
            "message/videos",
            "messages/videos",
            vec![
                ("files", "a.mp4", "video/mp4", mp4(1000)),
                ("files", "b.mp4", "video/mp4", mp4(3000)),
            ],
            ["video/mp4", "video/mp4"],
        ),
        (
            "message/audios",
            "messages/audios",
            vec![
                ("files", "a.mp3", "audio/mpeg", mp3(1000)),
                ("files", "b.mp3", "audio/mpeg", mp3(2000)),
            ],
            ["audio/mpeg", "audio/mpeg"],
        ),
    ];
    for (route, folder, parts, types) in multis {
        let sizes: Vec<usize> = parts.iter().map(|p| p.3.len()).collect();
        let names: Vec<String> = parts.iter().map(|p| p.1.to_owned()).collect();
        let (status, body) = post_form(base, route, Some(&ada), form(parts)).await;
        assert_eq!(status, 200, "{route}: {body}");
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{route}");
        for (i, file) in data.iter().enumerate() {
            assert_eq!(file["filename"], names[i].as_str());
            assert_stored(&stack, file, folder, types[i], sizes[i]).await;
        }
    }

    // validate: HEAD on a key.
    let key = keys(&stack, "profiles/avatars/").await.pop().unwrap();
    let url = format!("{}/{key}", stack.s3.public_url);
    let validate = |body: Value| {
        call(
            Method::POST,
            format!("{base}/api/uploads/validate"),
            Some(&ada),
            Some(body),
        )
    };
    assert_eq!(
        validate(json!({"fileKey": key, "publicUrl": url})).await,
        (200, json!({"valid": true}))
    );
    let (status, body) =
        validate(json!({"fileKey": "profiles/avatars/nope.png", "publicUrl": url})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")));
    let (status, body) = validate(json!({"fileKey": "", "publicUrl": "not a url"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["details"].as_array().unwrap().len(), 2, "{body}");

    // info: the original's limits, exactly.
    let (status, info) = call(
        Method::GET,
        format!("{base}/api/uploads/info"),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let images = json!(["image/jpeg", "image/png", "image/webp", "image/gif"]);
    let videos = json!(["video/mp4", "video/webm", "video/ogg", "video/quicktime"]);
    let audios = json!([
        "audio/mpeg",
        "audio/mp4",
        "audio/ogg",
        "audio/wav",
        "audio/webm",
        "audio/aac"
    ]);
    let documents = json!([
        "application/pdf",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "text/plain",
        "text/csv"
    ]);
    let all: Vec<Value> = [&images, &documents, &videos, &audios]
        .iter()
        .flat_map(|l| l.as_array().unwrap().clone())
        .collect();
    assert_eq!(
        info,
        json!({
            "limits": {
                "image": {"maxSize": 10485760, "maxSizeMB": 10, "allowedTypes": images},
                "document": {"maxSize": 26214400, "maxSizeMB": 25, "allowedTypes": documents},
                "profile": {"maxSize": 5242880, "maxSizeMB": 5, "allowedTypes": images},
                "video": {"maxSize": 26214400, "maxSizeMB": 25, "allowedTypes": videos},
                "audio": {"maxSize": 52428800, "maxSizeMB": 50, "allowedTypes": audios},
                "attachment": {"maxSize": 26214400, "maxSizeMB": 25, "allowedTypes": all},
            },
            "maxFilesPerRequest": {"images": 10, "attachments": 10, "videos": 5, "audios": 5}
        })
    );
    assert_eq!(pending_multipart(&stack).await, 0);
    drop_bucket(&stack).await;
}

#[tokio::test]
async fn an_oversize_file_is_refused_as_soon_as_it_crosses_the_limit() {
    let stack = stack_with_own_bucket(Options::default()).await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let gateway = stack.pid("gateway-0").unwrap();
    let uploads = stack.pid("uploads").unwrap();
    let (gateway_before, uploads_before) = (peak_rss_kib(gateway), peak_rss_kib(uploads));

    // A body that never ends: only an answer given at the limit can come back.
    let started = Instant::now();
    let (status, body) = refused_while_sending(base, "message/image", &ada, || {
        endless_form("file", &png(64), None)
    })
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("PAYLOAD_TOO_LARGE")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "File size exceeds maximum allowed size of 10.0MB"
    );
    assert_eq!(body["details"][0]["field"], "file");
    let (gateway_after, uploads_after) = (peak_rss_kib(gateway), peak_rss_kib(uploads));
    println!(
        "oversize refused in {:?}; peak RSS gateway {gateway_before} -> {gateway_after} KiB, uploads {uploads_before} -> {uploads_after} KiB",
        started.elapsed()
    );
    assert!(
        gateway_after - gateway_before < 8 * 1024,
        "the gateway streams: its peak grew by {} KiB",
        gateway_after - gateway_before
    );

    // The first 5 MiB part had gone to S3: the multipart upload was aborted, nothing is left.
    assert_eq!(keys(&stack, "messages/images/").await, Vec::<String>::new());
    assert_eq!(pending_multipart(&stack).await, 0);

    // A finite body over the gateway's own limit for the route is refused too.
    let (status, _) = refused_while_sending(base, "profile/avatar", &ada, || {
        endless_form("file", &png(64), Some(12 * MIB))
    })
    .await;
    assert_eq!(status, 413);
    assert_eq!(keys(&stack, "").await, Vec::<String>::new());
    drop_bucket(&stack).await;
}

/// Posts a body the server refuses while it is still being sent, and returns the answer. The
/// refusal closes the connection mid-body, and the client may hit that (a broken pipe) before
/// it reads the answer: a race of the transport, so up to three tries to read the answer.
async fn refused_while_sending(
    base: &str,
    route: &str,
    user: &User,
    body: impl Fn() -> reqwest::Body,
) -> (u16, Value) {
    for _ in 0..3 {
        let attempt = tokio::time::timeout(
            Duration::from_secs(60),
            try_post_form(base, route, Some(user), body()),
        )
        .await
        .expect("answered while the body was still being sent");
        match attempt {
            Ok(answered) => return answered,
            Err(error) if error.is_request() => println!("connection closed first: {error}"),
            Err(error) => panic!("{error}"),
        }
    }
    panic!("the answer was not read in three tries")
}

#[tokio::test]
async fn the_content_decides_the_type_and_bad_forms_are_400() {
    let stack = stack_with_own_bucket(Options::default()).await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;

    // Text that claims to be a PNG.
    let (status, body) = post_form(
        base,
        "profile/avatar",
        Some(&ada),
        form(vec![("file", "x.png", "image/png", text())]),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (415, Some("UNSUPPORTED_MEDIA_TYPE")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "Invalid file type: text/plain. Allowed types: image/jpeg, image/png, image/webp, image/gif"
    );
    assert_eq!(body["details"][0]["field"], "file");
    // A PDF is a fine attachment but no picture; an HTML page is no attachment.
    let (status, _) = post_form(
        base,
        "message/image",
        Some(&ada),
        form(vec![("file", "a.jpg", "image/jpeg", pdf())]),
    )
    .await;
    assert_eq!(status, 415);
    let html = b"<html><script>alert(1)</script></html>".to_vec();
    let (status, _) = post_form(
        base,
        "message/attachment",
        Some(&ada),
        form(vec![("file", "a.txt", "text/plain", html)]),
    )
    .await;
    assert_eq!(status, 415);

    // No file, an empty file, a file in the wrong field, not a form at all.
    let (status, body) = post_form(base, "profile/avatar", Some(&ada), form(vec![])).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("NO_FILE")),
        "{body}"
    );
    assert_eq!(body["message"], "No file was provided in the request");
    // A text part named `file` (no filename) is no file either: it was stored as one.
    let text_part = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nhello\r\n--{BOUNDARY}--\r\n"
    );
    let (status, body) = post_form(base, "message/attachment", Some(&ada), text_part).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("NO_FILE")),
        "{body}"
    );
    let (status, body) = post_form(
        base,
        "message/images",
        Some(&ada),
        form(vec![("file", "a.png", "image/png", png(100))]),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("NO_FILE")),
        "multi routes read `files`"
    );
    let (status, body) = post_form(
        base,
        "profile/avatar",
        Some(&ada),
        form(vec![("file", "a.png", "image/png", Vec::new())]),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("EMPTY_FILE")),
        "{body}"
    );
    let (status, body) = call(
        Method::POST,
        format!("{base}/api/uploads/profile/avatar"),
        Some(&ada),
        Some(json!({"file": "x"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_MULTIPART")),
        "{body}"
    );

    assert_eq!(
        keys(&stack, "").await,
        Vec::<String>::new(),
        "nothing refused was kept"
    );
    drop_bucket(&stack).await;
}

#[tokio::test]
async fn multi_file_requests_store_all_files_or_none() {
    let stack = stack_with_own_bucket(Options::default()).await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;

    // Eleven images where ten are allowed: refused, and the ten already stored are deleted.
    let eleven = (0..11)
        .map(|i| ("files", "p.png", "image/png", png(100 + i)))
        .collect();
    let (status, body) = post_form(base, "message/images", Some(&ada), form(eleven)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("TOO_MANY_FILES")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "Received at least 11 files but maximum allowed is 10"
    );
    assert_eq!(keys(&stack, "").await, Vec::<String>::new());
    // A second file on a single-file route is one too many as well.
    let two = vec![
        ("file", "a.png", "image/png", png(10)),
        ("file", "b.png", "image/png", png(10)),
    ];
    let (status, _) = post_form(base, "profile/avatar", Some(&ada), form(two)).await;
    assert_eq!(status, 400);

    // The last file is bad: the first (small) and second (multipart) ones are removed again.
    let parts = vec![
        ("files", "a.png", "image/png", png(100)),
        ("files", "b.jpg", "image/jpeg", jpeg(7 * MIB)),
        ("files", "c.png", "image/png", text()),
    ];
    let (status, body) = post_form(base, "message/images", Some(&ada), form(parts)).await;
    assert_eq!(status, 415, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Error in file c.png: Invalid file type: text/plain"),
        "{body}"
    );
    assert_eq!(body["details"][0]["field"], "files.2");
    // The last file is too large.
    let parts = vec![
        ("files", "a.mp4", "video/mp4", mp4(100)),
        ("files", "b.mp4", "video/mp4", mp4(25 * MIB + 1)),
    ];
    let (status, body) = post_form(base, "message/videos", Some(&ada), form(parts)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        body["message"],
        "Error in file b.mp4: File size exceeds maximum allowed size of 25.0MB"
    );

    assert_eq!(
        keys(&stack, "").await,
        Vec::<String>::new(),
        "all or nothing"
    );
    assert_eq!(pending_multipart(&stack).await, 0);
    drop_bucket(&stack).await;
}

#[tokio::test]
async fn every_upload_route_needs_a_session_and_is_documented() {
    let stack = stack_with_own_bucket(Options::default()).await;
    let base = stack.gateway();
    let routes = [
        "profile/avatar",
        "profile/banner",
        "channel/icon",
        "channel/banner",
        "message/image",
        "message/attachment",
        "message/video",
        "message/audio",
        "message/images",
        "message/attachments",
        "message/videos",
        "message/audios",
    ];
    let unauthorized = json!({"code": "UNAUTHORIZED", "message": "Unauthorized"});
    for route in routes {
        let field = if route.ends_with('s') {
            "files"
        } else {
            "file"
        };
        let body = form(vec![(field, "a.png", "image/png", png(100))]);
        assert_eq!(
            post_form(base, route, None, body).await,
            (401, unauthorized.clone()),
            "{route}"
        );
    }
    for (method, route) in [
        (Method::POST, "validate"),
        (Method::GET, "info"),
        (Method::POST, "presign"),
        (Method::POST, "complete"),
    ] {
        let body = (method == Method::POST).then(|| json!({}));
        let answer = call(method, format!("{base}/api/uploads/{route}"), None, body).await;
        assert_eq!(answer, (401, unauthorized.clone()), "{route}");
    }
    // A forged bearer is no better.
    let forged = User {
        id: "x".into(),
        email: "x".into(),
        token: "not-a-session".into(),
        cookie: String::new(),
    };
    let (status, _) = post_form(
        base,
        "profile/avatar",
        Some(&forged),
        form(vec![("file", "a.png", "image/png", png(10))]),
    )
    .await;
    assert_eq!(status, 401);

    let (status, openapi) = call(Method::GET, format!("{base}/openapi.json"), None, None).await;
    assert_eq!(status, 200);
    for route in routes.iter().chain(&["validate", "presign", "complete"]) {
        let path = format!("/api/uploads/{route}");
        assert!(
            openapi["paths"][&path]["post"].is_object(),
            "{path} documented"
        );
    }
    assert!(openapi["paths"]["/api/uploads/info"]["get"].is_object());
    drop_bucket(&stack).await;
}

/// Peak memory of the gateway and uploads while a 50 MiB file (the audio limit) streams
/// through; `scripts/bench.sh upload-memory` runs it (a measurement, so not part of the suite).
#[tokio::test]
#[ignore = "a measurement: prints numbers"]
async fn peak_rss_while_streaming_a_50_mib_upload() {
    let stack = stack_with_own_bucket(Options::default()).await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let (gateway, uploads) = (
        stack.pid("gateway-0").unwrap(),
        stack.pid("uploads").unwrap(),
    );
    // Warm both paths with a small upload so one-off allocations are not counted as growth.
    let (status, _) = post_form(
        base,
        "message/audio",
        Some(&ada),
        form(vec![("file", "a.mp3", "audio/mpeg", mp3(1000))]),
    )
    .await;
    assert_eq!(status, 200);
    let before = (peak_rss_kib(gateway), peak_rss_kib(uploads));
    let size = 50 * MIB;
    let started = Instant::now();
    let (status, body) = post_form(
        base,
        "message/audio",
        Some(&ada),
        endless_form("file", &mp3(64), Some(size)),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["size"], size);
    let after = (peak_rss_kib(gateway), peak_rss_kib(uploads));
    println!(
        "50 MiB upload in {elapsed:?}: peak RSS (VmHWM) gateway {} -> {} KiB (+{}), uploads {} -> {} KiB (+{})",
        before.0,
        after.0,
        after.0 - before.0,
        before.1,
        after.1,
        after.1 - before.1
    );
    drop_bucket(&stack).await;
}

/// Inputs far longer than any key, type or kind get a 4xx whose message repeats only a short
/// piece of them (they were echoed into gRPC trailers past their limit: 500).
#[tokio::test]
async fn long_inputs_get_4xx_with_short_messages() {
    let stack = common::stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let long = "é".repeat(50_000);
    let presign = |field: &str| {
        let mut body = json!({"filename": "a.png", "contentType": "image/png", "size": 10, "kind": "message/image"});
        body[field] = long.clone().into();
        body
    };
    for (route, body) in [
        (
            "validate",
            json!({"fileKey": long, "publicUrl": "http://x"}),
        ),
        ("complete", json!({"fileKey": long})),
        ("presign", presign("contentType")),
        ("presign", presign("kind")),
    ] {
        let (status, answer) = call(
            Method::POST,
            format!("{base}/api/uploads/{route}"),
            Some(&ada),
            Some(body),
        )
        .await;
        assert!((400..500).contains(&status), "{route}: {status} {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.len() < 400,
            "{route}: the message has {} bytes",
            message.len()
        );
    }
}
