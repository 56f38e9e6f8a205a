//! What the load tool does as a client: sign-ups, a channel with threads, sockets opened from
//! several source addresses, posts, and the clock the latencies are stamped with.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::{
    Message, client::IntoClientRequest as _, protocol::WebSocketConfig,
};

pub type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A signed-up user: id and session token.
pub struct User {
    pub id: String,
    pub token: String,
}

/// `n` new users.
pub async fn sign_up_many(base: &str, n: usize) -> anyhow::Result<Vec<User>> {
    let http = reqwest::Client::new();
    let mut users = Vec::new();
    for i in 0..n {
        let email = format!("load-{}-{i}@example.com", now_ns());
        let body = json!({"name": format!("load {i}"), "email": email, "password": "correct horse battery staple"});
        let reply: Value = http
            .post(format!("{base}/api/auth/sign-up/email"))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        users.push(User {
            id: reply["user"]["id"].as_str().context("user id")?.to_owned(),
            token: reply["token"].as_str().context("token")?.to_owned(),
        });
    }
    Ok(users)
}

/// A private channel of the first user with every other user as a member, and `threads`
/// threads in it; their ids.
pub async fn channel_with_threads(
    base: &str,
    users: &[User],
    threads: usize,
) -> anyhow::Result<Vec<String>> {
    let http = reqwest::Client::new();
    let owner = &users[0].token;
    let channel: Value = http
        .post(format!("{base}/api/channels"))
        .bearer_auth(owner)
        .json(&json!({"name": "load", "isPrivate": true}))
        .send()
        .await?
        .json()
        .await?;
    let channel_id = channel["id"].as_str().context("channel id")?.to_owned();
    for user in &users[1..] {
        http.post(format!("{base}/api/members"))
            .bearer_auth(owner)
            .json(&json!({"channelId": channel_id, "userId": user.id}))
            .send()
            .await?;
    }
    let mut ids = Vec::new();
    for i in 0..threads {
        let thread: Value = http
            .post(format!("{base}/api/threads"))
            .bearer_auth(owner)
            .json(&json!({"channelId": channel_id, "name": format!("load {i}")}))
            .send()
            .await?
            .json()
            .await?;
        ids.push(thread["id"].as_str().context("thread id")?.to_owned());
    }
    Ok(ids)
}

/// Posts a message; true when it was stored (201).
pub async fn post(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    thread: &str,
    content: &str,
) -> anyhow::Result<()> {
    let reply = http
        .post(format!("{base}/api/messages"))
        .bearer_auth(token)
        .json(&json!({ "threadId": thread, "content": content }))
        .send()
        .await?;
    let status = reply.status();
    if status != 201 {
        anyhow::bail!("{status} {}", reply.text().await.unwrap_or_default());
    }
    Ok(())
}

/// Opens an authenticated socket to `/ws` at `addr` from source address 127.0.0.(2 + i % 8)
/// (the ephemeral ports of one source address run out at about 28,000 sockets).
pub async fn open(addr: SocketAddr, i: usize, token: &str) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 8) as u8)),
        0,
    ))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut request = format!("ws://{addr}/ws").into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(ws)
}

/// Joins a thread and waits for JOINED_THREAD.
pub async fn join(ws: &mut Ws, thread: &str) -> anyhow::Result<()> {
    ws.send(Message::text(
        json!({"type": "JOIN_THREAD", "threadId": thread}).to_string(),
    ))
    .await?;
    while let Some(message) = ws.next().await {
        if let Message::Text(text) = message? {
            let frame: Value = serde_json::from_str(&text)?;
            match frame["type"].as_str() {
                Some("JOINED_THREAD") => return Ok(()),
                Some("ERROR") => anyhow::bail!("join refused: {frame}"),
                _ => {}
            }
        }
    }
    anyhow::bail!("socket closed during join")
}

/// Nanoseconds since the epoch: posts carry it as their content, receivers subtract it.
pub fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The send stamp of a NEW_MESSAGE frame (its content), found without parsing the frame:
/// the load tool reads hundreds of thousands of frames a second on the machine it measures.
pub fn stamp(frame: &[u8]) -> Option<u128> {
    use std::sync::LazyLock;
    static KIND: LazyLock<memchr::memmem::Finder> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"\"NEW_MESSAGE\""));
    static CONTENT: LazyLock<memchr::memmem::Finder> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"\"content\":\""));
    KIND.find(frame)?;
    let start = CONTENT.find(frame)? + CONTENT.needle().len();
    let digits = frame[start..].split(|b| *b == b'"').next()?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamps_are_read_from_the_content() {
        let frame = r#"{"type":"NEW_MESSAGE","threadId":"t","seq":3,"payload":{"id":"m","content":"1234567","sender":{"name":"x"}}}"#;
        assert_eq!(super::stamp(frame.as_bytes()), Some(1_234_567));
        assert_eq!(super::stamp(br#"{"type":"TYPING"}"#), None);
    }
}
