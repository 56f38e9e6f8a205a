//! `/ws` on the gateway: hands the WebSocket upgrade to a realtime replica (REALTIME_URL), so
//! one public address serves everything. The client's request head goes upstream unchanged
//! (cookies, Origin and the WebSocket key included: realtime makes every check; only the trace
//! context is the gateway's own), the upstream answer comes back as is, and after a 101 the
//! two connections are spliced byte for byte.

use std::time::Duration;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::{app::AppState, error::ApiError};

/// Largest upstream response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// The handler of `GET /ws` (any method: realtime answers what it does not serve).
pub async fn proxy(State(state): State<AppState>, mut request: Request) -> Response {
    let Some(upstream) = state.realtime.clone() else {
        return ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "Not Found").into_response();
    };
    let client = hyper::upgrade::on(&mut request);
    let (parts, _) = request.into_parts();
    let result = tokio::time::timeout(Duration::from_secs(10), forward(&upstream, &parts)).await;
    let (response, stream, leftover) = match result {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => {
            tracing::warn!(%error, %upstream, "realtime unreachable");
            return bad_gateway();
        }
        Err(_) => return bad_gateway(),
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        tokio::spawn(async move {
            let Ok(upgraded) = client.await else {
                return;
            };
            let mut client = TokioIo::new(upgraded);
            let mut stream = stream;
            if !leftover.is_empty() && client.write_all(&leftover).await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut stream).await;
        });
    }
    response
}

fn bad_gateway() -> Response {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "BAD_GATEWAY",
        "Realtime unavailable",
    )
    .into_response()
}

/// Sends the request head upstream and reads the response head (and, when not upgrading, a
/// small body). Returns the response, the upstream stream, and bytes read past the head.
async fn forward(
    upstream: &str,
    request: &http::request::Parts,
) -> anyhow::Result<(Response, TcpStream, Vec<u8>)> {
    let mut stream = TcpStream::connect(upstream).await?;
    stream.set_nodelay(true)?;
    let target = request
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/ws");
    let mut head = format!(
        "{} {target} HTTP/1.1\r\nhost: {upstream}\r\n",
        request.method
    )
    .into_bytes();
    // The upgrade continues the gateway's trace: its span replaces the client's context.
    let mut trace = http::HeaderMap::new();
    hilo_kit::telemetry::inject(&mut trace);
    let client_headers = request.headers.iter().filter(|(name, _)| {
        *name != http::header::HOST && !matches!(name.as_str(), "traceparent" | "tracestate")
    });
    for (name, value) in client_headers.chain(&trace) {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    stream.write_all(&head).await?;

    let mut buffer = Vec::with_capacity(1024);
    let (status, headers, length) = loop {
        let mut chunk = [0u8; 2048];
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "realtime closed the connection");
        buffer.extend_from_slice(&chunk[..n]);
        let mut parsed = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut parsed);
        if let httparse::Status::Complete(length) = response.parse(&buffer)? {
            let status = response.code.unwrap_or(502);
            let headers: Vec<(String, Vec<u8>)> = response
                .headers
                .iter()
                .map(|h| (h.name.to_owned(), h.value.to_vec()))
                .collect();
            break (status, headers, length);
        }
        anyhow::ensure!(buffer.len() < MAX_HEAD, "response head too large");
    };
    let mut leftover = buffer.split_off(length);
    let mut builder = Response::builder().status(status);
    let mut content_length = 0usize;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("content-length") {
            content_length = std::str::from_utf8(&value)?.trim().parse()?;
        }
        builder = builder.header(HeaderName::try_from(name)?, HeaderValue::try_from(value)?);
    }
    if status == 101 {
        return Ok((builder.body(Body::empty())?, stream, leftover));
    }
    anyhow::ensure!(content_length <= MAX_HEAD, "response body too large");
    while leftover.len() < content_length {
        let mut chunk = [0u8; 2048];
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "realtime closed the connection");
        leftover.extend_from_slice(&chunk[..n]);
    }
    leftover.truncate(content_length);
    Ok((builder.body(Body::from(leftover))?, stream, Vec::new()))
}
