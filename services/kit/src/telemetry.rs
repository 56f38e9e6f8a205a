//! Logs and traces. Every binary calls [`init`] first thing; the returned guard flushes spans
//! on drop. Trace context crosses process boundaries as W3C `traceparent` headers: HTTP headers
//! and gRPC metadata through [`extract`]/[`inject`], NATS message headers through
//! [`inject_nats`]/[`continue_nats`], outbox rows as a stored `traceparent` ([`continue_from`]).

use std::time::Instant;

use anyhow::Context as _;
use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::Response,
};
use http::HeaderMap;
use opentelemetry::{
    Context, global,
    propagation::{Extractor, Injector},
    trace::{TraceContextExt as _, TracerProvider as _},
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing::{Instrument as _, Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt as _, util::SubscriberInitExt as _};

use crate::config::{LogFormat, TelemetryArgs};

/// Flushes and shuts down the tracer provider when dropped.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("flushing traces failed: {error}");
        }
    }
}

/// Installs the global subscriber: an env filter (`RUST_LOG`, default `info`), JSON or pretty
/// logs on stdout, and an OpenTelemetry layer. Spans always get W3C ids (so they propagate);
/// they are exported only when an OTLP endpoint is configured.
pub fn init(service: &'static str, args: &TelemetryArgs) -> anyhow::Result<TelemetryGuard> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let mut builder = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build());
    if args.otlp_endpoint.is_some() {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .context("building the OTLP span exporter")?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    global::set_tracer_provider(provider.clone());
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service));

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let installed = match args.log_format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(tracing_subscriber::fmt::layer()).try_init(),
    };
    installed.context("installing the tracing subscriber")?;
    Ok(TelemetryGuard { provider })
}

/// Reads a W3C trace context from HTTP headers (gRPC metadata are HTTP/2 headers).
pub fn extract(headers: &HeaderMap) -> Context {
    global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// Writes the current span's trace context into HTTP headers or gRPC metadata.
pub fn inject(headers: &mut HeaderMap) {
    let cx = Span::current().context();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut HeaderInjector(headers)));
}

/// Makes `span` (a consumer's) continue the trace carried in NATS message headers
/// (`traceparent`, `tracestate`); without them the span stays a root.
pub fn continue_nats(span: &Span, headers: Option<&async_nats::HeaderMap>) {
    let mut http_headers = HeaderMap::new();
    for name in ["traceparent", "tracestate"] {
        if let Some(value) = headers.and_then(|h| h.get(name))
            && let Ok(value) = http::HeaderValue::from_str(value.as_str())
        {
            http_headers.insert(name, value);
        }
    }
    // A span that already has a parent keeps it; nothing to report.
    let _ = span.set_parent(extract(&http_headers));
}

/// Writes the current span's trace context into NATS message headers.
pub fn inject_nats(headers: &mut async_nats::HeaderMap) {
    let mut http_headers = HeaderMap::new();
    inject(&mut http_headers);
    for (name, value) in &http_headers {
        if let Ok(value) = value.to_str() {
            headers.insert(name.as_str(), value);
        }
    }
}

/// Makes `span` continue the trace of a stored `traceparent` (work published later, such as
/// an outbox row). A malformed value leaves the span a root.
pub fn continue_from(span: &Span, traceparent: &str) {
    let mut headers = HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_str(traceparent) {
        headers.insert("traceparent", value);
    }
    // A span that already has a parent keeps it; nothing to report.
    let _ = span.set_parent(extract(&headers));
}

/// A span's identity, kept to parent spans started later without keeping the span open: a
/// WebSocket's commands continue the trace of its upgrade request this way, where an open
/// span per socket would hold kilobytes for the socket's whole life.
#[derive(Clone, Debug)]
pub struct Parent(opentelemetry::trace::SpanContext);

impl Parent {
    /// The current span's identity.
    pub fn current() -> Self {
        Self(Span::current().context().span().span_context().clone())
    }

    /// Makes `span` a child of this parent and records its `trace_id` field (when it has one).
    pub fn adopt(&self, span: &Span) {
        // A span that already has a parent keeps it; nothing to report.
        let _ = span.set_parent(Context::new().with_remote_span_context(self.0.clone()));
        span.record("trace_id", tracing::field::display(self.0.trace_id()));
    }
}

/// The trace id of `span`, as logged in `trace_id` fields.
pub fn trace_id(span: &Span) -> opentelemetry::trace::TraceId {
    span.context().span().span_context().trace_id()
}

/// The current span's W3C `traceparent`, to store with work that is published later.
pub fn traceparent() -> Option<String> {
    let mut headers = HeaderMap::new();
    inject(&mut headers);
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The span for one incoming HTTP or gRPC request: continues the caller's trace when a
/// `traceparent` came with it, and records the trace id and request id so every log line of
/// the request can be joined with its trace.
pub fn request_span<B>(req: &http::Request<B>) -> Span {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id,
        trace_id = Empty,
        user_id = Empty,
        status = Empty,
        latency_ms = Empty,
    );
    // A span that already has a parent keeps working if this fails; nothing to report.
    let _ = span.set_parent(extract(req.headers()));
    span.record("trace_id", tracing::field::display(trace_id(&span)));
    span
}

/// Records the outcome of a request on its span and in the latency histogram.
pub fn record_response(
    span: &Span,
    kind: &'static str,
    route: String,
    status: u16,
    started: Instant,
) {
    let elapsed = started.elapsed();
    span.record("status", status);
    span.record("latency_ms", elapsed.as_millis() as u64);
    metrics::histogram!(
        "server_request_duration_seconds",
        "kind" => kind,
        "route" => route,
        "status" => status.to_string(),
    )
    .record(elapsed.as_secs_f64());
}

/// HTTP middleware (`axum::middleware::from_fn`): runs the request inside its span (trace
/// id, request id) and records status and latency. Shared by the gateway and realtime.
pub async fn observe(req: Request, next: Next) -> Response {
    let span = request_span(&req);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let started = Instant::now();
    let active = Active::start(metrics::gauge!("http_server_active_requests"));
    let response = next.run(req).instrument(span.clone()).await;
    drop(active);
    record_response(&span, "http", route, response.status().as_u16(), started);
    let _entered = span.enter();
    if response.status().is_server_error() {
        tracing::error!(status = response.status().as_u16(), "request failed");
    } else {
        tracing::info!(status = response.status().as_u16(), "request served");
    }
    response
}

/// One request or call in an in-flight gauge, for as long as it lives (also when its future is
/// dropped: a client that went away).
pub(crate) struct Active(metrics::Gauge);

impl Active {
    pub(crate) fn start(gauge: metrics::Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}
