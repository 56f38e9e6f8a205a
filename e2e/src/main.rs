//! `hilo-stack`: runs every Hilo service locally on the well-known ports (gateway 8080,
//! realtime 8090, gRPC 50051-50054) against the infrastructure of `scripts/dev-up.sh`, until
//! Ctrl-C. Used by `scripts/up.sh`.

use std::time::Duration;

use hilo_e2e::{Options, Stack};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options {
        well_known_ports: true,
        realtimes: 1,
        database: Some(std::env::var("HILO_DATABASE").unwrap_or_else(|_| "hilo".to_owned())),
        auth_rate_limit: std::env::var("AUTH_RATE_LIMIT").unwrap_or_else(|_| "off".to_owned()),
        rate_limits: std::env::var("RATE_LIMITS").unwrap_or_else(|_| "off".to_owned()),
        ..Options::default()
    };
    let mut stack = Stack::start(options).await?;
    println!(
        "\nHilo is up: gateway {}  (API docs: {}/docs)",
        stack.gateway(),
        stack.gateway()
    );
    println!(
        "WebSockets {}/ws (or {}/ws, through the gateway)",
        stack.realtimes[0],
        stack.gateway().replace("http://", "ws://")
    );
    println!(
        "gRPC: accounts {}, channels {}, messaging {}, uploads {} (bucket {})",
        stack.accounts, stack.channels, stack.messaging, stack.uploads, stack.s3.bucket
    );
    let metrics: Vec<String> = stack
        .admins
        .iter()
        .map(|(name, url)| format!("{name} {url}/metrics"))
        .collect();
    println!("Metrics: {}", metrics.join(", "));
    println!("Ctrl-C stops everything.\n");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        which = stack.wait_any() => eprintln!("{which}; stopping the stack"),
    }
    tokio::time::timeout(Duration::from_secs(20), stack.stop())
        .await
        .ok();
    Ok(())
}
