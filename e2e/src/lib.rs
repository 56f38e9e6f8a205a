//! A launcher for the real Hilo binaries against real infrastructure (the servers started by
//! `scripts/dev-up.sh`, found through its environment file). End-to-end tests start one
//! [`Stack`] each, on free ports with a fresh database; `scripts/up.sh` starts one on the
//! well-known ports through the `hilo-stack` binary.

use std::{
    env,
    io::{Read as _, Seek as _, Write as _},
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};
use rand::{Rng, distr::Alphanumeric};
use sqlx::{Connection, PgConnection};
use tokio::process::{Child, Command};

/// How to start a stack.
#[derive(Clone, Debug)]
pub struct Options {
    /// Number of gateway replicas (all share Redis and accounts).
    pub gateways: usize,
    /// Number of realtime replicas (all share NATS and Redis).
    pub realtimes: usize,
    /// Number of messaging replicas (gateway and realtime replica `i` use messaging `i % n`).
    pub messagings: usize,
    /// gRPC URL of a messaging service to use instead of starting one (tests: a stub).
    pub messaging_url: Option<String>,
    /// `AUTH_RATE_LIMIT` of the gateways; `off` also turns accounts' `AUTH_THROTTLE` off.
    pub auth_rate_limit: String,
    /// `RATE_LIMITS` of the gateways (budgets of app routes); `off` also turns realtime's
    /// `CONNECT_RATE_LIMIT` off.
    pub rate_limits: String,
    /// The services' own default ports (gateway 8080, realtime 8090, accounts 50051, channels
    /// 50052, messaging 50053, uploads 50054) for the first replica of each, as `scripts/up.sh`
    /// wants; otherwise free ones.
    pub well_known_ports: bool,
    /// Bucket of the uploads service (created by uploads at start-up if missing); `None` is
    /// the infrastructure's `S3_BUCKET`. Tests that look into the bucket use one of their own.
    pub s3_bucket: Option<String>,
    /// Database to use; `None` creates a fresh one.
    pub database: Option<String>,
    /// Where service logs go: files under this folder, or the terminal.
    pub log_dir: Option<PathBuf>,
    /// Extra environment for every service.
    pub env: Vec<(String, String)>,
    /// NATS for messaging only (a test's own server, to stop and restart); default: the infra's.
    pub messaging_nats_url: Option<String>,
}

impl Options {
    /// `port` when well-known ports are asked for, else `None` (a free one).
    fn port(&self, port: u16) -> Option<u16> {
        self.well_known_ports.then_some(port)
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            gateways: 1,
            realtimes: 0,
            messagings: 1,
            messaging_url: None,
            auth_rate_limit: "off".to_owned(),
            rate_limits: "off".to_owned(),
            well_known_ports: false,
            s3_bucket: None,
            database: None,
            log_dir: None,
            env: Vec::new(),
            messaging_nats_url: None,
        }
    }
}

/// Where uploads stores files: tests look into the bucket with these.
#[derive(Clone, Debug)]
pub struct S3 {
    /// The S3 server (path-style addressing).
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub bucket: String,
    /// `S3_PUBLIC_URL` of the stack: objects are at `<public_url>/<key>`.
    pub public_url: String,
}

/// Running Hilo processes; they are killed when this is dropped.
pub struct Stack {
    /// Base URLs of the gateways (`http://127.0.0.1:PORT`).
    pub gateways: Vec<String>,
    /// Base URLs of the realtime replicas (`ws://127.0.0.1:PORT`).
    pub realtimes: Vec<String>,
    /// gRPC URL of accounts.
    pub accounts: String,
    /// gRPC URL of channels.
    pub channels: String,
    /// gRPC URL of messaging (the first replica).
    pub messaging: String,
    /// gRPC URLs of every messaging replica (processes `messaging`, `messaging-1`, ...).
    pub messagings: Vec<String>,
    /// NATS URL of the infrastructure.
    pub nats_url: String,
    /// gRPC URL of uploads.
    pub uploads: String,
    /// The S3 store and bucket uploads writes to.
    pub s3: S3,
    /// The database this stack uses.
    pub database_url: String,
    /// The accounts signing key (tests forge and expire tokens with it).
    pub private_key_pem: String,
    /// Folder of the service logs, when logging to files.
    pub log_dir: Option<PathBuf>,
    /// Admin (Prometheus `/metrics`) base URL per process name (`gateway-0`, `messaging`,
    /// `realtime-0`, ...).
    pub admins: std::collections::BTreeMap<String, String>,
    /// Suffix of this stack's durable JetStream consumers when its database is throwaway (see
    /// [`Stack::consumer`]); empty for a named database (`scripts/up.sh`).
    consumer_suffix: String,
    /// A database created for this stack: the server's URL and the database's name, dropped
    /// with the stack (thousands of test runs would otherwise leave thousands of databases,
    /// which every autovacuum round visits).
    throwaway: Option<(String, String)>,
    children: Vec<(String, Child)>,
    /// How each process was started (program and environment), to start it again.
    specs: std::collections::HashMap<String, (PathBuf, Vec<(String, String)>)>,
}

