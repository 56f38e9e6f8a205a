//! `hilo-uploads`: every setting is an environment variable; `hilo-uploads --help` lists them.

use clap::Parser as _;
use hilo_kit::{admin, shutdown, telemetry};
use hilo_uploads::{app::App, config::Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = telemetry::init("hilo-uploads", &config.telemetry)?;
    let metrics = admin::install_recorder()?;
    let app = App::build(config).await?;
    app.run(metrics, shutdown::on_signal()).await
}
