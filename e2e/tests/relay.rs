//! The relay end to end: real messaging replicas publishing thread events on the
//! infrastructure's NATS. Each thread's events reach `chat.thread.<id>` (and the JetStream
//! stream) in seq order with nothing missing, however many replicas publish, and when one is
//! killed in the middle of a backlog.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream;
use common::{call, create_channel, sign_up};
use futures_util::StreamExt as _;
use hilo_e2e::{Options, Stack};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Connection as _, PgConnection};
use uuid::Uuid;

/// Every `(thread, seq)` seen on `chat.thread.>`, in arrival order.
type Seen = Arc<Mutex<Vec<(String, i64)>>>;

async fn watch(nats: &async_nats::Client) -> Seen {
    let mut live = nats.subscribe("chat.thread.>").await.unwrap();
    nats.flush().await.unwrap();
    let seen: Seen = Arc::default();
    let out = seen.clone();
    tokio::spawn(async move {
        while let Some(message) = live.next().await {
            let frame: Value = serde_json::from_slice(&message.payload).unwrap();
            let thread = frame["threadId"].as_str().unwrap().to_owned();
            out.lock()
                .unwrap()
                .push((thread, frame["seq"].as_i64().unwrap()));
        }
    });
    seen
}

/// Waits until `threads` have `per_thread` distinct seqs each; then, per thread, the order in
/// which seqs first arrived (repeats of an already seen seq are left out) and how many repeats.
async fn first_arrivals(
    seen: &Seen,
    threads: &[String],
    per_thread: usize,
) -> (HashMap<String, Vec<i64>>, usize) {
    for _ in 0..600 {
        let complete = {
            let seen = seen.lock().unwrap();
            threads.iter().all(|t| {
                let mut seqs: Vec<i64> = seen.iter().filter(|(s, _)| s == t).map(|e| e.1).collect();
                seqs.sort_unstable();
                seqs.dedup();
                seqs.len() >= per_thread
            })
        };
        if complete {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = seen.lock().unwrap();
    let mut order: HashMap<String, Vec<i64>> = HashMap::new();
    let mut repeats = 0;
    for (thread, seq) in seen.iter().filter(|(t, _)| threads.contains(t)) {
        let firsts = order.entry(thread.clone()).or_default();
        if firsts.contains(seq) {
            repeats += 1;
        } else {
            firsts.push(*seq);
        }
    }
    (order, repeats)
}

/// The seqs the JetStream stream holds for `threads`, in stream order, per thread.
async fn stream_seqs(nats: &async_nats::Client, threads: &[String]) -> HashMap<String, Vec<i64>> {
    let js = jetstream::new(nats.clone());
    let stream = js
        .get_stream(hilo_proto::subjects::THREADS_STREAM)
        .await
        .unwrap();
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subjects: threads
                .iter()
                .map(|t| hilo_proto::subjects::thread(t))
                .collect(),
            ..Default::default()
        })
        .await
        .unwrap();
    let pending = consumer.cached_info().num_pending as usize;
    let mut messages = consumer.messages().await.unwrap();
    let mut seqs: HashMap<String, Vec<i64>> = HashMap::new();
    for _ in 0..pending {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let frame: Value = serde_json::from_slice(&message.payload).unwrap();
        seqs.entry(frame["threadId"].as_str().unwrap().to_owned())
            .or_default()
            .push(frame["seq"].as_i64().unwrap());
    }
    seqs
}

async fn db(stack: &Stack) -> PgConnection {
    PgConnection::connect(&stack.database_url).await.unwrap()
}

