//! Threads and messages over HTTP, the per-thread event log over gRPC and NATS, idempotent
//! sends across gateways, and publication that survives NATS being down.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use std::{path::PathBuf, process::Stdio, time::Duration};

use async_nats::jetstream;
use common::*;
use futures_util::StreamExt as _;
use hilo_proto::messaging::v1::{
    ListThreadEventsRequest, messaging_service_client::MessagingServiceClient,
};
use reqwest::Method;
use serde_json::{Value, json};
use tonic::Request;

/// A channel of `owner` with `members` joined, and a thread in it by `owner`.
async fn channel_with_thread(
    base: &str,
    owner: &User,
    members: &[&User],
    private: bool,
) -> (String, String) {
    let body = json!({ "name": "room", "isPrivate": private });
    let (_, channel) = call(
        Method::POST,
        format!("{base}/api/channels"),
        Some(owner),
        Some(body),
    )
    .await;
    let channel_id = channel["id"].as_str().unwrap().to_owned();
    for member in members {
        let body = json!({ "channelId": channel_id, "userId": member.id });
        assert_eq!(
            call(
                Method::POST,
                format!("{base}/api/members"),
                Some(owner),
                Some(body)
            )
            .await
            .0,
            201
        );
    }
    let body = json!({ "channelId": channel_id, "name": "topic", "description": "d" });
    let (status, thread) = call(
        Method::POST,
        format!("{base}/api/threads"),
        Some(owner),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{thread}");
    (channel_id, thread["id"].as_str().unwrap().to_owned())
}

async fn post(base: &str, user: &User, thread_id: &str, content: &str) -> (u16, Value) {
    let body = json!({ "threadId": thread_id, "content": content });
    call(
        Method::POST,
        format!("{base}/api/messages"),
        Some(user),
        Some(body),
    )
    .await
}

fn schema() -> jsonschema::Validator {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../proto/frames/thread-events.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn assert_frame(validator: &jsonschema::Validator, frame: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(frame)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "frame does not match the schema: {errors:?}\n{frame}"
    );
}

#[tokio::test]
async fn messages_have_the_union_shape_and_every_limit_is_enforced() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let eve = sign_up(base, "Eve").await;
    let (_, thread) = channel_with_thread(base, &ada, &[], false).await;

    let (status, message) = post(base, &ada, &thread, "hello").await;
    assert_eq!(status, 201, "{message}");
    assert_eq!(message["seq"], 1, "a new thread's first message has seq 1");
    assert_eq!(message["content"], "hello");
    assert_eq!(message["threadId"], thread.as_str());
    assert_eq!(message["senderId"], ada.id.as_str());
    assert_eq!(message["attachments"], json!([]));
    assert!(message["editedAt"].is_null());
    assert_eq!(message["sender"]["id"], ada.id.as_str());
    assert_eq!(message["sender"]["name"], "Ada");
    assert!(message["sender"]["image"].is_null());
    assert_eq!(message["sender"]["profile"]["displayName"], "Ada");
    assert_eq!(message["createdAt"].as_str().unwrap().len(), 24);

    let attachment = json!({ "id": "0190c0de-0000-7000-8000-000000000001", "url": "https://cdn.example/a.png",
                             "filename": "a.png", "mimeType": "image/png", "size": 1234, "type": "image" });
    let body = json!({ "threadId": thread, "content": "", "attachments": [attachment] });
    let (status, with_file) = call(
        Method::POST,
        format!("{base}/api/messages"),
        Some(&ada),
        Some(body),
    )
    .await;
    assert_eq!(
        (status, with_file["attachments"][0]["filename"].as_str()),
        (201, Some("a.png"))
    );

    let cases = [
        (
            json!({ "threadId": thread, "content": "x".repeat(4001) }),
            "content",
        ),
        (json!({ "threadId": thread, "content": "" }), "content"),
        (
            json!({ "threadId": thread, "content": "x", "attachments": vec![attachment.clone(); 11] }),
            "attachments",
        ),
        (
            json!({ "threadId": thread, "content": "x", "attachments": [{ "id": "0190c0de-0000-7000-8000-000000000001",
            "url": "javascript:alert(1)", "filename": "a", "mimeType": "x", "size": 1, "type": "image" }] }),
            "attachments.0.url",
        ),
        (
            json!({ "threadId": thread, "content": "x", "attachments": [{ "id": "nope", "url": "https://a.b/c",
            "filename": "a", "mimeType": "x", "size": 0, "type": "movie" }] }),
            "attachments.0.id",
        ),
        (json!({ "content": "x" }), "threadId"),
    ];
    for (body, field) in cases {
        let (status, error) = call(
            Method::POST,
            format!("{base}/api/messages"),
            Some(&ada),
            Some(body),
        )
        .await;
        assert_eq!(status, 400, "{field}: {error}");
        let fields: Vec<&str> = error["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{field} not in {fields:?}");
    }
    let (status, _) = post(base, &ada, &"4".repeat(8), "x").await;
    assert_eq!(status, 404, "a malformed thread id is not found");

    let (status, body) = post(base, &eve, &thread, "let me in").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "non-members do not post"
    );
    let (status, _) = call(
        Method::GET,
        format!("{base}/api/messages/thread/{thread}"),
        Some(&eve),
        None,
    )
    .await;
    assert_eq!(status, 403, "nor read");
    let (status, one) = call(
        Method::GET,
        format!("{base}/api/messages/{}", message["id"].as_str().unwrap()),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!((status, one["content"].as_str()), (200, Some("hello")));
}