impl Stack {
    /// Starts accounts, uploads, then the gateways, and waits until each answers.
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        let infra = Infra::load()?;
        let bin = bin_dir()?;
        let (database_url, consumer_suffix, throwaway) = match &options.database {
            Some(name) => (infra.database_url_for(name)?, String::new(), None),
            None => {
                let name = create_database(&infra).await?;
                (
                    infra.database_url_for(&name)?,
                    format!("-{}", random_name(10)),
                    Some((infra.database_url.clone(), name)),
                )
            }
        };
        let private_key_pem = keygen(&bin).await?;
        let bucket = options
            .s3_bucket
            .clone()
            .unwrap_or_else(|| infra.s3_bucket.clone());
        let s3 = S3 {
            public_url: format!("{}/{bucket}", infra.s3_endpoint.trim_end_matches('/')),
            endpoint: infra.s3_endpoint.clone(),
            region: infra.s3_region.clone(),
            access_key_id: infra.s3_access_key_id.clone(),
            secret_access_key: infra.s3_secret_access_key.clone(),
            bucket,
        };
        let mut stack = Self {
            gateways: Vec::new(),
            realtimes: Vec::new(),
            accounts: String::new(),
            channels: String::new(),
            messaging: String::new(),
            messagings: Vec::new(),
            nats_url: infra.nats_url.clone(),
            uploads: String::new(),
            s3,
            database_url,
            private_key_pem,
            log_dir: options.log_dir.clone(),
            consumer_suffix,
            throwaway,
            children: Vec::new(),
            specs: Default::default(),
            admins: Default::default(),
        };
        if let Some(dir) = &stack.log_dir {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }

