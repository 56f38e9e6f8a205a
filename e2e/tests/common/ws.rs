//! WebSocket helpers for the realtime tests: a client (tokio-tungstenite, the same tungstenite
//! as axum), the frame schemas of `proto/frames`, and a stand-in for messaging (a tonic server
//! in the test process that stores per-thread events and publishes them on NATS exactly as
//! messaging does: the client frame JSON on `chat.thread.<id>` with a `traceparent` header).
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::{SinkExt as _, StreamExt as _};
use hilo_proto::messaging::v1::{self as pb, messaging_service_server as srv};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{
        Message, client::IntoClientRequest as _, http::HeaderValue, protocol::CloseFrame,
    },
};
use tonic::{Request, Response, Status};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens `/ws` on `base` (`ws://host:port`) with these headers; the HTTP status on refusal.
pub async fn connect(base: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    let mut request = format!("{base}/ws").into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(error) => panic!("ws connect failed: {error}"),
    }
}

/// Opens `/ws` as a user (bearer token).
pub async fn open(base: &str, bearer: &str) -> Ws {
    connect(base, &[("authorization", bearer)])
        .await
        .expect("the socket opens")
}

pub async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::text(frame.to_string())).await.unwrap();
}

/// What a socket yields next: a JSON frame, a close, or nothing in time.
#[derive(Debug)]
pub enum Next {
    Frame(Value),
    Closed(Option<(u16, String)>),
    Timeout,
}