#[tokio::test]
async fn history_pages_by_offset_as_the_original_and_by_seq_cursors() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let (_, thread) = channel_with_thread(base, &ada, &[], false).await;
    for i in 1..=7 {
        assert_eq!(post(base, &ada, &thread, &format!("m{i}")).await.0, 201);
    }
    let contents = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let url = |q: &str| format!("{base}/api/messages/thread/{thread}?{q}");
    assert_eq!(
        contents(&call(Method::GET, url("limit=3"), Some(&ada), None).await.1),
        ["m5", "m6", "m7"],
        "newest page, oldest first"
    );
    assert_eq!(
        contents(
            &call(Method::GET, url("limit=3&offset=3"), Some(&ada), None)
                .await
                .1
        ),
        ["m2", "m3", "m4"]
    );
    assert_eq!(
        contents(
            &call(Method::GET, url("limit=2&before=5"), Some(&ada), None)
                .await
                .1
        ),
        ["m3", "m4"]
    );
    assert_eq!(
        contents(
            &call(Method::GET, url("limit=2&after=5"), Some(&ada), None)
                .await
                .1
        ),
        ["m6", "m7"]
    );
    assert_eq!(
        call(Method::GET, url("limit=500"), Some(&ada), None)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        7
    );
    for q in ["limit=x", "offset=-1", "before=abc"] {
        let (status, error) = call(Method::GET, url(q), Some(&ada), None).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (400, Some("VALIDATION_ERROR")),
            "{q}"
        );
    }
}

