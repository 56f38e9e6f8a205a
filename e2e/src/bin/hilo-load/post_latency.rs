//! `post-latency N`: one client posting N messages one after another through every tier, for
//! each content size a chat message has (20, 100, 500 and 4,000 characters): the latency a user
//! sees, and a check that no hop stalls larger writes (Nagle's algorithm meeting delayed ACKs
//! costs ~40 ms on a socket without TCP_NODELAY).

use std::time::Instant;

use hilo_e2e::Stack;

use crate::{client, report::Latency};

pub async fn run(stack: &Stack, n: usize) -> anyhow::Result<()> {
    let base = stack.gateway();
    let users = client::sign_up_many(base, 2).await?;
    let thread = client::channel_with_threads(base, &users, 1)
        .await?
        .remove(0);
    let http = reqwest::Client::new();
    let token = &users[0].token;
    for _ in 0..20 {
        client::post(&http, base, token, &thread, "warm-up").await?;
    }
    let mut lines = Vec::new();
    for size in [20, 100, 500, 4000] {
        let content = "x".repeat(size);
        let mut micros = Vec::with_capacity(n);
        for _ in 0..n {
            let sent = Instant::now();
            client::post(&http, base, token, &thread, &content).await?;
            micros.push(sent.elapsed().as_micros() as u64);
        }
        let latency = Latency::new(micros);
        lines.push(format!(
            "{size} chars p50 {:.2} ms, p99 {:.2} ms",
            latency.ms(0.5),
            latency.ms(0.99)
        ));
    }
    println!(
        "post-latency: 1 client, {n} sequential posts per size{}: {}",
        crate::report::durability(stack).await,
        lines.join("; ")
    );
    Ok(())
}
