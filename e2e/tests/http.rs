//! The gateway's HTTP behaviour that every route shares: error shape, limits, request ids,
//! CORS, probes, OpenAPI, logs and traces.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use common::*;
use reqwest::{Method, header};
use serde_json::{Value, json};

#[tokio::test]
async fn errors_have_one_json_shape_and_every_response_a_request_id() {
    let stack = stack().await;
    let base = stack.gateway();

    let response = http()
        .get(format!("{base}/api/nope/deeper?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "NOT_FOUND");
    assert_eq!(body["path"], "/api/nope/deeper");

    let response = http()
        .post(format!("{base}/api/auth/sign-up/email"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-request-id", "req-from-client-1")
        .body("{\"name\": \"x\", ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["x-request-id"],
        "req-from-client-1",
        "a client's request id is kept"
    );
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "INVALID_JSON"
    );

    let response = http()
        .post(format!("{base}/api/auth/sign-in/email"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "an empty body is a client error");

    let big =
        json!({ "name": "x".repeat(1024 * 1024 + 10), "email": email(), "password": PASSWORD });
    let (status, body) = call(
        Method::POST,
        format!("{base}/api/auth/sign-up/email"),
        None,
        Some(big),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("PAYLOAD_TOO_LARGE"))
    );

    let (status, body) = call(Method::PUT, format!("{base}/api/users"), None, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (405, Some("METHOD_NOT_ALLOWED"))
    );

    let (status, body) = call(
        Method::POST,
        format!("{base}/api/auth/sign-up/email"),
        None,
        Some(json!([1, 2])),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
}

#[tokio::test]
async fn cors_allows_the_configured_origin_with_credentials_and_idempotency_keys() {
    let stack = stack().await;
    let preflight = |origin: &'static str| {
        http()
            .request(Method::OPTIONS, format!("{}/api/users", stack.gateway()))
            .header(header::ORIGIN, origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,idempotency-key",
            )
            .send()
    };
    let allowed = preflight(ORIGIN).await.unwrap();
    assert!(allowed.status().is_success());
    assert_eq!(allowed.headers()["access-control-allow-origin"], ORIGIN);
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );
    let headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        headers.contains("idempotency-key") && headers.contains("authorization"),
        "{headers}"
    );

    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

#[tokio::test]
async fn probes_root_and_openapi_answer() {
    let stack = stack().await;
    let base = stack.gateway();
    assert_eq!(
        http()
            .get(format!("{base}/api"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let ready = http().get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({ "redis": true, "accounts": true, "channels": true, "messaging": true, "uploads": true })
    );

    let spec: Value = http()
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/auth/sign-up/email",
        "/api/auth/sign-in/email",
        "/api/auth/sign-out",
        "/api/auth/get-session",
        "/api/auth/session",
        "/api/users",
        "/api/users/{id}",
        "/api/channels",
        "/api/channels/{id}",
        "/api/channels/{id}/invites",
        "/api/members",
        "/api/members/joined",
        "/api/members/{channelId}",
        "/api/members/{channelId}/{userId}",
        "/api/members/{channelId}/{userId}/role",
        "/api/members/{channelId}/role/{userId}",
        "/api/members/is-joined/{channelId}",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} is documented");
    }
    assert!(spec["paths"]["/api/users/{id}"].get("patch").is_some());
    // The WebSocket is described, and the frame schemas it links to are served.
    let ws = spec["paths"]["/ws"]["get"]["description"].as_str().unwrap();
    for schema in ["client", "server", "thread-events"] {
        let url = format!("/frames/{schema}.schema.json");
        assert!(ws.contains(&url), "{url} is linked");
        let served: Value = http()
            .get(format!("{base}{url}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(served["$schema"].is_string(), "{url}: {served}");
    }
    let missing = http()
        .get(format!("{base}/frames/secret.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let docs = http()
        .get(format!("{base}/docs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(docs.contains("/openapi.json"));
}

/// The API reference renders every operation in a real headless browser, from what the
/// gateway serves alone (nothing from elsewhere: it must work offline and under its CSP).
#[tokio::test]
async fn docs_render_every_operation_in_a_headless_browser() {
    let stack = stack().await;
    let base = stack.gateway();
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok()
        })
        .expect("no headless browser: scripts/test.sh installs Debian's chromium");
    for asset in ["/docs", "/docs/docs.js", "/docs/docs.css"] {
        let response = http().get(format!("{base}{asset}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("default-src 'self'"), "{asset}: {csp}");
        let text = response.text().await.unwrap();
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{asset} loads nothing from elsewhere"
        );
    }
    let spec: Value = http()
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<String> = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str().map(str::to_owned))
        .collect();
    assert!(ids.len() >= 50, "{} operations", ids.len());
    let profile = tempfile_dir();
    let output = tokio::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.display()),
            "--virtual-time-budget=15000",
            "--dump-dom",
            &format!("{base}/docs"),
        ])
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        dom.contains(&format!("data-rendered=\"{}\"", ids.len())),
        "the page did not render {} operations: {}",
        ids.len(),
        String::from_utf8_lossy(&output.stderr)
    );
    for id in &ids {
        assert!(
            dom.contains(&format!("data-operation=\"{id}\"")),
            "{id} not rendered"
        );
    }
}

/// A fresh directory for a browser profile.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("browser-{}", common::random(8)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn logs_are_json_carry_one_trace_id_across_gateway_and_accounts_and_hold_no_secrets() {
    let stack = stack().await;
    let base = stack.gateway();
    let user = sign_up(base, "Quiet").await;
    let sign_in = json!({ "email": user.email, "password": PASSWORD });
    let (_, signed_in) = call(
        Method::POST,
        format!("{base}/api/auth/sign-in/email"),
        None,
        Some(sign_in),
    )
    .await;
    let wrong = json!({ "email": user.email, "password": "not the password 123" });
    call(
        Method::POST,
        format!("{base}/api/auth/sign-in/email"),
        None,
        Some(wrong),
    )
    .await;
    call(
        Method::GET,
        format!("{base}/api/users/{}", user.id),
        Some(&user),
        None,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let logs = stack.logs().unwrap();
    for secret in [
        PASSWORD,
        "not the password 123",
        &user.token,
        signed_in["token"].as_str().unwrap(),
    ] {
        assert!(!logs.contains(secret), "a secret leaked into the logs");
    }
    let cookie_signature = user.cookie.rsplit_once('.').map(|(_, s)| s).unwrap();
    assert!(!logs.contains(cookie_signature));

    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(lines.len() >= 4, "logs are JSON lines");
    let trace_of = |needle: &str| {
        lines
            .iter()
            .filter(|l| l["span"]["path"].as_str() == Some(needle))
            .filter_map(|l| l["span"]["trace_id"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let gateway_traces = trace_of("/api/auth/sign-up/email");
    let accounts_traces = trace_of("/hilo.accounts.v1.AccountsService/SignUp");
    assert!(
        !gateway_traces.is_empty() && !accounts_traces.is_empty(),
        "both hops log the request"
    );
    assert!(
        gateway_traces
            .iter()
            .all(|t| t.len() == 32 && t.chars().any(|c| c != '0')),
        "real W3C trace ids"
    );
    assert!(
        accounts_traces.iter().all(|t| gateway_traces.contains(t)),
        "accounts continues the gateway's trace"
    );
}

/// PostgreSQL stores no NUL character: a body with one in any string is a 400 naming the
/// field (it was a 500 from deep inside a service), and a body is one JSON value with nothing
/// after it. Nothing is stored either way.
#[tokio::test]
async fn nul_characters_and_trailing_garbage_are_refused_with_400() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let channel = create_channel(base, &ada, "nul", false).await;
    let thread = &create_thread(base, &ada, &channel, "t").await;
    let post = |body: String| {
        http()
            .post(format!("{base}/api/messages"))
            .header("authorization", ada.bearer())
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
    };

    let response = post(format!(r#"{{"threadId":"{thread}","content":"a\u0000b"}}"#))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "VALIDATION_ERROR", "{body}");
    assert_eq!(body["details"][0]["field"], "content", "{body}");

    let (status, body) = call(
        Method::POST,
        format!("{base}/api/auth/sign-up/email"),
        None,
        Some(json!({"name": "Eve\u{0}", "email": email(), "password": PASSWORD})),
    )
    .await;
    assert_eq!(
        (status, body["details"][0]["field"].as_str()),
        (400, Some("name")),
        "{body}"
    );

    let response = post(format!(
        r#"{{"threadId":"{thread}","content":"x"}} trailing"#
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "INVALID_JSON"
    );

    // An escaped backslash before "u0000" is text, and is stored as sent.
    let response = post(format!(r#"{{"threadId":"{thread}","content":"a\\u0000"}}"#))
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let (_, history) = call(
        Method::GET,
        format!("{base}/api/messages/thread/{thread}"),
        Some(&ada),
        None,
    )
    .await;
    let contents: Vec<&str> = history["messages"]
        .as_array()
        .or(history.as_array())
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(contents, vec![r"a\u0000"], "{history}");
}

/// Ids that no resource can have are 404 at the edge (a NUL, bytes that are not UTF-8, or a
/// segment longer than any id), and no error message repeats more than a short piece of
/// what the client sent: a 20 KB id in a body was echoed into gRPC trailers, a 500.
#[tokio::test]
async fn impossible_ids_are_404_and_errors_never_echo_long_input() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let long = "a".repeat(300);
    for path in [
        "/api/users/abc%00def".to_owned(),
        "/api/threads/%FF%FE".to_owned(),
        format!("/api/channels/{long}"),
        format!("/api/messages/{long}"),
    ] {
        let (status, body) = call(Method::GET, format!("{base}{path}"), Some(&ada), None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("NOT_FOUND")),
            "{path}: {body}"
        );
    }
    let (status, _) = call(
        Method::GET,
        format!("{base}/api/users/{}", ada.id),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(status, 200, "a real id still answers");

    let huge = "b".repeat(20_000);
    for (path, body) in [
        ("/api/messages", json!({"threadId": huge, "content": "x"})),
        ("/api/members", json!({"channelId": huge})),
    ] {
        let (status, answer) = call(
            Method::POST,
            format!("{base}{path}"),
            Some(&ada),
            Some(body),
        )
        .await;
        assert_eq!(status, 404, "{path}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.len() < 200,
            "{path}: the message echoes {} bytes",
            message.len()
        );
    }
}

/// An integrator's first step: generate a client from `/openapi.json` (openapi-python-client,
/// pinned in the venv scripts/test.sh prepares) and call every route with it; each answer is
/// one the document declares, parsed into its model (scripts/openapi_client_check.py).
#[tokio::test]
async fn a_client_generated_from_the_openapi_document_calls_every_route() {
    let venv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../.infra/openapi-client-venv/bin"
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/openapi_client_check.py"
    );
    assert!(
        std::path::Path::new(venv).exists(),
        "no {venv}: scripts/test.sh prepares it"
    );
    // A realtime replica behind the gateway's /ws, as in a deployment.
    let stack = stack_with(hilo_e2e::Options {
        realtimes: 1,
        ..Default::default()
    })
    .await;
    let base = stack.gateway();
    let document = http()
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("hilo-openapi-client-{}", random(8)));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("openapi.json"), document).unwrap();
    let generated = tokio::process::Command::new(format!("{venv}/openapi-python-client"))
        .args([
            "generate",
            "--path",
            "openapi.json",
            "--meta",
            "none",
            "--output-path",
            "hilo_client",
        ])
        .current_dir(&dir)
        .output()
        .await
        .unwrap();
    assert!(
        generated.status.success(),
        "generation failed: {}{}",
        String::from_utf8_lossy(&generated.stdout),
        String::from_utf8_lossy(&generated.stderr)
    );
    let checked = tokio::process::Command::new(format!("{venv}/python"))
        .args([script, base, dir.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(String::from_utf8_lossy(&checked.stdout).contains("61 operations"));
}

/// Authentication schemes are case-insensitive (RFC 9110 11.1), at the gateway and at every
/// gRPC service.
#[tokio::test]
async fn the_bearer_scheme_is_read_in_any_case() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let response = http()
            .get(format!("{base}/api/users/{}", ada.id))
            .header(header::AUTHORIZATION, format!("{scheme} {}", ada.token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{scheme}");
        let mut accounts =
            hilo_proto::accounts::v1::accounts_service_client::AccountsServiceClient::connect(
                stack.accounts.clone(),
            )
            .await
            .unwrap();
        let mut request = tonic::Request::new(hilo_proto::accounts::v1::GetUserRequest {
            user_id: ada.id.clone(),
        });
        let token = access_token(&stack.private_key_pem, &ada.id);
        request.metadata_mut().insert(
            "authorization",
            format!("{scheme} {token}").parse().unwrap(),
        );
        assert!(accounts.get_user(request).await.is_ok(), "gRPC {scheme}");
    }
    let response = http()
        .get(format!("{base}/api/users/{}", ada.id))
        .header(header::AUTHORIZATION, format!("Basic {}", ada.token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "another scheme is no session");
}
