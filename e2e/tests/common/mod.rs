//! Helpers shared by the end-to-end tests: a stack per test, a plain HTTP client (cookies are
//! handled by hand so tests see exactly what a browser would store), and sign-up shortcuts.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

use hilo_e2e::{Options, Stack};
use rand::{Rng, distr::Alphanumeric};
use reqwest::{Client, Response, header};
use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery staple";
pub const ORIGIN: &str = "http://localhost:8081";

/// A stack (accounts + gateway) on free ports with a fresh database, logging to files.
pub async fn stack() -> Stack {
    stack_with(Options::default()).await
}

pub async fn stack_with(mut options: Options) -> Stack {
    options.log_dir = Some(
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("e2e-logs")
            .join(random(10)),
    );
    Stack::start(options).await.expect("the stack starts")
}

pub fn random(n: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect::<String>()
        .to_lowercase()
}

pub fn email() -> String {
    format!("user-{}@example.com", random(10))
}

pub fn http() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A signed-up user as a client holds it.
pub struct User {
    pub id: String,
    pub email: String,
    pub token: String,
    /// `name=value` of the session cookie, ready for a `Cookie` header.
    pub cookie: String,
}

impl User {
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }
}

/// The `name=value` part of the session cookie in a response.
pub fn session_cookie(response: &Response) -> Option<String> {
    cookie(response, "better-auth.session_token")
}

/// The `name=value` part of the cookie `name` a response sets.
pub fn cookie(response: &Response, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&prefix))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// A random octet from 1 to 254, for made-up client addresses.
pub fn octet() -> u8 {
    rand::rng().random_range(1..=254)
}

/// Waits, if need be, until early in a fixed window of `secs` seconds (at most `used` of them
/// gone), so that a few requests all land in one window of a budget.
pub async fn early_in_window(secs: u64, used: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now % secs > used {
        tokio::time::sleep(std::time::Duration::from_secs(secs - now % secs)).await;
    }
}

pub async fn sign_up(base: &str, name: &str) -> User {
    let email = email();
    let response = http()
        .post(format!("{base}/api/auth/sign-up/email"))
        .json(&json!({ "name": name, "email": email, "password": PASSWORD }))
        .send()
        .await
        .expect("sign-up answers");
    assert_eq!(response.status(), 200, "sign-up succeeds");
    let cookie = session_cookie(&response).expect("sign-up sets the session cookie");
    let body: Value = response.json().await.expect("JSON");
    User {
        id: body["user"]["id"].as_str().expect("user id").to_owned(),
        email,
        token: body["token"].as_str().expect("token").to_owned(),
        cookie,
    }
}

/// A second session of `user` (another device), by signing in again.
pub async fn sign_in(base: &str, user: &User) -> User {
    let response = http()
        .post(format!("{base}/api/auth/sign-in/email"))
        .json(&json!({ "email": user.email, "password": PASSWORD }))
        .send()
        .await
        .expect("sign-in answers");
    assert_eq!(response.status(), 200, "sign-in succeeds");
    let cookie = session_cookie(&response).expect("sign-in sets the session cookie");
    let body: Value = response.json().await.expect("JSON");
    User {
        id: user.id.clone(),
        email: user.email.clone(),
        token: body["token"].as_str().expect("token").to_owned(),
        cookie,
    }
}

/// Sends a request as `user` (bearer) and returns status and JSON body (`null` when empty).
pub async fn call(
    method: reqwest::Method,
    url: String,
    user: Option<&User>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http().request(method, url);
    if let Some(user) = user {
        request = request.header(header::AUTHORIZATION, user.bearer());
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Creates a channel as `owner` (its first admin) and returns its id.
pub async fn create_channel(base: &str, owner: &User, name: &str, private: bool) -> String {
    let (status, channel) = call(
        reqwest::Method::POST,
        format!("{base}/api/channels"),
        Some(owner),
        Some(json!({ "name": name, "isPrivate": private })),
    )
    .await;
    assert_eq!(status, 200, "{channel}");
    channel["id"].as_str().expect("channel id").to_owned()
}

/// Creates a thread in `channel` as `owner` and returns its id.
pub async fn create_thread(base: &str, owner: &User, channel: &str, name: &str) -> String {
    let (status, thread) = call(
        reqwest::Method::POST,
        format!("{base}/api/threads"),
        Some(owner),
        Some(json!({ "channelId": channel, "name": name })),
    )
    .await;
    assert_eq!(status, 201, "{thread}");
    thread["id"].as_str().expect("thread id").to_owned()
}

/// An access token for `user_id` signed with the stack's key, as the gateway would get one.
pub fn access_token(private_key_pem: &str, user_id: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({ "sub": user_id, "sid": "", "iss": "hilo", "aud": "hilo", "iat": now, "exp": now + 300 });
    let key = jsonwebtoken::EncodingKey::from_ed_pem(private_key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &claims,
        &key,
    )
    .unwrap()
}
