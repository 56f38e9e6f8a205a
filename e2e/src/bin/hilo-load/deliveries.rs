//! POST → WebSocket delivery under load (`latency`, `fanout`): `threads` threads with `subs`
//! sockets each, messages posted through the gateway at `rate` per second (open loop, spread
//! over the threads) for `secs` seconds, each stamped at send (its content) and timed at
//! receipt. The same clients then measure a bare WebSocket broadcast server at the same rate:
//! the baseline of the run.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use hilo_e2e::Stack;
use tokio::sync::Semaphore;

use crate::{
    bare::Bare,
    client::{self, Ws},
    frames::{Frame, Reader},
    report::{Latency, Usage},
};

/// The shape of a run.
#[derive(Clone, Copy)]
pub struct Plan {
    pub threads: usize,
    pub subs: usize,
    pub rate: u64,
    pub secs: u64,
}

/// What one socket saw.
struct Seen {
    /// Per delivery: the message's send stamp (ns) and its latency (µs).
    latencies: Vec<(u128, u64)>,
    delivered: u64,
    closed: bool,
    resyncs: u64,
}

/// What a run saw.
struct Outcome {
    latency: Latency,
    /// Per message, the latency of its first delivery: the pipeline up to the first socket.
    first: Latency,
    /// Per delivery, how long after its message's first delivery it arrived: the fan-out.
    spread: Latency,
    delivered: u64,
    expected: u64,
    closed: usize,
    resyncs: u64,
    post_errors: usize,
    /// How long the POSTs took (empty for the bare server).
    posts: Latency,
}

/// How the run's messages are sent.
enum Publisher<'a> {
    /// `POST /api/messages` through the gateway, as these users in turn.
    Hilo { base: &'a str, tokens: &'a [String] },
    /// Straight into the bare server.
    Bare(&'a Bare),
}

/// Runs the plan against Hilo and the bare server; prints one result line.
pub async fn run(stack: &Stack, name: &str, plan: Plan) -> anyhow::Result<()> {
    let base = stack.gateway();
    let users = client::sign_up_many(base, plan.subs.clamp(2, 20)).await?;
    let threads = client::channel_with_threads(base, &users, plan.threads).await?;
    let tokens: Vec<String> = users.iter().map(|u| u.token.clone()).collect();
    let realtime: SocketAddr = stack
        .realtimes
        .first()
        .ok_or_else(|| anyhow::anyhow!("no realtime replica"))?
        .trim_start_matches("ws://")
        .parse()?;
    let before = Usage::now(stack);
    let hilo = measure(
        realtime,
        &threads,
        &tokens,
        plan,
        Publisher::Hilo {
            base,
            tokens: &tokens,
        },
    )
    .await?;
    let usage = Usage::now(stack).per_unit(&before, hilo.delivered as f64);
    let bare = Bare::start().await?;
    let baseline = measure(bare.addr, &threads, &tokens, plan, Publisher::Bare(&bare)).await?;
    println!(
        "{name}: {} msg/s over {} threads x {} sockets for {} s: {}/{} delivered, {} lost, {} sockets closed, {} resyncs, {} post errors; POST->WS {} (first socket {}; after the first {}); POST alone {}; bare WebSocket server, same run: {} (p50 x{:.1}, p99 x{:.1})",
        plan.rate,
        plan.threads,
        plan.subs,
        plan.secs,
        hilo.delivered,
        hilo.expected,
        hilo.expected.saturating_sub(hilo.delivered),
        hilo.closed,
        hilo.resyncs,
        hilo.post_errors,
        hilo.latency.summary(),
        hilo.first.summary(),
        hilo.spread.summary(),
        hilo.posts.summary(),
        baseline.latency.summary(),
        hilo.latency.ms(0.5) / baseline.latency.ms(0.5).max(0.001),
        hilo.latency.ms(0.99) / baseline.latency.ms(0.99).max(0.001),
    );
    println!("{name}: CPU per delivery {usage}");
    Ok(())
}

