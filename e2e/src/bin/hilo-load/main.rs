//! `hilo-load`: starts a stack (release binaries from `scripts/bench.sh`) and measures it from
//! outside, as clients would. Each benchmark prints one result line (and CPU per unit of work
//! per process); `scripts/bench.sh` lists them with their defaults:
//!
//! - `idle N`: memory per idle authenticated, joined socket on one realtime replica;
//! - `post-latency N`: one client's sequential posts, per content size;
//! - `latency RATE THREADS SUBS SECS` and `fanout SUBS RATE SECS`: POST → WebSocket delivery
//!   ([`deliveries`]), with a bare WebSocket server measured in the same run;
//! - `throughput CLIENTS THREADS SECS`: closed-loop posts, with `pgbench` in the same run
//!   (one thread: the `hot-thread` figure);
//! - `relay EVENTS THREADS`: one messaging replica draining a backlog, with JetStream alone.
//!
//! Loopback only; processes' RSS and CPU come from /proc.

mod bare;
mod client;
mod deliveries;
mod frames;
mod idle;
mod post_latency;
mod relay;
mod report;
mod throughput;

use hilo_e2e::{Options, Stack};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let mode = args.first().map(String::as_str).unwrap_or("latency");
    let realtimes = usize::from(matches!(mode, "idle" | "latency" | "fanout"));
    let log_dir = std::env::temp_dir().join(format!("hilo-load-{}", std::process::id()));
    let stack = Stack::start(Options {
        realtimes,
        log_dir: Some(log_dir),
        env: vec![("RUST_LOG".to_owned(), "warn".to_owned())],
        ..Options::default()
    })
    .await?;
    let result = match mode {
        "idle" => idle::run(&stack, num(1, 10_000) as usize).await,
        "post-latency" => post_latency::run(&stack, num(1, 1000) as usize).await,
        "latency" => {
            let plan = deliveries::Plan {
                rate: num(1, 1000),
                threads: num(2, 100) as usize,
                subs: num(3, 10) as usize,
                secs: num(4, 20),
            };
            deliveries::run(&stack, "latency", plan).await
        }
        "fanout" => {
            let plan = deliveries::Plan {
                subs: num(1, 1000) as usize,
                rate: num(2, 200),
                secs: num(3, 20),
                threads: 1,
            };
            deliveries::run(&stack, "fanout", plan).await
        }
        "throughput" => {
            throughput::run(
                &stack,
                num(1, 64) as usize,
                num(2, 100) as usize,
                num(3, 20),
            )
            .await
        }
        "relay" => relay::run(&stack, num(1, 100_000) as i64, num(2, 100) as usize).await,
        other => Err(anyhow::anyhow!("unknown benchmark {other}")),
    };
    report::processes_of(&stack);
    stack.stop().await;
    result
}