/// Waits until `n` replicas hold relay partitions, each its fair share.
async fn balanced(stack: &Stack, n: i64) {
    let mut conn = db(stack).await;
    for _ in 0..100 {
        let holders: Vec<i64> = sqlx::query_scalar(
            "SELECT count(*) FROM messaging.relay_leases WHERE expires_at > now() \
             GROUP BY owner ORDER BY count(*)",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        if holders.len() as i64 == n && holders.iter().sum::<i64>() == 64 && holders[0] >= 64 / n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the relays never shared the partitions");
}

#[tokio::test]
async fn two_messaging_replicas_publish_a_thread_in_seq_order() {
    let stack = common::stack_with(Options {
        gateways: 2,
        messagings: 2,
        ..Options::default()
    })
    .await;
    balanced(&stack, 2).await;
    let nats = async_nats::connect(&stack.nats_url).await.unwrap();
    let seen = watch(&nats).await;
    let ada = sign_up(stack.gateway(), "Ada").await;
    let channel = create_channel(stack.gateway(), &ada, "relay", false).await;
    let (status, thread) = call(
        Method::POST,
        format!("{}/api/threads", stack.gateway()),
        Some(&ada),
        Some(json!({"channelId": channel, "name": "busy"})),
    )
    .await;
    assert_eq!(status, 201, "{thread}");
    let thread = thread["id"].as_str().unwrap().to_owned();

    // Eight writers, four through each gateway (so through each messaging replica, one of
    // which holds the thread's partition and one of which hands its commits over).
    const WRITERS: usize = 8;
    const EACH: usize = 40;
    let ada = Arc::new(ada);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (base, ada, thread) = (stack.gateways[w % 2].clone(), ada.clone(), thread.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..EACH {
                let (status, body) = call(
                    Method::POST,
                    format!("{base}/api/messages"),
                    Some(&ada),
                    Some(json!({"threadId": thread, "content": format!("w{w} m{i}")})),
                )
                .await;
                assert_eq!(status, 201, "{body}");
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let total = WRITERS * EACH;
    let threads = [thread.clone()];
    let (order, _) = first_arrivals(&seen, &threads, total).await;
    let expected: Vec<i64> = (1..=total as i64).collect();
    assert_eq!(order[&thread], expected, "first arrivals in seq order");
    assert_eq!(
        stream_seqs(&nats, &threads).await[&thread],
        expected,
        "the stream holds each event once, in seq order"
    );
}

#[tokio::test]
async fn a_relay_killed_mid_batch_loses_nothing_and_leaves_no_hole() {
    let mut stack = common::stack_with(Options {
        messagings: 2,
        ..Options::default()
    })
    .await;
    balanced(&stack, 2).await;
    let nats = async_nats::connect(&stack.nats_url).await.unwrap();
    let seen = watch(&nats).await;

    // A backlog committed at once, straight into the outbox: 40 threads (random ids, so over
    // both replicas' partitions) of 250 events each.
    const THREADS: usize = 40;
    const EVENTS: i64 = 250;
    let threads: Vec<Uuid> = (0..THREADS).map(|_| Uuid::now_v7()).collect();
    let mut conn = db(&stack).await;
    let mut tx = conn.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO messaging.thread_events (id, thread_id, seq, type, payload) \
         SELECT gen_random_uuid(), t, s, 'NEW_MESSAGE', convert_to(json_build_object( \
           'type', 'NEW_MESSAGE', 'threadId', t, 'seq', s, 'payload', json_build_object('n', s))::text, 'UTF8') \
         FROM unnest($1::uuid[]) AS t, generate_series(1, $2::bigint) AS s",
    )
    .bind(&threads)
    .bind(EVENTS)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO messaging.thread_outbox (thread_id, seq) \
         SELECT t, s FROM unnest($1::uuid[]) AS t, generate_series(1, $2::bigint) AS s",
    )
    .bind(&threads)
    .bind(EVENTS)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // Once the relays are under way, one of them dies without a word.
    let threads: Vec<String> = threads.iter().map(Uuid::to_string).collect();
    let total = THREADS * EVENTS as usize;
    for _ in 0..200 {
        if seen.lock().unwrap().len() >= total / 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let published_before_kill = seen.lock().unwrap().len();
    assert!(
        published_before_kill < total,
        "the kill came after everything was published"
    );
    stack.signal("messaging-1", "KILL").await.unwrap();

    let (order, repeats) = first_arrivals(&seen, &threads, EVENTS as usize).await;
    let expected: Vec<i64> = (1..=EVENTS).collect();
    for thread in &threads {
        assert_eq!(
            order.get(thread),
            Some(&expected),
            "thread {thread}: every event, first arrivals in seq order"
        );
    }
    let stored = stream_seqs(&nats, &threads).await;
    for thread in &threads {
        assert_eq!(
            stored.get(thread),
            Some(&expected),
            "thread {thread}: the stream holds each event once, in order"
        );
    }
    let mut left = 1;
    for _ in 0..50 {
        left = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM messaging.thread_outbox")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "every published event left the outbox");
    println!(
        "{published_before_kill} of {total} published before the kill; {repeats} published again after it"
    );
}
