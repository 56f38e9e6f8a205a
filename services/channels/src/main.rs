//! `hilo-channels`: `serve` (the default) or `migrate`. Every setting is an
//! environment variable; `hilo-channels serve --help` lists them.

use clap::{Parser, Subcommand};
use hilo_channels::{app, config::Config};
use hilo_kit::{admin, shutdown, telemetry};

#[derive(Parser)]
#[command(
    name = "hilo-channels",
    version,
    about = "Hilo channels service (gRPC)"
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
            let _telemetry = telemetry::init("hilo-channels", &config.telemetry)?;
            app::migrate(&config).await
        }
        Command::Serve(config) => {
            let _telemetry = telemetry::init("hilo-channels", &config.telemetry)?;
            let metrics = admin::install_recorder()?;
            let app = app::App::build(*config).await?;
            app.run(metrics, shutdown::on_signal()).await
        }
    }
}