async fn measure(
    addr: SocketAddr,
    threads: &[String],
    tokens: &[String],
    plan: Plan,
    publisher: Publisher<'_>,
) -> anyhow::Result<Outcome> {
    let total = plan.rate * plan.secs;
    let per_thread = |t: usize| {
        (0..total)
            .filter(|k| *k as usize % threads.len() == t)
            .count() as u64
    };
    // Open and join every socket (a few hundred handshakes at a time), then read.
    let gate = Arc::new(Semaphore::new(256));
    let mut opening = Vec::new();
    for (t, thread) in threads.iter().enumerate() {
        for s in 0..plan.subs {
            let (gate, thread, token) = (
                gate.clone(),
                thread.clone(),
                tokens[s % tokens.len()].clone(),
            );
            let source = t * plan.subs + s;
            opening.push(tokio::spawn(async move {
                let _permit = gate.acquire().await;
                let mut ws = client::open(addr, source, &token).await?;
                client::join(&mut ws, &thread).await?;
                anyhow::Ok(ws)
            }));
        }
    }
    let mut readers = Vec::new();
    for (i, opened) in opening.into_iter().enumerate() {
        let ws = opened.await??;
        readers.push(tokio::spawn(read(ws, per_thread(i / plan.subs))));
    }
    let (post_errors, posts) = publish(threads, plan, &publisher).await;
    let (mut latencies, mut delivered, mut closed, mut resyncs) = (Vec::new(), 0, 0, 0);
    for reader in readers {
        let seen = reader.await?;
        latencies.extend(seen.latencies);
        delivered += seen.delivered;
        closed += usize::from(seen.closed);
        resyncs += seen.resyncs;
    }
    let (first, spread) = decompose(&latencies);
    Ok(Outcome {
        latency: Latency::new(latencies.into_iter().map(|(_, micros)| micros).collect()),
        first,
        spread,
        delivered,
        expected: (0..threads.len()).map(per_thread).sum::<u64>() * plan.subs as u64,
        closed,
        resyncs,
        post_errors,
        posts: Latency::new(posts),
    })
}

/// Splits each delivery's latency into its message's first delivery and the delay after it.
fn decompose(latencies: &[(u128, u64)]) -> (Latency, Latency) {
    let mut first = std::collections::HashMap::<u128, u64>::new();
    for &(sent, micros) in latencies {
        let least = first.entry(sent).or_insert(micros);
        *least = (*least).min(micros);
    }
    let spread = latencies
        .iter()
        .map(|(sent, micros)| micros - first[sent])
        .collect();
    (
        Latency::new(first.into_values().collect()),
        Latency::new(spread),
    )
}

/// Sends `rate` messages a second for `secs` seconds, round-robin over the threads; returns
/// how many failed, and how long each successful POST took (µs).
async fn publish(threads: &[String], plan: Plan, publisher: &Publisher<'_>) -> (usize, Vec<u64>) {
    let http = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / plan.rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut posts = Vec::new();
    for k in 0..(plan.rate * plan.secs) as usize {
        tick.tick().await;
        let thread = &threads[k % threads.len()];
        let content = client::now_ns().to_string();
        match publisher {
            Publisher::Bare(bare) => bare.publish(thread, &content),
            Publisher::Hilo { base, tokens } => {
                let (http, base, token, thread) = (
                    http.clone(),
                    base.to_string(),
                    tokens[k % tokens.len()].clone(),
                    thread.clone(),
                );
                posts.push(tokio::spawn(async move {
                    let start = std::time::Instant::now();
                    client::post(&http, &base, &token, &thread, &content).await?;
                    anyhow::Ok(start.elapsed().as_micros() as u64)
                }));
            }
        }
    }
    let (mut errors, mut took) = (0, Vec::with_capacity(posts.len()));
    for post in posts {
        match post.await.map_err(anyhow::Error::from) {
            Ok(Ok(micros)) => took.push(micros),
            Ok(Err(error)) | Err(error) => {
                if errors == 0 {
                    eprintln!("post failed: {error:#}");
                }
                errors += 1;
            }
        }
    }
    (errors, took)
}

/// Reads one socket until it got `expected` messages, closed, or fell silent for 10 s.
async fn read(ws: Ws, expected: u64) -> Seen {
    const SILENCE: Duration = Duration::from_secs(10);
    let mut seen = Seen {
        latencies: Vec::with_capacity(expected as usize),
        delivered: 0,
        closed: false,
        resyncs: 0,
    };
    let mut reader = Reader::new(ws);
    // One timer per socket, moved on only when it fires (not re-armed per frame).
    let mut heard = tokio::time::Instant::now();
    let silence = tokio::time::sleep(SILENCE);
    tokio::pin!(silence);
    while seen.delivered < expected {
        tokio::select! {
            biased;
            frame = reader.next() => match frame {
                Frame::Text(text) => {
                    heard = tokio::time::Instant::now();
                    if let Some(sent) = client::stamp(text) {
                        let micros = client::now_ns().saturating_sub(sent) / 1000;
                        seen.latencies.push((sent, micros as u64));
                        seen.delivered += 1;
                    } else if memchr::memmem::find(text, b"\"RESYNC_REQUIRED\"").is_some() {
                        seen.resyncs += 1;
                    }
                }
                Frame::Closed => {
                    seen.closed = true;
                    break;
                }
            },
            () = &mut silence => {
                if heard.elapsed() >= SILENCE {
                    break;
                }
                silence.as_mut().reset(heard + SILENCE);
            }
        }
    }
    seen
}