#[tokio::test]
async fn thread_rules_follow_creator_and_rank_and_archived_threads_refuse_posts() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await; // admin
    let mo = sign_up(base, "Mo").await; // moderator
    let max = sign_up(base, "Max").await; // member, creates a thread
    let cy = sign_up(base, "Cy").await; // member
    let eve = sign_up(base, "Eve").await; // outsider
    let (channel, _) = channel_with_thread(base, &ada, &[&mo, &max, &cy], true).await;
    let role = json!({ "role": "moderator" });
    call(
        Method::PATCH,
        format!("{base}/api/members/{channel}/{}/role", mo.id),
        Some(&ada),
        Some(role),
    )
    .await;
    let (status, thread) = call(
        Method::POST,
        format!("{base}/api/threads"),
        Some(&max),
        Some(json!({ "channelId": channel, "name": "max's" })),
    )
    .await;
    assert_eq!(status, 201);
    let id = thread["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (thread["createdBy"].as_str(), thread["isArchived"].as_bool()),
        (Some(max.id.as_str()), Some(false))
    );

    let (status, _) = call(
        Method::POST,
        format!("{base}/api/threads"),
        Some(&eve),
        Some(json!({ "channelId": channel, "name": "x" })),
    )
    .await;
    assert_eq!(status, 404, "a private channel is invisible to outsiders");
    let (status, _) = call(
        Method::GET,
        format!("{base}/api/threads/{id}"),
        Some(&eve),
        None,
    )
    .await;
    assert_eq!(status, 404);

    let thread_url = format!("{base}/api/threads/{id}");
    assert_eq!(
        call(
            Method::PATCH,
            thread_url.clone(),
            Some(&cy),
            Some(json!({ "name": "mine" }))
        )
        .await
        .0,
        403,
        "another member cannot update"
    );
    assert_eq!(
        call(
            Method::PATCH,
            thread_url.clone(),
            Some(&max),
            Some(json!({ "name": "renamed" }))
        )
        .await
        .1["name"],
        "renamed",
        "the creator can"
    );
    assert_eq!(
        call(
            Method::PATCH,
            thread_url.clone(),
            Some(&mo),
            Some(json!({ "description": null }))
        )
        .await
        .0,
        200,
        "a moderator can"
    );

    let archive_url = format!("{base}/api/threads/{id}/archive");
    assert_eq!(
        call(Method::POST, archive_url.clone(), Some(&cy), None)
            .await
            .0,
        403
    );
    let (status, archived) = call(Method::POST, archive_url.clone(), Some(&max), None).await;
    assert_eq!(
        (status, archived["isArchived"].as_bool()),
        (200, Some(true))
    );
    let (status, error) = post(base, &cy, &id, "too late").await;
    assert_eq!(
        (status, error["code"].as_str()),
        (409, Some("THREAD_ARCHIVED"))
    );
    let (_, active) = call(
        Method::GET,
        format!("{base}/api/threads/channel/{channel}/active"),
        Some(&cy),
        None,
    )
    .await;
    assert!(
        active
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["id"] != id.as_str())
    );
    let (_, all) = call(
        Method::GET,
        format!("{base}/api/threads/channel/{channel}"),
        Some(&cy),
        None,
    )
    .await;
    assert_eq!(all[0]["id"], id.as_str(), "newest first");
    assert_eq!(
        call(
            Method::POST,
            format!("{base}/api/threads/{id}/unarchive"),
            Some(&mo),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(post(base, &cy, &id, "back").await.0, 201);

    assert_eq!(
        call(Method::DELETE, thread_url.clone(), Some(&mo), None)
            .await
            .0,
        403,
        "moderators do not delete others' threads"
    );
    // The creator leaves the channel: their creator rights end with their membership.
    assert_eq!(
        call(
            Method::DELETE,
            format!("{base}/api/members/{channel}"),
            Some(&max),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(Method::DELETE, thread_url.clone(), Some(&max), None)
            .await
            .0,
        404,
        "not a member of a private channel any more"
    );
    let (status, body) = call(Method::DELETE, thread_url.clone(), Some(&ada), None).await;
    assert_eq!(
        (status, body),
        (200, json!({ "message": "Thread deleted successfully" }))
    );
    assert_eq!(
        call(
            Method::GET,
            format!("{base}/api/threads/{id}"),
            Some(&ada),
            None
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn authors_edit_and_moderators_delete_and_deleted_users_become_placeholders() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let bob = sign_up(base, "Bob").await;
    let cy = sign_up(base, "Cy").await;
    let (channel, thread) = channel_with_thread(base, &ada, &[&bob, &cy], false).await;
    let (_, message) = post(base, &bob, &thread, "first draft").await;
    let url = format!("{base}/api/messages/{}", message["id"].as_str().unwrap());

    let (status, _) = call(
        Method::PATCH,
        url.clone(),
        Some(&ada),
        Some(json!({ "content": "admin edit" })),
    )
    .await;
    assert_eq!(status, 403, "only the author edits, admins included");
    let (status, edited) = call(
        Method::PATCH,
        url.clone(),
        Some(&bob),
        Some(json!({ "content": "final" })),
    )
    .await;
    assert_eq!((status, edited["content"].as_str()), (200, Some("final")));
    assert!(edited["editedAt"].as_str().is_some());
    assert_eq!(edited["seq"], message["seq"], "a message keeps its seq");
    let (status, _) = call(
        Method::PATCH,
        url.clone(),
        Some(&bob),
        Some(json!({ "content": "" })),
    )
    .await;
    assert_eq!(status, 400);

    assert_eq!(
        call(Method::DELETE, url.clone(), Some(&cy), None).await.0,
        403,
        "members do not delete others' messages"
    );
    let role = json!({ "role": "moderator" });
    call(
        Method::PATCH,
        format!("{base}/api/members/{channel}/{}/role", cy.id),
        Some(&ada),
        Some(role),
    )
    .await;
    let (status, body) = call(Method::DELETE, url.clone(), Some(&cy), None).await;
    assert_eq!(
        (status, body),
        (200, json!({ "message": "Message deleted successfully" }))
    );
    assert_eq!(call(Method::GET, url, Some(&ada), None).await.0, 404);

    post(base, &bob, &thread, "my last words").await;
    assert_eq!(
        call(
            Method::DELETE,
            format!("{base}/api/users/{}", bob.id),
            Some(&bob),
            None
        )
        .await
        .0,
        200
    );
    let (_, history) = call(
        Method::GET,
        format!("{base}/api/messages/thread/{thread}"),
        Some(&ada),
        None,
    )
    .await;
    let last = history.as_array().unwrap().last().unwrap();
    assert_eq!(last["content"], "my last words", "messages stay");
    assert_eq!(last["sender"]["name"], "Deleted user");
}

#[tokio::test]
async fn fifty_concurrent_posts_get_seqs_one_to_fifty() {
    let stack = stack_with(hilo_e2e::Options {
        gateways: 2,
        ..Default::default()
    })
    .await;
    let ada = sign_up(stack.gateway(), "Ada").await;
    let (_, thread) = channel_with_thread(stack.gateway(), &ada, &[], false).await;
    let posts = (0..50).map(|i| {
        let base = stack.gateways[i % 2].clone();
        let (thread, ada) = (thread.clone(), &ada);
        async move { post(&base, ada, &thread, &format!("n{i}")).await }
    });
    let results = futures_util::future::join_all(posts).await;
    let mut seqs: Vec<i64> = results
        .iter()
        .map(|(status, m)| {
            assert_eq!(*status, 201, "{m}");
            m["seq"].as_i64().unwrap()
        })
        .collect();
    seqs.sort();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>(), "no gap, no duplicate");
    let (_, thread_now) = call(
        Method::GET,
        format!("{}/api/threads/{thread}", stack.gateway()),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(thread_now["lastSeq"], 50);
}

#[tokio::test]
async fn the_same_idempotency_key_through_two_gateways_makes_one_message() {
    let stack = stack_with(hilo_e2e::Options {
        gateways: 2,
        ..Default::default()
    })
    .await;
    let (a, b) = (&stack.gateways[0], &stack.gateways[1]);
    let ada = sign_up(a, "Ada").await;
    let bob = sign_up(a, "Bob").await;
    let (_, thread) = channel_with_thread(a, &ada, &[&bob], false).await;
    let send = |base: &str, user: &User, key: &str, content: &str| {
        http()
            .post(format!("{base}/api/messages"))
            .header("authorization", user.bearer())
            .header("idempotency-key", key)
            .json(&json!({ "threadId": thread, "content": content }))
            .send()
    };
    let first = send(a, &ada, "key-1", "once").await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let retry = send(b, &ada, "key-1", "once").await.unwrap();
    assert_eq!(retry.status(), 200, "a replay, not a creation");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!((&retry["id"], &retry["seq"]), (&first["id"], &first["seq"]));

    let reused = send(b, &ada, "key-1", "something else").await.unwrap();
    assert_eq!(reused.status(), 422);
    assert_eq!(
        reused.json::<Value>().await.unwrap()["code"],
        "IDEMPOTENCY_KEY_REUSED"
    );
    assert_eq!(
        send(a, &bob, "key-1", "once").await.unwrap().status(),
        201,
        "keys belong to their sender"
    );
    let body = json!({ "threadId": thread, "content": "nonce", "nonce": "n-1" });
    let (s1, m1) = call(
        Method::POST,
        format!("{a}/api/messages"),
        Some(&ada),
        Some(body.clone()),
    )
    .await;
    let (s2, m2) = call(
        Method::POST,
        format!("{b}/api/messages"),
        Some(&ada),
        Some(body),
    )
    .await;
    assert_eq!(
        (s1, s2, &m1["id"]),
        (201, 200, &m2["id"]),
        "a body nonce works as the key"
    );

    let (_, history) = call(
        Method::GET,
        format!("{a}/api/messages/thread/{thread}"),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(history.as_array().unwrap().len(), 3, "once, Bob's, nonce");
}

#[tokio::test]
async fn the_event_log_replays_changes_in_order_and_nats_carries_the_same_frames() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let (_, thread) = channel_with_thread(base, &ada, &[], false).await;
    let nats = async_nats::connect(&stack.nats_url).await.unwrap();
    let mut live = nats
        .subscribe(format!("chat.thread.{thread}"))
        .await
        .unwrap();
    nats.flush().await.unwrap();

    let (_, m1) = post(base, &ada, &thread, "one").await;
    let m1_url = format!("{base}/api/messages/{}", m1["id"].as_str().unwrap());
    call(
        Method::PATCH,
        m1_url.clone(),
        Some(&ada),
        Some(json!({ "content": "uno" })),
    )
    .await;
    post(base, &ada, &thread, "two").await;
    call(Method::DELETE, m1_url, Some(&ada), None).await;
    call(
        Method::PATCH,
        format!("{base}/api/threads/{thread}"),
        Some(&ada),
        Some(json!({ "name": "renamed" })),
    )
    .await;

    let mut messaging = MessagingServiceClient::connect(stack.messaging.clone())
        .await
        .unwrap();
    let mut request = Request::new(ListThreadEventsRequest {
        thread_id: thread.clone(),
        after_seq: 0,
        limit: 0,
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", access_token(&stack.private_key_pem, &ada.id))
            .parse()
            .unwrap(),
    );
    let replay = messaging
        .list_thread_events(request)
        .await
        .unwrap()
        .into_inner();
    let kinds: Vec<(i64, &str)> = replay
        .events
        .iter()
        .map(|e| (e.seq, e.r#type.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (1, "NEW_MESSAGE"),
            (2, "MESSAGE_UPDATED"),
            (3, "NEW_MESSAGE"),
            (4, "DELETE_MESSAGE"),
            (5, "THREAD_UPDATED")
        ]
    );
    assert_eq!(replay.last_seq, 5);

    let validator = schema();
    let mut published = Vec::new();
    while published.len() < 5 {
        let message = tokio::time::timeout(Duration::from_secs(10), live.next())
            .await
            .expect("published in time")
            .unwrap();
        assert!(
            message
                .headers
                .as_ref()
                .and_then(|h| h.get("traceparent"))
                .is_some(),
            "trace context travels in NATS headers"
        );
        published.push(message.payload.to_vec());
    }
    published.sort_by_key(|p| serde_json::from_slice::<Value>(p).unwrap()["seq"].as_i64());
    let seqs: Vec<i64> = published
        .iter()
        .map(|p| {
            serde_json::from_slice::<Value>(p).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5], "each event published once");
    for (event, bytes) in replay.events.iter().zip(&published) {
        let frame: Value = serde_json::from_slice(bytes).unwrap();
        assert_frame(&validator, &frame);
        assert_eq!(frame["seq"], event.seq);
        let stored: Value = serde_json::from_slice(&event.frame).unwrap();
        assert_frame(&validator, &stored);
        if event.seq <= 2 {
            // m1's events, superseded by its deletion: replay keeps their seq, not their text.
            assert_eq!(stored["payload"]["redacted"], true, "{stored}");
            assert_eq!(stored["payload"]["content"], "");
            assert_eq!(stored["payload"]["id"], m1["id"]);
        } else {
            assert_eq!(&event.frame, bytes, "NATS carries exactly the stored frame");
        }
    }
    let deleted: Value = serde_json::from_slice(&published[3]).unwrap();
    assert_eq!(deleted["payload"]["messageId"], m1["id"]);
    assert_eq!(deleted["payload"]["id"], m1["id"]);
    let edited: Value = serde_json::from_slice(&published[1]).unwrap();
    assert_eq!(edited["payload"]["content"], "uno");
}

#[tokio::test]
async fn a_deleted_channel_takes_its_threads_and_messages_with_it() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let (channel, thread) = channel_with_thread(base, &ada, &[], false).await;
    post(base, &ada, &thread, "soon gone").await;
    assert_eq!(
        call(
            Method::DELETE,
            format!("{base}/api/channels/{channel}"),
            Some(&ada),
            None
        )
        .await
        .0,
        200
    );

    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&stack.database_url)
        .await
        .unwrap();
    let count = "SELECT (SELECT count(*) FROM messaging.threads) + (SELECT count(*) FROM messaging.messages) \
                 + (SELECT count(*) FROM messaging.thread_events)";
    for _ in 0..100 {
        let left: i64 = sqlx::query_scalar(count).fetch_one(&mut db).await.unwrap();
        if left == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the deleted channel's threads, messages and events are still stored");
}

#[tokio::test]
async fn an_event_committed_while_nats_is_down_is_published_when_it_comes_back() {
    // A NATS server of this test's own, so stopping it disturbs nobody else.
    let server = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.infra/venv/bin/nats-server");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = std::env::temp_dir().join(format!("hilo-nats-{}", random(8)));
    let start = || {
        tokio::process::Command::new(&server)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server from scripts/dev-up.sh")
    };
    let url = format!("nats://127.0.0.1:{port}");
    let wait = || async {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nats did not start");
    };
    let mut nats = start();
    wait().await;
    let stack = stack_with(hilo_e2e::Options {
        messaging_nats_url: Some(url.clone()),
        ..Default::default()
    })
    .await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let (_, thread) = channel_with_thread(base, &ada, &[], false).await;

    nats.kill().await.unwrap();
    let (status, message) = post(base, &ada, &thread, "while NATS was down").await;
    assert_eq!(status, 201, "the change commits without NATS: {message}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut nats = start();
    wait().await;

    let js = jetstream::new(async_nats::connect(&url).await.unwrap());
    let subject = format!("chat.thread.{thread}");
    let mut found = None;
    for _ in 0..100 {
        if let Ok(stream) = js.get_stream("CHAT_THREADS").await
            && let Ok(last) = stream.get_last_raw_message_by_subject(&subject).await
        {
            found = Some(last);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let last = found.expect("the event was published after NATS came back");
    let frame: Value = serde_json::from_slice(&last.payload).unwrap();
    assert_eq!(
        (frame["type"].as_str(), frame["seq"].as_i64()),
        (Some("NEW_MESSAGE"), Some(1))
    );
    assert_eq!(frame["payload"]["content"], "while NATS was down");
    nats.kill().await.unwrap();
    drop(stack);
    let _ = std::fs::remove_dir_all(&store);
}
