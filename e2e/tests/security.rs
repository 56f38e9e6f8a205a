//! The holes a security review found, each probed as an attacker would (docs/security.md):
//! cross-site requests, open redirects, spoofed client addresses, oversized bodies, missing
//! hardening headers, and answers that tell a stranger about a private channel.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;
#[path = "common/ws.rs"]
mod ws;

use common::*;
use hilo_proto::messaging::v1::{
    AuthorizeThreadRequest, ListThreadEventsRequest,
    messaging_service_client::MessagingServiceClient,
};
use reqwest::{Method, header};
use serde_json::{Value, json};

const EVIL: &str = "http://evil.example";

/// Status and error code of a response.
async fn outcome(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn cross_site_requests_with_the_session_cookie_are_refused() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let channels = format!("{base}/api/channels");
    let body = json!({ "name": "forged", "isPrivate": false }).to_string();
    let by_cookie = |origin: Option<&str>, content_type: &str| {
        let mut request = http()
            .post(&channels)
            .header(header::COOKIE, &ada.cookie)
            .header(header::CONTENT_TYPE, content_type.to_owned())
            .body(body.clone());
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request.send()
    };

    // What a cross-site form or `no-cors` fetch can send: text/plain, from another site.
    let forged = by_cookie(Some(EVIL), "text/plain").await.unwrap();
    assert_eq!(outcome(forged).await, (403, "INVALID_ORIGIN".into()));
    // The same JSON from another site, and by cookie with no origin at all.
    let evil_json = by_cookie(Some(EVIL), "application/json").await.unwrap();
    assert_eq!(outcome(evil_json).await, (403, "INVALID_ORIGIN".into()));
    let no_origin = by_cookie(None, "application/json").await.unwrap();
    assert_eq!(
        outcome(no_origin).await,
        (403, "MISSING_OR_NULL_ORIGIN".into())
    );
    // From the app itself, a body that is not declared JSON is still not read as JSON.
    let plain = by_cookie(Some(ORIGIN), "text/plain").await.unwrap();
    assert_eq!(outcome(plain).await, (415, "UNSUPPORTED_MEDIA_TYPE".into()));
    let form = by_cookie(Some(ORIGIN), "application/x-www-form-urlencoded")
        .await
        .unwrap();
    assert_eq!(outcome(form).await, (415, "UNSUPPORTED_MEDIA_TYPE".into()));
    // None of the refusals created anything; the app's own request does.
    let (_, listed) = call(Method::GET, channels.clone(), Some(&ada), None).await;
    assert!(!listed.to_string().contains("forged"), "{listed}");
    let good = by_cookie(Some(ORIGIN), "application/json").await.unwrap();
    assert_eq!(good.status(), 200);

    // A multipart upload is a "simple" request too: the origin check covers it.
    let form = "--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.gif\"\r\n\
                Content-Type: image/gif\r\n\r\nGIF89a\r\n--x--\r\n";
    let upload = http()
        .post(format!("{base}/api/uploads/profile/avatar"))
        .header(header::COOKIE, &ada.cookie)
        .header(header::ORIGIN, EVIL)
        .header(header::CONTENT_TYPE, "multipart/form-data; boundary=x")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(outcome(upload).await, (403, "INVALID_ORIGIN".into()));
    // A deletion by cookie whose only origin, its Referer, is another site.
    let delete = http()
        .delete(format!("{base}/api/users/{}", ada.id))
        .header(header::COOKIE, &ada.cookie)
        .header(header::REFERER, format!("{EVIL}/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(outcome(delete).await, (403, "INVALID_ORIGIN".into()));

    // A bearer token cannot be attached by another site: such calls need no origin.
    let (status, _) = call(
        Method::POST,
        channels,
        Some(&ada),
        Some(json!({ "name": "by-bearer" })),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn sign_in_cannot_be_forged_from_another_site() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let sign_in = format!("{base}/api/auth/sign-in/email");
    let body = json!({ "email": ada.email, "password": PASSWORD }).to_string();
    // Login CSRF: a page elsewhere signs the visitor in as the attacker. Its form posts
    // text/plain (refused as not JSON); its JSON comes with its Origin (refused).
    let form = http()
        .post(&sign_in)
        .header(header::CONTENT_TYPE, "text/plain;charset=UTF-8")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert!(session_cookie(&form).is_none());
    assert_eq!(outcome(form).await, (415, "UNSUPPORTED_MEDIA_TYPE".into()));
    let cross = http()
        .post(&sign_in)
        .header(header::ORIGIN, EVIL)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert!(session_cookie(&cross).is_none());
    assert_eq!(outcome(cross).await, (403, "INVALID_ORIGIN".into()));
    let app = http()
        .post(&sign_in)
        .header(header::ORIGIN, ORIGIN)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(app.status(), 200);
}

#[tokio::test]
async fn callback_urls_with_characters_browsers_drop_are_refused() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    for callback in [
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\n/evil.example",
        "/\\evil.example",
        "/%2F%2Fevil.example",
    ] {
        let (status, body) = call(
            Method::POST,
            format!("{base}/api/auth/sign-in/email"),
            None,
            Some(json!({ "email": ada.email, "password": PASSWORD, "callbackURL": callback })),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("INVALID_CALLBACKURL")),
            "{callback:?}"
        );
    }
    let (status, _) = call(
        Method::POST,
        format!("{base}/api/auth/sign-in/email"),
        None,
        Some(
            json!({ "email": ada.email, "password": PASSWORD, "callbackURL": "/c/general?tab=1" }),
        ),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_client_cannot_choose_its_address_by_writing_x_forwarded_for() {
    let env = vec![("TRUSTED_PROXY_HOPS".to_owned(), "1".to_owned())];
    let stack = stack_with(hilo_e2e::Options {
        auth_rate_limit: "3/10s".into(),
        env,
        ..Default::default()
    })
    .await;
    let base = stack.gateway();
    // Behind one proxy, the last entry is the address the proxy saw; the client rotates the
    // entries before it, hoping for a fresh budget each time.
    let client = format!("10.{}.{}.{}", octet(), octet(), octet());
    // Budgets are counted in fixed 10 s windows: start early in one so all four land in it.
    early_in_window(10, 6).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let spoofed = format!("192.0.2.{}", octet());
        let response = http()
            .post(format!("{base}/api/auth/sign-in/email"))
            .header("x-forwarded-for", format!("{spoofed}, {client}"))
            .json(&json!({ "email": "nobody@example.com", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(
        statuses,
        [401, 401, 401, 429],
        "rotating entries reset no budget"
    );

    // The session records the same address.
    let response = http()
        .post(format!("{base}/api/auth/sign-up/email"))
        .header("x-forwarded-for", format!("6.6.6.6, {client}"))
        .json(&json!({ "name": "Ada", "email": email(), "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "sign-up has a budget of its own");
    let token = response.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let session: Value = http()
        .get(format!("{base}/api/auth/get-session"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        session["session"]["ipAddress"],
        client.as_str(),
        "{session}"
    );
}

#[tokio::test]
async fn an_invite_body_over_one_mib_is_413() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let channel = create_channel(base, &ada, "secret", true).await;
    let url = format!("{base}/api/channels/{channel}/invites");
    let huge = format!(r#"{{"maxUses": 1, "pad": "{}"}}"#, "x".repeat(1024 * 1024));
    let response = http()
        .post(&url)
        .bearer_auth(&ada.token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(outcome(response).await, (413, "PAYLOAD_TOO_LARGE".into()));
    // No body at all still means the defaults; a small one is read.
    let (status, _) = call(Method::POST, url.clone(), Some(&ada), None).await;
    assert_eq!(status, 201);
    let (status, invite) = call(Method::POST, url, Some(&ada), Some(json!({ "maxUses": 2 }))).await;
    assert_eq!((status, invite["maxUses"].as_i64()), (201, Some(2)));
}

#[tokio::test]
async fn responses_forbid_sniffing_and_framing() {
    let stack = stack().await;
    let base = stack.gateway();
    for path in ["/api", "/api/channels", "/nowhere", "/docs"] {
        let response = http().get(format!("{base}{path}")).send().await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
    }
}

#[tokio::test]
async fn a_private_channel_looks_the_same_as_a_missing_one() {
    let stack = stack().await;
    let base = stack.gateway();
    let owner = sign_up(base, "Owner").await;
    let stranger = sign_up(base, "Stranger").await;
    let private = create_channel(base, &owner, "hidden", true).await;
    let public = create_channel(base, &owner, "open", false).await;
    let missing = "0b6f1a56-8c1e-4a3b-9d7e-2f4c5a6b7c8d";
    let role = |channel: &str| format!("{base}/api/members/{channel}/role/{}", stranger.id);
    let (private_status, private_body) =
        call(Method::GET, role(&private), Some(&stranger), None).await;
    let (missing_status, missing_body) =
        call(Method::GET, role(missing), Some(&stranger), None).await;
    assert_eq!((private_status, missing_status), (404, 404));
    assert_eq!(private_body["code"], missing_body["code"]);
    // A public channel one is not in is visible: "not joined".
    let (status, body) = call(Method::GET, role(&public), Some(&stranger), None).await;
    assert_eq!((status, body), (200, json!({})));

    // Messaging's AuthorizeThread tells a stranger nothing about a private channel's thread.
    let thread = create_thread(base, &owner, &private, "plans").await;
    let (status, _) = call(
        Method::POST,
        format!("{base}/api/messages"),
        Some(&owner),
        Some(json!({ "threadId": thread, "content": "the plan" })),
    )
    .await;
    assert_eq!(status, 201);
    let mut messaging = MessagingServiceClient::connect(stack.messaging.clone())
        .await
        .unwrap();
    let authorize = |user_id: &str, thread_id: &str| {
        let mut request = tonic::Request::new(AuthorizeThreadRequest {
            thread_id: thread_id.to_owned(),
        });
        let token = access_token(&stack.private_key_pem, user_id);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    };
    let answer = messaging
        .authorize_thread(authorize(&stranger.id, &thread))
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.allowed && !answer.visible);
    assert_eq!((answer.channel_id.as_str(), answer.last_seq), ("", 0));
    let member = messaging
        .authorize_thread(authorize(&owner.id, &thread))
        .await
        .unwrap()
        .into_inner();
    assert!(member.allowed);
    assert_eq!((member.channel_id, member.last_seq), (private, 1));
}

#[tokio::test]
async fn replay_hands_out_no_text_that_was_edited_away_or_deleted() {
    let stack = stack_with(hilo_e2e::Options {
        realtimes: 1,
        ..Default::default()
    })
    .await;
    let base = stack.gateway();
    let owner = sign_up(base, "Owner").await;
    let channel = create_channel(base, &owner, "room", false).await;
    let thread = create_thread(base, &owner, &channel, "t").await;
    let post = |content: &'static str| {
        call(
            Method::POST,
            format!("{base}/api/messages"),
            Some(&owner),
            Some(json!({ "threadId": thread, "content": content })),
        )
    };
    let (_, edited) = post("my password is hunter2").await;
    let edited = format!("{base}/api/messages/{}", edited["id"].as_str().unwrap());
    let (status, _) = call(
        Method::PATCH,
        edited,
        Some(&owner),
        Some(json!({ "content": "oops" })),
    )
    .await;
    assert_eq!(status, 200);
    let (_, deleted) = post("posted by mistake").await;
    let deleted = format!("{base}/api/messages/{}", deleted["id"].as_str().unwrap());
    assert_eq!(
        call(Method::DELETE, deleted, Some(&owner), None).await.0,
        200
    );
    post("still here").await;

    // Someone who joins later replays the thread from the start, over gRPC and WebSocket.
    let late = sign_up(base, "Late").await;
    let (status, _) = call(
        Method::POST,
        format!("{base}/api/members"),
        Some(&late),
        Some(json!({ "channelId": channel })),
    )
    .await;
    assert!(status < 300, "{status}");
    let mut messaging = MessagingServiceClient::connect(stack.messaging.clone())
        .await
        .unwrap();
    let mut request = tonic::Request::new(ListThreadEventsRequest {
        thread_id: thread.clone(),
        after_seq: 0,
        limit: 0,
    });
    let token = access_token(&stack.private_key_pem, &late.id);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let listed: Vec<Value> = messaging
        .list_thread_events(request)
        .await
        .unwrap()
        .into_inner()
        .events
        .iter()
        .map(|e| serde_json::from_slice(&e.frame).unwrap())
        .collect();
    let mut socket = ws::open(&stack.realtimes[0], &late.bearer()).await;
    let mut replayed = ws::join(&mut socket, &thread, Some(0)).await;
    assert_eq!(replayed.pop().unwrap()["type"], "JOINED_THREAD");
    for frames in [listed, replayed] {
        let seen: Vec<(i64, &str, &str)> = frames
            .iter()
            .map(|f| {
                let content = f["payload"]["content"].as_str().unwrap_or("-");
                (
                    f["seq"].as_i64().unwrap(),
                    f["type"].as_str().unwrap(),
                    content,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (1, "NEW_MESSAGE", ""),
                (2, "MESSAGE_UPDATED", "oops"),
                (3, "NEW_MESSAGE", ""),
                (4, "DELETE_MESSAGE", "-"),
                (5, "NEW_MESSAGE", "still here"),
            ]
        );
        let text = serde_json::to_string(&frames).unwrap();
        assert!(
            !text.contains("hunter2") && !text.contains("by mistake"),
            "{text}"
        );
        assert_eq!(frames[0]["payload"]["redacted"], true);
        assert_eq!(frames[2]["payload"]["attachments"], json!([]));
        assert!(frames[4]["payload"].get("redacted").is_none());
    }
}

#[tokio::test]
async fn a_replica_that_missed_the_removal_event_still_ends_the_subscription() {
    // Short re-check and cache times, so the backstop acts within seconds.
    let env = [
        ("PING_SECS", "1"),
        ("SESSION_CHECK_SECS", "1"),
        ("AUTHZ_CACHE_SECS", "1"),
        ("PERMISSION_CACHE_MS", "200"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec();
    let stack = stack_with(hilo_e2e::Options {
        realtimes: 1,
        env,
        ..Default::default()
    })
    .await;
    let base = stack.gateway();
    let owner = sign_up(base, "Owner").await;
    let member = sign_up(base, "Member").await;
    let channel = create_channel(base, &owner, "room", true).await;
    let (status, _) = call(
        Method::POST,
        format!("{base}/api/members"),
        Some(&owner),
        Some(json!({ "channelId": channel, "userId": member.id })),
    )
    .await;
    assert_eq!(status, 201);
    let thread = create_thread(base, &owner, &channel, "t").await;
    let mut socket = ws::open(&stack.realtimes[0], &member.bearer()).await;
    assert_eq!(
        ws::join(&mut socket, &thread, None).await.pop().unwrap()["type"],
        "JOINED_THREAD"
    );

    // The membership goes with no event at all, as if every replica had missed it.
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&stack.database_url)
        .await
        .unwrap();
    let removed = sqlx::query("DELETE FROM channels.channel_members WHERE user_id = $1")
        .bind(&member.id)
        .execute(&mut db)
        .await
        .unwrap();
    assert_eq!(removed.rows_affected(), 1);
    let left = loop {
        match ws::next(&mut socket, std::time::Duration::from_secs(10)).await {
            ws::Next::Frame(frame) if frame["type"] == "LEFT_THREAD" => break frame,
            ws::Next::Frame(_) => {}
            other => panic!("expected LEFT_THREAD, got {other:?}"),
        }
    };
    assert_eq!(left["code"], "FORBIDDEN");
    assert_eq!(left["threadId"], thread.as_str());
    let (status, _) = call(
        Method::POST,
        format!("{base}/api/messages"),
        Some(&owner),
        Some(json!({ "threadId": thread, "content": "after the removal" })),
    )
    .await;
    assert_eq!(status, 201);
    ws::assert_silent(&mut socket, std::time::Duration::from_millis(1500)).await;
}

#[tokio::test]
async fn app_routes_have_budgets_per_user_and_address_shared_by_replicas() {
    let stack = stack_with(hilo_e2e::Options {
        gateways: 2,
        rate_limits: "writes=3/10s,reads=1/10s".into(),
        ..Default::default()
    })
    .await;
    let ada = sign_up(stack.gateway(), "Ada").await;
    let bob = sign_up(stack.gateway(), "Bob").await;
    // Fixed 10 s windows: start early in one so every request lands in it.
    early_in_window(10, 5).await;
    let create = |base: &str, user: &User, name: &str| {
        http()
            .post(format!("{base}/api/channels"))
            .bearer_auth(&user.token)
            .json(&json!({ "name": name }))
            .send()
    };
    let mut seen = Vec::new();
    for i in 0..4 {
        let response = create(&stack.gateways[i % 2], &ada, &format!("c{i}"))
            .await
            .unwrap();
        let header = |name: &str| {
            response.headers()[name]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        let (limit, remaining, reset) = (
            header("x-ratelimit-limit"),
            header("x-ratelimit-remaining"),
            header("x-ratelimit-reset"),
        );
        assert!((1..=10).contains(&reset));
        seen.push((response.status().as_u16(), limit, remaining));
        if response.status() == 429 {
            let retry: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=10).contains(&retry));
            assert_eq!(outcome(response).await, (429, "TOO_MANY_REQUESTS".into()));
        }
    }
    assert_eq!(
        seen,
        [(200, 3, 2), (200, 3, 1), (200, 3, 0), (429, 3, 0)],
        "the fourth write in 10 s is refused, whichever replica"
    );
    // Nothing was created by the refused request; another user has a budget of their own.
    let response = create(stack.gateway(), &bob, "bob's").await.unwrap();
    assert_eq!(response.status(), 200);

    // Requests with no session are counted by client address (ten times a user's budget).
    let mut statuses = Vec::new();
    for _ in 0..11 {
        let response = http()
            .get(format!("{}/api/channels", stack.gateway()))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses[..10], [401; 10]);
    assert_eq!(statuses[10], 429);
}

#[tokio::test]
async fn websocket_connects_have_a_budget_per_user_shared_by_replicas() {
    let env = vec![("CONNECT_RATE_LIMIT".to_owned(), "3/3600s".to_owned())];
    let stack = stack_with(hilo_e2e::Options {
        realtimes: 2,
        env,
        ..Default::default()
    })
    .await;
    let ada = sign_up(stack.gateway(), "Ada").await;
    let bob = sign_up(stack.gateway(), "Bob").await;
    let auth = ada.bearer();
    let through_gateway = stack.gateway().replace("http://", "ws://");
    let mut open = Vec::new();
    for base in [&stack.realtimes[0], &stack.realtimes[1], &through_gateway] {
        open.push(
            ws::connect(base, &[("authorization", &auth)])
                .await
                .unwrap(),
        );
    }
    // The fourth, on any replica or through the gateway, is refused.
    for base in [&stack.realtimes[0], &stack.realtimes[1], &through_gateway] {
        let refused = ws::connect(base, &[("authorization", &auth)]).await;
        assert_eq!(refused.err(), Some(429), "{base}");
    }
    // The refusal says when to come back, as the gateway's budgets do.
    let refused = http()
        .get(format!(
            "{}/ws",
            stack.realtimes[0].replace("ws://", "http://")
        ))
        .header(header::AUTHORIZATION, &auth)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_VERSION, "13")
        .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let value = |name: &str| {
        refused.headers()[name]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!((1..=3600).contains(&value("retry-after")));
    assert_eq!(
        (value("x-ratelimit-limit"), value("x-ratelimit-remaining")),
        (3, 0)
    );
    assert_eq!(value("x-ratelimit-reset"), value("retry-after"));
    // Another user has a budget of their own.
    assert!(
        ws::connect(&stack.realtimes[0], &[("authorization", &bob.bearer())])
            .await
            .is_ok()
    );
    drop(open);
}

#[tokio::test]
async fn thread_ids_spelled_otherwise_name_the_same_thread_over_rest() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let channel = create_channel(base, &ada, "room", false).await;
    let thread = create_thread(base, &ada, &channel, "t").await;
    for spelling in [
        thread.to_uppercase(),
        format!("{{{thread}}}"),
        format!("urn:uuid:{thread}"),
        thread.replace('-', ""),
    ] {
        let (status, posted) = call(
            Method::POST,
            format!("{base}/api/messages"),
            Some(&ada),
            Some(json!({ "threadId": spelling, "content": "hi" })),
        )
        .await;
        assert_eq!(status, 201, "{spelling}: {posted}");
        assert_eq!(posted["threadId"], thread.as_str(), "{spelling}");
        let path = utf8_path(&spelling);
        let (status, found) = call(
            Method::GET,
            format!("{base}/api/threads/{path}"),
            Some(&ada),
            None,
        )
        .await;
        assert_eq!(
            (status, found["id"].as_str()),
            (200, Some(thread.as_str())),
            "{spelling}"
        );
    }
    let (_, listed) = call(
        Method::GET,
        format!("{base}/api/messages/thread/{thread}"),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(4), "{listed}");
}

/// A path segment as a client library would escape it.
fn utf8_path(segment: &str) -> String {
    segment.replace('{', "%7B").replace('}', "%7D")
}
