//! `hilo-realtime`: serves `/ws` until SIGTERM, then closes sockets with 1012 and exits.
//! Every setting is an environment variable; `hilo-realtime --help` lists them.

use clap::Parser as _;
use hilo_kit::{admin, shutdown, telemetry};
use hilo_realtime::{app::App, config::Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = telemetry::init("hilo-realtime", &config.telemetry)?;
    let metrics = admin::install_recorder()?;
    let app = App::build(config).await?;
    app.run(metrics, shutdown::on_signal()).await
}
