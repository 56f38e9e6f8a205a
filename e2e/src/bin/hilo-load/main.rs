//! `hilo-load`: starts a stack (one gateway, one realtime replica, the services) and measures
//! it from outside, as clients would:
//!
//! - `idle N`: N authenticated sockets (spread over source addresses 127.0.0.2-9), each
//!   joined to a thread; reports the realtime replica's RSS growth per connection.
//! - `latency SUBS RATE SECS`: SUBS sockets on one thread, messages posted through the gateway
//!   at RATE per second for SECS seconds, each stamped at send (epoch ns in its content) and
//!   measured at receipt; reports p50/p99/p99.9 and losses.
//!
//! Both report every server process's RSS and CPU seconds (from /proc). Loopback only.
#![allow(clippy::unwrap_used)]

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use hilo_e2e::{Options, Stack};
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::{
    Message, client::IntoClientRequest as _, protocol::WebSocketConfig,
};

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let mode = args.first().map(String::as_str).unwrap_or("latency");
    let log_dir = std::env::temp_dir().join(format!("hilo-load-{}", std::process::id()));
    let stack = Stack::start(Options {
        realtimes: 1,
        log_dir: Some(log_dir),
        env: vec![("RUST_LOG".to_owned(), "warn".to_owned())],
        ..Options::default()
    })
    .await?;
    let result = match mode {
        "idle" => idle(&stack, num(1, 10_000) as usize).await,
        _ => latency(&stack, num(1, 10) as usize, num(2, 100), num(3, 20)).await,
    };
    report_processes(&stack);
    stack.stop().await;
    result
}

async fn idle(stack: &Stack, n: usize) -> anyhow::Result<()> {
    let base = stack.gateway();
    let users = sign_up_many(base, 20).await?;
    let (_, thread) = channel_with_thread(base, &users).await?;
    let rt = realtime_addr(stack)?;
    let pid = pid_of(stack, "realtime-0")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid);
    let started = Instant::now();
    let sockets = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let failed = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = Vec::new();
    for i in 0..n {
        let (token, thread, sockets, failed, gate) = (
            users[i % users.len()].1.clone(),
            thread.clone(),
            sockets.clone(),
            failed.clone(),
            gate.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await;
            match open(rt, i, &token).await {
                Ok(mut ws) => {
                    if join(&mut ws, &thread).await.is_ok() {
                        sockets.lock().unwrap().push(ws);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let connected = sockets.lock().unwrap().len();
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid);
    println!(
        "idle: {connected} sockets connected and joined in {:.1} s ({} failed)",
        took.as_secs_f64(),
        failed.load(Ordering::Relaxed)
    );
    println!(
        "idle: realtime RSS {before} KiB -> {after} KiB: {:.2} KiB per connection",
        (after.saturating_sub(before)) as f64 / connected.max(1) as f64
    );
    drop(sockets);
    Ok(())
}

async fn latency(stack: &Stack, subs: usize, rate: u64, secs: u64) -> anyhow::Result<()> {
    let base = stack.gateway();
    let users = sign_up_many(base, subs.max(2)).await?;
    let (_, thread) = channel_with_thread(base, &users).await?;
    let rt = realtime_addr(stack)?;
    let samples = Arc::new(Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    let total = rate * secs;
    for i in 0..subs {
        let mut ws = open(rt, i, &users[i % users.len()].1).await?;
        join(&mut ws, &thread).await?;
        let samples = samples.clone();
        readers.push(tokio::spawn(async move {
            let mut got = 0u64;
            while got < total {
                let Ok(Some(Ok(message))) =
                    tokio::time::timeout(Duration::from_secs(30), ws.next()).await
                else {
                    break;
                };
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if frame["type"] != "NEW_MESSAGE" {
                    continue;
                }
                let sent: u128 = frame["payload"]["content"]
                    .as_str()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let micros = now_ns().saturating_sub(sent) / 1000;
                samples.lock().unwrap().push(micros as u64);
                got += 1;
            }
            got
        }));
    }
    let http = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
    let errors = Arc::new(AtomicUsize::new(0));
    let mut posts = Vec::new();
    for i in 0..total {
        tick.tick().await;
        let (http, url, token, thread, errors) = (
            http.clone(),
            format!("{base}/api/messages"),
            users[i as usize % users.len()].1.clone(),
            thread.clone(),
            errors.clone(),
        );
        posts.push(tokio::spawn(async move {
            let body = json!({ "threadId": thread, "content": now_ns().to_string() });
            let reply = http.post(url).bearer_auth(token).json(&body).send().await;
            match reply {
                Ok(r) if r.status() == 201 => {}
                Ok(r) => {
                    if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        let status = r.status();
                        eprintln!(
                            "post refused: {status} {}",
                            r.text().await.unwrap_or_default()
                        );
                    }
                }
                Err(error) => {
                    if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("post failed: {error}");
                    }
                }
            }
        }));
    }
    for post in posts {
        post.await?;
    }
    let mut received = 0;
    for reader in readers {
        received += reader.await?;
    }
    let mut samples = samples.lock().unwrap().clone();
    samples.sort_unstable();
    let pct = |p: f64| {
        samples
            .get(((samples.len() as f64 * p) as usize).min(samples.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "latency: {total} posts at {rate}/s to {subs} subscribers: {received} deliveries of {} expected, {} post errors",
        total * subs as u64,
        errors.load(Ordering::Relaxed)
    );
    println!(
        "latency: POST -> WS p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        pct(0.50),
        pct(0.99),
        pct(0.999),
        pct(1.0)
    );
    Ok(())
}

/// Opens an authenticated socket from source address 127.0.0.(2 + i % 8).
async fn open(rt: SocketAddr, i: usize, token: &str) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 8) as u8)),
        0,
    ))?;
    let stream = socket.connect(rt).await?;
    stream.set_nodelay(true)?;
    let mut request = format!("ws://{rt}/ws").into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(ws)
}

