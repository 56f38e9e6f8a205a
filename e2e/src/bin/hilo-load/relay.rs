//! `relay`: how fast one messaging replica drains a backlog. `events` thread events over
//! `threads` threads are committed at once into the outbox (as if NATS had been away); the
//! time until every one of them reached `chat.thread.<id>` (a core NATS subscriber) gives the
//! events/s, and their arrival order is checked. Baseline in the same run: JetStream alone,
//! the same number of messages on as many subjects, one in flight per subject (the relay's
//! discipline), from one client.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::jetstream;
use futures_util::{StreamExt as _, stream::FuturesUnordered};
use hilo_e2e::Stack;
use serde_json::Value;
use sqlx::Connection as _;
use uuid::Uuid;

use crate::report::Usage;

/// Per thread the highest seq seen in order; events seen in order; jumps past a missing seq.
type Arrivals = (HashMap<String, i64>, u64, u64);

pub async fn run(stack: &Stack, events: i64, threads: usize) -> anyhow::Result<()> {
    let per_thread = events / threads as i64;
    let events = per_thread * threads as i64;
    let ids: Vec<Uuid> = (0..threads).map(|_| Uuid::now_v7()).collect();
    let nats = async_nats::connect(&stack.nats_url).await?;
    let mut live = nats.subscribe("chat.thread.>").await?;
    nats.flush().await?;
    let seen: Arc<Mutex<Arrivals>> = Arc::default();
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Some(message) = live.next().await {
            let Ok(frame) = serde_json::from_slice::<Value>(&message.payload) else {
                continue;
            };
            let (Some(thread), Some(seq)) = (frame["threadId"].as_str(), frame["seq"].as_i64())
            else {
                continue;
            };
            let mut seen = counter.lock().unwrap_or_else(|e| e.into_inner());
            let last = seen.0.entry(thread.to_owned()).or_insert(0);
            if seq == *last + 1 {
                *last = seq;
                seen.1 += 1;
            } else if seq > *last + 1 {
                seen.2 += 1;
            }
        }
    });

    let mut db = sqlx::PgConnection::connect(&stack.database_url).await?;
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO messaging.thread_events (id, thread_id, seq, type, payload) \
         SELECT gen_random_uuid(), t, s, 'NEW_MESSAGE', convert_to(json_build_object( \
           'type', 'NEW_MESSAGE', 'threadId', t, 'seq', s, 'payload', \
           json_build_object('content', repeat('x', 200)))::text, 'UTF8') \
         FROM unnest($1::uuid[]) AS t, generate_series(1, $2::bigint) AS s",
    )
    .bind(&ids)
    .bind(per_thread)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO messaging.thread_outbox (thread_id, seq) \
         SELECT t, s FROM unnest($1::uuid[]) AS t, generate_series(1, $2::bigint) AS s",
    )
    .bind(&ids)
    .bind(per_thread)
    .execute(&mut *tx)
    .await?;
    let before = Usage::now(stack);
    tx.commit().await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    let (in_order, out_of_order) = loop {
        let (done, bad) = {
            let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            (seen.1, seen.2)
        };
        if done as i64 >= events || Instant::now() > deadline {
            break (done, bad);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let took = started.elapsed().as_secs_f64();
    let cpu = Usage::now(stack).per_unit(&before, in_order as f64);
    let baseline = jetstream_alone(&nats, events, threads).await?;
    let rate = in_order as f64 / took;
    println!(
        "relay: {events} events over {threads} threads drained by 1 messaging replica in {took:.2} s: {rate:.0} events/s, {in_order} in seq order, {out_of_order} out of order; JetStream alone, one in flight per subject, same run: {baseline:.0}/s (ratio {:.2})",
        rate / baseline.max(1.0)
    );
    println!("relay: CPU per event {cpu}");
    Ok(())
}

/// Messages/s JetStream takes on its own: `events` messages on `subjects` subjects of a
/// scratch stream, each subject's next one published when the previous one was acknowledged.
async fn jetstream_alone(
    nats: &async_nats::Client,
    events: i64,
    subjects: usize,
) -> anyhow::Result<f64> {
    let js = jetstream::new(nats.clone());
    let name = format!("HILO_BENCH_{}", Uuid::now_v7().simple());
    let prefix = format!("hilo.bench.{}", Uuid::now_v7().simple());
    js.create_stream(jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("{prefix}.>")],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await?;
    let payload = bytes::Bytes::from(format!(
        r#"{{"type":"NEW_MESSAGE","threadId":"t","seq":1,"payload":{{"content":"{}"}}}}"#,
        "x".repeat(200)
    ));
    let per_subject = events / subjects as i64;
    let started = Instant::now();
    let mut chains = FuturesUnordered::new();
    for s in 0..subjects {
        let (js, subject, payload) = (js.clone(), format!("{prefix}.{s}"), payload.clone());
        chains.push(async move {
            for _ in 0..per_subject {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", Uuid::now_v7().to_string().as_str());
                js.publish_with_headers(subject.clone(), headers, payload.clone())
                    .await?
                    .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(chain) = chains.next().await {
        chain?;
    }
    let rate = (per_subject * subjects as i64) as f64 / started.elapsed().as_secs_f64();
    js.delete_stream(&name).await?;
    Ok(rate)
}
