//! gRPC plumbing shared by services and their callers: [`serve`] adds health, reflection,
//! request spans and connection ageing to a service's routes; [`connect`] builds a client
//! channel once (one that sends again the calls a connection's ageing kept from the server);
//! [`request`] wraps an outgoing message with the caller's token and the current trace
//! context; [`internal`] and [`invalid`] build the only error statuses that need care, and
//! [`echo`] bounds the client input an error message repeats.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::{
    Code, Request, Status,
    metadata::MetadataValue,
    service::Routes,
    transport::{Channel, Endpoint, Server},
};
use tonic_health::ServingStatus;
use tonic_types::{ErrorDetails, StatusExt as _};
use tower_http::trace::TraceLayer;

use crate::{config::GrpcArgs, telemetry};

/// Everything a service hands to [`serve`].
pub struct ServeOptions<'a> {
    pub listener: TcpListener,
    pub args: &'a GrpcArgs,
    /// The encoded `FileDescriptorSet` of the service's protos, for reflection.
    pub descriptors: &'a [u8],
    /// Full names of the served services (e.g. `hilo.accounts.v1.AccountsService`), reported
    /// SERVING by the health service alongside the overall `""` status.
    pub service_names: &'a [&'a str],
    pub shutdown: CancellationToken,
}

/// Binds `addr`; split from [`serve`] so callers learn the port before serving (tests bind 0).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the gRPC listener on {addr}"))
}

/// The standard health service's name.
const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// Serves `routes` plus `grpc.health.v1` and reflection (v1 and v1alpha) until shutdown.
/// `health` is flipped to NOT_SERVING as soon as shutdown starts, so load balancers stop
/// sending new calls while in-flight ones finish.
pub async fn serve(routes: Routes, opts: ServeOptions<'_>) -> anyhow::Result<()> {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    for name in opts.service_names {
        reporter
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    let mut routes = routes.add_service(health_service);
    if opts.args.grpc_reflection {
        // One descriptor set holds every Hilo service; each server lists only what it serves
        // (a client picking another would get UNIMPLEMENTED), and health.
        let reflection = || {
            let builder = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(opts.descriptors)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .with_service_name(HEALTH_SERVICE);
            opts.service_names
                .iter()
                .fold(builder, |builder, name| builder.with_service_name(*name))
        };
        routes = routes
            .add_service(reflection().build_v1().context("building reflection v1")?)
            .add_service(
                reflection()
                    .build_v1alpha()
                    .context("building reflection v1alpha")?,
            );
    }
    let trace = TraceLayer::new_for_grpc()
        .make_span_with(telemetry::request_span)
        .on_request(())
        .on_response(())
        .on_failure(());
    let shutdown = opts.shutdown.clone();
    let drain = async move {
        shutdown.cancelled().await;
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
    };
    Server::builder()
        .max_connection_age(opts.args.max_connection_age())
        .layer(trace)
        .layer(tower::layer::layer_fn(CallMetrics))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming(opts.listener), drain)
        .await
        .context("serving gRPC")
}

/// Accepted connections with `TCP_NODELAY`: without it a reply written in two segments waits
/// for the peer's delayed ACK (about 40 ms) whenever the first one is not yet acknowledged.
fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt as _;
    TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}

/// Records every call in `rpc_server_call_duration_seconds{rpc_method, rpc_grpc_status_code}`
/// (a histogram: rate, errors and duration per method).
#[derive(Clone)]
struct CallMetrics<S>(S);

impl<S, B, R> tower::Service<http::Request<B>> for CallMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let started = Instant::now();
        let call = self.0.call(request);
        let active = telemetry::Active::start(metrics::gauge!("rpc_server_active_calls"));
        Box::pin(async move {
            let result = call.await;
            drop(active);
            let code = result
                .as_ref()
                .map_or(Code::Unknown, |r| status_code(r.headers()));
            record_call("rpc_server_call_duration_seconds", method, code, started);
            result
        })
    }
}

/// The status of a unary answer as its head tells it: a failure is trailers-only (its
/// `grpc-status` in the head); a head without one is a reply on its way (OK).
fn status_code(headers: &http::HeaderMap) -> Code {
    headers
        .get("grpc-status")
        .map_or(Code::Ok, |code| Code::from_bytes(code.as_bytes()))
}

/// One call in a `rpc_*_call_duration_seconds` histogram, labelled with its method and
/// numeric status code (OpenTelemetry's `rpc.grpc.status_code`).
fn record_call(name: &'static str, method: String, code: Code, started: Instant) {
    metrics::histogram!(
        name,
        "rpc_method" => method,
        "rpc_grpc_status_code" => (code as i32).to_string(),
    )
    .record(started.elapsed().as_secs_f64());
}

/// A lazily connected channel to `url` (e.g. `http://127.0.0.1:50051`). Built once at start-up
/// and cloned per call; it reconnects by itself, and sends again a call that never reached
/// the server ([`RetryingChannel`]). Calls time out after 15 s.
pub fn connect(url: &str) -> anyhow::Result<RetryingChannel> {
    Ok(connect_with_timeout(url, Duration::from_secs(15))?.into())
}