async fn join(ws: &mut Ws, thread: &str) -> anyhow::Result<()> {
    ws.send(Message::text(
        json!({"type": "JOIN_THREAD", "threadId": thread}).to_string(),
    ))
    .await?;
    while let Some(message) = ws.next().await {
        if let Message::Text(text) = message? {
            let frame: Value = serde_json::from_str(&text)?;
            match frame["type"].as_str() {
                Some("JOINED_THREAD") => return Ok(()),
                Some("ERROR") => anyhow::bail!("join refused: {frame}"),
                _ => {}
            }
        }
    }
    anyhow::bail!("socket closed during join")
}

/// `(user id, session token)` of `n` new users.
async fn sign_up_many(base: &str, n: usize) -> anyhow::Result<Vec<(String, String)>> {
    let http = reqwest::Client::new();
    let mut users = Vec::new();
    for i in 0..n {
        let email = format!("load-{}-{i}@example.com", now_ns());
        let body = json!({"name": format!("load {i}"), "email": email, "password": "correct horse battery staple"});
        let reply: Value = http
            .post(format!("{base}/api/auth/sign-up/email"))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        users.push((
            reply["user"]["id"].as_str().context("user id")?.to_owned(),
            reply["token"].as_str().context("token")?.to_owned(),
        ));
    }
    Ok(users)
}

/// A channel of the first user with every other user as a member, and a thread in it.
async fn channel_with_thread(
    base: &str,
    users: &[(String, String)],
) -> anyhow::Result<(String, String)> {
    let http = reqwest::Client::new();
    let owner = &users[0].1;
    let channel: Value = http
        .post(format!("{base}/api/channels"))
        .bearer_auth(owner)
        .json(&json!({"name": "load", "isPrivate": true}))
        .send()
        .await?
        .json()
        .await?;
    let channel_id = channel["id"].as_str().context("channel id")?.to_owned();
    for (id, _) in &users[1..] {
        http.post(format!("{base}/api/members"))
            .bearer_auth(owner)
            .json(&json!({"channelId": channel_id, "userId": id}))
            .send()
            .await?;
    }
    let thread: Value = http
        .post(format!("{base}/api/threads"))
        .bearer_auth(owner)
        .json(&json!({"channelId": channel_id, "name": "load"}))
        .send()
        .await?
        .json()
        .await?;
    Ok((
        channel_id,
        thread["id"].as_str().context("thread id")?.to_owned(),
    ))
}

fn realtime_addr(stack: &Stack) -> anyhow::Result<SocketAddr> {
    Ok(stack
        .realtimes
        .first()
        .context("no realtime")?
        .trim_start_matches("ws://")
        .parse()?)
}

fn pid_of(stack: &Stack, name: &str) -> anyhow::Result<u32> {
    stack
        .pids()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p)
        .context("no such process")
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Resident set size of a process, KiB (VmRSS).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU seconds of a process (/proc/PID/stat fields 14 and 15).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn report_processes(stack: &Stack) {
    for (name, pid) in stack.pids() {
        println!(
            "process {name:<12} pid {pid:>7}  RSS {:>8} KiB  CPU {:>7.2} s",
            rss_kib(pid),
            cpu_secs(pid)
        );
    }
}
