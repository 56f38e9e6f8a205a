//! `idle N`: N authenticated sockets (spread over source addresses 127.0.0.2-9), each joined
//! to a thread; reports the realtime replica's RSS growth per connection.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use hilo_e2e::Stack;

use crate::{client, report::rss_kib};

pub async fn run(stack: &Stack, n: usize) -> anyhow::Result<()> {
    let base = stack.gateway();
    let users = client::sign_up_many(base, 20).await?;
    let thread = client::channel_with_threads(base, &users, 1)
        .await?
        .remove(0);
    let rt: SocketAddr = stack
        .realtimes
        .first()
        .context("no realtime")?
        .trim_start_matches("ws://")
        .parse()?;
    let pid = stack.pid("realtime-0").context("no realtime process")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid);
    let started = Instant::now();
    let sockets = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let failed = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = Vec::new();
    for i in 0..n {
        let (token, thread, sockets, failed, gate) = (
            users[i % users.len()].token.clone(),
            thread.clone(),
            sockets.clone(),
            failed.clone(),
            gate.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await;
            let joined = match client::open(rt, i, &token).await {
                Ok(mut ws) => client::join(&mut ws, &thread).await.map(|()| ws),
                Err(error) => Err(error),
            };
            match joined {
                Ok(ws) => sockets.lock().unwrap_or_else(|e| e.into_inner()).push(ws),
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let connected = sockets.lock().unwrap_or_else(|e| e.into_inner()).len();
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid);
    println!(
        "idle: {connected} sockets connected and joined in {:.1} s ({} failed); realtime RSS {before} KiB -> {after} KiB: {:.2} KiB per connection",
        took.as_secs_f64(),
        failed.load(Ordering::Relaxed),
        (after.saturating_sub(before)) as f64 / connected.max(1) as f64
    );
    Ok(())
}
