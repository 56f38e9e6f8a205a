//! `/api/users`: who may read, change and delete what (docs/api.md §3), over HTTP.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn anyone_signed_in_reads_profiles_but_only_their_own_email() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let bob = sign_up(base, "Bob").await;

    let (status, me) = call(
        Method::GET,
        format!("{base}/api/users/{}", ada.id),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(me["email"], ada.email.as_str());
    assert_eq!(
        me["profile"]["displayName"], "Ada",
        "the profile is created with the user"
    );
    assert_eq!(me["profile"]["userId"], ada.id.as_str());
    assert_eq!(me["profile"]["isOnline"], false);

    let (status, other) = call(
        Method::GET,
        format!("{base}/api/users/{}", bob.id),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(other["name"], "Bob");
    assert!(
        other.get("email").is_none(),
        "another user's email is never returned: {other}"
    );

    let (status, list) = call(Method::GET, format!("{base}/api/users"), Some(&ada), None).await;
    assert_eq!(status, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for user in list {
        assert_eq!(
            user.get("email").is_some(),
            user["id"] == ada.id.as_str(),
            "only the caller's email: {user}"
        );
    }

    let (status, body) = call(
        Method::GET,
        format!("{base}/api/users/{}", "no-such-user"),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("USER_NOT_FOUND"))
    );

    let (status, body) = call(Method::GET, format!("{base}/api/users"), None, None).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"code": "UNAUTHORIZED", "message": "Unauthorized"})
        )
    );
}

#[tokio::test]
async fn listing_users_is_paginated_and_validates_limit_and_offset() {
    let stack = stack().await;
    let base = stack.gateway();
    let first = sign_up(base, "U0").await;
    for i in 1..4 {
        sign_up(base, &format!("U{i}")).await;
    }
    let names = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let (_, page) = call(
        Method::GET,
        format!("{base}/api/users?limit=2&offset=1"),
        Some(&first),
        None,
    )
    .await;
    assert_eq!(names(&page), ["U1", "U2"], "creation order");
    let (status, all) = call(
        Method::GET,
        format!("{base}/api/users?limit=1000"),
        Some(&first),
        None,
    )
    .await;
    assert_eq!(
        (status, all.as_array().unwrap().len()),
        (200, 4),
        "limit is clamped, not refused"
    );

    for query in ["limit=abc", "limit=-1", "offset=-5", "offset=1.5"] {
        let (status, body) = call(
            Method::GET,
            format!("{base}/api/users?{query}"),
            Some(&first),
            None,
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("VALIDATION_ERROR")),
            "{query}"
        );
        let field = query.split('=').next().unwrap();
        assert_eq!(body["details"][0]["field"], field);
    }
}

#[tokio::test]
async fn users_change_only_the_fields_they_send_and_only_themselves() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let bob = sign_up(base, "Bob").await;
    let url = format!("{base}/api/users/{}", ada.id);

    let patch = json!({ "name": "Ada L.", "profile": { "bio": "Analyst", "age": 36, "avatarUrl": "https://img.example/a.png" } });
    let (status, updated) = call(Method::PATCH, url.clone(), Some(&ada), Some(patch)).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["name"], "Ada L.");
    assert_eq!(updated["profile"]["bio"], "Analyst");
    assert_eq!(updated["profile"]["age"], 36);
    assert_eq!(
        updated["profile"]["displayName"], "Ada",
        "unsent fields are unchanged"
    );

    let (_, cleared) = call(
        Method::PATCH,
        url.clone(),
        Some(&ada),
        Some(json!({ "profile": { "bio": null } })),
    )
    .await;
    assert!(cleared["profile"]["bio"].is_null(), "null clears");
    assert_eq!(cleared["profile"]["age"], 36);

    let (status, body) = call(
        Method::PATCH,
        url.clone(),
        Some(&bob),
        Some(json!({ "name": "Hacked" })),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")));
    let (status, body) = call(Method::DELETE, url.clone(), Some(&bob), None).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")));
    let (_, still) = call(Method::GET, url.clone(), Some(&ada), None).await;
    assert_eq!(still["name"], "Ada L.", "a refused patch changes nothing");

    for forbidden in [
        json!({"emailVerified": true}),
        json!({"role": "admin"}),
        json!({"profile": {"isOnline": true}}),
    ] {
        let (status, body) = call(
            Method::PATCH,
            url.clone(),
            Some(&ada),
            Some(forbidden.clone()),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("VALIDATION_ERROR")),
            "{forbidden}"
        );
    }
    let (_, me) = call(
        Method::GET,
        format!("{base}/api/auth/get-session"),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(
        (
            me["user"]["emailVerified"].as_bool(),
            me["user"]["role"].as_str()
        ),
        (Some(false), Some("user"))
    );

    let bad = json!({ "name": "", "profile": { "bio": "x".repeat(501), "avatarUrl": "javascript:alert(1)", "age": -1 } });
    let (status, body) = call(Method::PATCH, url.clone(), Some(&ada), Some(bad)).await;
    assert_eq!(status, 400);
    let mut fields: Vec<&str> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        ["name", "profile.age", "profile.avatarUrl", "profile.bio"],
        "every failing field is named"
    );

    let (status, body) = call(Method::PATCH, url.clone(), Some(&ada), Some(json!({}))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("VALIDATION_ERROR")),
        "at least one property"
    );

    let (status, body) = call(
        Method::PATCH,
        url.clone(),
        Some(&ada),
        Some(json!({ "email": bob.email })),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("EMAIL_ALREADY_IN_USE"))
    );

    let (status, body) = call(
        Method::PATCH,
        url,
        Some(&ada),
        Some(json!({ "profile": { "age": "old" } })),
    )
    .await;
    assert_eq!(
        (status, body["details"][0]["field"].as_str()),
        (400, Some("profile.age"))
    );
}

#[tokio::test]
async fn deleting_yourself_ends_your_sessions() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let bob = sign_up(base, "Bob").await;

    let (status, body) = call(
        Method::DELETE,
        format!("{base}/api/users/{}", ada.id),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!((status, body), (200, json!({ "message": "User deleted" })));
    let (status, _) = call(Method::GET, format!("{base}/api/users"), Some(&ada), None).await;
    assert_eq!(status, 401);
    let (status, _) = call(
        Method::GET,
        format!("{base}/api/users/{}", ada.id),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let sign_in = json!({ "email": ada.email, "password": PASSWORD });
    let (status, _) = call(
        Method::POST,
        format!("{base}/api/auth/sign-in/email"),
        None,
        Some(sign_in),
    )
    .await;
    assert_eq!(status, 401);
}
