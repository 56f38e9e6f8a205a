//! `/api/uploads/presign` and `/complete`: files sent straight to the real S3 server
//! (SeaweedFS, which checks signatures and expiry) and checked on completion.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;
#[path = "common/uploads.rs"]
mod files;

use std::time::Duration;

use common::*;
use files::*;
use hilo_e2e::Options;
use reqwest::Method;
use serde_json::{Value, json};

/// Asks for a presigned upload as `user`.
async fn presign(base: &str, user: &User, body: Value) -> (u16, Value) {
    call(
        Method::POST,
        format!("{base}/api/uploads/presign"),
        Some(user),
        Some(body),
    )
    .await
}

/// Completes a presigned upload as `user`.
async fn complete(base: &str, user: &User, body: Value) -> (u16, Value) {
    call(
        Method::POST,
        format!("{base}/api/uploads/complete"),
        Some(user),
        Some(body),
    )
    .await
}

/// PUTs `bytes` to a presigned URL straight to S3, with the headers it was signed with.
async fn put_presigned(presigned: &Value, bytes: Vec<u8>) -> u16 {
    let mut request = http().put(presigned["url"].as_str().unwrap()).body(bytes);
    for (name, value) in presigned["headers"].as_object().unwrap() {
        if name != "content-length" {
            request = request.header(name, value.as_str().unwrap());
        }
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn presigned_uploads_go_straight_to_s3_and_are_checked_on_completion() {
    let stack = stack_with_own_bucket(Options::default()).await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let bob = sign_up(base, "Bob").await;

    // presign -> PUT -> complete.
    let file = png(2048);
    let request = json!({"kind": "profile/avatar", "filename": "me.png", "contentType": "image/png", "size": file.len()});
    let (status, presigned) = presign(base, &ada, request.clone()).await;
    assert_eq!(status, 200, "{presigned}");
    let key = presigned["key"].as_str().unwrap().to_owned();
    assert!(
        key.starts_with(&format!("profiles/avatars/{}/", ada.id)),
        "{key}"
    );
    assert!(key.ends_with("-me.png"));
    assert_eq!(presigned["method"], "PUT");
    let url = presigned["url"].as_str().unwrap();
    let signed = url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "X-Amz-SignedHeaders")
        .unwrap()
        .1
        .into_owned();
    assert!(
        signed.contains("content-length") && signed.contains("content-type"),
        "bound to length and type: {signed}"
    );
    assert_eq!(put_presigned(&presigned, file.clone()).await, 200);
    // Until its bytes are checked the file is in quarantine: no object at its key.
    assert_eq!(head(&stack, &key).await, None);
    assert!(head(&stack, &format!("quarantine/{key}")).await.is_some());
    let (status, body) = complete(base, &bob, json!({"key": key})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "another user's key: {body}"
    );
    let (status, body) = complete(base, &ada, json!({"kind": "profile/avatar", "key": key})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["filename"], "me.png");
    assert_stored(
        &stack,
        &body["data"],
        "profiles/avatars",
        "image/png",
        file.len(),
    )
    .await;
    assert_eq!(head(&stack, &format!("quarantine/{key}")).await, None);
    // Completing again answers the same file.
    let (status, again) = complete(base, &ada, json!({"key": key})).await;
    assert_eq!((status, &again["data"]), (200, &body["data"]));

    // S3 refuses a body of another length or type than signed, and a tampered URL.
    let (_, presigned) = presign(base, &ada, request.clone()).await;
    assert_eq!(
        put_presigned(&presigned, png(2049)).await,
        403,
        "another length"
    );
    let mut other_type = presigned.clone();
    other_type["headers"]["content-type"] = json!("image/jpeg");
    assert_eq!(
        put_presigned(&other_type, png(2048)).await,
        403,
        "another type"
    );
    let mut tampered = presigned.clone();
    let mut parsed = url::Url::parse(presigned["url"].as_str().unwrap()).unwrap();
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "X-Amz-Expires" {
                "604800".to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    tampered["url"] = json!(parsed.to_string());
    assert_eq!(
        put_presigned(&tampered, png(2048)).await,
        403,
        "a changed query parameter"
    );
    assert_eq!(head(&stack, presigned["key"].as_str().unwrap()).await, None);

    // HTML PUT as an image: never at its key (so never served), never valid, deleted on
    // completion.
    let page = b"<!doctype html><html><script>alert(document.cookie)</script></html>".to_vec();
    let (_, presigned) = presign(base, &ada, json!({"kind": "message/image", "filename": "x.png", "contentType": "image/png", "size": page.len()})).await;
    assert_eq!(put_presigned(&presigned, page).await, 200);
    let key = presigned["key"].as_str().unwrap();
    let quarantined = format!("quarantine/{key}");
    assert_eq!(head(&stack, key).await, None);
    assert!(head(&stack, &quarantined).await.is_some());
    for file_key in [key.to_owned(), quarantined.clone()] {
        let (status, _) = call(
            Method::POST,
            format!("{base}/api/uploads/validate"),
            Some(&ada),
            Some(json!({"fileKey": file_key, "publicUrl": presigned["publicUrl"]})),
        )
        .await;
        assert_eq!(status, 404, "{file_key} is not valid");
    }
    let (status, body) = complete(base, &ada, json!({"key": key})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (415, Some("UNSUPPORTED_MEDIA_TYPE")),
        "{body}"
    );
    assert_eq!(
        head(&stack, &quarantined).await,
        None,
        "the mismatched object is deleted"
    );
    let (status, _) = complete(base, &ada, json!({"key": key})).await;
    assert_eq!(status, 404, "and gone");

    // Presign refuses what could never be completed.
    let (status, body) = presign(base, &ada, json!({"kind": "profile/avatar", "filename": "a.png", "contentType": "image/png", "size": 5 * MIB + 1})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("PAYLOAD_TOO_LARGE")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "File size (5.00MB) exceeds maximum allowed size of 5.0MB"
    );
    let (status, body) = presign(base, &ada, json!({"kind": "profile/avatar", "filename": "a.pdf", "contentType": "application/pdf", "size": 10})).await;
    assert_eq!(
        (status, body["details"][0]["field"].as_str()),
        (415, Some("contentType")),
        "{body}"
    );
    let (status, body) = presign(
        base,
        &ada,
        json!({"kind": "tmp/uploads", "filename": "a", "contentType": "image/png", "size": 10}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("UNKNOWN_KIND")),
        "{body}"
    );
    let (status, body) = presign(base, &ada, json!({"kind": "profile/avatar"})).await;
    assert_eq!(
        (status, body["details"][0]["field"].as_str()),
        (400, Some("filename")),
        "{body}"
    );
    let (status, _) = complete(base, &ada, json!({})).await;
    assert_eq!(status, 400);
    let (status, _) = complete(
        base,
        &ada,
        json!({"key": "profiles/avatars/somebody/0-x.png", "kind": "message/image"}),
    )
    .await;
    assert_eq!(status, 400, "the key is not in the kind's folder");

    drop_bucket(&stack).await;
}

#[tokio::test]
async fn an_expired_presigned_url_is_refused_by_s3() {
    let stack = stack_with_own_bucket(Options {
        env: vec![("PRESIGN_TTL_SECS".to_owned(), "1".to_owned())],
        ..Options::default()
    })
    .await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let file = jpeg(1000);
    let (status, presigned) = presign(base, &ada, json!({"kind": "message/image", "filename": "a.jpg", "contentType": "image/jpeg", "size": file.len()})).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(put_presigned(&presigned, file).await, 403);
    assert_eq!(keys(&stack, "").await, Vec::<String>::new());
    drop_bucket(&stack).await;
}
