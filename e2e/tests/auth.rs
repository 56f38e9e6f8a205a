//! Better Auth compatibility of `/api/auth/*`, driven over HTTP like a client.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use common::*;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

#[tokio::test]
async fn sign_up_returns_better_auths_body_and_a_signed_cookie() {
    let stack = stack().await;
    let email = email();
    let response = http()
        .post(format!("{}/api/auth/sign-up/email", stack.gateway()))
        .json(&json!({ "name": "Ada", "email": email.to_uppercase(), "password": PASSWORD, "role": "admin" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let set_cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();

    let token = body["token"].as_str().unwrap();
    assert_eq!(token.len(), 32);
    let user = &body["user"];
    assert_eq!(user["email"], email, "emails are stored lower-cased");
    assert_eq!(user["name"], "Ada");
    assert_eq!(user["emailVerified"], false);
    assert_eq!(user["role"], "user", "role is never client-settable");
    assert!(user["image"].is_null());
    let created = user["createdAt"].as_str().unwrap();
    assert!(
        created.ends_with('Z') && created.len() == 24,
        "ISO-8601 with milliseconds: {created}"
    );

    // better-auth.session_token=<token>.<base64 HMAC>, URL-encoded, 7 days, HttpOnly, Lax.
    let (pair, attributes) = set_cookie.split_once(';').unwrap();
    let value = pair.strip_prefix("better-auth.session_token=").unwrap();
    let decoded = percent_decode(value);
    let (cookie_token, signature) = decoded.split_once('.').unwrap();
    assert_eq!(cookie_token, token);
    assert_eq!(signature.len(), 44, "base64 of a SHA-256 HMAC");
    assert!(attributes.contains("Max-Age=604800"));
    assert!(attributes.contains("HttpOnly"));
    assert!(attributes.contains("SameSite=Lax"));
    assert!(attributes.contains("Path=/"));
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn sign_up_refuses_taken_emails_and_bad_passwords_with_better_auth_codes() {
    let stack = stack().await;
    let base = stack.gateway();
    let user = sign_up(base, "First").await;
    let url = format!("{base}/api/auth/sign-up/email");

    let (status, body) = call(
        Method::POST,
        url.clone(),
        None,
        Some(json!({"name": "Again", "email": user.email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL"))
    );
    assert_eq!(body["message"], "User already exists. Use another email.");

    let (status, body) = call(
        Method::POST,
        url.clone(),
        None,
        Some(json!({"name": "S", "email": email(), "password": "short"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("PASSWORD_TOO_SHORT"))
    );
    assert_eq!(body["details"][0]["field"], "password");

    let long = "x".repeat(129);
    let (status, body) = call(
        Method::POST,
        url.clone(),
        None,
        Some(json!({"name": "L", "email": email(), "password": long})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("PASSWORD_TOO_LONG"))
    );

    // The first guesses of any attacker are refused, whatever their case.
    for common in ["password", "12345678", "Password1", "qwertyuiop"] {
        let (status, body) = call(
            Method::POST,
            url.clone(),
            None,
            Some(json!({"name": "C", "email": email(), "password": common})),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("PASSWORD_COMPROMISED")),
            "{common}"
        );
    }

    let (status, body) = call(
        Method::POST,
        url.clone(),
        None,
        Some(json!({"name": "E", "email": "a@b", "password": PASSWORD})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_EMAIL"))
    );

    let (status, body) = call(
        Method::POST,
        url,
        None,
        Some(json!({"name": "M", "password": PASSWORD})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
    assert_eq!(body["details"][0]["field"], "email");
}

#[tokio::test]
async fn sign_in_returns_redirect_token_url_user_and_refuses_wrong_passwords() {
    let stack = stack().await;
    let base = stack.gateway();
    let user = sign_up(base, "Grace").await;
    let url = format!("{base}/api/auth/sign-in/email");

    let response = http()
        .post(&url)
        .json(&json!({ "email": user.email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(session_cookie(&response).is_some());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["redirect"], false);
    assert!(body["url"].is_null());
    assert_eq!(body["user"]["id"], user.id.as_str());
    assert_ne!(body["token"], user.token.as_str(), "a new session");

    let response = http()
        .post(&url)
        .json(&json!({ "email": user.email, "password": PASSWORD, "callbackURL": "/chat" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[header::LOCATION], "/chat");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["redirect"].as_bool(), body["url"].as_str()),
        (Some(true), Some("/chat"))
    );

    for (email, password) in [
        (user.email.as_str(), "wrong password"),
        ("nobody@example.com", PASSWORD),
    ] {
        let (status, body) = call(
            Method::POST,
            url.clone(),
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("INVALID_EMAIL_OR_PASSWORD"))
        );
        assert_eq!(body["message"], "Invalid email or password");
    }

    let (status, body) = call(
        Method::POST,
        url,
        None,
        Some(json!({"email": user.email, "password": PASSWORD, "callbackURL": "https://evil.example/steal"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("INVALID_CALLBACKURL"))
    );
}

#[tokio::test]
async fn get_session_answers_on_both_paths_with_cookie_or_bearer_and_null_without() {
    let stack = stack().await;
    let base = stack.gateway();
    let user = sign_up(base, "Linus").await;

    for path in ["/api/auth/get-session", "/api/auth/session"] {
        let by_cookie: Value = http()
            .get(format!("{base}{path}"))
            .header(header::COOKIE, &user.cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(by_cookie["user"]["id"], user.id.as_str());
        assert_eq!(by_cookie["user"]["email"], user.email.as_str());
        assert_eq!(by_cookie["session"]["userId"], user.id.as_str());
        assert_eq!(by_cookie["session"]["token"], user.token.as_str());
        assert!(
            by_cookie["session"]["expiresAt"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );

        let (status, by_bearer) =
            call(Method::GET, format!("{base}{path}"), Some(&user), None).await;
        assert_eq!(status, 200);
        assert_eq!(by_bearer["session"]["id"], by_cookie["session"]["id"]);

        let (status, none) = call(Method::GET, format!("{base}{path}"), None, None).await;
        assert_eq!((status, none), (200, Value::Null));
    }

    // A cookie whose signature does not match is no session at all.
    let forged = format!("{}x", user.cookie.trim_end_matches("%3D"));
    let body: Value = http()
        .get(format!("{base}/api/auth/get-session"))
        .header(header::COOKIE, forged)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, Value::Null);
}

#[tokio::test]
async fn sign_out_ends_the_session_everywhere_and_clears_the_cookie() {
    let stack = stack_with(hilo_e2e::Options {
        gateways: 2,
        ..Default::default()
    })
    .await;
    let (a, b) = (&stack.gateways[0], &stack.gateways[1]);
    let user = sign_up(a, "Barbara").await;
    // Warm both gateways' path to the session (the exchange is cached in shared Redis).
    assert_eq!(
        call(
            Method::GET,
            format!("{a}/api/users/{}", user.id),
            Some(&user),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            Method::GET,
            format!("{b}/api/users/{}", user.id),
            Some(&user),
            None
        )
        .await
        .0,
        200
    );

    let response = http()
        .post(format!("{a}/api/auth/sign-out"))
        .header(header::COOKIE, &user.cookie)
        .header(header::ORIGIN, ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cleared = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| {
            v.to_str()
                .unwrap()
                .starts_with("better-auth.session_token=;")
                && v.to_str().unwrap().contains("Max-Age=0")
        });
    assert!(cleared, "the session cookie is expired");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "success": true })
    );

    for base in [a, b] {
        let (status, body) = call(
            Method::GET,
            format!("{base}/api/users/{}", user.id),
            Some(&user),
            None,
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("UNAUTHORIZED")),
            "revoked on {base}"
        );
        assert_eq!(
            call(
                Method::GET,
                format!("{base}/api/auth/get-session"),
                Some(&user),
                None
            )
            .await
            .1,
            Value::Null
        );
    }

    let (status, body) = call(Method::POST, format!("{a}/api/auth/sign-out"), None, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("FAILED_TO_GET_SESSION"))
    );
}

#[tokio::test]
async fn cookie_posts_from_untrusted_origins_are_refused() {
    let stack = stack().await;
    let base = stack.gateway();
    let user = sign_up(base, "Mallory's target").await;
    let sign_in = json!({ "email": user.email, "password": PASSWORD });

    let cases = [
        (Some("https://evil.example"), 403, "INVALID_ORIGIN"),
        (None, 403, "MISSING_OR_NULL_ORIGIN"),
        (Some("null"), 403, "MISSING_OR_NULL_ORIGIN"),
    ];
    for (origin, status, code) in cases {
        let mut request = http()
            .post(format!("{base}/api/auth/sign-in/email"))
            .header(header::COOKIE, &user.cookie)
            .json(&sign_in);
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "origin {origin:?}");
        assert_eq!(response.json::<Value>().await.unwrap()["code"], code);
    }
    let still_signed_in = call(
        Method::GET,
        format!("{base}/api/auth/get-session"),
        Some(&user),
        None,
    )
    .await
    .1;
    assert_eq!(
        still_signed_in["user"]["id"],
        user.id.as_str(),
        "a refused sign-out changes nothing"
    );

    let trusted = http()
        .post(format!("{base}/api/auth/sign-in/email"))
        .header(header::COOKIE, &user.cookie)
        .header(header::ORIGIN, ORIGIN)
        .json(&sign_in)
        .send()
        .await
        .unwrap();
    assert_eq!(trusted.status(), 200);
}

#[tokio::test]
async fn remember_me_false_gives_a_browser_session_cookie() {
    let stack = stack().await;
    let response = http()
        .post(format!("{}/api/auth/sign-up/email", stack.gateway()))
        .json(
            &json!({ "name": "Tmp", "email": email(), "password": PASSWORD, "rememberMe": false }),
        )
        .send()
        .await
        .unwrap();
    let cookies: Vec<String> = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("better-auth.session_token="))
        .unwrap();
    assert!(!session.contains("Max-Age"), "no Max-Age: {session}");
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("better-auth.dont_remember="))
    );
}

#[tokio::test]
async fn sign_in_and_sign_up_are_rate_limited_per_ip_across_replicas() {
    // The former setting, still honoured: one trusted proxy.
    let env = vec![("TRUST_FORWARDED_FOR".to_owned(), "true".to_owned())];
    let options = hilo_e2e::Options {
        gateways: 2,
        auth_rate_limit: "3/10s".into(),
        env,
        ..Default::default()
    };
    let stack = stack_with(options).await;
    let body = json!({ "email": "nobody@example.com", "password": PASSWORD });
    // A client address of its own (behind a trusted proxy), so no other test shares its budget.
    let client_ip = format!("10.{}.{}.{}", octet(), octet(), octet());
    // Budgets are counted in fixed 10 s windows: start early in one so all five land in it.
    early_in_window(10, 6).await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let base = &stack.gateways[i % 2];
        let response = http()
            .post(format!("{base}/api/auth/sign-in/email"))
            .header("x-forwarded-for", &client_ip)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = response.headers()[header::RETRY_AFTER]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=10).contains(&retry));
            assert_eq!(
                response.json::<Value>().await.unwrap()["code"],
                "TOO_MANY_REQUESTS"
            );
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        vec![401, 401, 401, 429],
        "the fourth attempt in 10 s is refused, whichever replica"
    );

    // Another client is not affected, and sign-up has a budget of its own.
    let other = http()
        .post(format!("{}/api/auth/sign-up/email", stack.gateway()))
        .header(
            "x-forwarded-for",
            format!("10.{}.{}.{}", octet(), octet(), octet()),
        )
        .json(&json!({ "name": "Other", "email": email(), "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
}