/// A plain channel with another per-call timeout, for calls that legitimately last long (a
/// file streamed through an upload); streamed calls are not buffered, so not sent again.
pub fn connect_with_timeout(url: &str, timeout: Duration) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("invalid gRPC endpoint {url}"))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(timeout)
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}

/// Attempts per call when the first ones never reached the server (or, for reads, failed).
const ATTEMPTS: usize = 3;
/// Pause before a read is asked again after a failure the server saw.
const READ_BACKOFF: Duration = Duration::from_millis(50);

/// A channel for unary calls that sends a call again when it never reached the server: a
/// server closes each connection after `GRPC_MAX_CONNECTION_AGE_SECS` (GOAWAY), and a call
/// queued on that connection at that moment fails with "operation was canceled" or a refused
/// stream although nothing was processed. gRPC's own clients retry these transparently; tonic
/// does not. A read ([`is_read`]) is also asked again, after a short pause, when its connection
/// failed under it or the server answered UNAVAILABLE (a replica shutting down, a pool
/// momentarily empty), but not after its deadline. Each call's (small) body is buffered to be
/// sent again.
#[derive(Clone, Debug)]
pub struct RetryingChannel(Channel);

impl From<Channel> for RetryingChannel {
    fn from(channel: Channel) -> Self {
        Self(channel)
    }
}

type Body = tonic::body::Body;

impl tower::Service<http::Request<Body>> for RetryingChannel {
    type Response = http::Response<Body>;
    type Error = tonic::codegen::StdError;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        use http_body_util::BodyExt as _;
        use tower::ServiceExt as _;
        // The channel made ready is the one to call (tower's contract); a clone stays here.
        let fresh = self.0.clone();
        let mut channel = std::mem::replace(&mut self.0, fresh);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await?.to_bytes();
            let method = parts.uri.path().to_owned();
            let started = Instant::now();
            let read = is_read(&method);
            let mut attempt = 1;
            loop {
                let request = http::Request::from_parts(
                    parts.clone(),
                    Body::new(http_body_util::Full::new(body.clone())),
                );
                let last = attempt == ATTEMPTS;
                match channel.call(request).await {
                    Err(error) if !last && never_sent(&error) => {
                        metrics::counter!("rpc_client_resent_total").increment(1);
                        tracing::debug!(%error, "call sent again on a new connection");
                    }
                    Err(error) if !last && read && !timed_out(&error) => {
                        metrics::counter!("rpc_client_read_retries_total").increment(1);
                        tracing::debug!(%error, "read asked again after a failed connection");
                        tokio::time::sleep(READ_BACKOFF).await;
                    }
                    Ok(response) if !last && read && unavailable(&response) => {
                        metrics::counter!("rpc_client_read_retries_total").increment(1);
                        tracing::debug!("read asked again after UNAVAILABLE");
                        tokio::time::sleep(READ_BACKOFF).await;
                    }
                    result => {
                        // A call that never got an answer is UNAVAILABLE to its caller.
                        let code = result
                            .as_ref()
                            .map_or(Code::Unavailable, |r| status_code(r.headers()));
                        record_call("rpc_client_call_duration_seconds", method, code, started);
                        return result.map_err(Into::into);
                    }
                }
                attempt += 1;
                channel.ready().await?;
            }
        })
    }
}

/// Whether a method only reads, by its name (`/package.Service/Method`): Get, List,
/// BatchGet, Authorize, Check and Stat calls change nothing, so asking twice is harmless.
fn is_read(path: &str) -> bool {
    let method = path.rsplit('/').next().unwrap_or_default();
    ["Get", "List", "BatchGet", "Authorize", "Check", "Stat"]
        .iter()
        .any(|verb| method.starts_with(verb))
}

/// A trailers-only answer of UNAVAILABLE (what a server says before doing anything).
fn unavailable(response: &http::Response<Body>) -> bool {
    response
        .headers()
        .get("grpc-status")
        .is_some_and(|code| code.as_bytes() == b"14")
}

