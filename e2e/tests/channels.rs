//! Channels and their visibility and administration rules (docs/api.md §3), over HTTP.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

pub async fn create(base: &str, owner: &User, name: &str, private: bool) -> Value {
    let body =
        json!({ "name": name, "isPrivate": private, "description": "about", "category": "Eng" });
    let (status, channel) = call(
        Method::POST,
        format!("{base}/api/channels"),
        Some(owner),
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{channel}");
    channel
}

#[tokio::test]
async fn creating_a_channel_makes_its_creator_the_first_admin() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let channel = create(base, &ada, "general", false).await;
    assert_eq!(channel["name"], "general");
    assert_eq!(channel["ownerId"], ada.id.as_str());
    assert_eq!(channel["isPrivate"], false);
    assert_eq!(channel["category"], "Eng");
    assert!(channel["imageUrl"].is_null());
    assert_eq!(channel["id"].as_str().unwrap().len(), 36);
    let id = channel["id"].as_str().unwrap();
    let (_, role) = call(
        Method::GET,
        format!("{base}/api/members/{id}/role/{}", ada.id),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(role, json!({ "role": "admin" }));

    let (_, default) = call(
        Method::POST,
        format!("{base}/api/channels"),
        Some(&ada),
        Some(json!({ "name": "x" })),
    )
    .await;
    assert_eq!(default["category"], "General");

    let bad = json!({ "name": "n".repeat(101), "imageUrl": "javascript:alert(1)", "description": "d".repeat(501) });
    let (status, body) = call(
        Method::POST,
        format!("{base}/api/channels"),
        Some(&ada),
        Some(bad),
    )
    .await;
    assert_eq!(status, 400);
    let mut fields: Vec<&str> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, ["description", "imageUrl", "name"]);
    let (status, _) = call(
        Method::POST,
        format!("{base}/api/channels"),
        None,
        Some(json!({ "name": "x" })),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn private_channels_are_invisible_to_non_members() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let eve = sign_up(base, "Eve").await;
    let public = create(base, &ada, "public", false).await;
    let secret = create(base, &ada, "secret", true).await;
    let secret_id = secret["id"].as_str().unwrap();

    let (_, eves) = call(
        Method::GET,
        format!("{base}/api/channels"),
        Some(&eve),
        None,
    )
    .await;
    let names: Vec<&str> = eves["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["public"]);
    assert_eq!(eves["meta"]["total"], 1);
    let (_, adas) = call(
        Method::GET,
        format!("{base}/api/channels"),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(adas["meta"]["total"], 2);

    for (method, path) in [
        (Method::GET, format!("/api/channels/{secret_id}")),
        (Method::PATCH, format!("/api/channels/{secret_id}")),
        (Method::DELETE, format!("/api/channels/{secret_id}")),
        (Method::GET, format!("/api/members/{secret_id}")),
        (
            Method::GET,
            format!("/api/members/{secret_id}/role/{}", ada.id),
        ),
        (Method::POST, format!("/api/channels/{secret_id}/invites")),
    ] {
        let body = (method == Method::PATCH).then(|| json!({ "name": "mine now" }));
        let (status, error) = call(method.clone(), format!("{base}{path}"), Some(&eve), body).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (404, Some("CHANNEL_NOT_FOUND")),
            "{method} {path}"
        );
    }
    let (status, _) = call(
        Method::GET,
        format!("{base}/api/channels/{}", public["id"].as_str().unwrap()),
        Some(&eve),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, joined) = call(
        Method::GET,
        format!("{base}/api/members/is-joined/{secret_id}"),
        Some(&eve),
        None,
    )
    .await;
    assert_eq!(joined, json!({ "isJoined": false }));

    for bad in ["not-a-uuid", "11111111-1111-1111-1111-111111111111"] {
        let (status, _) = call(
            Method::GET,
            format!("{base}/api/channels/{bad}"),
            Some(&eve),
            None,
        )
        .await;
        assert_eq!(status, 404, "{bad}");
    }
}

#[tokio::test]
async fn only_admins_update_or_delete_and_patch_changes_only_what_is_sent() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let mo = sign_up(base, "Mo").await;
    let max = sign_up(base, "Max").await;
    let eve = sign_up(base, "Eve").await;
    let channel = create(base, &ada, "team", true).await;
    let id = channel["id"].as_str().unwrap();
    for user in [&mo, &max] {
        let (status, _) = call(
            Method::POST,
            format!("{base}/api/members"),
            Some(&ada),
            Some(json!({ "channelId": id, "userId": user.id })),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (status, _) = call(
        Method::PATCH,
        format!("{base}/api/members/{id}/{}/role", mo.id),
        Some(&ada),
        Some(json!({ "role": "moderator" })),
    )
    .await;
    assert_eq!(status, 200);

    for (user, expected) in [(&mo, 403), (&max, 403), (&eve, 404)] {
        let (status, _) = call(
            Method::PATCH,
            format!("{base}/api/channels/{id}"),
            Some(user),
            Some(json!({ "name": "x" })),
        )
        .await;
        assert_eq!(status, expected, "patch by {}", user.id);
        let (status, _) = call(
            Method::DELETE,
            format!("{base}/api/channels/{id}"),
            Some(user),
            None,
        )
        .await;
        assert_eq!(status, expected, "delete by {}", user.id);
    }

    let (status, patched) = call(
        Method::PATCH,
        format!("{base}/api/channels/{id}"),
        Some(&ada),
        Some(json!({ "category": "Ops", "bannerUrl": "https://img.example/b.png" })),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["category"], "Ops", "category is saved");
    assert_eq!(
        patched["isPrivate"], true,
        "an unsent isPrivate stays as it was"
    );
    assert_eq!(patched["name"], "team");
    assert_eq!(patched["description"], "about");
    let (_, cleared) = call(
        Method::PATCH,
        format!("{base}/api/channels/{id}"),
        Some(&ada),
        Some(json!({ "description": null })),
    )
    .await;
    assert!(cleared["description"].is_null());
    assert_eq!(cleared["bannerUrl"], "https://img.example/b.png");
    let (status, body) = call(
        Method::PATCH,
        format!("{base}/api/channels/{id}"),
        Some(&ada),
        Some(json!({ "category": "c".repeat(51) })),
    )
    .await;
    assert_eq!(
        (status, body["details"][0]["field"].as_str()),
        (400, Some("category"))
    );

    let (status, body) = call(
        Method::DELETE,
        format!("{base}/api/channels/{id}"),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(
        (status, body),
        (200, json!({ "message": "Channel deleted" }))
    );
    let (status, _) = call(
        Method::GET,
        format!("{base}/api/channels/{id}"),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, joined) = call(
        Method::GET,
        format!("{base}/api/members/joined"),
        Some(&mo),
        None,
    )
    .await;
    assert_eq!(joined, json!([]), "members go with the channel");
}

#[tokio::test]
async fn channel_lists_are_ordered_paginated_and_validated() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    for i in 0..5 {
        create(base, &ada, &format!("c{i}"), false).await;
    }
    let (_, page) = call(
        Method::GET,
        format!("{base}/api/channels?page=2&limit=2"),
        Some(&ada),
        None,
    )
    .await;
    let names: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c2", "c3"]);
    assert_eq!(
        page["meta"],
        json!({ "total": 5, "page": 2, "limit": 2, "totalPages": 3 })
    );
    let (_, clamped) = call(
        Method::GET,
        format!("{base}/api/channels?limit=500"),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(clamped["meta"]["limit"], 100);
    for query in ["page=0", "page=-1", "limit=abc", "limit=0"] {
        let (status, body) = call(
            Method::GET,
            format!("{base}/api/channels?{query}"),
            Some(&ada),
            None,
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("VALIDATION_ERROR")),
            "{query}"
        );
    }
}
