//! `throughput`: closed-loop `POST /api/messages` through every tier (`clients` clients, each
//! posting its next message as soon as the last one was answered, over `threads` threads) for
//! `secs` seconds; then `pgbench` single-row INSERTs on the same PostgreSQL, as the baseline
//! of the run.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use hilo_e2e::Stack;

use crate::{
    client,
    report::{Latency, Usage},
};

pub async fn run(stack: &Stack, clients: usize, threads: usize, secs: u64) -> anyhow::Result<()> {
    let base = stack.gateway().to_owned();
    let users = client::sign_up_many(&base, clients.clamp(2, 16)).await?;
    let thread_ids = client::channel_with_threads(&base, &users, threads).await?;
    let tokens: Vec<String> = users.iter().map(|u| u.token.clone()).collect();
    // Warm-up (connections, caches), then the measured run.
    let _ = closed_loop(&base, &tokens, &thread_ids, clients, Duration::from_secs(2)).await;
    let before = Usage::now(stack);
    let started = Instant::now();
    let (latencies, errors) = closed_loop(
        &base,
        &tokens,
        &thread_ids,
        clients,
        Duration::from_secs(secs),
    )
    .await;
    let took = started.elapsed().as_secs_f64();
    let cpu = Usage::now(stack).per_unit(&before, latencies.len() as f64);
    let rate = latencies.len() as f64 / took;
    let latency = Latency::new(latencies);
    let pg = pgbench(&stack.database_url, 8, secs.min(10)).await?;
    let name = if threads == 1 {
        "hot-thread"
    } else {
        "throughput"
    };
    println!(
        "{name}: {clients} clients over {threads} threads for {secs} s{}: {rate:.0} msg/s, {errors} errors, POST {}; pgbench single-row INSERT, 8 clients, same run: {pg:.0}/s (ratio {:.3})",
        crate::report::durability(stack).await,
        latency.summary(),
        rate / pg.max(1.0)
    );
    println!("{name}: CPU per message {cpu}");
    Ok(())
}

/// Posts from `clients` concurrent clients until `length` has passed; latencies (µs) of the
/// stored posts, and the number of failed ones.
async fn closed_loop(
    base: &str,
    tokens: &[String],
    threads: &[String],
    clients: usize,
    length: Duration,
) -> (Vec<u64>, usize) {
    let deadline = Instant::now() + length;
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, base, token) = (
            http.clone(),
            base.to_owned(),
            tokens[c % tokens.len()].clone(),
        );
        let threads = threads.to_vec();
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0usize);
            let mut k = c;
            while Instant::now() < deadline {
                let thread = &threads[k % threads.len()];
                k += clients;
                let sent = Instant::now();
                match client::post(
                    &http,
                    &base,
                    &token,
                    thread,
                    "a message of an ordinary length, like most chat messages are",
                )
                .await
                {
                    Ok(()) => latencies.push(sent.elapsed().as_micros() as u64),
                    Err(error) => {
                        if errors == 0 {
                            eprintln!("post failed: {error:#}");
                        }
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    for task in tasks {
        if let Ok((latencies, failed)) = task.await {
            all.extend(latencies);
            errors += failed;
        }
    }
    (all, errors)
}

/// Single-row INSERTs per second that `pgbench` gets from `database_url` with `clients`.
pub async fn pgbench(database_url: &str, clients: usize, secs: u64) -> anyhow::Result<f64> {
    let bin = std::fs::read_dir("/usr/lib/postgresql")?
        .filter_map(|e| Some(e.ok()?.path().join("bin/pgbench")))
        .filter(|p| p.exists())
        .max()
        .context("pgbench not found under /usr/lib/postgresql")?;
    let url = url::Url::parse(database_url)?;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(database_url).await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS public.pgbench_messages \
         (id bigserial PRIMARY KEY, thread_id uuid NOT NULL, body text NOT NULL)",
    )
    .execute(&mut conn)
    .await?;
    let script = std::env::temp_dir().join(format!("hilo-pgbench-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "INSERT INTO public.pgbench_messages (thread_id, body) \
         VALUES (gen_random_uuid(), 'a message of an ordinary length, like most chat messages are');\n",
    )?;
    let out = tokio::process::Command::new(bin)
        .args(["-n", "-M", "prepared", "-j", "2"])
        .arg(format!("-c{clients}"))
        .arg(format!("-T{secs}"))
        .arg("-f")
        .arg(&script)
        .arg("-h")
        .arg(url.host_str().unwrap_or("127.0.0.1"))
        .arg("-p")
        .arg(url.port().unwrap_or(5432).to_string())
        .arg("-U")
        .arg(if url.username().is_empty() {
            "postgres"
        } else {
            url.username()
        })
        .arg(url.path().trim_start_matches('/'))
        .output()
        .await?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| {
            format!(
                "pgbench said: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}
