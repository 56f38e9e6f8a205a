//! `hilo-messaging`: `serve` (the default) or `migrate`. Every setting is an
//! environment variable; `hilo-messaging serve --help` lists them.

use clap::{Parser, Subcommand};
use hilo_kit::{admin, shutdown, telemetry};
use hilo_messaging::{app, config::Config};

#[derive(Parser)]
#[command(
    name = "hilo-messaging",
    version,
    about = "Hilo messaging service (gRPC)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC (the default).
    Serve(Box<Config>),
    /// Apply the database migrations and exit.
    Migrate(Box<Config>),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // No arguments at all means `serve` (what a container runs).
    let mut args: Vec<_> = std::env::args_os().collect();
    if args.len() == 1 {
        args.push("serve".into());
    }
    match Cli::parse_from(args).command {
        Command::Migrate(config) => {
            let _telemetry = telemetry::init("hilo-messaging", &config.telemetry)?;
            app::migrate(&config).await
        }
        Command::Serve(config) => {
            let _telemetry = telemetry::init("hilo-messaging", &config.telemetry)?;
            let metrics = admin::install_recorder()?;
            let app = app::App::build(*config).await?;
            app.run(metrics, shutdown::on_signal()).await
        }
    }
}
