//! `hilo-gateway`: every setting is an environment variable; `hilo-gateway --help` lists them.
//! `hilo-gateway openapi` prints the OpenAPI document and exits.

use clap::Parser as _;
use hilo_gateway::{app::App, config::Config};
use hilo_kit::{admin, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        println!("{}", hilo_gateway::app::openapi()?);
        return Ok(());
    }
    let config = Config::parse();
    let _telemetry = telemetry::init("hilo-gateway", &config.telemetry)?;
    let metrics = admin::install_recorder()?;
    let app = App::build(config).await?;
    app.run(metrics, shutdown::on_signal()).await
}
