//! Bad input never reaches a 500: every JSON route, each of its fields (and one it does not
//! know) set to values a client may send by mistake or on purpose (a NUL, 100 KB strings, the
//! wrong type), raw bodies that are not the object asked for, and the wrong content type. Every
//! answer is below 500 and every error has the one error shape (`code`, `message`).
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use common::*;
use reqwest::{Method, header};
use serde_json::{Value, json};

#[tokio::test]
async fn malformed_requests_on_every_json_route_get_4xx_in_the_error_shape() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let channel = create_channel(base, &ada, "battery", false).await;
    let thread = create_thread(base, &ada, &channel, "t").await;
    let (status, message) = call(
        Method::POST,
        format!("{base}/api/messages"),
        Some(&ada),
        Some(json!({"threadId": thread, "content": "hi"})),
    )
    .await;
    assert_eq!(status, 201, "{message}");
    let message = message["id"].as_str().unwrap().to_owned();

    let routes: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            "/api/channels".into(),
            json!({"name": "n", "isPrivate": false}),
        ),
        (
            Method::PATCH,
            format!("/api/channels/{channel}"),
            json!({"name": "n"}),
        ),
        (
            Method::POST,
            "/api/threads".into(),
            json!({"channelId": channel, "name": "t"}),
        ),
        (
            Method::PATCH,
            format!("/api/threads/{thread}"),
            json!({"name": "t"}),
        ),
        (
            Method::POST,
            "/api/messages".into(),
            json!({"threadId": thread, "content": "c"}),
        ),
        (
            Method::PATCH,
            format!("/api/messages/{message}"),
            json!({"content": "c"}),
        ),
        (
            Method::POST,
            "/api/members".into(),
            json!({"channelId": channel}),
        ),
        (
            Method::PATCH,
            format!("/api/members/{channel}/{}/role", ada.id),
            json!({"role": "admin"}),
        ),
        (
            Method::POST,
            format!("/api/channels/{channel}/invites"),
            json!({"maxUses": 1}),
        ),
        (
            Method::PATCH,
            format!("/api/users/{}", ada.id),
            json!({"name": "n"}),
        ),
        (
            Method::POST,
            "/api/uploads/validate".into(),
            json!({"fileKey": "k", "publicUrl": "http://x"}),
        ),
        (
            Method::POST,
            "/api/uploads/complete".into(),
            json!({"fileKey": "k"}),
        ),
        (
            Method::POST,
            "/api/uploads/presign".into(),
            json!({"filename": "a.png", "contentType": "image/png", "size": 10, "kind": "message/image"}),
        ),
        (
            Method::POST,
            "/api/auth/sign-in/email".into(),
            json!({"email": "a@b.c", "password": "p"}),
        ),
        (
            Method::POST,
            "/api/auth/sign-up/email".into(),
            json!({"name": "n", "email": "q@b.c", "password": PASSWORD}),
        ),
    ];
    let values = [
        json!("\u{0}"),
        json!("x".repeat(100_000)),
        json!("é".repeat(5_000)),
        json!(12345),
        json!(-1),
        json!(1e308),
        json!(true),
        Value::Null,
        json!([]),
        json!({}),
    ];
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let raws = [
        "{",
        "[]",
        "null",
        "\"x\"",
        "{\"a\": 1} x",
        "{\"content\": \"\\ud800\"}",
        nested.as_str(),
    ];
    let client = http();
    let mut sent = 0;
    let mut check = async |method: &Method, path: &str, content_type: &str, body: Vec<u8>| {
        let send = || {
            client
                .request(method.clone(), format!("{base}{path}"))
                .header(header::AUTHORIZATION, ada.bearer())
                .header(header::ORIGIN, base)
                .header(header::CONTENT_TYPE, content_type)
                .body(body.clone())
                .send()
        };
        // A server that answers before reading a large body (a 405, a rate limit) closes the
        // connection, and the client may see that while writing; the answer comes once more.
        let response = match send().await {
            Ok(response) => response,
            Err(error) if error.is_request() => send().await.unwrap(),
            Err(error) => panic!("{method} {path}: {error}"),
        };
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status < 500, "{method} {path}: {status} {answer}");
        if status >= 400 {
            assert!(
                answer["code"].is_string() && answer["message"].is_string(),
                "{method} {path}: {status} {answer}"
            );
        }
        sent += 1;
    };
    for (method, path, fields) in &routes {
        let names = fields.as_object().unwrap().keys().cloned();
        for name in names.chain(["unknown".to_owned()]) {
            for value in &values {
                let mut body = fields.clone();
                body[&name] = value.clone();
                check(
                    method,
                    path,
                    "application/json",
                    body.to_string().into_bytes(),
                )
                .await;
            }
        }
        for raw in raws {
            check(method, path, "application/json", raw.as_bytes().to_vec()).await;
        }
        check(method, path, "application/json", vec![0xFF, 0xFE]).await;
        check(method, path, "text/plain", fields.to_string().into_bytes()).await;
    }
    assert!(sent > 500, "{sent} requests");
}
