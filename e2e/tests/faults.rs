//! The fault suite: two gateways, two realtime replicas, one of each service, and in each
//! scenario a writer posting at a fixed rate through both gateways (a failed post is sent again
//! with its `Idempotency-Key`, through the other gateway) while readers on both realtime
//! replicas follow two threads, reconnecting and resuming with `sinceSeq` whenever their socket
//! ends. Scenarios: kill -9 of a realtime replica, rolling SIGTERM of both, kill -9 of a gateway
//! mid-post, a slow consumer, NATS killed and restarted, PostgreSQL stopped and restarted, and a
//! negative control (readers that reconnect without `sinceSeq`) that must report losses.
//!
//! Each scenario checks that every acknowledged message reached every resuming reader exactly
//! once, in seq order, and that PostgreSQL holds exactly the acknowledged messages, one per key;
//! it prints its figures (outage, worst delivery) on one line. The suite restarts the shared NATS
//! and PostgreSQL, so `scripts/test.sh` runs it alone, after every other test (it is ignored in
//! the main run).
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{User, create_channel, create_thread, sign_up};
use futures_util::{SinkExt as _, StreamExt as _};
use hilo_e2e::{Options, Stack};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest as _, http::HeaderValue},
};

type Socket = WebSocketStream<TcpStream>;

/// Posts per second, over the scenario's two threads.
const RATE: u64 = 40;
/// How long the writer posts; the fault comes `FAULT_AT` into it.
const WRITE: Duration = Duration::from_secs(8);
const FAULT_AT: Duration = Duration::from_secs(2);
/// How long a post may take to be acknowledged, retries included, before the writer gives up.
const POST_DEADLINE: Duration = Duration::from_secs(40);
/// How long readers get to catch up once the writer is done.
const CATCH_UP: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    KillRealtime,
    RollingTerm,
    KillGateway,
    SlowConsumer,
    Nats,
    Postgres,
    /// A realtime replica killed, with readers that do not resume.
    Control,
}

struct Ack {
    thread: String,
    seq: i64,
    at: Instant,
}

#[derive(Default)]
struct Ledger {
    acked: BTreeMap<String, Ack>,
    /// Keys never acknowledged, with the last answer.
    gave_up: Vec<(String, String)>,
}

/// One reader: a socket following one thread.
#[derive(Clone)]
struct Spec {
    thread: String,
    /// Resumes with `sinceSeq` after every reconnect (the negative control does not).
    resume: bool,
    /// The replica it starts on (it moves to the other one at each reconnect).
    replica: usize,
    /// Stops reading for a while, with a small receive buffer, to be closed as a slow consumer.
    slow: bool,
}

#[derive(Default, Debug)]
struct Seen {
    seqs: Vec<i64>,
    received: HashMap<i64, Instant>,
    duplicates: u64,
    /// Events that came after a hole (a seq skipped).
    jumps: u64,
    resyncs: u64,
    reconnects: u64,
    closes: Vec<u16>,
}