/// The next text frame (pings skipped), validated against the server frame schema.
pub async fn next(ws: &mut Ws, within: Duration) -> Next {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Next::Timeout,
            Ok(None) | Ok(Some(Err(_))) => return Next::Closed(None),
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: Value = serde_json::from_str(&text).expect("server frames are JSON");
                assert_server_frame(&frame);
                return Next::Frame(frame);
            }
            Ok(Some(Ok(Message::Close(close)))) => {
                return Next::Closed(
                    close.map(|CloseFrame { code, reason }| (u16::from(code), reason.to_string())),
                );
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// The next frame, which must come within 5 s.
pub async fn frame(ws: &mut Ws) -> Value {
    match next(ws, Duration::from_secs(5)).await {
        Next::Frame(frame) => frame,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// Joins a thread and returns the frames up to and including `JOINED_THREAD` (or the ERROR).
pub async fn join(ws: &mut Ws, thread_id: &str, since: Option<i64>) -> Vec<Value> {
    let mut request = json!({"type": "JOIN_THREAD", "threadId": thread_id});
    if let Some(since) = since {
        request["sinceSeq"] = since.into();
    }
    send(ws, request).await;
    let mut frames = Vec::new();
    loop {
        let frame = frame(ws).await;
        let done = matches!(frame["type"].as_str(), Some("JOINED_THREAD" | "ERROR"));
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

/// Asserts nothing arrives for `quiet`.
pub async fn assert_silent(ws: &mut Ws, quiet: Duration) {
    match next(ws, quiet).await {
        Next::Timeout => {}
        other => panic!("expected silence, got {other:?}"),
    }
}

/// The server frame schema (proto/frames/server.schema.json), compiled once.
fn server_schema() -> &'static jsonschema::Validator {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        let text = include_str!("../../../proto/frames/server.schema.json");
        jsonschema::validator_for(&serde_json::from_str(text).unwrap()).unwrap()
    })
}

/// Every frame a test receives must match the documented protocol.
pub fn assert_server_frame(frame: &Value) {
    let errors: Vec<String> = server_schema()
        .iter_errors(frame)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "frame {frame} breaks the schema: {errors:?}"
    );
}

/// Checks a client frame against proto/frames/client.schema.json.
pub fn client_frame_is_valid(frame: &Value) -> bool {
    let text = include_str!("../../../proto/frames/client.schema.json");
    jsonschema::validator_for(&serde_json::from_str(text).unwrap())
        .unwrap()
        .is_valid(frame)
}

/// A thread of the stand-in messaging.
#[derive(Default)]
struct Thread {
    channel_id: String,
    readers: HashSet<String>,
    events: Vec<(i64, Vec<u8>)>,
}

/// Stand-in for messaging: who may read which thread, and each thread's event log.
#[derive(Clone, Default)]
pub struct FakeMessaging {
    threads: Arc<Mutex<HashMap<String, Thread>>>,
    nats: Option<async_nats::Client>,
    /// ListThreadEvents answers UNAVAILABLE until then (an outage of messaging).
    failing_until: Arc<Mutex<Option<std::time::Instant>>>,
    /// ... and to this many calls more (a replica going away, one call at a time).
    failures_left: Arc<AtomicUsize>,
}

impl FakeMessaging {
    /// Serves on a free port; returns the stand-in and its gRPC URL.
    pub async fn start(nats_url: &str) -> (Self, String) {
        let fake = Self {
            threads: Arc::default(),
            nats: Some(async_nats::connect(nats_url).await.unwrap()),
            failing_until: Arc::default(),
            failures_left: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let server = srv::MessagingServiceServer::new(fake.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (fake, format!("http://{addr}"))
    }

    /// Creates a thread of `channel_id` readable by `readers`.
    pub fn thread(&self, channel_id: &str, readers: &[&str]) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        self.threads.lock().unwrap().insert(
            id.clone(),
            Thread {
                channel_id: channel_id.to_owned(),
                readers: readers.iter().map(|r| (*r).to_owned()).collect(),
                events: Vec::new(),
            },
        );
        id
    }

    /// Stores the thread's next event (a NEW_MESSAGE with `content`); returns its frame.
    pub fn store(&self, thread_id: &str, content: &str) -> Value {
        let mut threads = self.threads.lock().unwrap();
        let thread = threads.get_mut(thread_id).unwrap();
        let seq = thread.events.len() as i64 + 1;
        let frame = json!({
            "type": "NEW_MESSAGE",
            "threadId": thread_id,
            "seq": seq,
            "payload": {
                "id": uuid::Uuid::now_v7().to_string(),
                "threadId": thread_id,
                "seq": seq,
                "content": content,
                "sender": {"id": "u", "name": "n", "image": null, "profile": {"displayName": "n", "avatarUrl": null}},
            },
        });
        thread.events.push((seq, frame.to_string().into_bytes()));
        frame
    }

    /// Publishes a stored event (by seq) as messaging does, with this `traceparent`.
    pub async fn publish(&self, thread_id: &str, seq: i64, traceparent: Option<&str>) {
        let bytes = {
            let threads = self.threads.lock().unwrap();
            threads[thread_id].events[seq as usize - 1].1.clone()
        };
        let mut headers = async_nats::HeaderMap::new();
        if let Some(tp) = traceparent {
            headers.insert("traceparent", tp);
        }
        let nats = self.nats.as_ref().unwrap();
        nats.publish_with_headers(
            hilo_proto::subjects::thread(thread_id),
            headers,
            bytes.into(),
        )
        .await
        .unwrap();
        nats.flush().await.unwrap();
    }

    /// Stores and publishes; returns the frame.
    pub async fn post(&self, thread_id: &str, content: &str) -> Value {
        let frame = self.store(thread_id, content);
        self.publish(thread_id, frame["seq"].as_i64().unwrap(), None)
            .await;
        frame
    }

    pub fn nats(&self) -> &async_nats::Client {
        self.nats.as_ref().unwrap()
    }

    /// ListThreadEvents fails (UNAVAILABLE) for the next `outage`.
    pub fn fail_event_lists_for(&self, outage: Duration) {
        *self.failing_until.lock().unwrap() = Some(std::time::Instant::now() + outage);
    }

    /// The next `calls` ListThreadEvents calls answer UNAVAILABLE.
    pub fn fail_next_event_lists(&self, calls: usize) {
        self.failures_left.store(calls, Ordering::SeqCst);
    }
}

/// The `sub` of the caller's access token (the stand-in trusts it: tests only).
fn caller<T>(request: &Request<T>) -> Result<String, Status> {
    use base64::Engine as _;
    let token = request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| Status::unauthenticated("no token"))?;
    let claims = token.split('.').nth(1).unwrap_or_default();
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .map_err(|_| Status::unauthenticated("bad token"))?;
    let claims: Value =
        serde_json::from_slice(&claims).map_err(|_| Status::unauthenticated("bad token"))?;
    Ok(claims["sub"].as_str().unwrap_or_default().to_owned())
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl srv::MessagingService for FakeMessaging {
    async fn list_threads(
        &self,
        _: Request<pb::ListThreadsRequest>,
    ) -> Reply<pb::ListThreadsResponse> {
        Err(Status::unimplemented("stub"))
    }
    async fn get_thread(&self, _: Request<pb::GetThreadRequest>) -> Reply<pb::GetThreadResponse> {
        Err(Status::unimplemented("stub"))
    }
    async fn create_thread(
        &self,
        _: Request<pb::CreateThreadRequest>,
    ) -> Reply<pb::CreateThreadResponse> {
        Err(Status::unimplemented("stub"))
    }
    async fn update_thread(
        &self,
        _: Request<pb::UpdateThreadRequest>,
    ) -> Reply<pb::UpdateThreadResponse> {
        Err(Status::unimplemented("stub"))
    }
    async fn delete_thread(
        &self,
        _: Request<pb::DeleteThreadRequest>,
    ) -> Reply<pb::DeleteThreadResponse> {
        Err(Status::unimplemented("stub"))
    }
    async fn set_thread_archived(
        &self,
        _: Request<pb::SetThreadArchivedRequest>,
    ) -> Reply<pb::SetThreadArchivedResponse> {
        Err(Status::unimplemented("stub"))
    }
    async fn list_messages(
        &self,
        _: Request<pb::ListMessagesRequest>,
    ) -> Reply<pb::ListMessagesResponse> {
        Err(Status::unimplemented("stub"))
    }
    async fn get_message(
        &self,
        _: Request<pb::GetMessageRequest>,
    ) -> Reply<pb::GetMessageResponse> {
        Err(Status::unimplemented("stub"))
    }
    async fn post_message(
        &self,
        _: Request<pb::PostMessageRequest>,
    ) -> Reply<pb::PostMessageResponse> {
        Err(Status::unimplemented("stub"))
    }
    async fn edit_message(
        &self,
        _: Request<pb::EditMessageRequest>,
    ) -> Reply<pb::EditMessageResponse> {
        Err(Status::unimplemented("stub"))
    }
    async fn delete_message(
        &self,
        _: Request<pb::DeleteMessageRequest>,
    ) -> Reply<pb::DeleteMessageResponse> {
        Err(Status::unimplemented("stub"))
    }

    async fn list_thread_events(
        &self,
        request: Request<pb::ListThreadEventsRequest>,
    ) -> Reply<pb::ListThreadEventsResponse> {
        let user = caller(&request)?;
        if self
            .failing_until
            .lock()
            .unwrap()
            .is_some_and(|until| std::time::Instant::now() < until)
            || self
                .failures_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(Status::unavailable("messaging is down"));
        }
        let request = request.into_inner();
        let threads = self.threads.lock().unwrap();
        let thread = threads
            .get(&request.thread_id)
            .filter(|t| t.readers.contains(&user))
            .ok_or_else(|| Status::not_found("thread"))?;
        let limit = if request.limit <= 0 {
            500
        } else {
            request.limit.min(1000)
        } as usize;
        let events = thread
            .events
            .iter()
            .filter(|(seq, _)| *seq > request.after_seq)
            .take(limit)
            .map(|(seq, frame)| pb::ThreadEvent {
                seq: *seq,
                r#type: "NEW_MESSAGE".to_owned(),
                frame: frame.clone(),
            })
            .collect();
        Ok(Response::new(pb::ListThreadEventsResponse {
            events,
            last_seq: thread.events.len() as i64,
            first_seq: i64::from(!thread.events.is_empty()),
        }))
    }

    async fn authorize_thread(
        &self,
        request: Request<pb::AuthorizeThreadRequest>,
    ) -> Reply<pb::AuthorizeThreadResponse> {
        let user = caller(&request)?;
        let threads = self.threads.lock().unwrap();
        let reply = match threads.get(&request.get_ref().thread_id) {
            None => pb::AuthorizeThreadResponse::default(),
            Some(thread) => pb::AuthorizeThreadResponse {
                allowed: thread.readers.contains(&user),
                visible: true,
                channel_id: thread.channel_id.clone(),
                last_seq: thread.events.len() as i64,
            },
        };
        Ok(Response::new(reply))
    }
}
