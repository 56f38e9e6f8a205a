//! The write path as clients see it: posts arriving together in one thread are stored together
//! (group commit) yet each gets its own answer, and a sender's new name shows on new messages
//! within seconds although messaging no longer asks accounts on every post; a call caught in a
//! connection's rotation or cut off from the database fails nothing or says when to retry.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{User, call, create_channel, create_thread, http, sign_up};
use reqwest::Method;
use serde_json::{Value, json};

async fn thread_of(base: &str, owner: &User) -> String {
    let channel = create_channel(base, owner, "posting", false).await;
    create_thread(base, owner, &channel, "busy").await
}

/// Posts with an optional Idempotency-Key; status and body.
async fn post(
    base: &str,
    user: &User,
    thread: &str,
    content: &str,
    key: Option<&str>,
) -> (u16, Value) {
    let mut request = http()
        .post(format!("{base}/api/messages"))
        .header("authorization", user.bearer())
        .json(&json!({ "threadId": thread, "content": content }));
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn posts_arriving_together_in_one_thread_each_get_their_own_answer() {
    let stack = common::stack().await;
    let base = stack.gateway().to_owned();
    let ada = Arc::new(sign_up(&base, "Ada").await);
    let thread = thread_of(&base, &ada).await;
    // Key "k-0" is used once before the burst with other content: its reuse in the burst is
    // refused, alone.
    let (status, _) = post(&base, &ada, &thread, "the first use of k-0", Some("k-0")).await;
    assert_eq!(status, 201);

    // A burst of 64: 60 plain posts, the same keyed post sent twice (a client retrying before
    // the first answer came), one reused key, and one more keyed post.
    let mut burst = Vec::new();
    for i in 0..60 {
        burst.push((format!("plain {i}"), None));
    }
    burst.push(("retried".to_owned(), Some("k-1")));
    burst.push(("retried".to_owned(), Some("k-1")));
    burst.push(("not what k-0 carried".to_owned(), Some("k-0")));
    burst.push(("keyed".to_owned(), Some("k-2")));
    let mut posts = Vec::new();
    for (content, key) in burst {
        let (base, ada, thread) = (base.clone(), ada.clone(), thread.clone());
        posts.push(tokio::spawn(async move {
            let answer = post(&base, &ada, &thread, &content, key).await;
            (content, key, answer)
        }));
    }
    let mut stored = Vec::new();
    let mut retried = Vec::new();
    for post in posts {
        let (content, key, (status, body)) = post.await.unwrap();
        match key {
            Some("k-0") => {
                assert_eq!(status, 422, "{body}");
                assert_eq!(body["code"], "IDEMPOTENCY_KEY_REUSED");
            }
            Some("k-1") => retried.push((status, body["id"].clone(), body["seq"].clone())),
            _ => {
                assert_eq!(status, 201, "{content}: {body}");
                stored.push(body["seq"].as_i64().unwrap());
            }
        }
    }
    let mut statuses: Vec<u16> = retried.iter().map(|r| r.0).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 201], "one creation, one replay");
    assert_eq!(
        (&retried[0].1, &retried[0].2),
        (&retried[1].1, &retried[1].2)
    );
    stored.push(retried[0].2.as_i64().unwrap());
    stored.sort_unstable();
    // Seq 1 is k-0's first use; the burst stored 62 messages right after it, without a gap.
    assert_eq!(stored, (2..=63).collect::<Vec<i64>>());
    let (_, history) = call(
        Method::GET,
        format!("{base}/api/messages/thread/{thread}?limit=100"),
        Some(&ada),
        None,
    )
    .await;
    let ids: HashSet<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 63, "each acknowledged post stored once");
}

