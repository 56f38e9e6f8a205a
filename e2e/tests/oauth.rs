//! Sign-in with GitHub and Google (OAuth 2.0 + PKCE), Better Auth compatible, against a fake
//! provider in the test process: the browser's part is played by following the redirects by
//! hand, so each test can tamper with what a browser would carry.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;
#[path = "common/provider.rs"]
mod provider;

use common::*;
use hilo_e2e::{Options, Stack};
use provider::{MockProvider, Person};
use reqwest::{Method, header};
use serde_json::{Value, json};
use url::Url;

const DONE: &str = "http://localhost:8081/done";
const WELCOME: &str = "http://localhost:8081/welcome";
const OOPS: &str = "http://localhost:8081/oops";

async fn oauth_stack(env: Vec<(String, String)>) -> Stack {
    stack_with(Options {
        env,
        ..Options::default()
    })
    .await
}

/// The test browser's cookie jar for sign-in flows: the state cookie (`name=value`) each
/// started flow set, by its state. [`land`] sends it back, as the browser that started the
/// flow would; [`land_elsewhere`] is another browser.
static JAR: std::sync::Mutex<std::collections::BTreeMap<String, String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Keeps the state cookie a response set, for the flow whose authorization URL is `url`.
fn keep_state_cookie(response: &reqwest::Response, url: &str) {
    if let (Some(cookie), Some(state)) =
        (cookie(response, "better-auth.state"), param(url, "state"))
    {
        JAR.lock().unwrap().insert(state, cookie);
    }
}