        // The gateways' addresses first: accounts trusts them (social sign-in comes back there).
        let gateway_addrs = (0..options.gateways.max(1))
            .map(|i| addr(options.port(8080).filter(|_| i == 0)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let public_url = format!("http://{}", gateway_addrs[0]);
        let gateway_urls: Vec<String> = gateway_addrs
            .iter()
            .map(|a| format!("http://{a}"))
            .collect();
        let mut accounts_env = vec![
            ("JWT_PRIVATE_KEY".to_owned(), stack.private_key_pem.clone()),
            ("NATS_URL".to_owned(), infra.nats_url.clone()),
            ("BETTER_AUTH_URL".to_owned(), public_url.clone()),
            (
                "BETTER_AUTH_TRUSTED_ORIGINS".to_owned(),
                gateway_urls.join(","),
            ),
        ];
        // Accounts' own sign-in budgets go with the gateway's (off for most tests and benches).
        if options.auth_rate_limit == "off" {
            accounts_env.push(("AUTH_THROTTLE".to_owned(), "off".to_owned()));
        }
        accounts_env.extend(options.env.iter().cloned());
        stack.accounts = stack
            .start_service(
                &bin,
                "hilo-accounts",
                "accounts",
                options.port(50051),
                accounts_env,
            )
            .await?;

        let mut channels_env = vec![
            ("ACCOUNTS_URL".to_owned(), stack.accounts.clone()),
            ("NATS_URL".to_owned(), infra.nats_url.clone()),
        ];
        channels_env.extend(stack.consumer_env("channels-user-deleted"));
        channels_env.extend(options.env.iter().cloned());
        stack.channels = stack
            .start_service(
                &bin,
                "hilo-channels",
                "channels",
                options.port(50052),
                channels_env,
            )
            .await?;

        let messaging_nats = options
            .messaging_nats_url
            .clone()
            .unwrap_or_else(|| infra.nats_url.clone());
        let mut messaging_env = vec![
            ("ACCOUNTS_URL".to_owned(), stack.accounts.clone()),
            ("CHANNELS_URL".to_owned(), stack.channels.clone()),
            ("NATS_URL".to_owned(), messaging_nats),
        ];
        messaging_env.extend(stack.consumer_env("messaging-channel-deleted"));
        messaging_env.extend(options.env.iter().cloned());
        for i in 0..options.messagings.max(1) {
            let name = if i == 0 {
                "messaging".to_owned()
            } else {
                format!("messaging-{i}")
            };
            let port = options.port(50053).filter(|_| i == 0);
            let url = stack
                .start_service(&bin, "hilo-messaging", &name, port, messaging_env.clone())
                .await?;
            stack.messagings.push(url);
        }
        stack.messaging = stack.messagings[0].clone();

        // Uploads fetches the token key from accounts (no JWT_PUBLIC_KEY): the fallback of an
        // install whose Secret brings no public key.
        let uploads_addr = addr(options.port(50054))?;
        let s3 = &stack.s3;
        let mut env = vec![
            ("LISTEN_ADDR".to_owned(), uploads_addr.to_string()),
            (
                "ADMIN_ADDR".to_owned(),
                addr(options.port(9154))?.to_string(),
            ),
            ("ACCOUNTS_URL".to_owned(), stack.accounts.clone()),
            ("S3_ENDPOINT".to_owned(), s3.endpoint.clone()),
            ("S3_REGION".to_owned(), s3.region.clone()),
            ("S3_BUCKET".to_owned(), s3.bucket.clone()),
            ("S3_ACCESS_KEY_ID".to_owned(), s3.access_key_id.clone()),
            (
                "S3_SECRET_ACCESS_KEY".to_owned(),
                s3.secret_access_key.clone(),
            ),
            (
                "S3_FORCE_PATH_STYLE".to_owned(),
                infra.s3_force_path_style.clone(),
            ),
            ("S3_PUBLIC_URL".to_owned(), s3.public_url.clone()),
            ("S3_CREATE_BUCKET".to_owned(), "true".to_owned()),
        ];
        env.extend(options.env.iter().cloned());
        stack.spawn(&bin, "hilo-uploads", "uploads", &env)?;
        stack.uploads = format!("http://{uploads_addr}");
        wait_tcp(uploads_addr, &mut stack).await?;

        let secret: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(40)
            .map(char::from)
            .collect();
        for i in 0..options.realtimes {
            let messaging = options
                .messaging_url
                .clone()
                .unwrap_or_else(|| stack.messagings[i % stack.messagings.len()].clone());
            let listen = addr(options.port(8090).filter(|_| i == 0))?;
            let mut env = vec![
                ("LISTEN_ADDR".to_owned(), listen.to_string()),
                (
                    "ADMIN_ADDR".to_owned(),
                    addr(options.port(9190).filter(|_| i == 0))?.to_string(),
                ),
                ("ACCOUNTS_URL".to_owned(), stack.accounts.clone()),
                ("MESSAGING_URL".to_owned(), messaging.clone()),
                ("NATS_URL".to_owned(), infra.nats_url.clone()),
                ("REDIS_URL".to_owned(), infra.redis_url.clone()),
                ("BETTER_AUTH_SECRET".to_owned(), secret.clone()),
                ("BETTER_AUTH_URL".to_owned(), public_url.clone()),
            ];
            // Connect budgets go with the gateways' (off for most tests and benches).
            if options.rate_limits == "off" {
                env.push(("CONNECT_RATE_LIMIT".to_owned(), "off".to_owned()));
            }
            env.extend(options.env.iter().cloned());
            stack.spawn(&bin, "hilo-realtime", &format!("realtime-{i}"), &env)?;
            wait_tcp(listen, &mut stack).await?;
            stack.realtimes.push(format!("ws://{listen}"));
        }
        for (i, gateway_addr) in gateway_addrs.into_iter().enumerate() {
            let url = format!("http://{gateway_addr}");
            let mut env = vec![
                ("LISTEN_ADDR".to_owned(), gateway_addr.to_string()),
                (
                    "ADMIN_ADDR".to_owned(),
                    addr(options.port(9180).filter(|_| i == 0))?.to_string(),
                ),
                ("ACCOUNTS_URL".to_owned(), stack.accounts.clone()),
                ("CHANNELS_URL".to_owned(), stack.channels.clone()),
                (
                    "MESSAGING_URL".to_owned(),
                    stack.messagings[i % stack.messagings.len()].clone(),
                ),
                ("UPLOADS_URL".to_owned(), stack.uploads.clone()),
                ("REDIS_URL".to_owned(), infra.redis_url.clone()),
                ("BETTER_AUTH_SECRET".to_owned(), secret.clone()),
                ("BETTER_AUTH_URL".to_owned(), url.clone()),
                (
                    "AUTH_RATE_LIMIT".to_owned(),
                    options.auth_rate_limit.clone(),
                ),
                ("RATE_LIMITS".to_owned(), options.rate_limits.clone()),
            ];
            if let Some(realtime) = stack.realtimes.get(i % stack.realtimes.len().max(1)) {
                env.push((
                    "REALTIME_URL".to_owned(),
                    realtime.replace("ws://", "http://"),
                ));
            }
            env.extend(options.env.iter().cloned());
            stack.spawn(&bin, "hilo-gateway", &format!("gateway-{i}"), &env)?;
            wait_tcp(gateway_addr, &mut stack).await?;
            stack.gateways.push(url);
        }
        Ok(stack)
    }

    /// The first gateway's base URL.
    pub fn gateway(&self) -> &str {
        &self.gateways[0]
    }

    /// The process id of a running service: `accounts`, `uploads`, `gateway-0`, ...
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, child)| child.id())
    }

    /// Everything the services logged so far (when logging to files).
    pub fn logs(&self) -> anyhow::Result<String> {
        let Some(dir) = &self.log_dir else {
            bail!("this stack logs to the terminal")
        };
        let mut all = String::new();
        for entry in std::fs::read_dir(dir)? {
            all.push_str(&std::fs::read_to_string(entry?.path())?);
        }
        Ok(all)
    }

    /// Waits until a child exits (e.g. on Ctrl-C in `hilo-stack`); returns which one.
    pub async fn wait_any(&mut self) -> String {
        loop {
            for (name, child) in &mut self.children {
                if let Ok(Some(status)) = child.try_wait() {
                    return format!("{name} exited with {status}");
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `(name, pid)` of every process of the stack (the load tool reads their RSS and CPU).
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.children
            .iter()
            .filter_map(|(name, child)| Some((name.clone(), child.id()?)))
            .collect()
    }

    /// Sends `signal` (`KILL`, `TERM`) to realtime replica `i` (tests of failover and drain).
    pub async fn signal_realtime(&mut self, i: usize, signal: &str) -> anyhow::Result<()> {
        self.signal(&format!("realtime-{i}"), signal).await
    }

    /// Sends `signal` (`KILL`, `TERM`) to a process of the stack, by name (see [`Stack::pid`]).
    pub async fn signal(&mut self, name: &str, signal: &str) -> anyhow::Result<()> {
        let pid = self
            .pid(name)
            .with_context(|| format!("no running {name}"))?;
        Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .await?;
        Ok(())
    }

    /// Waits for realtime replica `i` to exit; its exit status.
    pub async fn wait_realtime(&mut self, i: usize) -> anyhow::Result<std::process::ExitStatus> {
        let name = format!("realtime-{i}");
        let (_, child) = self
            .children
            .iter_mut()
            .find(|(n, _)| *n == name)
            .with_context(|| format!("no {name}"))?;
        Ok(child.wait().await?)
    }

    /// Starts a process of the stack again, as it was started, once it has exited (after
    /// [`Stack::signal`]), and waits until it listens. Its log continues in the same file.
    pub async fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        let (program, env) = self
            .specs
            .get(name)
            .cloned()
            .with_context(|| format!("no {name}"))?;
        if let Some(i) = self.children.iter().position(|(n, _)| n == name) {
            let (_, mut old) = self.children.remove(i);
            tokio::time::timeout(Duration::from_secs(15), old.wait())
                .await
                .with_context(|| format!("{name} did not exit"))??;
        }
        self.launch(name, &program, &env)?;
        let listen = env
            .iter()
            .rev()
            .find(|(k, _)| k == "LISTEN_ADDR")
            .with_context(|| format!("{name} has no LISTEN_ADDR"))?
            .1
            .parse()?;
        wait_tcp(listen, self).await
    }

    /// Asks every process to stop (SIGTERM), then waits for them.
    pub async fn stop(mut self) {
        for (_, child) in &mut self.children {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status()
                    .await;
            }
        }
        for (_, child) in &mut self.children {
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }

    /// The name of a service's durable consumer (`default` is the service's own name for it).
    /// Stacks on throwaway databases share one NATS, so each gets consumers of its own, or
    /// one stack's service could take and acknowledge another's events; NATS deletes them a
    /// while after the stack is gone.
    pub fn consumer(&self, default: &str) -> String {
        format!("{default}{}", self.consumer_suffix)
    }

    fn consumer_env(&self, default: &str) -> Vec<(String, String)> {
        if self.consumer_suffix.is_empty() {
            return Vec::new();
        }
        vec![
            ("EVENTS_CONSUMER".to_owned(), self.consumer(default)),
            ("EVENTS_CONSUMER_INACTIVE_SECS".to_owned(), "300".to_owned()),
        ]
    }

    /// Starts a gRPC service with its database, migrated at start-up, and waits for it.
    async fn start_service(
        &mut self,
        bin: &Path,
        program: &str,
        name: &str,
        port: Option<u16>,
        mut env: Vec<(String, String)>,
    ) -> anyhow::Result<String> {
        let listen = addr(port)?;
        // The README's metrics ports sit beside the gRPC ones: 9151.. for 50051..
        let admin = addr(port.map(|p| p - 50051 + 9151))?;
        env.extend([
            ("DATABASE_URL".to_owned(), self.database_url.clone()),
            ("LISTEN_ADDR".to_owned(), listen.to_string()),
            ("ADMIN_ADDR".to_owned(), admin.to_string()),
            ("MIGRATE_ON_START".to_owned(), "true".to_owned()),
        ]);
        self.spawn(bin, program, name, &env)?;
        wait_tcp(listen, self).await?;
        Ok(format!("http://{listen}"))
    }

    fn spawn(
        &mut self,
        bin: &Path,
        program: &str,
        name: &str,
        env: &[(String, String)],
    ) -> anyhow::Result<()> {
        // The last value of a variable is the one the process gets.
        if let Some((_, admin)) = env.iter().rev().find(|(k, _)| k == "ADMIN_ADDR") {
            self.admins
                .insert(name.to_owned(), format!("http://{admin}"));
        }
        let program = bin.join(program);
        self.specs
            .insert(name.to_owned(), (program.clone(), env.to_vec()));
        self.launch(name, &program, env)
    }

    fn launch(
        &mut self,
        name: &str,
        program: &Path,
        env: &[(String, String)],
    ) -> anyhow::Result<()> {
        let mut command = Command::new(program);
        command
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .kill_on_drop(true)
            .stdin(Stdio::null());
        if env::var_os("RUST_LOG").is_none() && !env.iter().any(|(k, _)| k == "RUST_LOG") {
            command.env("RUST_LOG", "info");
        }
        match &self.log_dir {
            Some(dir) => {
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(format!("{name}.log")))?;
                command
                    .stdout(log.try_clone()?)
                    .stderr(log)
                    .env("LOG_FORMAT", "json");
            }
            None => {
                command.env_remove("LOG_FORMAT").env("LOG_FORMAT", "pretty");
            }
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        self.children.push((name.to_owned(), child));
        Ok(())
    }
}

/// The NATS URL of the infrastructure (tests that publish or stand in for a service).
pub fn infra_nats_url() -> anyhow::Result<String> {
    Ok(Infra::load()?.nats_url)
}

/// The infrastructure's addresses, from the environment or `scripts/dev-up.sh`'s env file.
struct Infra {
    database_url: String,
    redis_url: String,
    nats_url: String,
    s3_endpoint: String,
    s3_region: String,
    s3_access_key_id: String,
    s3_secret_access_key: String,
    s3_force_path_style: String,
    s3_bucket: String,
}

impl Infra {
    fn load() -> anyhow::Result<Self> {
        let from_file = env_file();
        let get = |key: &str| {
            env::var(key)
                .ok()
                .or_else(|| {
                    from_file
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.clone())
                })
                .with_context(|| {
                    format!(
                        "{key} is not set: run scripts/dev-up.sh (or source its env file) first"
                    )
                })
        };
        Ok(Self {
            database_url: get("DATABASE_URL")?,
            redis_url: get("REDIS_URL")?,
            nats_url: get("NATS_URL")?,
            s3_endpoint: get("S3_ENDPOINT")?,
            s3_region: get("S3_REGION").unwrap_or_else(|_| "us-east-1".to_owned()),
            s3_access_key_id: get("S3_ACCESS_KEY_ID")?,
            s3_secret_access_key: get("S3_SECRET_ACCESS_KEY")?,
            s3_force_path_style: get("S3_FORCE_PATH_STYLE").unwrap_or_else(|_| "true".to_owned()),
            s3_bucket: get("S3_BUCKET").unwrap_or_else(|_| "hilo".to_owned()),
        })
    }

    fn database_url_for(&self, name: &str) -> anyhow::Result<String> {
        let mut url = url::Url::parse(&self.database_url).context("DATABASE_URL")?;
        url.set_path(name);
        Ok(url.to_string())
    }
}

