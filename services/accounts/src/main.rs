//! `hilo-accounts`: `serve` (the default), `migrate`, `keygen` or `public-key`. Every setting is an
//! environment variable; `hilo-accounts serve --help` lists them.

use clap::{Parser, Subcommand};
use hilo_accounts::{app, config::Config, tokens};
use hilo_kit::{admin, shutdown, telemetry};

#[derive(Parser)]
#[command(
    name = "hilo-accounts",
    version,
    about = "Hilo accounts service (gRPC)"
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
    /// Print a new Ed25519 private key (PKCS#8 PEM) for JWT_PRIVATE_KEY.
    Keygen,
    /// Print the public key (SubjectPublicKeyInfo PEM, for JWT_PUBLIC_KEY) of the private key
    /// read from standard input.
    PublicKey,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // No arguments at all means `serve` (what a container runs).
    let mut args: Vec<_> = std::env::args_os().collect();
    if args.len() == 1 {
        args.push("serve".into());
    }
    match Cli::parse_from(args).command {
        Command::Keygen => {
            print!("{}", tokens::generate_private_key_pem()?);
            Ok(())
        }
        Command::PublicKey => {
            let mut pem = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut pem)?;
            print!("{}", tokens::public_key_pem(&pem)?);
            Ok(())
        }
        Command::Migrate(config) => {
            let _telemetry = telemetry::init("hilo-accounts", &config.telemetry)?;
            app::migrate(&config).await
        }
        Command::Serve(config) => {
            let _telemetry = telemetry::init("hilo-accounts", &config.telemetry)?;
            let metrics = admin::install_recorder()?;
            let app = app::App::build(*config).await?;
            app.run(metrics, shutdown::on_signal()).await
        }
    }
}