/// `POST /api/auth/sign-in/social` with the three callback URLs: the authorization URL.
async fn begin(base: &str, provider: &str) -> String {
    let response = http()
        .post(format!("{base}/api/auth/sign-in/social"))
        .json(&json!({
            "provider": provider, "callbackURL": DONE,
            "newUserCallbackURL": WELCOME, "errorCallbackURL": OOPS,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let location = response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    keep_state_cookie(&response, &location);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["redirect"], true);
    assert_eq!(body["url"], location.as_str());
    location
}

/// The browser at the provider, which records the PKCE challenge and sends it back: the
/// callback URL (at the gateway) with a code and the state.
async fn authorize(url: &str) -> String {
    let response = http().get(url).send().await.unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

/// Where the gateway sent the browser after the callback.
struct Landing {
    location: String,
    /// `name=value` of the session cookie, when one was set.
    cookie: Option<String>,
}

/// Back at the gateway in the browser that started the flow: always a 302, never an error
/// page of its own.
async fn land(callback: &str) -> Landing {
    let cookie =
        param(callback, "state").and_then(|state| JAR.lock().unwrap().get(&state).cloned());
    land_with(callback, cookie).await
}

/// The same callback opened in another browser (no state cookie).
async fn land_elsewhere(callback: &str) -> Landing {
    land_with(callback, None).await
}

async fn land_with(callback: &str, state_cookie: Option<String>) -> Landing {
    let mut request = http().get(callback);
    if let Some(cookie) = state_cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 302, "callback {callback}");
    Landing {
        location: response.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned(),
        cookie: session_cookie(&response),
    }
}

/// A whole sign-in as `person` at `provider`.
async fn sign_in(base: &str, mock: &MockProvider, provider: &str, person: &Person) -> Landing {
    mock.sign_in_as(provider, person);
    let url = begin(base, provider).await;
    land(&authorize(&url).await).await
}

/// Sends a request with the session cookie (and a trusted Origin, as a browser would).
async fn with_cookie(
    method: Method,
    url: String,
    cookie: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http()
        .request(method, url)
        .header(header::COOKIE, cookie)
        .header(header::ORIGIN, ORIGIN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn session(base: &str, cookie: &str) -> Value {
    let (status, body) = with_cookie(
        Method::GET,
        format!("{base}/api/auth/get-session"),
        cookie,
        None,
    )
    .await;
    assert_eq!(status, 200);
    body
}

async fn accounts(base: &str, cookie: &str) -> Vec<Value> {
    let url = format!("{base}/api/auth/list-accounts");
    let (status, body) = with_cookie(Method::GET, url, cookie, None).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

async fn unlink(base: &str, cookie: &str, body: Value) -> (u16, Value) {
    let url = format!("{base}/api/auth/unlink-account");
    with_cookie(Method::POST, url, cookie, Some(body)).await
}

fn query(url: &str) -> Vec<(String, String)> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param(url: &str, key: &str) -> Option<String> {
    query(url)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// `url` with its `key` parameter replaced by `value`, or removed when `None`.
fn set_param(url: &str, key: &str, value: Option<&str>) -> String {
    let mut parsed = Url::parse(url).unwrap();
    let kept: Vec<_> = query(url).into_iter().filter(|(k, _)| k != key).collect();
    let mut pairs = parsed.query_pairs_mut();
    pairs.clear().extend_pairs(kept);
    if let Some(value) = value {
        pairs.append_pair(key, value);
    }
    drop(pairs);
    parsed.to_string()
}

fn error_page(base: &str, code: &str) -> String {
    format!("{base}/api/auth/error?error={code}")
}

#[tokio::test]
async fn github_sign_in_goes_round_trip_to_a_session_and_a_user_with_a_profile() {
    let mock = MockProvider::start().await;
    let stack = oauth_stack(mock.env()).await;
    let base = stack.gateway();
    let ada = Person::new("Ada Lovelace");
    mock.sign_in_as("github", &ada);

    let url = begin(base, "github").await;
    assert!(
        url.starts_with(&format!("{}/github/authorize?", mock.url)),
        "{url}"
    );
    let has = |k: &str, v: &str| param(&url, k).as_deref() == Some(v);
    assert!(has("client_id", "github-client") && has("response_type", "code"));
    assert!(has("scope", "read:user user:email"));
    assert!(has("code_challenge_method", "S256"));
    assert_eq!(
        param(&url, "code_challenge").unwrap().len(),
        43,
        "S256, base64url"
    );
    assert!(has(
        "redirect_uri",
        &format!("{base}/api/auth/callback/github")
    ));
    assert!(param(&url, "state").unwrap().len() >= 32);

    let landing = land(&authorize(&url).await).await;
    assert_eq!(
        landing.location, WELCOME,
        "a new user goes to newUserCallbackURL"
    );
    let cookie = landing.cookie.expect("the callback starts a session");
    let body = session(base, &cookie).await;
    let user = &body["user"];
    assert_eq!(user["email"], ada.email.as_str());
    assert_eq!(user["emailVerified"], true);
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(
        user["image"],
        format!("https://avatars.example.com/u/{}", ada.id)
    );
    let id = user["id"].as_str().unwrap();

    let (status, profiled) =
        with_cookie(Method::GET, format!("{base}/api/users/{id}"), &cookie, None).await;
    assert_eq!(status, 200);
    assert_eq!(profiled["profile"]["displayName"], "Ada Lovelace");
    assert_eq!(profiled["profile"]["avatarUrl"], user["image"]);

    let listed = accounts(base, &cookie).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["providerId"], "github");
    assert_eq!(listed[0]["accountId"], ada.id.as_str());
    assert_eq!(listed[0]["userId"], id);
    assert_eq!(listed[0]["scopes"], json!(["read:user", "user:email"]));
    assert!(listed[0]["createdAt"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn google_sign_in_through_the_readme_link_asks_to_select_an_account() {
    let mock = MockProvider::start().await;
    let stack = oauth_stack(mock.env()).await;
    let base = stack.gateway();
    let nameless = Person {
        name: None,
        ..Person::new("")
    };
    mock.sign_in_as("google", &nameless);

    let response = http()
        .get(format!("{base}/api/auth/sign-in/google?callbackURL={DONE}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let url = response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    keep_state_cookie(&response, &url);
    assert!(
        url.starts_with(&format!("{}/google/authorize?", mock.url)),
        "{url}"
    );
    assert_eq!(param(&url, "prompt").as_deref(), Some("select_account"));
    assert_eq!(
        param(&url, "scope").as_deref(),
        Some("openid email profile")
    );
    assert_eq!(
        param(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );

    let landing = land(&authorize(&url).await).await;
    assert_eq!(
        landing.location, DONE,
        "no newUserCallbackURL: the callbackURL"
    );
    let cookie = landing.cookie.unwrap();
    let user = session(base, &cookie).await["user"].clone();
    assert_eq!(user["name"], nameless.email.as_str(), "no name: the email");
    let id = user["id"].as_str().unwrap();
    let (_, profiled) =
        with_cookie(Method::GET, format!("{base}/api/users/{id}"), &cookie, None).await;
    assert_eq!(profiled["profile"]["displayName"], nameless.email.as_str());
    let listed = accounts(base, &cookie).await;
    assert_eq!(listed[0]["providerId"], "google");
    assert_eq!(listed[0]["accountId"], nameless.id.as_str());
    assert!(
        listed[0]["scopes"]
            .as_array()
            .unwrap()
            .contains(&json!("openid"))
    );
}

#[tokio::test]
async fn signing_in_again_with_the_same_identity_reuses_the_user() {
    let mock = MockProvider::start().await;
    let stack = oauth_stack(mock.env()).await;
    let base = stack.gateway();
    let mut linus = Person::new("Linus");
    let first = sign_in(base, &mock, "github", &linus).await;
    assert_eq!(first.location, WELCOME);
    let first_cookie = first.cookie.unwrap();
    let user_id = session(base, &first_cookie).await["user"]["id"].clone();

    // Same GitHub account, even with another primary email by now.
    linus.email = email();
    let again = sign_in(base, &mock, "github", &linus).await;
    assert_eq!(again.location, DONE, "a known user goes to callbackURL");
    let cookie = again.cookie.unwrap();
    assert_ne!(cookie, first_cookie, "a new session");
    assert_eq!(session(base, &cookie).await["user"]["id"], user_id);
    assert_eq!(accounts(base, &cookie).await.len(), 1);
}

#[tokio::test]
async fn a_callback_whose_state_does_not_match_is_refused() {
    let mock = MockProvider::start().await;
    let stack = oauth_stack(mock.env()).await;
    let base = stack.gateway();
    mock.sign_in_as("github", &Person::new("Eve"));

    let callback = authorize(&begin(base, "github").await).await;
    let state = param(&callback, "state").unwrap();
    let (id, _secret) = state.split_once('.').unwrap();
    let forged = set_param(&callback, "state", Some(&format!("{id}.{}", random(32))));
    let cookie = JAR.lock().unwrap().get(&state).cloned();
    let landing = land_with(&forged, cookie).await;
    assert_eq!(landing.location, error_page(base, "state_mismatch"));
    assert!(landing.cookie.is_none());
    // The genuine callback opened in another browser (login CSRF): refused, and the state is
    // not used up by it.
    let landing = land_elsewhere(&callback).await;
    assert_eq!(landing.location, error_page(base, "state_mismatch"));
    assert!(landing.cookie.is_none());
    // In the browser that started it, the flow completes; a replay then finds it used up.
    let landing = land(&callback).await;
    assert_eq!(landing.location, WELCOME, "a new user");
    assert!(landing.cookie.is_some());
    let landing = land(&callback).await;
    assert_eq!(
        landing.location,
        error_page(base, "please_restart_the_process")
    );

    let never_issued = set_param(&callback, "state", Some("nope.nope"));
    assert_eq!(
        land(&never_issued).await.location,
        error_page(base, "state_mismatch")
    );

    // A GitHub state presented at Google's callback.
    let callback = authorize(&begin(base, "github").await).await;
    let elsewhere = callback.replace("/callback/github", "/callback/google");
    let landing = land(&elsewhere).await;
    assert_eq!(landing.location, error_page(base, "state_mismatch"));
    assert!(landing.cookie.is_none());
    assert_eq!(mock.refused(), 0, "no code is exchanged on a bad state");

    let page = http()
        .get(error_page(base, "state_mismatch"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("state_mismatch"));
}

#[tokio::test]
async fn a_replayed_callback_is_refused() {
    let mock = MockProvider::start().await;
    let stack = oauth_stack(mock.env()).await;
    let base = stack.gateway();
    mock.sign_in_as("google", &Person::new("Mallory"));
    let callback = authorize(&begin(base, "google").await).await;
    let first = land(&callback).await;
    assert_eq!(first.location, WELCOME);
    assert!(first.cookie.is_some());

    let replay = land(&callback).await;
    assert_eq!(
        replay.location,
        error_page(base, "please_restart_the_process")
    );
    assert!(replay.cookie.is_none());
}

#[tokio::test]
async fn a_wrong_or_missing_pkce_verifier_fails_the_exchange_cleanly() {
    let mock = MockProvider::start().await;
    let stack = oauth_stack(mock.env()).await;
    let base = stack.gateway();
    // A challenge of some other verifier: the one accounts sends no longer matches.
    let other = "Jd3J5ZbX7K8Jmn0Q2o8kSGd1pD5WmHfS5lZb2cPqRzA";
    for provider in ["github", "google"] {
        mock.sign_in_as(provider, &Person::new("Trudy"));
        let url = set_param(&begin(base, provider).await, "code_challenge", Some(other));
        let landing = land(&authorize(&url).await).await;
        assert_eq!(landing.location, format!("{OOPS}?error=invalid_code"));
        assert!(landing.cookie.is_none());
    }
    // No challenge at all: nothing for the verifier to prove.
    let url = begin(base, "github").await;
    let url = set_param(&url, "code_challenge", None);
    let url = set_param(&url, "code_challenge_method", None);
    let landing = land(&authorize(&url).await).await;
    assert_eq!(landing.location, format!("{OOPS}?error=invalid_code"));
    assert!(landing.cookie.is_none());
    assert_eq!(mock.refused(), 3);
}

#[tokio::test]
async fn untrusted_callback_urls_are_refused_with_403() {
    let mock = MockProvider::start().await;
    let stack = oauth_stack(mock.env()).await;
    let base = stack.gateway();
    let url = format!("{base}/api/auth/sign-in/social");
    for (field, value, code) in [
        (
            "callbackURL",
            "https://evil.example/x",
            "INVALID_CALLBACKURL",
        ),
        (
            "errorCallbackURL",
            "//evil.example/x",
            "INVALID_ERRORCALLBACKURL",
        ),
        (
            "newUserCallbackURL",
            "javascript:alert(1)",
            "INVALID_NEWUSERCALLBACKURL",
        ),
    ] {
        let body = json!({"provider": "github", field: value});
        let (status, body) = call(Method::POST, url.clone(), None, Some(body)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some(code)),
            "{field}"
        );
        assert_eq!(body["message"], format!("Invalid {field}"));
    }
    let (status, _) = call(
        Method::GET,
        format!("{base}/api/auth/sign-in/github?callbackURL=https://evil.example"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 403);
    let body = json!({"provider": "github", "callbackURL": "/chat", "disableRedirect": true});
    let response = http().post(&url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200, "relative paths are fine");
    assert!(response.headers().get(header::LOCATION).is_none());
    assert_eq!(response.json::<Value>().await.unwrap()["redirect"], false);
}

#[tokio::test]
async fn an_unverified_provider_email_is_neither_linked_nor_given_an_account() {
    let mock = MockProvider::start().await;
    let stack = oauth_stack(mock.env()).await;
    let base = stack.gateway();
    let grace = sign_up(base, "Grace").await;
    let impostor = Person {
        email: grace.email.clone(),
        verified: false,
        ..Person::new("Not Grace")
    };
    let landing = sign_in(base, &mock, "github", &impostor).await;
    assert_eq!(landing.location, format!("{OOPS}?error=account_not_linked"));
    assert!(landing.cookie.is_none());
    let listed = accounts(base, &grace.cookie).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["providerId"], "credential");

    let stranger = Person {
        verified: false,
        ..Person::new("Stranger")
    };
    let landing = sign_in(base, &mock, "google", &stranger).await;
    assert_eq!(landing.location, format!("{OOPS}?error=email_not_verified"));
    assert!(landing.cookie.is_none());
    let (status, _) = call(
        Method::POST,
        format!("{base}/api/auth/sign-up/email"),
        None,
        Some(json!({"name": "Real", "email": stranger.email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "the email was not claimed");
}

#[tokio::test]
async fn a_verified_provider_email_takes_the_account_back_from_whoever_signed_up_with_it() {
    let mock = MockProvider::start().await;
    let stack = oauth_stack(mock.env()).await;
    let base = stack.gateway();
    // A squatter signs up with Grace's address (emails are not verified) and keeps a session.
    let squatter = sign_up(base, "Grace").await;
    let squatter_second_session = sign_in_email(base, &squatter).await;
    // Grace arrives through GitHub, which vouches for the address.
    let same = Person {
        email: squatter.email.to_uppercase(),
        ..Person::new("Grace Hopper")
    };
    let landing = sign_in(base, &mock, "github", &same).await;
    assert_eq!(landing.location, DONE, "an existing user, not a new one");
    let cookie = landing.cookie.unwrap();
    let user = session(base, &cookie).await["user"].clone();
    assert_eq!(user["id"], squatter.id.as_str());
    assert_eq!(user["emailVerified"], true, "GitHub vouched for it");
    let providers: Vec<_> = accounts(base, &cookie)
        .await
        .iter()
        .map(|a| a["providerId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(providers, ["github"], "the squatter's password is gone");

    // The password the squatter chose opens nothing, and their sessions are over.
    let (status, body) = call(
        Method::POST,
        format!("{base}/api/auth/sign-in/email"),
        None,
        Some(json!({"email": squatter.email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("INVALID_EMAIL_OR_PASSWORD"))
    );
    for token in [&squatter.token, &squatter_second_session] {
        let response = http()
            .get(format!("{base}/api/auth/get-session"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.text().await.unwrap(), "null");
    }
    let (status, _) = call(
        Method::GET,
        format!("{base}/api/users"),
        Some(&squatter),
        None,
    )
    .await;
    assert_eq!(status, 401);
    // A user whose email is already proven keeps every way in when another provider links.
    let google = Person {
        email: squatter.email.clone(),
        ..Person::new("Grace")
    };
    let again = sign_in(base, &mock, "google", &google).await;
    assert_eq!(accounts(base, &again.cookie.unwrap()).await.len(), 2);
}

/// Signs in by password once more and returns the new session's token.
async fn sign_in_email(base: &str, user: &User) -> String {
    let (status, body) = call(
        Method::POST,
        format!("{base}/api/auth/sign-in/email"),
        None,
        Some(json!({"email": user.email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 200);
    body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn accounts_are_listed_and_unlinked_but_never_the_last_one() {
    let mock = MockProvider::start().await;
    let stack = oauth_stack(mock.env()).await;
    let base = stack.gateway();
    let (status, body) = call(
        Method::GET,
        format!("{base}/api/auth/list-accounts"),
        None,
        None,
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHORIZED")));

    let github_only = sign_in(base, &mock, "github", &Person::new("Solo")).await;
    let solo = github_only.cookie.unwrap();
    let (status, body) = unlink(base, &solo, json!({"providerId": "github"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("FAILED_TO_UNLINK_LAST_ACCOUNT"))
    );
    assert_eq!(body["message"], "You can't unlink your last account");
    assert_eq!(accounts(base, &solo).await.len(), 1);

    // Grace signs in with GitHub, then with Google under the same (proven) address.
    let github = Person::new("Grace");
    sign_in(base, &mock, "github", &github).await;
    let google = Person {
        email: github.email.clone(),
        ..Person::new("Grace")
    };
    let linked = sign_in(base, &mock, "google", &google).await;
    let cookie = linked.cookie.unwrap();
    assert_eq!(accounts(base, &cookie).await.len(), 2);
    for body in [
        json!({"providerId": "credential"}),
        json!({"providerId": "google", "accountId": "someone-else"}),
    ] {
        let (status, reply) = unlink(base, &cookie, body).await;
        assert_eq!(
            (status, reply["code"].as_str()),
            (400, Some("ACCOUNT_NOT_FOUND"))
        );
    }
    let (status, reply) = unlink(base, &cookie, json!({"accountId": google.id})).await;
    assert_eq!(
        (status, reply["code"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
    let (status, reply) = unlink(
        base,
        &cookie,
        json!({"providerId": "google", "accountId": google.id}),
    )
    .await;
    assert_eq!((status, reply), (200, json!({"status": true})));
    let left = accounts(base, &cookie).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["providerId"], "github");
    let (status, reply) = unlink(base, &cookie, json!({"providerId": "github"})).await;
    assert_eq!(
        (status, reply["code"].as_str()),
        (400, Some("FAILED_TO_UNLINK_LAST_ACCOUNT"))
    );

    // Unlinking needs a trusted Origin with cookies (Better Auth's CSRF check).
    let response = http()
        .post(format!("{base}/api/auth/unlink-account"))
        .header(header::COOKIE, &cookie)
        .json(&json!({"providerId": "github"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn a_provider_without_credentials_answers_provider_not_found() {
    let mock = MockProvider::start().await;
    let stack = oauth_stack(mock.github_env()).await;
    let base = stack.gateway();
    let social = format!("{base}/api/auth/sign-in/social");
    for provider in ["google", "twitter"] {
        let body = json!({"provider": provider});
        let (status, body) = call(Method::POST, social.clone(), None, Some(body)).await;
        assert_eq!(status, 404);
        assert_eq!(
            body,
            json!({"code": "PROVIDER_NOT_FOUND", "message": "Provider not found"})
        );
    }
    let (status, body) = call(
        Method::GET,
        format!("{base}/api/auth/sign-in/google"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("PROVIDER_NOT_FOUND"))
    );
    let landing = land(&format!("{base}/api/auth/callback/google?state=a.b&code=c")).await;
    assert_eq!(landing.location, error_page(base, "state_mismatch"));
    let (status, _) = call(
        Method::POST,
        social,
        None,
        Some(json!({"provider": "github"})),
    )
    .await;
    assert_eq!(status, 200, "GitHub is configured");
}

#[tokio::test]
async fn malformed_callbacks_redirect_to_an_error_and_never_fail() {
    let mock = MockProvider::start().await;
    let stack = oauth_stack(mock.env()).await;
    let base = stack.gateway();
    let callback = format!("{base}/api/auth/callback/github");
    for (query, code) in [
        ("", "state_not_found"),
        ("?code=abc", "state_not_found"),
        ("?state=", "state_not_found"),
        ("?state=a&state=b", "invalid_callback_request"),
        // States this browser never started: refused before accounts is asked.
        ("?state=no-dot&code=x", "state_mismatch"),
    ] {
        let landing = land(&format!("{callback}{query}")).await;
        assert_eq!(landing.location, error_page(base, code), "{query}");
    }
    let long = format!("{callback}?code=x&state={}.x", "a".repeat(5000));
    assert_eq!(
        land(&long).await.location,
        error_page(base, "state_mismatch")
    );
    let unknown = format!("{base}/api/auth/callback/twitter?code=x&state=a.b");
    assert_eq!(
        land(&unknown).await.location,
        error_page(base, "state_mismatch")
    );

    // A genuine state with no code, or with the provider's error, goes to errorCallbackURL.
    mock.sign_in_as("github", &Person::new("Bob"));
    for (extra, code) in [
        ("", "no_code"),
        (
            "&error=access_denied&error_description=The+user+said+no",
            "access_denied",
        ),
        ("&error=%3Cscript%3E", "invalid_callback_request"),
    ] {
        let state = param(&begin(base, "github").await, "state").unwrap();
        let landing = land(&format!("{callback}?state={state}{extra}")).await;
        assert_eq!(
            landing.location,
            format!("{OOPS}?error={code}"),
            "{extra:?}"
        );
        assert!(landing.cookie.is_none());
    }

    let social = format!("{base}/api/auth/sign-in/social");
    let (status, body) = call(Method::POST, social.clone(), None, Some(json!({}))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
    assert_eq!(body["details"][0]["field"], "provider");
    let response = http()
        .post(&social)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn an_app_callback_gets_the_session_cookie_in_its_url() {
    let mock = MockProvider::start().await;
    let mut env = mock.env();
    env.push(("TRUSTED_ORIGINS".to_owned(), "exp://".to_owned()));
    let stack = oauth_stack(env).await;
    let base = stack.gateway();
    mock.sign_in_as("github", &Person::new("Expo"));
    let app = "exp://192.168.1.20:8081/--/home";
    let response = http()
        .post(format!("{base}/api/auth/sign-in/social"))
        .json(&json!({"provider": "github", "callbackURL": app}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The app's own HTTP client got the state cookie; the system browser that finishes the
    // flow has not.
    let url = response.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let callback = authorize(&url).await;
    assert_eq!(
        land_elsewhere(&callback).await.location,
        error_page(base, "state_mismatch"),
        "without the proxy the browser is a stranger to the flow"
    );
    // So the app opens Better Auth's Expo authorization proxy in the browser first.
    let proxy = format!("{base}/api/auth/expo-authorization-proxy");
    let open = |authorization: &str| {
        let mut target = Url::parse(&proxy).unwrap();
        target
            .query_pairs_mut()
            .append_pair("authorizationURL", authorization);
        http().get(target).send()
    };
    let opened = open(&url).await.unwrap();
    assert_eq!(opened.status(), 302);
    assert_eq!(opened.headers()[header::LOCATION], url.as_str());
    keep_state_cookie(&opened, &url);
    // It only ever leads to an authorization URL the gateway handed out.
    for other in [
        "https://evil.example/?state=x".to_owned(),
        set_param(&url, "redirect_uri", Some("https://evil.example/cb")),
    ] {
        let refused = open(&other).await.unwrap();
        assert_eq!(refused.status(), 400, "{other}");
    }
    let landing = land(&callback).await;
    assert!(
        landing.location.starts_with(&format!("{app}?cookie=")),
        "{}",
        landing.location
    );
    let set_cookie = param(&landing.location, "cookie").unwrap();
    assert!(
        set_cookie.contains("HttpOnly"),
        "the whole Set-Cookie value: {set_cookie}"
    );
    let pair = set_cookie.split(';').next().unwrap();
    assert_eq!(Some(pair), landing.cookie.as_deref());
    assert_eq!(session(base, pair).await["user"]["name"], "Expo");
}

#[tokio::test]
async fn accounts_takes_no_callers_word_for_where_sign_in_comes_back() {
    use hilo_proto::accounts::v1::{
        StartSocialSignInRequest, accounts_service_client::AccountsServiceClient,
    };
    let mock = MockProvider::start().await;
    let stack = oauth_stack(mock.env()).await;
    let mut accounts = AccountsServiceClient::connect(stack.accounts.clone())
        .await
        .unwrap();
    let base = stack.gateway().to_owned();
    let start =
        |base_url: &str, callback_url: &str, error: Option<&str>| StartSocialSignInRequest {
            provider: "github".into(),
            base_url: base_url.into(),
            callback_url: callback_url.into(),
            error_callback_url: error.map(str::to_owned),
            new_user_callback_url: None,
        };
    // A direct caller (not the gateway) asking to send the user, and the code, elsewhere.
    for request in [
        start("https://evil.example", "/done", None),
        start(&base, "https://evil.example/steal", None),
        start(&base, "/done", Some("/\t/evil.example")),
    ] {
        let status = accounts.start_social_sign_in(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    }
    let started = accounts
        .start_social_sign_in(start(&base, &format!("{base}/done"), Some("/error")))
        .await
        .unwrap()
        .into_inner();
    assert!(started.authorization_url.contains("state="));
}
