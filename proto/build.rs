//! Compiles `hilo/**/*.proto` with protox (pure Rust, so no protoc to install) and keeps the
//! encoded descriptor set for gRPC reflection.

use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "hilo/accounts/v1/accounts.proto",
    "hilo/channels/v1/channels.proto",
    "hilo/messaging/v1/messaging.proto",
    "hilo/uploads/v1/uploads.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=hilo");
    let fds = protox::compile(PROTOS, ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out.join("hilo_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        // A session with its user is large next to an error code; box it inside the oneof.
        .boxed(".hilo.accounts.v1.FinishSocialSignInResponse.outcome.signed_in")
        // File chunks stay `Bytes` end to end: no copy between multipart, gRPC and S3.
        .bytes(".hilo.uploads.v1.UploadRequest.chunk")
        .compile_fds(fds)?;
    Ok(())
}