/// Whether a call failed on its own deadline (asking again would only double the wait).
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<tonic::TimeoutExpired>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Whether a call's error says the server never saw it: the connection closed before the
/// call was written, the server's GOAWAY came before the call's stream (a server processes
/// no stream after the GOAWAY's last one; the graceful close lets every earlier one finish),
/// or the server refused the stream.
fn never_sent(error: &(dyn std::error::Error + 'static)) -> bool {
    let refused = |e: &h2::Error| {
        (e.is_go_away() && e.is_remote()) || e.reason() == Some(h2::Reason::REFUSED_STREAM)
    };
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_canceled)
            || error.downcast_ref::<h2::Error>().is_some_and(refused)
        {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Longest piece of client input an error message repeats (ids are shorter).
const ECHO: usize = 64;

/// `input` as an error message may repeat it: cut to [`ECHO`] characters, so that no message
/// grows with what a client sent (gRPC trailers hold 16 KiB at most: a longer one is a 500).
pub fn echo(input: &str) -> std::borrow::Cow<'_, str> {
    match input.char_indices().nth(ECHO) {
        None => input.into(),
        Some((at, _)) => format!("{}...", &input[..at]).into(),
    }
}

/// An outgoing request carrying `bearer` (an access token), the current trace context and the
/// request id, so the callee verifies the caller itself and continues the trace.
pub fn request<T>(message: T, bearer: Option<&str>, request_id: Option<&str>) -> Request<T> {
    let mut req = Request::new(message);
    let mut headers = http::HeaderMap::new();
    telemetry::inject(&mut headers);
    *req.metadata_mut() = tonic::metadata::MetadataMap::from_headers(headers);
    if let Some(token) = bearer
        && let Ok(value) = MetadataValue::try_from(format!("Bearer {token}"))
    {
        req.metadata_mut().insert("authorization", value);
    }
    if let Some(id) = request_id
        && let Ok(value) = MetadataValue::try_from(id)
    {
        req.metadata_mut().insert("x-request-id", value);
    }
    req
}

/// Wraps an operation's result for tonic; the service's error converts through its one
/// `Error -> Status` table.
pub fn reply<T, E: Into<Status>>(result: Result<T, E>) -> Result<tonic::Response<T>, Status> {
    result.map(tonic::Response::new).map_err(Into::into)
}

/// An INTERNAL status that tells the caller nothing; the cause is logged here instead.
pub fn internal(error: impl std::fmt::Display) -> Status {
    tracing::error!(%error, "internal error");
    Status::internal("internal error")
}

/// A database failure as a status: a transient one ([`crate::db::is_transient`]) is
/// UNAVAILABLE (the client may retry: 503 at the gateway), anything else INTERNAL. Causes are
/// logged only.
pub fn db_error(error: sqlx::Error) -> Status {
    if crate::db::is_transient(&error) {
        tracing::warn!(%error, "database unavailable");
        Status::unavailable("database busy, try again")
    } else {
        internal(error)
    }
}

/// An upstream service's failure as this service's answer: what the caller can act on (a
/// token it must refresh, a moment to wait) passes through, a transient failure of any kind
/// is UNAVAILABLE, anything else INTERNAL (logged here).
pub fn upstream_error(status: Status) -> Status {
    match status.code() {
        Code::Unauthenticated | Code::Unavailable => status,
        Code::DeadlineExceeded | Code::Cancelled | Code::ResourceExhausted | Code::Aborted => {
            tracing::warn!(code = ?status.code(), message = status.message(), "upstream unavailable");
            Status::unavailable("upstream unavailable, try again")
        }
        _ => internal(format!("upstream call failed: {status}")),
    }
}

/// Domain of the `ErrorInfo` attached to Hilo's statuses.
pub const ERROR_DOMAIN: &str = "hilo";

/// A status with a machine-readable reason (`ErrorInfo.reason`, UPPER_SNAKE), which the gateway
/// turns into the `code` of its JSON error body.
pub fn status(code: Code, reason: &str, message: impl Into<String>) -> Status {
    let details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, []);
    Status::with_error_details(code, message, details)
}

/// INVALID_ARGUMENT with one field violation per entry of `fields` (`(field path, message)`),
/// and a reason for the whole.
pub fn invalid(reason: &str, message: &str, fields: &[(String, String)]) -> Status {
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, []);
    for (field, description) in fields {
        details.add_bad_request_violation(field.clone(), description.clone());
    }
    Status::with_error_details(Code::InvalidArgument, message, details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_told_apart_by_their_method_name() {
        for read in [
            "/hilo.accounts.v1.AccountsService/GetUser",
            "/hilo.accounts.v1.AccountsService/BatchGetUsers",
            "/hilo.messaging.v1.MessagingService/ListThreadEvents",
            "/hilo.messaging.v1.MessagingService/AuthorizeThread",
            "/hilo.channels.v1.ChannelsService/CheckPermission",
            "/hilo.uploads.v1.UploadsService/StatObject",
        ] {
            assert!(is_read(read), "{read}");
        }
        for write in [
            "/hilo.messaging.v1.MessagingService/PostMessage",
            "/hilo.accounts.v1.AccountsService/SignUp",
            "/hilo.accounts.v1.AccountsService/ExchangeSession",
            "/hilo.channels.v1.ChannelsService/JoinChannel",
        ] {
            assert!(!is_read(write), "{write}");
        }
    }

    #[test]
    fn upstream_failures_are_unavailable_when_transient_and_opaque_otherwise() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Cancelled,
            Code::ResourceExhausted,
            Code::Aborted,
        ] {
            let answer = upstream_error(Status::new(code, "h2 error at 10.0.0.3"));
            assert_eq!(answer.code(), Code::Unavailable, "{code:?}");
        }
        let token = upstream_error(Status::unauthenticated("expired"));
        assert_eq!(token.code(), Code::Unauthenticated);
        let bug = upstream_error(Status::invalid_argument("bad field at 10.0.0.3"));
        assert_eq!(bug.code(), Code::Internal);
        assert!(!bug.message().contains("10.0.0.3"));
    }
}