#[tokio::test]
#[ignore = "restarts the shared NATS and PostgreSQL: scripts/test.sh runs it alone"]
async fn faults_lose_and_duplicate_no_acknowledged_message() {
    let mut stack = common::stack_with(Options {
        gateways: 2,
        realtimes: 2,
        // A small queue and send buffer, so the slow consumer is found out in seconds.
        env: vec![
            ("SEND_QUEUE".into(), "16".into()),
            ("WS_SEND_BUFFER".into(), "16384".into()),
        ],
        ..Options::default()
    })
    .await;
    let writer = sign_up(stack.gateway(), "Writer").await;
    let channel = create_channel(stack.gateway(), &writer, "faults", false).await;
    let mut failures = Vec::new();
    for fault in [
        Fault::KillRealtime,
        Fault::RollingTerm,
        Fault::KillGateway,
        Fault::SlowConsumer,
        Fault::Nats,
        Fault::Postgres,
        Fault::Control,
    ] {
        failures.extend(scenario(&mut stack, &writer, &channel, fault).await);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Runs one scenario; what it found wrong.
async fn scenario(stack: &mut Stack, writer: &User, channel: &str, fault: Fault) -> Vec<String> {
    let base = stack.gateway().to_owned();
    let mut threads = Vec::new();
    for t in 0..2 {
        threads.push(create_thread(&base, writer, channel, &format!("{fault:?} {t}")).await);
    }
    let mut specs = Vec::new();
    for thread in &threads {
        for replica in 0..2 {
            specs.push(Spec {
                thread: thread.clone(),
                resume: true,
                replica,
                slow: false,
            });
            if fault == Fault::Control {
                specs.push(Spec {
                    thread: thread.clone(),
                    resume: false,
                    replica: 0,
                    slow: false,
                });
            }
        }
    }
    if fault == Fault::SlowConsumer {
        specs.push(Spec {
            thread: threads[0].clone(),
            resume: true,
            replica: 0,
            slow: true,
        });
    }
    // Readers run until their thread's last acknowledged seq (known once the writer is done).
    let targets: Arc<Mutex<Option<HashMap<String, i64>>>> = Arc::default();
    let mut readers = Vec::new();
    for spec in &specs {
        let (realtimes, bearer, spec, targets) = (
            stack.realtimes.clone(),
            writer.bearer(),
            spec.clone(),
            targets.clone(),
        );
        readers.push(tokio::spawn(read(realtimes, bearer, spec, targets)));
    }
    // Every reader joined before the first post.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let content = if fault == Fault::SlowConsumer {
        3_900
    } else {
        40
    };
    let writing = tokio::spawn(write(
        stack.gateways.clone(),
        writer.bearer(),
        threads.clone(),
        format!("{fault:?}"),
        content,
        ledger.clone(),
    ));
    tokio::time::sleep(FAULT_AT).await;
    let faulted = Instant::now();
    if let Err(error) = inject(stack, fault).await {
        return vec![format!(
            "{fault:?}: the fault could not be injected: {error:#}"
        )];
    }
    writing.await.unwrap();
    let mut last = HashMap::new();
    for ack in ledger.lock().unwrap().acked.values() {
        let seq = last.entry(ack.thread.clone()).or_insert(0);
        *seq = ack.seq.max(*seq);
    }
    *targets.lock().unwrap() = Some(last.clone());
    let mut seen = Vec::new();
    for reader in readers {
        seen.push(reader.await.unwrap());
    }
    let stored = stored(&stack.database_url, &threads).await;
    let ledger = ledger.lock().unwrap();
    let mut failures = check(fault, faulted, &ledger, &last, &specs, &seen, &stored);
    let overflowed = stack
        .logs()
        .unwrap()
        .lines()
        .any(|l| l.contains("\"code\":1008") && l.contains("send queue overflow"));
    if fault == Fault::SlowConsumer && !overflowed {
        failures.push("SlowConsumer: realtime never closed a socket as too slow (1008)".into());
    }
    failures
}

/// Posts `RATE` messages a second for `WRITE`, each retried until acknowledged.
async fn write(
    gateways: Vec<String>,
    bearer: String,
    threads: Vec<String>,
    prefix: String,
    content: usize,
    ledger: Arc<Mutex<Ledger>>,
) {
    let client = common::http();
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE));
    let mut posts = Vec::new();
    for i in 0..(RATE * WRITE.as_secs()) as usize {
        tick.tick().await;
        let (client, gateways, bearer, ledger) = (
            client.clone(),
            gateways.clone(),
            bearer.clone(),
            ledger.clone(),
        );
        let thread = threads[i % threads.len()].clone();
        let key = format!("{prefix}-{i}");
        let text = format!("{key} {}", "x".repeat(content));
        posts.push(tokio::spawn(async move {
            let deadline = Instant::now() + POST_DEADLINE;
            let mut attempt = 0;
            loop {
                let base = &gateways[(i + attempt) % gateways.len()];
                attempt += 1;
                let answer = client
                    .post(format!("{base}/api/messages"))
                    .header("authorization", &bearer)
                    .header("idempotency-key", &key)
                    .json(&json!({"threadId": thread, "content": text}))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                let last = match answer {
                    Ok(answer) if answer.status().is_success() => {
                        let body: Value = answer.json().await.unwrap_or_default();
                        if let Some(seq) = body["seq"].as_i64() {
                            let at = Instant::now();
                            ledger
                                .lock()
                                .unwrap()
                                .acked
                                .insert(key, Ack { thread, seq, at });
                            return;
                        }
                        format!("no seq in {body}")
                    }
                    Ok(answer) => answer.status().to_string(),
                    Err(error) => error.to_string(),
                };
                if Instant::now() > deadline {
                    ledger.lock().unwrap().gave_up.push((key, last));
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    for post in posts {
        post.await.unwrap();
    }
}

/// Follows one thread until its last acknowledged seq, reconnecting whenever the socket ends.
async fn read(
    realtimes: Vec<String>,
    bearer: String,
    spec: Spec,
    targets: Arc<Mutex<Option<HashMap<String, i64>>>>,
) -> Seen {
    let mut seen = Seen::default();
    let mut replica = spec.replica;
    let mut last = 0i64;
    let mut first = true;
    let mut paused = false;
    let mut deadline: Option<Instant> = None;
    let done = |last: i64, deadline: &mut Option<Instant>| {
        let Some(target) = targets
            .lock()
            .unwrap()
            .as_ref()
            .map(|t| t.get(&spec.thread).copied().unwrap_or(0))
        else {
            return false;
        };
        let until = *deadline.get_or_insert_with(|| Instant::now() + CATCH_UP);
        last >= target || Instant::now() > until
    };
    'connect: loop {
        if done(last, &mut deadline) {
            return seen;
        }
        let Ok(mut socket) =
            connect(&realtimes[replica % realtimes.len()], &bearer, spec.slow).await
        else {
            replica += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut join = json!({"type": "JOIN_THREAD", "threadId": spec.thread});
        if first || spec.resume {
            join["sinceSeq"] = last.into();
        }
        first = false;
        if socket.send(Message::text(join.to_string())).await.is_err() {
            continue;
        }
        loop {
            if spec.slow && !paused && seen.seqs.len() >= 20 {
                paused = true;
                // Not read for a while: the server's queue for it overflows.
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            let frame = match tokio::time::timeout(Duration::from_millis(300), socket.next()).await
            {
                Err(_) => {
                    if done(last, &mut deadline) {
                        return seen;
                    }
                    continue;
                }
                Ok(frame) => frame,
            };
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(close))) => {
                    seen.closes.push(close.map_or(1005, |c| u16::from(c.code)));
                    break;
                }
                None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            };
            let frame: Value = serde_json::from_str(&text).unwrap_or_default();
            match frame["type"].as_str() {
                Some("ERROR") => {
                    // Realtime could not ask messaging (an outage): join again in a moment.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let mut join = json!({"type": "JOIN_THREAD", "threadId": spec.thread});
                    if spec.resume {
                        join["sinceSeq"] = last.into();
                    }
                    if socket.send(Message::text(join.to_string())).await.is_err() {
                        break;
                    }
                }
                Some("RESYNC_REQUIRED") => seen.resyncs += 1,
                _ => {}
            }
            let Some(seq) = frame["seq"].as_i64() else {
                continue;
            };
            if seq <= last {
                seen.duplicates += 1;
                continue;
            }
            if seq != last + 1 {
                seen.jumps += 1;
            }
            last = seq;
            seen.seqs.push(seq);
            seen.received.insert(seq, Instant::now());
        }
        seen.reconnects += 1;
        replica += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
        continue 'connect;
    }
}

/// Opens `/ws` as the writer; a slow reader gets a small receive buffer, so what the server
/// cannot send piles up in its own queue rather than in the kernel's.
async fn connect(base: &str, bearer: &str, slow: bool) -> anyhow::Result<Socket> {
    let mut request = format!("{base}/ws").into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", HeaderValue::from_str(bearer)?);
    let addr = base.trim_start_matches("ws://").parse()?;
    let tcp = TcpSocket::new_v4()?;
    if slow {
        tcp.set_recv_buffer_size(4096)?;
    }
    let stream = tokio::time::timeout(Duration::from_secs(2), tcp.connect(addr)).await??;
    let (socket, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::client_async(request, stream),
    )
    .await??;
    Ok(socket)
}

/// The fault itself, and the recovery the operator (or Kubernetes) would do.
async fn inject(stack: &mut Stack, fault: Fault) -> anyhow::Result<()> {
    match fault {
        Fault::KillRealtime | Fault::Control => {
            stack.signal("realtime-0", "KILL").await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            stack.restart("realtime-0").await?;
        }
        Fault::RollingTerm => {
            for name in ["realtime-0", "realtime-1"] {
                stack.signal(name, "TERM").await?;
                stack.restart(name).await?;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Fault::KillGateway => {
            stack.signal("gateway-0", "KILL").await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            stack.restart("gateway-0").await?;
        }
        Fault::SlowConsumer => {}
        Fault::Nats => {
            shell(r#"kill -9 "$(cat "${HILO_INFRA_DIR:-/tmp/hilo-infra}/run/nats.pid")""#).await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            infra_up().await?;
        }
        Fault::Postgres => {
            shell(
                r#"bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
                   runuser -u postgres -- "$bin/pg_ctl" -D "${HILO_INFRA_DIR:-/tmp/hilo-infra}/pg/data" -m fast -w stop"#,
            )
            .await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            infra_up().await?;
        }
    }
    Ok(())
}

/// Starts what is missing of the infrastructure again (`scripts/dev-up.sh`).
async fn infra_up() -> anyhow::Result<()> {
    shell(concat!(
        "bash ",
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/dev-up.sh >/dev/null"
    ))
    .await
}

async fn shell(script: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .status()
        .await?;
    anyhow::ensure!(status.success(), "`{script}` failed: {status}");
    Ok(())
}

/// `(thread, key, seq)` of every message PostgreSQL holds in these threads.
async fn stored(database_url: &str, threads: &[String]) -> Vec<(String, String, i64)> {
    use sqlx::Connection as _;
    let mut db = sqlx::PgConnection::connect(database_url).await.unwrap();
    sqlx::query_as(
        "SELECT thread_id::text, coalesce(idempotency_key, ''), seq FROM messaging.messages \
         WHERE thread_id::text = ANY($1)",
    )
    .bind(threads)
    .fetch_all(&mut db)
    .await
    .unwrap()
}

/// Compares what readers and PostgreSQL have with what was acknowledged; prints the figures.
fn check(
    fault: Fault,
    faulted: Instant,
    ledger: &Ledger,
    last: &HashMap<String, i64>,
    specs: &[Spec],
    seen: &[Seen],
    stored: &[(String, String, i64)],
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut fail = |what: String| failures.push(format!("{fault:?}: {what}"));
    if !ledger.gave_up.is_empty() {
        fail(format!(
            "{} posts never acknowledged, e.g. {:?}",
            ledger.gave_up.len(),
            &ledger.gave_up[..ledger.gave_up.len().min(3)]
        ));
    }
    // The acknowledged messages of a thread are its seqs 1..=last, each once.
    let mut by_thread: HashMap<&str, Vec<i64>> = HashMap::new();
    for ack in ledger.acked.values() {
        by_thread.entry(&ack.thread).or_default().push(ack.seq);
    }
    for (thread, seqs) in &mut by_thread {
        seqs.sort_unstable();
        let expected: Vec<i64> = (1..=last[*thread]).collect();
        if *seqs != expected {
            fail(format!(
                "thread {thread}: acknowledged seqs are not 1..={}",
                last[*thread]
            ));
        }
    }
    // PostgreSQL: exactly the acknowledged messages, one per key.
    let mut keys: HashMap<&str, Vec<i64>> = HashMap::new();
    for (_, key, seq) in stored {
        keys.entry(key).or_default().push(*seq);
    }
    let twice = keys.values().filter(|s| s.len() > 1).count();
    let unknown = keys
        .keys()
        .filter(|k| !ledger.acked.contains_key(**k))
        .count();
    let wrong_seq = ledger
        .acked
        .iter()
        .filter(|(key, ack)| keys.get(key.as_str()) != Some(&vec![ack.seq]))
        .count();
    if twice + unknown + wrong_seq > 0 {
        fail(format!(
            "PostgreSQL: {twice} keys stored twice, {unknown} messages never acknowledged, \
             {wrong_seq} acknowledged messages missing or with another seq"
        ));
    }
    // Readers.
    let (mut delivered, mut expected, mut lost_by_control) = (0, 0, 0);
    let mut worst = Duration::ZERO;
    let mut closes: BTreeMap<u16, usize> = BTreeMap::new();
    let mut reconnects = 0;
    for (spec, seen) in specs.iter().zip(seen) {
        let target = last[&spec.thread];
        for code in &seen.closes {
            *closes.entry(*code).or_default() += 1;
        }
        reconnects += seen.reconnects;
        if !spec.resume {
            lost_by_control += target as usize - seen.seqs.len();
            continue;
        }
        expected += target as usize;
        delivered += seen.seqs.len();
        let all: Vec<i64> = (1..=target).collect();
        if seen.seqs != all || seen.duplicates > 0 || seen.jumps > 0 || seen.resyncs > 0 {
            fail(format!(
                "a reader of thread {} (replica {}, slow {}) got {} of {target} ({} duplicates, \
                 {} jumps, {} resyncs, closes {:?})",
                spec.thread,
                spec.replica,
                spec.slow,
                seen.seqs.len(),
                seen.duplicates,
                seen.jumps,
                seen.resyncs,
                seen.closes
            ));
        }
        // A delay upstream (an outage, then a backlog at once) never closes a reader that
        // keeps up.
        if !spec.slow && seen.closes.contains(&1008) {
            fail(format!(
                "a reader that keeps up was closed as too slow: {:?}",
                seen.closes
            ));
        }
        // Its close frame (1008) waits behind what it did not read, and goes when the
        // socket can take it within the close timeout; otherwise the connection is cut.
        if spec.slow && seen.reconnects == 0 {
            fail("the slow reader was never closed".into());
        }
        for ack in ledger.acked.values().filter(|a| a.thread == spec.thread) {
            if let Some(at) = seen.received.get(&ack.seq) {
                worst = worst.max(at.saturating_duration_since(ack.at));
            }
        }
    }
    if fault == Fault::Control && lost_by_control == 0 {
        fail("readers that do not resume lost nothing: the check cannot see losses".into());
    }
    // The writer's outage: the longest time without an acknowledgement after the fault.
    let mut acks: Vec<Instant> = ledger.acked.values().map(|a| a.at).collect();
    acks.sort_unstable();
    let outage = acks
        .windows(2)
        .filter(|w| w[1] > faulted)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    println!(
        "faults: {fault:?}: {} posts acknowledged, {} never; resuming readers {delivered}/{expected} \
         delivered; PostgreSQL {} rows; {reconnects} reconnects, closes {closes:?}; writer \
         outage {} ms, worst delivery after acknowledgement {} ms{}",
        ledger.acked.len(),
        ledger.gave_up.len(),
        stored.len(),
        outage.as_millis(),
        worst.as_millis(),
        if fault == Fault::Control {
            format!("; readers without sinceSeq lost {lost_by_control}")
        } else {
            String::new()
        }
    );
    failures
}
