//! Membership: joining (invites for private channels), roles, removal, the last-admin rule,
//! membership events on JetStream, and the permission API called over gRPC.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use common::*;
use futures_util::StreamExt as _;
use hilo_proto::channels::v1::{self as pb, channels_service_client::ChannelsServiceClient};
use reqwest::Method;
use serde_json::{Value, json};
use tonic::{Code, Request};

async fn join(base: &str, user: &User, body: Value) -> (u16, Value) {
    call(
        Method::POST,
        format!("{base}/api/members"),
        Some(user),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn joining_takes_no_role_from_the_client_and_twice_is_a_conflict() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let bob = sign_up(base, "Bob").await;
    let id = create_channel(base, &ada, "open", false).await;

    let (status, member) = join(base, &bob, json!({ "channelId": id, "role": "admin" })).await;
    assert_eq!(status, 201);
    assert_eq!(member["role"], "member", "a client cannot choose its role");
    assert_eq!(member["userId"], bob.id.as_str());
    assert_eq!(member["channelId"], id.as_str());
    let (status, body) = join(base, &bob, json!({ "channelId": id })).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("ALREADY_MEMBER"))
    );
    let (_, joined) = call(
        Method::GET,
        format!("{base}/api/members/is-joined/{id}"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(joined, json!({ "isJoined": true }));
    let (_, mine) = call(
        Method::GET,
        format!("{base}/api/members/joined"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(mine[0]["id"], id.as_str());

    let (status, _) = join(base, &bob, json!({ "channelId": "not-a-uuid" })).await;
    assert_eq!(status, 404);
    let (status, body) = join(base, &bob, json!({ "channel": id })).await;
    assert_eq!(
        (status, body["details"][0]["field"].as_str()),
        (400, Some("channelId"))
    );
}

#[tokio::test]
async fn private_channels_are_joined_only_with_an_invite_or_by_an_admin() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let bob = sign_up(base, "Bob").await;
    let cy = sign_up(base, "Cy").await;
    let dee = sign_up(base, "Dee").await;
    let id = create_channel(base, &ada, "secret", true).await;

    let (status, body) = join(base, &bob, json!({ "channelId": id })).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("CHANNEL_NOT_FOUND")),
        "no invite, no channel"
    );
    let (status, _) = join(
        base,
        &bob,
        json!({ "channelId": id, "inviteCode": "guessed123" }),
    )
    .await;
    assert_eq!(status, 404);

    let (status, invite) = call(
        Method::POST,
        format!("{base}/api/channels/{id}/invites"),
        Some(&ada),
        Some(json!({ "maxUses": 1 })),
    )
    .await;
    assert_eq!(status, 201, "{invite}");
    assert_eq!(invite["maxUses"], 1);
    assert!(invite["expiresAt"].as_str().unwrap().ends_with('Z'));
    let code = invite["code"].as_str().unwrap();
    let (status, member) = join(base, &bob, json!({ "channelId": id, "inviteCode": code })).await;
    assert_eq!((status, member["role"].as_str()), (201, Some("member")));
    let (status, _) = join(base, &cy, json!({ "channelId": id, "inviteCode": code })).await;
    assert_eq!(status, 404, "an invite used up is no invite");

    let (status, _) = call(
        Method::POST,
        format!("{base}/api/channels/{id}/invites"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(status, 403, "members do not invite");
    let (status, body) = call(
        Method::POST,
        format!("{base}/api/channels/{id}/invites"),
        Some(&ada),
        Some(json!({ "expiresInSeconds": 0 })),
    )
    .await;
    assert_eq!(
        (status, body["details"][0]["field"].as_str()),
        (400, Some("expiresInSeconds"))
    );
    let (_, short) = call(
        Method::POST,
        format!("{base}/api/channels/{id}/invites"),
        Some(&ada),
        Some(json!({ "expiresInSeconds": 1 })),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, _) = join(
        base,
        &cy,
        json!({ "channelId": id, "inviteCode": short["code"] }),
    )
    .await;
    assert_eq!(status, 404, "an expired invite is no invite");

    let (status, body) = join(base, &bob, json!({ "channelId": id, "userId": cy.id })).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "members do not add others"
    );
    let (status, added) = join(base, &ada, json!({ "channelId": id, "userId": cy.id })).await;
    assert_eq!(
        (status, added["role"].as_str(), added["userId"].as_str()),
        (201, Some("member"), Some(cy.id.as_str()))
    );
    let (status, _) = join(
        base,
        &ada,
        json!({ "channelId": id, "userId": "no-such-user" }),
    )
    .await;
    assert_eq!(status, 404);
    let (_, joined) = call(
        Method::GET,
        format!("{base}/api/members/is-joined/{id}"),
        Some(&dee),
        None,
    )
    .await;
    assert_eq!(joined["isJoined"], false);
}

#[tokio::test]
async fn members_are_listed_with_names_to_members_only() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let bob = sign_up(base, "Bob").await;
    let eve = sign_up(base, "Eve").await;
    let id = create_channel(base, &ada, "open", false).await;
    join(base, &bob, json!({ "channelId": id })).await;

    let (status, members) = call(
        Method::GET,
        format!("{base}/api/members/{id}"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let members = members.as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(
        (members[0]["userId"].as_str(), members[0]["role"].as_str()),
        (Some(ada.id.as_str()), Some("admin"))
    );
    assert_eq!(members[0]["user"]["name"], "Ada");
    assert_eq!(members[0]["user"]["profile"]["displayName"], "Ada");
    assert_eq!(members[1]["user"]["name"], "Bob");
    let (_, page) = call(
        Method::GET,
        format!("{base}/api/members/{id}?limit=1&offset=1"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["userId"], bob.id.as_str());

    let (status, body) = call(
        Method::GET,
        format!("{base}/api/members/{id}"),
        Some(&eve),
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "a public channel's members are for members"
    );
    let (status, _) = call(
        Method::GET,
        format!("{base}/api/members/{id}/role/{}", ada.id),
        Some(&eve),
        None,
    )
    .await;
    assert_eq!(status, 403, "roles are not disclosed to non-members");
    let (_, none) = call(
        Method::GET,
        format!("{base}/api/members/{id}/role/{}", eve.id),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(none, json!({}));
    let (status, body) = call(
        Method::GET,
        format!("{base}/api/members/{id}/role/no-such-user"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(
        status, 404,
        "a user that does not exist has no role: {body}"
    );
}

#[tokio::test]
async fn roles_change_by_admins_only_and_the_last_admin_stays() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let bob = sign_up(base, "Bob").await;
    let cy = sign_up(base, "Cy").await;
    let id = create_channel(base, &ada, "team", false).await;
    join(base, &bob, json!({ "channelId": id })).await;
    join(base, &cy, json!({ "channelId": id })).await;
    let role_url = |user: &User| format!("{base}/api/members/{id}/{}/role", user.id);

    let (status, body) = call(
        Method::PATCH,
        role_url(&ada),
        Some(&ada),
        Some(json!({ "role": "member" })),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("LAST_ADMIN")));
    let (status, body) = call(
        Method::DELETE,
        format!("{base}/api/members/{id}"),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("LAST_ADMIN")),
        "the last admin cannot leave"
    );

    let (status, _) = call(
        Method::PATCH,
        role_url(&cy),
        Some(&bob),
        Some(json!({ "role": "admin" })),
    )
    .await;
    assert_eq!(
        status, 403,
        "members cannot grant roles, themselves included"
    );
    let (status, _) = call(
        Method::PATCH,
        role_url(&bob),
        Some(&bob),
        Some(json!({ "role": "admin" })),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = call(
        Method::PATCH,
        role_url(&bob),
        Some(&ada),
        Some(json!({ "role": "owner" })),
    )
    .await;
    assert_eq!(
        (status, body["details"][0]["field"].as_str()),
        (400, Some("role"))
    );

    let (status, member) = call(
        Method::PATCH,
        role_url(&bob),
        Some(&ada),
        Some(json!({ "role": "moderator" })),
    )
    .await;
    assert_eq!((status, member["role"].as_str()), (200, Some("moderator")));
    let (status, _) = call(
        Method::PATCH,
        role_url(&cy),
        Some(&bob),
        Some(json!({ "role": "moderator" })),
    )
    .await;
    assert_eq!(status, 403, "moderators do not change roles");

    let (status, _) = call(
        Method::PATCH,
        role_url(&bob),
        Some(&ada),
        Some(json!({ "role": "admin" })),
    )
    .await;
    assert_eq!(status, 200);
    let (status, member) = call(
        Method::PATCH,
        role_url(&ada),
        Some(&ada),
        Some(json!({ "role": "member" })),
    )
    .await;
    assert_eq!(
        (status, member["role"].as_str()),
        (200, Some("member")),
        "with another admin, an admin may step down"
    );
    let (status, _) = call(
        Method::PATCH,
        role_url(&cy),
        Some(&ada),
        Some(json!({ "role": "admin" })),
    )
    .await;
    assert_eq!(status, 403, "and has no admin rights afterwards");
    let (status, _) = call(
        Method::PATCH,
        format!("{base}/api/members/{id}/nobody/role"),
        Some(&bob),
        Some(json!({ "role": "member" })),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn members_leave_admins_remove_and_nobody_else_does() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let bob = sign_up(base, "Bob").await;
    let cy = sign_up(base, "Cy").await;
    let id = create_channel(base, &ada, "team", false).await;
    join(base, &bob, json!({ "channelId": id })).await;
    join(base, &cy, json!({ "channelId": id })).await;

    let (status, _) = call(
        Method::DELETE,
        format!("{base}/api/members/{id}/{}", cy.id),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(status, 403, "a member cannot remove another");
    let (status, body) = call(
        Method::DELETE,
        format!("{base}/api/members/{id}/{}", bob.id),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(
        (status, body),
        (200, json!({ "message": "Member removed successfully" }))
    );
    let (status, _) = call(
        Method::DELETE,
        format!("{base}/api/members/{id}/{}", cy.id),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(status, 200, "an admin removes anyone");
    let (status, _) = call(
        Method::DELETE,
        format!("{base}/api/members/{id}/{}", cy.id),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(status, 404, "not a member any more");
    let (_, joined) = call(
        Method::GET,
        format!("{base}/api/members/is-joined/{id}"),
        Some(&cy),
        None,
    )
    .await;
    assert_eq!(joined["isJoined"], false);
    let (status, _) = join(base, &bob, json!({ "channelId": id })).await;
    assert_eq!(status, 201, "a public channel can be joined again");
    let (status, _) = call(
        Method::DELETE,
        format!("{base}/api/members/{id}"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(status, 200, "the README's leave route");
}

#[tokio::test]
async fn channel_and_membership_events_reach_a_durable_consumer_after_it_restarts() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let bob = sign_up(base, "Bob").await;
    let id = create_channel(base, &ada, "doomed", false).await;
    join(base, &bob, json!({ "channelId": id })).await;

    // A durable consumer exists, but its process is down while the events happen.
    let durable = format!("test-{}", random(8));
    {
        let js = jetstream::new(async_nats::connect(&stack.nats_url).await.unwrap());
        let stream = js.get_stream("CHAT_EVENTS").await.unwrap();
        let config = pull::Config {
            durable_name: Some(durable.clone()),
            deliver_policy: jetstream::consumer::DeliverPolicy::New,
            ..Default::default()
        };
        stream.create_consumer(config).await.unwrap();
    }
    let role_url = format!("{base}/api/members/{id}/{}/role", bob.id);
    assert_eq!(
        call(
            Method::PATCH,
            role_url,
            Some(&ada),
            Some(json!({ "role": "moderator" }))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            Method::DELETE,
            format!("{base}/api/members/{id}"),
            Some(&bob),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            Method::DELETE,
            format!("{base}/api/channels/{id}"),
            Some(&ada),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            Method::DELETE,
            format!("{base}/api/channels/{id}"),
            Some(&ada),
            None
        )
        .await
        .0,
        404
    );

    // The consumer comes back and reads what it missed, exactly once.
    let js = jetstream::new(async_nats::connect(&stack.nats_url).await.unwrap());
    let consumer: jetstream::consumer::PullConsumer = js
        .get_stream("CHAT_EVENTS")
        .await
        .unwrap()
        .get_consumer(&durable)
        .await
        .unwrap();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let mut batch = consumer
            .fetch()
            .max_messages(50)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .unwrap();
        while let Some(message) = batch.next().await {
            let message = message.unwrap();
            let event: Value = serde_json::from_slice(&message.payload).unwrap();
            message.ack().await.unwrap();
            if event["channelId"] == id.as_str() {
                events.push((message.subject.to_string(), event));
            }
        }
        if events.len() >= 3 {
            tokio::time::sleep(Duration::from_millis(1500)).await; // would a duplicate follow?
            let mut more = consumer
                .fetch()
                .max_messages(50)
                .expires(Duration::from_millis(500))
                .messages()
                .await
                .unwrap();
            while let Some(message) = more.next().await {
                let message = message.unwrap();
                let event: Value = serde_json::from_slice(&message.payload).unwrap();
                message.ack().await.unwrap();
                if event["channelId"] == id.as_str() {
                    events.push((message.subject.to_string(), event));
                }
            }
            break;
        }
    }
    let subjects: Vec<&str> = events.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "chat.events.member.role_changed",
            "chat.events.member.removed",
            "chat.events.channel.deleted"
        ],
        "each event once, in order"
    );
    assert_eq!(events[0].1["role"], "moderator");
    assert_eq!(events[1].1["userId"], bob.id.as_str());
    assert_eq!(events[2].1["type"], "channel.deleted");
    assert!(
        events[2].1["id"].as_str().is_some(),
        "events carry their id"
    );
}

#[tokio::test]
async fn the_permission_api_answers_about_the_caller_over_grpc() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let eve = sign_up(base, "Eve").await;
    let secret = create_channel(base, &ada, "secret", true).await;
    let token = |user: &User| access_token(&stack.private_key_pem, &user.id);
    let mut channels = ChannelsServiceClient::connect(stack.channels.clone())
        .await
        .unwrap();
    let ask = |user: &User, action: pb::Action, owner: Option<&str>| {
        let mut request = Request::new(pb::CheckPermissionRequest {
            channel_id: secret.clone(),
            user_id: user.id.clone(),
            action: action as i32,
            owner_id: owner.map(str::to_owned),
        });
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", token(user)).parse().unwrap(),
        );
        request
    };

    let admin = channels
        .check_permission(ask(&ada, pb::Action::DeleteThread, None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (admin.allowed, admin.visible, admin.role),
        (true, true, pb::Role::Admin as i32)
    );
    let author = channels
        .check_permission(ask(&ada, pb::Action::EditMessage, Some(&ada.id)))
        .await
        .unwrap()
        .into_inner();
    assert!(author.allowed);
    let not_author = channels
        .check_permission(ask(&ada, pb::Action::EditMessage, Some(&eve.id)))
        .await
        .unwrap()
        .into_inner();
    assert!(!not_author.allowed, "only authors edit, admins included");
    let outsider = channels
        .check_permission(ask(&eve, pb::Action::Read, None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (outsider.allowed, outsider.visible),
        (false, false),
        "private: invisible to outsiders"
    );

    let mut about_other = ask(&eve, pb::Action::Read, None);
    about_other.get_mut().user_id = ada.id.clone();
    assert_eq!(
        channels
            .check_permission(about_other)
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let mut unsigned = ask(&eve, pb::Action::Read, None);
    unsigned.metadata_mut().remove("authorization");
    assert_eq!(
        channels
            .check_permission(unsigned)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let mut forged = ask(&eve, pb::Action::Read, None);
    forged.metadata_mut().insert(
        "authorization",
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."
            .parse()
            .unwrap(),
    );
    assert_eq!(
        channels.check_permission(forged).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}
