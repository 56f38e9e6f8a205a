//! A test OTLP/gRPC trace receiver. Services started with [`Collector::env`] export their spans
//! here exactly as they would to an OpenTelemetry Collector, so a test can follow one trace
//! across processes by what was really exported, not by what was logged.
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, KeyValue, any_value::Value},
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;

/// One exported span, flattened: ids in lowercase hex as in `traceparent`.
#[derive(Clone, Debug)]
pub struct Span {
    /// `service.name` of the exporting process's resource.
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_id: String,
    pub attributes: BTreeMap<String, String>,
}

impl Span {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .map(text)
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                received.push(Span {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_id: hex(&span.parent_span_id),
                    attributes: span
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), text(kv)))
                        .collect(),
                });
            }
        }
        self.spans.lock().unwrap().extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An attribute's value as text (strings unquoted, numbers and booleans as written).
fn text(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v: &AnyValue| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// The receiver, serving on a free loopback port until dropped.
pub struct Collector {
    pub endpoint: String,
    spans: Arc<Mutex<Vec<Span>>>,
    server: JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Collector {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let receiver = Receiver::default();
        let spans = receiver.spans.clone();
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(receiver))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        Self {
            endpoint,
            spans,
            server,
        }
    }

    /// Environment that makes a service export here, in batches sent every 100 ms.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
                self.endpoint.clone(),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "100".to_owned()),
        ]
    }

    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits up to 15 s (the exporters send batches) until `found` finds something in the
    /// spans exported so far, and returns it.
    pub async fn wait_for<T>(&self, what: &str, found: impl Fn(&[Span]) -> Option<T>) -> T {
        for _ in 0..150 {
            if let Some(it) = found(&self.spans()) {
                return it;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("never exported: {what}; got {:#?}", self.spans());
    }
}

/// The chain of exported spans from `span` up to its trace's root (leaf first), or `None` while
/// an ancestor has not been exported. Every link must share the trace id.
pub fn ancestry<'a>(spans: &'a [Span], span: &'a Span) -> Option<Vec<&'a Span>> {
    let mut chain = vec![span];
    let mut current = span;
    while !current.parent_id.is_empty() {
        current = spans.iter().find(|s| s.span_id == current.parent_id)?;
        assert_eq!(current.trace_id, span.trace_id, "a parent in another trace");
        chain.push(current);
    }
    Some(chain)
}

/// `service/name` of each span of a chain, for readable assertions.
pub fn names(chain: &[&Span]) -> Vec<String> {
    chain
        .iter()
        .map(|s| format!("{}/{}", s.service, s.name))
        .collect()
}
