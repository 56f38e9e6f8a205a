//! `hilo-bench-post [N]`: single-client latency of `POST /api/messages`. Starts a stack (fresh
//! database) against the local infrastructure, signs up one user, makes a channel and a thread,
//! then posts N messages (default 1000) one after another and prints latency percentiles.
//! Run through `scripts/bench.sh`; numbers depend on the build profile and the machine.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hilo_e2e::{Options, Stack};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    let stack = Stack::start(Options {
        log_dir: Some(std::env::temp_dir().join("hilo-bench-logs")),
        ..Options::default()
    })
    .await?;
    let base = stack.gateway().to_owned();
    let http = reqwest::Client::new();
    let signed: Value = http
        .post(format!("{base}/api/auth/sign-up/email"))
        .json(&json!({ "name": "Bench", "email": "bench@example.com", "password": "benchmark password" }))
        .send()
        .await?
        .json()
        .await?;
    let token = signed["token"]
        .as_str()
        .context("sign-up token")?
        .to_owned();
    let bearer = format!("Bearer {token}");
    let send = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .header("authorization", &bearer)
            .json(&body)
            .send()
    };
    let channel: Value = send("/api/channels", json!({ "name": "bench" }))
        .await?
        .json()
        .await?;
    let thread: Value = send(
        "/api/threads",
        json!({ "channelId": channel["id"], "name": "bench" }),
    )
    .await?
    .json()
    .await?;
    let thread_id = thread["id"].as_str().context("thread id")?.to_owned();

    // Warm the connection pools and the session cache before measuring.
    for _ in 0..20 {
        send(
            "/api/messages",
            json!({ "threadId": thread_id, "content": "warm-up" }),
        )
        .await?;
    }
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let response = send(
            "/api/messages",
            json!({ "threadId": thread_id, "content": format!("message {i}") }),
        )
        .await?;
        let status = response.status();
        response.bytes().await?;
        latencies.push(started.elapsed());
        if status != 201 {
            bail!("post {i} answered {status}");
        }
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let total: Duration = latencies.iter().sum();
    println!(
        "POST /api/messages, 1 client, {n} sequential posts: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({:.0} posts/s)",
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(pct(1.0)),
        n as f64 / total.as_secs_f64()
    );
    stack.stop().await;
    Ok(())
}