/// `KEY=value` pairs of `$HILO_INFRA_DIR/env` (default `/tmp/hilo-infra/env`).
fn env_file() -> Vec<(String, String)> {
    let dir = env::var("HILO_INFRA_DIR").unwrap_or_else(|_| "/tmp/hilo-infra".to_owned());
    std::fs::read_to_string(Path::new(&dir).join("env"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("export ").split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

/// `n` random lowercase letters and digits (valid in database and bucket names).
fn random_name(n: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect::<String>()
        .to_lowercase()
}

/// Creates a database with a random name and returns the name.
async fn create_database(infra: &Infra) -> anyhow::Result<String> {
    let name = format!("hilo_e2e_{}", random_name(12));
    let mut conn = PgConnection::connect(&infra.database_url)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    Ok(name)
}

/// Drops a stack's database, closing what is still connected to it.
async fn drop_database(server: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(server).await?;
    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&mut conn)
        .await?;
    Ok(())
}

impl Drop for Stack {
    /// Kills the processes (they are also killed when their handles drop) and drops a
    /// throwaway database, on a thread of its own: a drop may run on a runtime's worker,
    /// which must not wait on a future itself.
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.start_kill();
        }
        let Some((server, name)) = self.throwaway.take() else {
            return;
        };
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(drop_database(&server, &name))
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("a test database was not dropped: {error:#}");
        }
    }
}

