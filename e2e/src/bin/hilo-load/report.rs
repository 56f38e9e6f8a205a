//! Figures the load tool prints: latency percentiles, and CPU and memory per process (Hilo's,
//! and the infrastructure's servers found in /proc), read before and after a measurement.

use std::collections::BTreeMap;

use hilo_e2e::Stack;

/// Percentiles of latencies in microseconds.
pub struct Latency {
    sorted: Vec<u64>,
}

impl Latency {
    pub fn new(mut micros: Vec<u64>) -> Self {
        micros.sort_unstable();
        Self { sorted: micros }
    }

    /// The `p` quantile (0..=1), in milliseconds.
    pub fn ms(&self, p: f64) -> f64 {
        let n = self.sorted.len();
        if n == 0 {
            return 0.0;
        }
        self.sorted[((n as f64 * p) as usize).min(n - 1)] as f64 / 1000.0
    }

    /// `p50 .. ms, p99 .. ms, p99.9 .. ms, max .. ms`.
    pub fn summary(&self) -> String {
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            self.ms(0.5),
            self.ms(0.99),
            self.ms(0.999),
            self.ms(1.0)
        )
    }
}

/// CPU seconds per process name at one moment.
pub struct Usage(BTreeMap<String, f64>);

/// Servers of the infrastructure, summed over their processes. PostgreSQL counts only the
/// backends of the stack's database (one per connection; the server may serve others).
const INFRA: [&str; 3] = ["postgres", "nats-server", "redis-server"];

impl Usage {
    pub fn now(stack: &Stack) -> Self {
        let mut cpu = BTreeMap::new();
        for (name, pid) in stack.pids() {
            cpu.insert(name, cpu_secs(pid));
        }
        cpu.insert("load tool".to_owned(), cpu_secs(std::process::id()));
        let database = stack.database_url.rsplit('/').next().unwrap_or_default();
        for (comm, pid) in processes() {
            let Some(name) = INFRA.iter().find(|n| comm == **n) else {
                continue;
            };
            if *name == "postgres" && !backend_of(pid, database) {
                continue;
            }
            *cpu.entry((*name).to_owned()).or_default() += cpu_secs(pid);
        }
        Self(cpu)
    }

    /// CPU milliseconds per unit of work since `before`, per process, and their sum over
    /// Hilo's processes and PostgreSQL (the load tool, NATS and Redis listed apart).
    pub fn per_unit(&self, before: &Usage, units: f64) -> String {
        let mut lines = Vec::new();
        let mut hilo = 0.0;
        for (name, after) in &self.0 {
            let used = after - before.0.get(name).copied().unwrap_or(0.0);
            let ms = used * 1000.0 / units.max(1.0);
            if name != "load tool" && name != "nats-server" && name != "redis-server" {
                hilo += ms;
            }
            lines.push(format!("{name} {ms:.4}"));
        }
        format!(
            "{hilo:.4} ms (Hilo + PostgreSQL); per process: {}",
            lines.join(", ")
        )
    }
}

/// Whether a PostgreSQL process serves `database` (its title: `postgres: user db host ...`).
fn backend_of(pid: u32, database: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|title| String::from_utf8_lossy(&title).split_whitespace().nth(2) == Some(database))
        .unwrap_or(false)
}

/// `(comm, pid)` of every process.
fn processes() -> Vec<(String, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            Some((comm.trim().to_owned(), pid))
        })
        .collect()
}

/// Resident set size of a process, KiB (VmRSS).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU seconds of a process (/proc/PID/stat fields 14 and 15).
pub fn cpu_secs(pid: u32) -> f64 {
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

/// RSS and total CPU of every process of the stack.
pub fn processes_of(stack: &Stack) {
    for (name, pid) in stack.pids() {
        println!(
            "process {name:<12} pid {pid:>7}  RSS {:>8} KiB  CPU {:>7.2} s",
            rss_kib(pid),
            cpu_secs(pid)
        );
    }
}

/// `, PostgreSQL with fsync and synchronous commits` or `, PostgreSQL without durable commits
/// (fsync off)`: what the numbers mean depends on it.
pub async fn durability(stack: &Stack) -> String {
    use sqlx::Connection as _;
    let Ok(mut db) = sqlx::PgConnection::connect(&stack.database_url).await else {
        return String::new();
    };
    let fsync: String = sqlx::query_scalar("SHOW fsync")
        .fetch_one(&mut db)
        .await
        .unwrap_or_default();
    let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&mut db)
        .await
        .unwrap_or_default();
    if fsync == "on" && sync == "on" {
        ", PostgreSQL with durable commits (fsync on, synchronous_commit on)".to_owned()
    } else {
        format!(", PostgreSQL without durable commits (fsync {fsync}, synchronous_commit {sync})")
    }
}
