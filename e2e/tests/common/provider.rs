//! A fake GitHub and Google for the OAuth tests, on 127.0.0.1: `authorize` records the PKCE
//! challenge and state and sends the browser back with a code; `token` checks the client, the
//! redirect URI and the verifier against the recorded challenge (single-use codes); the user
//! endpoints answer for whoever the test says signs in next.
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Form, Json, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const SECRET: &str = "provider-client-secret";

/// Someone with an account at a provider.
#[derive(Clone, Debug)]
pub struct Person {
    /// GitHub: a number; Google: the `sub`.
    pub id: String,
    pub email: String,
    pub verified: bool,
    pub name: Option<String>,
}

impl Person {
    /// A new person with a verified email and a name.
    pub fn new(name: &str) -> Self {
        Self {
            id: format!("{}", rand_u32()),
            email: crate::common::email(),
            verified: true,
            name: Some(name.to_owned()),
        }
    }
}

fn rand_u32() -> u32 {
    use rand::Rng as _;
    rand::rng().random_range(1..u32::MAX)
}

struct Grant {
    provider: String,
    challenge: Option<String>,
    method: Option<String>,
    redirect_uri: String,
    person: Person,
}

#[derive(Default)]
struct Inner {
    /// Who signs in next, per provider.
    next: HashMap<String, Person>,
    codes: HashMap<String, Grant>,
    tokens: HashMap<String, Person>,
    /// Token requests refused (bad verifier, code, client or redirect).
    refused: usize,
}

type Shared = Arc<Mutex<Inner>>;

/// A running fake provider; it stops when dropped.
pub struct MockProvider {
    pub url: String,
    inner: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockProvider {
    pub async fn start() -> Self {
        let inner = Shared::default();
        let app = Router::new()
            .route("/{provider}/authorize", get(authorize))
            .route("/{provider}/token", post(token))
            .route("/github/api/user", get(github_user))
            .route("/github/api/user/emails", get(github_emails))
            .route("/google/userinfo", get(google_userinfo))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, inner, task }
    }

    /// Accounts' environment for both providers pointing here.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = self.github_env();
        env.extend(self.google_env());
        env
    }

    pub fn github_env(&self) -> Vec<(String, String)> {
        let url = &self.url;
        pairs(&[
            ("GITHUB_CLIENT_ID", "github-client"),
            ("GITHUB_CLIENT_SECRET", SECRET),
            ("GITHUB_AUTHORIZE_URL", &format!("{url}/github/authorize")),
            ("GITHUB_TOKEN_URL", &format!("{url}/github/token")),
            ("GITHUB_API_URL", &format!("{url}/github/api")),
        ])
    }

    pub fn google_env(&self) -> Vec<(String, String)> {
        let url = &self.url;
        pairs(&[
            ("GOOGLE_CLIENT_ID", "google-client"),
            ("GOOGLE_CLIENT_SECRET", SECRET),
            ("GOOGLE_AUTHORIZE_URL", &format!("{url}/google/authorize")),
            ("GOOGLE_TOKEN_URL", &format!("{url}/google/token")),
            ("GOOGLE_USERINFO_URL", &format!("{url}/google/userinfo")),
        ])
    }

    /// `person` is who signs in at `provider` from now on.
    pub fn sign_in_as(&self, provider: &str, person: &Person) {
        let mut inner = self.inner.lock().unwrap();
        inner.next.insert(provider.to_owned(), person.clone());
    }

    /// How many token requests were refused so far.
    pub fn refused(&self) -> usize {
        self.inner.lock().unwrap().refused
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn client_id(provider: &str) -> String {
    format!("{provider}-client")
}

/// Records the grant and sends the browser back to `redirect_uri` with a code and the state.
async fn authorize(
    State(inner): State<Shared>,
    Path(provider): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if q.get("client_id") != Some(&client_id(&provider))
        || q.get("response_type").map(String::as_str) != Some("code")
    {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let (Some(redirect_uri), Some(state)) = (q.get("redirect_uri"), q.get("state")) else {
        return (StatusCode::BAD_REQUEST, "no redirect_uri or state").into_response();
    };
    let mut inner = inner.lock().unwrap();
    let Some(person) = inner.next.get(&provider).cloned() else {
        return (StatusCode::BAD_REQUEST, "nobody signs in").into_response();
    };
    let code = crate::common::random(24);
    inner.codes.insert(
        code.clone(),
        Grant {
            provider: provider.clone(),
            challenge: q.get("code_challenge").cloned(),
            method: q.get("code_challenge_method").cloned(),
            redirect_uri: redirect_uri.clone(),
            person,
        },
    );
    let mut back = url::Url::parse(redirect_uri).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", state);
    Redirect::to(back.as_str()).into_response()
}

/// The code exchange, refused unless everything matches (PKCE S256 included).
async fn token(
    State(inner): State<Shared>,
    Path(provider): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    let grant = form.get("code").and_then(|c| inner.codes.remove(c));
    let verified = grant.as_ref().is_some_and(|g| {
        let s256 = form
            .get("code_verifier")
            .map(|v| URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())));
        g.provider == provider
            && g.method.as_deref() == Some("S256")
            && g.challenge.is_some()
            && s256 == g.challenge
            && form.get("redirect_uri") == Some(&g.redirect_uri)
            && form.get("grant_type").map(String::as_str) == Some("authorization_code")
            && form.get("client_id") == Some(&client_id(&provider))
            && form.get("client_secret").map(String::as_str) == Some(SECRET)
    });
    let (Some(grant), true) = (grant, verified) else {
        inner.refused += 1;
        return if provider == "github" {
            // GitHub answers a bad exchange with 200 and an error body.
            Json(json!({"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."})).into_response()
        } else {
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_grant"})),
            )
                .into_response()
        };
    };
    let access_token = crate::common::random(32);
    inner.tokens.insert(access_token.clone(), grant.person);
    let scope = if provider == "github" {
        "read:user,user:email"
    } else {
        "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile"
    };
    Json(json!({"access_token": access_token, "token_type": "bearer", "scope": scope}))
        .into_response()
}

fn bearer(inner: &Shared, headers: &HeaderMap) -> Option<Person> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    inner.lock().unwrap().tokens.get(token).cloned()
}

async fn github_user(State(inner): State<Shared>, headers: HeaderMap) -> Response {
    let Some(p) = bearer(&inner, &headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    if !headers.contains_key(header::USER_AGENT) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let id: u64 = p.id.parse().unwrap();
    Json(json!({
        "id": id, "login": format!("octo{id}"), "name": p.name, "email": null,
        "avatar_url": format!("https://avatars.example.com/u/{id}"),
    }))
    .into_response()
}

async fn github_emails(State(inner): State<Shared>, headers: HeaderMap) -> Response {
    let Some(p) = bearer(&inner, &headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    Json(json!([
        {"email": format!("{}@users.noreply.github.com", p.id), "primary": false, "verified": true},
        {"email": p.email, "primary": true, "verified": p.verified},
    ]))
    .into_response()
}

async fn google_userinfo(State(inner): State<Shared>, headers: HeaderMap) -> Response {
    let Some(p) = bearer(&inner, &headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let mut user: Value = json!({
        "sub": p.id, "email": p.email, "email_verified": p.verified,
        "picture": "https://lh3.example.com/a/photo.jpg",
    });
    if let Some(name) = p.name {
        user["name"] = json!(name);
    }
    Json(user).into_response()
}
