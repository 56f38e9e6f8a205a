//! A bare WebSocket broadcast server, the fan-out benchmarks' baseline in the same run: it
//! answers JOIN_THREAD with JOINED_THREAD and writes each published frame to the thread's
//! sockets, and nothing else (no sign-in, no NATS, no database, no ordering).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::{net::TcpListener, sync::mpsc};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes, protocol::WebSocketConfig};

type Sockets = Arc<Mutex<HashMap<String, Vec<mpsc::Sender<Utf8Bytes>>>>>;

/// The running server.
pub struct Bare {
    pub addr: SocketAddr,
    sockets: Sockets,
    seq: std::sync::atomic::AtomicI64,
}

impl Bare {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let sockets: Sockets = Arc::default();
        let shared = sockets.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Ok(Self {
            addr,
            sockets,
            seq: Default::default(),
        })
    }

    /// Writes a NEW_MESSAGE frame (about the size of Hilo's) to every socket of `thread`.
    pub fn publish(&self, thread: &str, content: &str) {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let frame = format!(
            r#"{{"type":"NEW_MESSAGE","threadId":"{thread}","seq":{seq},"payload":{{"id":"01a23b00-0000-7000-8000-000000000000","threadId":"{thread}","seq":{seq},"senderId":"bare","content":"{content}","attachments":[],"createdAt":"2026-12-03T00:00:00.000Z","updatedAt":"2026-12-03T00:00:00.000Z","sender":{{"id":"bare","name":"bare","image":null,"profile":{{"displayName":"bare","avatarUrl":null}}}}}}}}"#
        );
        let frame = Utf8Bytes::from(frame);
        if let Some(sockets) = self
            .sockets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(thread)
        {
            for socket in sockets {
                let _ = socket.try_send(frame.clone());
            }
        }
    }
}

async fn serve(stream: tokio::net::TcpStream, sockets: Sockets) {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(1024);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink.send(Message::Text(frame)).await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(message)) = source.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if frame["type"] == "JOIN_THREAD"
            && let Some(thread) = frame["threadId"].as_str()
        {
            sockets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(thread.to_owned())
                .or_default()
                .push(tx.clone());
            let joined = format!(r#"{{"type":"JOINED_THREAD","threadId":"{thread}"}}"#);
            let _ = tx.send(Utf8Bytes::from(joined)).await;
        }
    }
    writer.abort();
}
