//! A deleted user leaves their channels: channels consumes `chat.events.user.deleted` from
//! JetStream (published by accounts; in the first test also by hand, to send malformed and
//! duplicate events), and clients see the result: the user
//! gone from member lists, an admin's successor, an empty private channel gone, the user's
//! invites void, and a duplicate event changing nothing.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use std::time::Duration;

use async_nats::{HeaderMap, Subscriber, jetstream};
use common::*;
use futures_util::StreamExt as _;
use hilo_e2e::{Options, Stack};
use reqwest::Method;
use serde_json::{Value, json};

/// A stack and the name of its channels service's durable consumer of user deletions (its
/// own: every test stack gets consumers of its own on the shared NATS).
async fn stack_and_consumer() -> (Stack, String) {
    let stack = stack_with(Options::default()).await;
    let durable = stack.consumer("channels-user-deleted");
    (stack, durable)
}

async fn join(base: &str, user: &User, body: Value) -> u16 {
    call(
        Method::POST,
        format!("{base}/api/members"),
        Some(user),
        Some(body),
    )
    .await
    .0
}

async fn set_role(base: &str, admin: &User, channel: &str, user: &User, role: &str) {
    let (status, body) = call(
        Method::PATCH,
        format!("{base}/api/members/{channel}/{}/role", user.id),
        Some(admin),
        Some(json!({ "role": role })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn invite(base: &str, admin: &User, channel: &str) -> String {
    let (status, invite) = call(
        Method::POST,
        format!("{base}/api/channels/{channel}/invites"),
        Some(admin),
        Some(json!({ "maxUses": 5 })),
    )
    .await;
    assert_eq!(status, 201, "{invite}");
    invite["code"].as_str().unwrap().to_owned()
}

/// `(userId, role)` of each member, in the order they joined, as `viewer` sees them.
async fn members(base: &str, viewer: &User, channel: &str) -> Vec<(String, String)> {
    let (status, list) = call(
        Method::GET,
        format!("{base}/api/members/{channel}"),
        Some(viewer),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let field = |k: &str| m[k].as_str().unwrap().to_owned();
            (field("userId"), field("role"))
        })
        .collect()
}

fn entry(user: &User, role: &str) -> (String, String) {
    (user.id.clone(), role.to_owned())
}

/// Deletes `user`'s account through the API, as they would; accounts forgets them.
async fn delete_account(base: &str, user: &User) {
    let (status, body) = call(
        Method::DELETE,
        format!("{base}/api/users/{}", user.id),
        Some(user),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Publishes a `user.deleted` payload as accounts' relay does (`Nats-Msg-Id` = `msg_id`);
/// returns its stream sequence and whether JetStream dropped it as a duplicate.
async fn publish(js: &jetstream::Context, payload: Vec<u8>, msg_id: &str) -> (u64, bool) {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    let ack = js
        .publish_with_headers("chat.events.user.deleted", headers, payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
    (ack.sequence, ack.duplicate)
}

fn deleted_event(event_id: &str, user: &User) -> Vec<u8> {
    json!({ "type": "user.deleted", "id": event_id, "userId": user.id })
        .to_string()
        .into_bytes()
}

/// Waits until the consumer `durable` has acknowledged every event up to stream sequence
/// `seq`: channels acknowledges only after its transactions committed (or for a malformed
/// event), and a failure would hold the acknowledgement floor below `seq`.
async fn processed(js: &jetstream::Context, durable: &str, seq: u64) {
    let stream = js.get_stream("CHAT_EVENTS").await.unwrap();
    for _ in 0..150 {
        if let Ok(info) = stream.consumer_info(durable).await
            && info.ack_floor.stream_sequence >= seq
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("channels did not acknowledge the user.deleted event at sequence {seq}");
}

/// `(subject, event)` of the `chat.events.>` events received within `wait` that concern one
/// of `channels` (the outbox relay publishes within a second of the commit).
async fn events(live: &mut Subscriber, channels: &[&str], wait: Duration) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, live.next()).await {
        let Ok(event) = serde_json::from_slice::<Value>(&message.payload) else {
            continue;
        };
        if channels.iter().any(|c| event["channelId"] == *c) {
            found.push((message.subject.to_string(), event));
        }
    }
    found
}

/// The events as `(subject, channelId, userId)`, sorted, for comparing as a set.
fn summary(events: &[(String, Value)]) -> Vec<(String, String, String)> {
    let mut all: Vec<_> = events
        .iter()
        .map(|(subject, event)| {
            let text = |k: &str| event[k].as_str().unwrap_or_default().to_owned();
            (subject.clone(), text("channelId"), text("userId"))
        })
        .collect();
    all.sort();
    all
}

#[tokio::test]
async fn a_deleted_admin_leaves_every_channel_and_the_earliest_moderator_or_member_succeeds() {
    let (stack, durable) = stack_and_consumer().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let bob = sign_up(base, "Bob").await;
    let cy = sign_up(base, "Cy").await;
    let dee = sign_up(base, "Dee").await;
    let eve = sign_up(base, "Eve").await;

    // team: Bob joined first, then Cy and Dee, both made moderators (Dee first).
    let team = create_channel(base, &ada, "team", false).await;
    for user in [&bob, &cy, &dee] {
        assert_eq!(join(base, user, json!({ "channelId": team })).await, 201);
    }
    set_role(base, &ada, &team, &dee, "moderator").await;
    set_role(base, &ada, &team, &cy, "moderator").await;
    // club: no moderators; Bob joined before Cy.
    let club = create_channel(base, &ada, "club", false).await;
    for user in [&bob, &cy] {
        assert_eq!(join(base, user, json!({ "channelId": club })).await, 201);
    }
    // shared: Bob's private channel, where Ada is a second admin and made an invite.
    let shared = create_channel(base, &bob, "shared", true).await;
    assert_eq!(
        join(base, &bob, json!({ "channelId": shared, "userId": ada.id })).await,
        201
    );
    set_role(base, &bob, &shared, &ada, "admin").await;
    let adas_code = invite(base, &ada, &shared).await;
    let bobs_code = invite(base, &bob, &shared).await;

    let nats = async_nats::connect(&stack.nats_url).await.unwrap();
    let mut live = nats.subscribe("chat.events.>").await.unwrap();
    nats.flush().await.unwrap();
    let js = jetstream::new(nats);
    delete_account(base, &ada).await;
    // Malformed events first: acknowledged and skipped, they do not stop the consumer.
    publish(&js, b"not json".to_vec(), &random(16)).await;
    let no_user = json!({ "type": "user.deleted", "id": random(16) }).to_string();
    publish(&js, no_user.into_bytes(), &random(16)).await;
    let event_id = uuid::Uuid::now_v7().to_string();
    let (seq, duplicate) = publish(&js, deleted_event(&event_id, &ada), &event_id).await;
    assert!(!duplicate);
    processed(&js, &durable, seq).await;

    assert_eq!(
        members(base, &bob, &team).await,
        [
            entry(&bob, "member"),
            entry(&cy, "admin"),
            entry(&dee, "moderator")
        ],
        "the moderator who joined first succeeds, before an earlier member"
    );
    assert_eq!(
        members(base, &bob, &club).await,
        [entry(&bob, "admin"), entry(&cy, "member")],
        "without moderators, the member who joined first succeeds"
    );
    assert_eq!(
        members(base, &bob, &shared).await,
        [entry(&bob, "admin")],
        "another admin remains: nobody is promoted"
    );
    assert_eq!(
        join(
            base,
            &eve,
            json!({ "channelId": shared, "inviteCode": adas_code })
        )
        .await,
        404,
        "the deleted user's invites are void"
    );
    assert_eq!(
        join(
            base,
            &eve,
            json!({ "channelId": shared, "inviteCode": bobs_code })
        )
        .await,
        201,
        "others' invites still work"
    );

    let channels = [team.as_str(), club.as_str(), shared.as_str()];
    let seen = events(&mut live, &channels, Duration::from_secs(2)).await;
    let removed = "chat.events.member.removed".to_owned();
    let promoted = "chat.events.member.role_changed".to_owned();
    let mut expected = vec![
        (removed.clone(), team.clone(), ada.id.clone()),
        (removed.clone(), club.clone(), ada.id.clone()),
        (removed, shared.clone(), ada.id.clone()),
        (promoted.clone(), team.clone(), cy.id.clone()),
        (promoted, club.clone(), bob.id.clone()),
    ];
    expected.sort();
    // The set-up's own events may still be arriving: keep Ada's removals and promotions to
    // admin of anyone but Ada (the set-up promoted only Ada to admin).
    let departure: Vec<_> = seen
        .iter()
        .filter(|(subject, e)| match subject.as_str() {
            "chat.events.member.removed" => e["userId"] == ada.id.as_str(),
            "chat.events.member.role_changed" => {
                e["role"] == "admin" && e["userId"] != ada.id.as_str()
            }
            _ => false,
        })
        .cloned()
        .collect();
    assert_eq!(
        summary(&departure),
        expected,
        "one event per removal and per promotion"
    );
    assert!(
        seen.iter().all(|(s, _)| s != "chat.events.channel.deleted"),
        "no channel was left empty"
    );

    // The same event again: JetStream drops it within its window; past the window (a new
    // message id), channels handles it again, and nothing changes. (By now every event of the
    // set-up has long been published: any event now would be new.)
    let before: Vec<_> = [
        members(base, &bob, &team).await,
        members(base, &bob, &club).await,
        members(base, &bob, &shared).await,
    ]
    .concat();
    let (_, duplicate) = publish(&js, deleted_event(&event_id, &ada), &event_id).await;
    assert!(duplicate, "JetStream de-duplicates by Nats-Msg-Id");
    let (seq, _) = publish(&js, deleted_event(&event_id, &ada), &random(16)).await;
    processed(&js, &durable, seq).await;
    let after: Vec<_> = [
        members(base, &bob, &team).await,
        members(base, &bob, &club).await,
        members(base, &bob, &shared).await,
    ]
    .concat();
    assert_eq!(after, before, "a redelivered deletion changes nothing");
    let late = events(&mut live, &channels, Duration::from_secs(2)).await;
    assert!(late.is_empty(), "and announces nothing: {late:?}");
}

#[tokio::test]
async fn a_private_channel_left_empty_is_deleted_and_a_public_one_stays() {
    let stack = stack_with(Options::default()).await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let bob = sign_up(base, "Bob").await;
    let cy = sign_up(base, "Cy").await;

    // hideout: private; Bob, a second admin, made an invite and left: Ada is alone.
    let hideout = create_channel(base, &ada, "hideout", true).await;
    assert_eq!(
        join(
            base,
            &ada,
            json!({ "channelId": hideout, "userId": bob.id })
        )
        .await,
        201
    );
    set_role(base, &ada, &hideout, &bob, "admin").await;
    let bobs_code = invite(base, &bob, &hideout).await;
    let (status, _) = call(
        Method::DELETE,
        format!("{base}/api/members/{hideout}"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(status, 200);
    // plaza: public, Ada alone.
    let plaza = create_channel(base, &ada, "plaza", false).await;

    let nats = async_nats::connect(&stack.nats_url).await.unwrap();
    let mut live = nats.subscribe("chat.events.>").await.unwrap();
    nats.flush().await.unwrap();
    // No event by hand here: accounts publishes the deletion itself, end to end.
    delete_account(base, &ada).await;
    let seen = events(
        &mut live,
        &[hideout.as_str(), plaza.as_str()],
        Duration::from_secs(3),
    )
    .await;
    let subjects: Vec<(&str, &str)> = seen
        .iter()
        .map(|(s, e)| (s.as_str(), e["channelId"].as_str().unwrap()))
        .collect();
    assert!(
        subjects.contains(&("chat.events.channel.deleted", hideout.as_str())),
        "messaging hears of the deletion (and removes the threads): {subjects:?}"
    );
    assert!(
        !subjects.contains(&("chat.events.channel.deleted", plaza.as_str())),
        "{subjects:?}"
    );
    for channel in [&hideout, &plaza] {
        assert!(
            seen.iter().any(|(s, e)| s == "chat.events.member.removed"
                && e["channelId"] == channel.as_str()
                && e["userId"] == ada.id.as_str()),
            "member.removed for {channel}: {subjects:?}"
        );
    }

    let (status, body) = call(
        Method::POST,
        format!("{base}/api/members"),
        Some(&cy),
        Some(json!({ "channelId": hideout, "inviteCode": bobs_code })),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("CHANNEL_NOT_FOUND")),
        "the empty private channel is gone, so even a valid invite leads nowhere"
    );
    let (status, channel) = call(
        Method::GET,
        format!("{base}/api/channels/{plaza}"),
        Some(&cy),
        None,
    )
    .await;
    assert_eq!(
        (status, channel["name"].as_str()),
        (200, Some("plaza")),
        "the empty public channel stays"
    );
    let (_, listed) = call(
        Method::GET,
        format!("{base}/api/channels?limit=100"),
        Some(&cy),
        None,
    )
    .await;
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [plaza.as_str()]);
    assert_eq!(
        join(base, &cy, json!({ "channelId": plaza })).await,
        201,
        "and anyone may join it"
    );
    assert_eq!(members(base, &cy, &plaza).await, [entry(&cy, "member")]);
}