#[tokio::test]
async fn a_burst_over_several_threads_refuses_only_the_archived_ones() {
    let stack = common::stack().await;
    let base = stack.gateway().to_owned();
    let ada = Arc::new(sign_up(&base, "Ada").await);
    let threads = [
        thread_of(&base, &ada).await,
        thread_of(&base, &ada).await,
        thread_of(&base, &ada).await,
    ];
    let (status, _) = call(
        Method::POST,
        format!("{base}/api/threads/{}/archive", threads[2]),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let mut posts = Vec::new();
    for i in 0..90 {
        let (base, ada, thread) = (base.clone(), ada.clone(), threads[i % 3].clone());
        posts.push(tokio::spawn(async move {
            let (status, body) = post(&base, &ada, &thread, &format!("m{i}"), None).await;
            (i % 3, status, body)
        }));
    }
    let mut seqs: [Vec<i64>; 3] = Default::default();
    for post in posts {
        let (t, status, body) = post.await.unwrap();
        if t == 2 {
            assert_eq!(status, 409, "{body}");
        } else {
            assert_eq!(status, 201, "{body}");
            seqs[t].push(body["seq"].as_i64().unwrap());
        }
    }
    for seqs in &mut seqs[..2] {
        seqs.sort_unstable();
        assert_eq!(*seqs, (1..=30).collect::<Vec<i64>>(), "per thread, no gap");
    }
}

#[tokio::test]
async fn a_rename_shows_on_new_messages_within_seconds() {
    let stack = common::stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let thread = thread_of(base, &ada).await;
    let (_, first) = post(base, &ada, &thread, "before", None).await;
    assert_eq!(first["sender"]["name"], "Ada");
    let (status, _) = call(
        Method::PATCH,
        format!("{base}/api/users/{}", ada.id),
        Some(&ada),
        Some(json!({"name": "Ada Lovelace"})),
    )
    .await;
    assert_eq!(status, 200);
    let mut shown = Value::Null;
    for _ in 0..30 {
        let (_, message) = post(base, &ada, &thread, "after", None).await;
        shown = message["sender"]["name"].clone();
        if shown == "Ada Lovelace" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shown, "Ada Lovelace", "the new name within 3 s");
}

/// gRPC servers close every connection after `GRPC_MAX_CONNECTION_AGE_SECS` (so connections
/// re-balance over replicas); a call that meets the close before it was sent is sent again
/// on a fresh connection, so clients never see the rotation. Here connections rotate every
/// second while sixteen clients post and read.
#[tokio::test]
async fn connection_rotation_never_fails_a_call() {
    let stack = common::stack_with(hilo_e2e::Options {
        env: vec![("GRPC_MAX_CONNECTION_AGE_SECS".into(), "1".into())],
        ..Default::default()
    })
    .await;
    let base = stack.gateway().to_owned();
    let ada = Arc::new(sign_up(&base, "Ada").await);
    let thread = Arc::new(thread_of(&base, &ada).await);
    // At least five seconds (five rotations of every connection) and 300 calls, however
    // slowly the machine runs them.
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    let made = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..16 {
        let (base, ada, thread, made) = (base.clone(), ada.clone(), thread.clone(), made.clone());
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while tokio::time::Instant::now() < until || made.load(Ordering::Relaxed) < 300 {
                let (status, body) = if c % 4 == 0 {
                    let url = format!("{base}/api/messages/thread/{thread}?limit=5");
                    call(Method::GET, url, Some(&ada), None).await
                } else {
                    post(&base, &ada, &thread, &format!("from {c}"), None).await
                };
                made.fetch_add(1, Ordering::Relaxed);
                if status >= 300 {
                    failures.push(format!("{status} {body}"));
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.unwrap());
    }
    let calls = made.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {calls} calls failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

/// A post whose database connection is cut in the middle (PostgreSQL restarting, a failover,
/// an operator ending sessions) is a 503 with `Retry-After`, never a 500, and its retry with
/// the same Idempotency-Key stores it once.
#[tokio::test]
async fn a_post_cut_off_from_the_database_is_a_503_and_its_retry_stores_it_once() {
    use sqlx::{Connection as _, PgConnection};
    let stack = common::stack().await;
    let base = stack.gateway().to_owned();
    let ada = sign_up(&base, "Ada").await;
    let thread = thread_of(&base, &ada).await;
    // The post waits on a lock this test holds; its backend is then terminated.
    let mut admin = PgConnection::connect(&stack.database_url).await.unwrap();
    let mut holder = PgConnection::connect(&stack.database_url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("LOCK TABLE messaging.threads IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    let send = {
        let (base, bearer, thread) = (base.clone(), ada.bearer(), thread.clone());
        move || {
            http()
                .post(format!("{base}/api/messages"))
                .header("authorization", &bearer)
                .header("idempotency-key", "cut-off-1")
                .json(&json!({ "threadId": thread, "content": "survives" }))
                .send()
        }
    };
    let pending = tokio::spawn(send());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let waiting = loop {
        let found: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
               AND wait_event_type = 'Lock' AND pid <> pg_backend_pid() LIMIT 1",
        )
        .fetch_optional(&mut admin)
        .await
        .unwrap();
        if let Some(pid) = found {
            break pid;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the post never waited on the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(waiting)
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    let cut = pending.await.unwrap().unwrap();
    assert_eq!(cut.status(), 503, "{:?}", cut.text().await);
    assert_eq!(cut.headers()["retry-after"], "1");
    let body: Value = cut.json().await.unwrap();
    assert_eq!(body["code"], "SERVICE_UNAVAILABLE");
    let retried = send().await.unwrap();
    assert_eq!(retried.status(), 201);
    let again = send().await.unwrap();
    assert!(again.status().is_success(), "{}", again.status());
    let url = format!("{base}/api/messages/thread/{thread}?limit=50");
    let (status, page) = call(Method::GET, url, Some(&ada), None).await;
    assert_eq!(status, 200);
    let stored = page
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["content"] == "survives")
        .count();
    assert_eq!(stored, 1, "{page}");
}