/// Where the binaries are: `HILO_BIN_DIR`, else next to this executable (`target/<profile>`,
/// also for test executables in `target/<profile>/deps`).
fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = env::var_os("HILO_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = env::current_exe()?;
    let mut dir = exe
        .parent()
        .context("executable without a folder")?
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    if !dir.join("hilo-gateway").exists() {
        bail!(
            "no hilo-gateway in {}: run `cargo build --bins` first",
            dir.display()
        );
    }
    Ok(dir)
}

async fn keygen(bin: &Path) -> anyhow::Result<String> {
    let out = Command::new(bin.join("hilo-accounts"))
        .arg("keygen")
        .output()
        .await?;
    if !out.status.success() {
        bail!("hilo-accounts keygen failed");
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// A loopback address: the given port, or a free one. Free ones are drawn at random from
/// 20000..32000, below the kernel's ephemeral range (32768 and up): a port the kernel handed
/// out (`bind(0)`) could be taken by some client's outgoing connection before the service
/// binds it. A port is only free until its service binds it, seconds later, so every port
/// handed out is also written in a ledger shared by the test processes (under a file lock)
/// and not handed out again for a minute, by this process or another.
fn addr(port: Option<u16>) -> anyhow::Result<SocketAddr> {
    if let Some(port) = port {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let ledger_path = env::temp_dir().join("hilo-e2e-ports");
    let mut ledger = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&ledger_path)
        .with_context(|| format!("opening {}", ledger_path.display()))?;
    ledger.lock()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut text = String::new();
    ledger.read_to_string(&mut text)?;
    // `port handed-out-at` lines of the last minute.
    let mut recent: Vec<(u16, u64)> = text
        .lines()
        .filter_map(|line| {
            let (port, at) = line.split_once(' ')?;
            Some((port.parse().ok()?, at.parse().ok()?))
        })
        .filter(|(_, at)| now.saturating_sub(*at) < 60)
        .collect();
    for _ in 0..100 {
        let port = rand::rng().random_range(20_000..32_000);
        if recent.iter().any(|(taken, _)| *taken == port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            recent.push((port, now));
            let lines: String = recent.iter().map(|(p, at)| format!("{p} {at}\n")).collect();
            ledger.set_len(0)?;
            ledger.rewind()?;
            ledger.write_all(lines.as_bytes())?;
            return Ok(listener.local_addr()?);
        }
    }
    bail!("no free loopback port found in 20000..32000")
}

/// Waits until `addr` accepts connections, failing early if a process died.
async fn wait_tcp(addr: SocketAddr, stack: &mut Stack) -> anyhow::Result<()> {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        for (name, child) in &mut stack.children {
            if let Some(status) = child.try_wait()? {
                bail!("{name} exited during start-up ({status}); see its log");
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("nothing listens on {addr} after 15 s")
}
