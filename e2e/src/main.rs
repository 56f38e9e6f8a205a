//! `hilo-stack`: runs every Hilo service locally on the well-known ports (gateway 8080),
//! against the infrastructure of `scripts/dev-up.sh`, until Ctrl-C. Used by `scripts/up.sh`.

use std::time::Duration;

use hilo_e2e::{Options, Stack};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port = |key: &str, default: u16| {
        std::env::var(key)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let options = Options {
        gateway_port: Some(port("HILO_GATEWAY_PORT", 8080)),
        accounts_port: Some(port("HILO_ACCOUNTS_PORT", 50051)),
        uploads_port: Some(port("HILO_UPLOADS_PORT", 50054)),
        database: Some(std::env::var("HILO_DATABASE").unwrap_or_else(|_| "hilo".to_owned())),
        auth_rate_limit: std::env::var("AUTH_RATE_LIMIT").unwrap_or_else(|_| "off".to_owned()),
        ..Options::default()
    };
    let mut stack = Stack::start(options).await?;
    println!(
        "\nHilo is up: gateway {}  (API docs: {}/docs)",
        stack.gateway(),
        stack.gateway()
    );
    println!(
        "accounts gRPC {}, uploads gRPC {} (bucket {}). Ctrl-C stops everything.\n",
        stack.accounts, stack.uploads, stack.s3.bucket
    );
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        which = stack.wait_any() => eprintln!("{which}; stopping the stack"),
    }
    tokio::time::timeout(Duration::from_secs(20), stack.stop())
        .await
        .ok();
    Ok(())
}
