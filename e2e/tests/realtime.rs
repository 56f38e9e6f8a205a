//! Realtime end to end: two realtime replicas (and two gateways) against one Redis and NATS,
//! with messaging stood in by a test server that stores and publishes events exactly as
//! messaging does. Every frame received is validated against `proto/frames`.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/ws.rs"]
mod ws;

use std::time::Duration;

use common::{ORIGIN, User, sign_up};
use futures_util::SinkExt as _;
use hilo_e2e::{Options, Stack};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    },
};
use ws::{FakeMessaging, Next, assert_silent, frame, join, next, open, send};

async fn start(env: &[(&str, &str)]) -> (Stack, FakeMessaging) {
    let (fake, url) = FakeMessaging::start(&hilo_e2e::infra_nats_url().unwrap()).await;
    let stack = common::stack_with(Options {
        gateways: 2,
        realtimes: 2,
        messaging_url: Some(url),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Options::default()
    })
    .await;
    (stack, fake)
}

fn seq(frame: &Value) -> i64 {
    frame["seq"].as_i64().unwrap()
}

#[tokio::test]
async fn realtime_upgrade_refusals_and_origin() {
    let (stack, _fake) = start(&[]).await;
    let user = sign_up(stack.gateway(), "Ana").await;
    let bearer = user.bearer();
    // Realtime itself, and the gateway's /ws, which hands the upgrade to realtime: the same
    // answers from both.
    let gateway = stack.gateway().replace("http://", "ws://");
    for base in [&stack.realtimes[0], &gateway] {
        // No upgrade: 426 in the API's error shape.
        let plain = common::http()
            .get(format!("{}/ws", base.replace("ws://", "http://")))
            .send()
            .await
            .unwrap();
        assert_eq!(plain.status(), 426, "{base}");
        let body: Value = plain.json().await.unwrap();
        assert_eq!(body["code"], "UPGRADE_REQUIRED");
        // An upgrade with a broken handshake: 400 (a well-formed one gets as far as the
        // session check).
        let handshake = |key: Option<&str>, version: &str| {
            let mut request = common::http()
                .get(format!("{}/ws", base.replace("ws://", "http://")))
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-version", version);
            if let Some(key) = key {
                request = request.header("sec-websocket-key", key);
            }
            request.send()
        };
        let good = "dGhlIHNhbXBsZSBub25jZQ==";
        for (key, version) in [
            (None, "13"),
            (Some("not-a-key"), "13"),
            (Some("dGhlIHNhbXBsZSBub25jZQ"), "13"),
            (Some("dGhlIHNhbXBsZSBub25jZR=="), "13"),
            (Some(good), "8"),
        ] {
            let answer = handshake(key, version).await.unwrap();
            assert_eq!(answer.status(), 400, "{base} {key:?} {version}");
            let body: Value = answer.json().await.unwrap();
            assert_eq!(body["code"], "BAD_REQUEST", "{base}");
        }
        assert_eq!(handshake(Some(good), "13").await.unwrap().status(), 401);
        // No session: 401; a bad origin: 403 (even with a session).
        assert_eq!(ws::connect(base, &[]).await.err(), Some(401), "{base}");
        for session in [("authorization", bearer.as_str()), ("cookie", &user.cookie)] {
            let evil = [session, ("origin", "https://evil.example")];
            assert_eq!(ws::connect(base, &evil).await.err(), Some(403), "{base}");
        }
        // A trusted origin with the cookie, and no origin at all (native apps), are accepted.
        let trusted = [("cookie", user.cookie.as_str()), ("origin", ORIGIN)];
        assert!(ws::connect(base, &trusted).await.is_ok(), "{base}");
        let native = [("authorization", bearer.as_str())];
        assert!(ws::connect(base, &native).await.is_ok(), "{base}");
    }
}

#[tokio::test]
async fn realtime_fanout_across_replicas_per_socket_and_typing() {
    let (stack, fake) = start(&[]).await;
    let ana = sign_up(stack.gateway(), "Ana").await;
    let (t1, t2) = (fake.thread("c1", &[&ana.id]), fake.thread("c1", &[&ana.id]));
    // Two sockets of one user on two replicas, each joining its own thread.
    let mut a = open(&stack.realtimes[0], &ana.bearer()).await;
    let mut b = open(&stack.realtimes[1], &ana.bearer()).await;
    assert_eq!(
        join(&mut a, &t1, None).await.last().unwrap()["type"],
        "JOINED_THREAD"
    );
    assert_eq!(
        join(&mut b, &t2, None).await.last().unwrap()["type"],
        "JOINED_THREAD"
    );
    let posted = fake.post(&t1, "hello one").await;
    assert_eq!(frame(&mut a).await, posted, "the full frame, byte for byte");
    let posted = fake.post(&t2, "hello two").await;
    assert_eq!(frame(&mut b).await, posted);
    assert_silent(&mut a, Duration::from_millis(300)).await;
    assert_silent(&mut b, Duration::from_millis(300)).await;

    // Typing reaches the thread's other subscribers (another replica too), not the sender.
    assert_eq!(
        join(&mut b, &t1, None).await.last().unwrap()["type"],
        "JOINED_THREAD"
    );
    send(&mut a, json!({"type": "TYPING", "threadId": t1})).await;
    let typing = frame(&mut b).await;
    assert_eq!(
        typing,
        json!({"type": "TYPING", "threadId": t1, "userId": ana.id})
    );
    assert_silent(&mut a, Duration::from_millis(300)).await;

    // Leaving stops delivery to that socket only.
    send(&mut b, json!({"type": "LEAVE_THREAD", "threadId": t1})).await;
    assert_eq!(frame(&mut b).await["type"], "LEFT_THREAD");
    let posted = fake.post(&t1, "after leave").await;
    assert_eq!(frame(&mut a).await, posted);
    assert_silent(&mut b, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn realtime_unauthorized_join_gets_error_and_never_frames() {
    let (stack, fake) = start(&[]).await;
    let ana = sign_up(stack.gateway(), "Ana").await;
    let eve = sign_up(stack.gateway(), "Eve").await;
    let thread = fake.thread("c1", &[&ana.id]);
    let mut socket = open(&stack.realtimes[0], &eve.bearer()).await;
    let refused = join(&mut socket, &thread, Some(0)).await;
    assert_eq!(refused.len(), 1, "no replay for a refused join");
    assert_eq!(refused[0]["type"], "ERROR");
    assert_eq!(refused[0]["code"], "FORBIDDEN");
    let unknown = join(&mut socket, "no-such-thread", None).await;
    assert_eq!(unknown[0]["code"], "NOT_FOUND");
    fake.post(&thread, "secret").await;
    send(&mut socket, json!({"type": "TYPING", "threadId": thread})).await;
    assert_eq!(frame(&mut socket).await["code"], "NOT_JOINED");
    assert_silent(&mut socket, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn realtime_thread_ids_are_canonical_however_they_are_spelled() {
    let (stack, fake) = start(&[]).await;
    let ana = sign_up(stack.gateway(), "Ana").await;
    let thread = fake.thread("c1", &[&ana.id]);
    let simple = thread.replace('-', "");
    let spellings = [
        thread.to_uppercase(),
        format!("{{{thread}}}"),
        format!("urn:uuid:{thread}"),
        simple.clone(),
    ];
    for spelling in spellings {
        let mut socket = open(&stack.realtimes[0], &ana.bearer()).await;
        let joined = join(&mut socket, &spelling, None).await;
        let last = joined.last().unwrap();
        assert_eq!(
            (last["type"].as_str(), last["threadId"].as_str()),
            (Some("JOINED_THREAD"), Some(thread.as_str())),
            "{spelling}"
        );
        // The same subscription as the canonical id's: events arrive, and leaving by
        // another spelling leaves it.
        let posted = fake.post(&thread, &spelling).await;
        assert_eq!(frame(&mut socket).await, posted, "{spelling}");
        send(
            &mut socket,
            json!({"type": "LEAVE_THREAD", "threadId": simple}),
        )
        .await;
        assert_eq!(frame(&mut socket).await["threadId"], thread.as_str());
        fake.post(&thread, "after leaving").await;
        assert_silent(&mut socket, Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn realtime_resume_on_another_replica_loses_and_duplicates_nothing() {
    let (mut stack, fake) = start(&[]).await;
    let ana = sign_up(stack.gateway(), "Ana").await;
    let thread = fake.thread("c1", &[&ana.id]);
    let mut socket = open(&stack.realtimes[0], &ana.bearer()).await;
    join(&mut socket, &thread, None).await;
    const TOTAL: i64 = 200;
    let publisher = {
        let (fake, thread) = (fake.clone(), thread.clone());
        tokio::spawn(async move {
            for i in 0..TOTAL {
                fake.post(&thread, &format!("m{i}")).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 40 {
        seen.push(seq(&frame(&mut socket).await));
    }
    stack.signal_realtime(0, "KILL").await.unwrap();
    while let Next::Frame(f) = next(&mut socket, Duration::from_secs(5)).await {
        seen.push(seq(&f));
    }
    let last = *seen.last().unwrap();
    let mut socket = open(&stack.realtimes[1], &ana.bearer()).await;
    for f in join(&mut socket, &thread, Some(last)).await {
        if f["type"] == "NEW_MESSAGE" {
            seen.push(seq(&f));
        }
    }
    while *seen.last().unwrap() < TOTAL {
        seen.push(seq(&frame(&mut socket).await));
    }
    publisher.await.unwrap();
    assert_eq!(
        seen,
        (1..=TOTAL).collect::<Vec<_>>(),
        "every seq once, in order"
    );
}

#[tokio::test]
async fn realtime_gaps_are_fetched_and_old_resumes_resync() {
    let (stack, fake) = start(&[("RESUME_MAX_EVENTS", "5")]).await;
    let ana = sign_up(stack.gateway(), "Ana").await;
    let thread = fake.thread("c1", &[&ana.id]);
    let mut socket = open(&stack.realtimes[0], &ana.bearer()).await;
    join(&mut socket, &thread, Some(0)).await;
    // Seq 1 live; 2 and 3 stored but their publications lost; 4 live -> 2, 3 fetched first.
    fake.post(&thread, "one").await;
    fake.store(&thread, "two");
    fake.store(&thread, "three");
    fake.post(&thread, "four").await;
    let got: Vec<i64> = [(); 4].iter().map(|_| 0).collect::<Vec<_>>();
    let mut seqs = got;
    for s in &mut seqs {
        *s = seq(&frame(&mut socket).await);
    }
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    // Further back than RESUME_MAX_EVENTS: RESYNC_REQUIRED, then live.
    for i in 0..6 {
        fake.store(&thread, &format!("more {i}"));
    }
    let mut other = open(&stack.realtimes[1], &ana.bearer()).await;
    let frames = join(&mut other, &thread, Some(1)).await;
    assert_eq!(
        frames[0],
        json!({"type": "RESYNC_REQUIRED", "threadId": thread, "lastSeq": 10})
    );
    assert_eq!(frames[1]["type"], "JOINED_THREAD");
    // Within the budget: exactly the missing events, then JOINED_THREAD.
    let mut near = open(&stack.realtimes[1], &ana.bearer()).await;
    let frames = join(&mut near, &thread, Some(7)).await;
    let replayed: Vec<i64> = frames
        .iter()
        .filter(|f| f["seq"].is_i64())
        .map(seq)
        .collect();
    assert_eq!(replayed, vec![8, 9, 10]);
    // Ahead of the thread (seqs it cannot have seen, up to the largest): nothing to replay,
    // and live delivery goes on from the thread's last seq.
    let mut ahead = open(&stack.realtimes[1], &ana.bearer()).await;
    let frames = join(&mut ahead, &thread, Some(i64::MAX)).await;
    assert_eq!(
        frames,
        vec![json!({"type": "JOINED_THREAD", "threadId": thread})]
    );
    fake.post(&thread, "eleven").await;
    assert_eq!(seq(&frame(&mut ahead).await), 11);
}

#[tokio::test]
async fn realtime_a_burst_from_nats_is_one_delivery_not_a_slow_consumer() {
    // A queue of 4 slots, and 300 events arriving at once (as when the relay publishes its
    // backlog after NATS came back): the socket keeps up, so it keeps its place.
    let (stack, fake) = start(&[("SEND_QUEUE", "4")]).await;
    let ana = sign_up(stack.gateway(), "Ana").await;
    let thread = fake.thread("c1", &[&ana.id]);
    let mut socket = open(&stack.realtimes[0], &ana.bearer()).await;
    join(&mut socket, &thread, None).await;
    const BURST: i64 = 300;
    let frames: Vec<Value> = (0..BURST)
        .map(|i| fake.store(&thread, &format!("burst {i}")))
        .collect();
    let nats = fake.nats();
    for frame in &frames {
        nats.publish(
            hilo_proto::subjects::thread(&thread),
            serde_json::to_vec(frame).unwrap().into(),
        )
        .await
        .unwrap();
    }
    nats.flush().await.unwrap();
    let mut seqs = Vec::new();
    while seqs.len() < BURST as usize {
        match next(&mut socket, Duration::from_secs(5)).await {
            Next::Frame(frame) => seqs.push(seq(&frame)),
            other => panic!("after {} events: {other:?}", seqs.len()),
        }
    }
    assert_eq!(seqs, (1..=BURST).collect::<Vec<_>>());
}

#[tokio::test]
async fn realtime_reads_are_asked_again_when_messaging_is_briefly_unavailable() {
    let (stack, fake) = start(&[]).await;
    let ana = sign_up(stack.gateway(), "Ana").await;
    let thread = fake.thread("c1", &[&ana.id]);
    fake.store(&thread, "one");
    fake.store(&thread, "two");
    // Two refusals in a row (the thread's first join asks for its last seq, then the replay):
    // the join goes through with its history.
    fake.fail_next_event_lists(2);
    let mut socket = open(&stack.realtimes[0], &ana.bearer()).await;
    let frames = join(&mut socket, &thread, Some(0)).await;
    let replayed: Vec<i64> = frames
        .iter()
        .filter(|f| f["seq"].is_i64())
        .map(seq)
        .collect();
    assert_eq!(replayed, vec![1, 2]);
    // Three in a row is an outage, not a blip: the client is told to try again.
    fake.fail_next_event_lists(3);
    let mut late = open(&stack.realtimes[1], &ana.bearer()).await;
    send(
        &mut late,
        json!({"type": "JOIN_THREAD", "threadId": thread, "sinceSeq": 0}),
    )
    .await;
    let refused = frame(&mut late).await;
    assert_eq!(refused["code"], "UNAVAILABLE", "{refused}");
}

/// Reads a socket until `until` is seen (or 10 s of silence); the seqs of its event frames
/// and its RESYNC_REQUIRED frames' `lastSeq`s, in arrival order (`-lastSeq` for the latter).
async fn read_until(socket: &mut ws::Ws, until: i64) -> Vec<i64> {
    let mut got = Vec::new();
    while got.last() != Some(&until) {
        match next(socket, Duration::from_secs(10)).await {
            Next::Frame(f) if f["type"] == "RESYNC_REQUIRED" => {
                got.push(-f["lastSeq"].as_i64().unwrap());
            }
            Next::Frame(f) => got.push(seq(&f)),
            other => panic!("after {got:?}: {other:?}"),
        }
    }
    got
}

#[tokio::test]
async fn realtime_events_out_of_order_and_a_failing_fetch_end_in_order_on_every_socket() {
    let (stack, fake) = start(&[]).await;
    let ana = sign_up(stack.gateway(), "Ana").await;
    let thread = fake.thread("c1", &[&ana.id]);
    // Three sockets: two on one replica (sharing its thread subscription), one on the other.
    let mut sockets = Vec::new();
    for base in [
        &stack.realtimes[0],
        &stack.realtimes[0],
        &stack.realtimes[1],
    ] {
        let mut socket = open(base, &ana.bearer()).await;
        join(&mut socket, &thread, None).await;
        sockets.push(socket);
    }
    // Messaging is down for a while; meanwhile 40 events are published out of order, and
    // four of them never reach NATS (their publication "lost").
    fake.fail_event_lists_for(Duration::from_millis(1500));
    const TOTAL: i64 = 40;
    for i in 1..=TOTAL {
        fake.store(&thread, &format!("m{i}"));
    }
    let lost = [3, 17, 18, 31];
    let mut order: Vec<i64> = (1..=TOTAL).filter(|s| !lost.contains(s)).collect();
    for pair in order.chunks_mut(3) {
        pair.reverse();
    }
    for s in order {
        fake.publish(&thread, s, None).await;
    }
    let expected: Vec<i64> = (1..=TOTAL).collect();
    for socket in &mut sockets {
        assert_eq!(
            read_until(socket, TOTAL).await,
            expected,
            "every event once, in seq order"
        );
        assert_silent(socket, Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn realtime_a_hole_that_cannot_be_filled_is_announced_never_skipped() {
    // The regression of a silent loss: a missing event whose fetch keeps failing used to be
    // skipped, the later event delivered, and the missing one dropped when it came.
    let (stack, fake) = start(&[("GAP_REPAIR_SECS", "1")]).await;
    let ana = sign_up(stack.gateway(), "Ana").await;
    let thread = fake.thread("c1", &[&ana.id]);
    let mut socket = open(&stack.realtimes[0], &ana.bearer()).await;
    join(&mut socket, &thread, None).await;
    fake.post(&thread, "one").await;
    assert_eq!(seq(&frame(&mut socket).await), 1);
    fake.fail_event_lists_for(Duration::from_secs(3));
    fake.store(&thread, "two, never published");
    fake.post(&thread, "three").await;
    // Nothing is sent past the hole while it may still be filled; then the client hears of
    // it (RESYNC_REQUIRED up to 2) before 3.
    assert_silent(&mut socket, Duration::from_millis(500)).await;
    assert_eq!(read_until(&mut socket, 3).await, vec![-2, 3]);
    // Late arrival of the missing event: not delivered after 3.
    fake.publish(&thread, 2, None).await;
    assert_silent(&mut socket, Duration::from_millis(300)).await;
    // Resuming (once messaging is back) gets it, exactly once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut again = open(&stack.realtimes[1], &ana.bearer()).await;
    let replayed: Vec<i64> = join(&mut again, &thread, Some(1))
        .await
        .iter()
        .filter(|f| f["seq"].is_i64())
        .map(seq)
        .collect();
    assert_eq!(replayed, vec![2, 3]);
}

#[tokio::test]
async fn realtime_slow_consumer_is_closed_1008_others_keep_receiving() {
    let (stack, fake) = start(&[("SEND_QUEUE", "64")]).await;
    let ana = sign_up(stack.gateway(), "Ana").await;
    let thread = fake.thread("c1", &[&ana.id]);
    let mut slow = open(&stack.realtimes[0], &ana.bearer()).await;
    let mut fast = open(&stack.realtimes[0], &ana.bearer()).await;
    join(&mut slow, &thread, None).await;
    join(&mut fast, &thread, None).await;
    let big = "x".repeat(16 * 1024);
    const TOTAL: usize = 1500;
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < TOTAL {
            match next(&mut fast, Duration::from_secs(10)).await {
                Next::Frame(_) => n += 1,
                other => panic!("the fast socket suffered: {other:?}"),
            }
        }
        n
    });
    for i in 0..TOTAL {
        fake.post(&thread, &format!("{i}{big}")).await;
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    assert_eq!(reader.await.unwrap(), TOTAL);
    // The slow socket now drains what the kernel held, then finds its end: the close frame
    // when the server could still write it, else the connection closed under it.
    let mut received = 0;
    let mut close = None;
    loop {
        match next(&mut slow, Duration::from_secs(5)).await {
            Next::Frame(_) => received += 1,
            Next::Closed(c) => {
                close = Some(c);
                break;
            }
            Next::Timeout => break,
        }
    }
    let close = close.expect("the slow socket was closed");
    assert!(received < TOTAL, "the slow socket did not get everything");
    if let Some((code, reason)) = close {
        assert_eq!(code, 1008);
        assert!(reason.contains("overflow"), "{reason}");
    }
    let logs = stack.logs().unwrap();
    assert!(
        logs.lines()
            .any(|l| l.contains("\"code\":1008") && l.contains("send queue overflow")),
        "the server closed it with 1008"
    );
}

#[tokio::test]
async fn realtime_malformed_binary_and_oversized_frames() {
    let (stack, _fake) = start(&[]).await;
    let ana = sign_up(stack.gateway(), "Ana").await;
    let mut socket = open(&stack.realtimes[0], &ana.bearer()).await;
    let cases: Vec<(Message, &str)> = vec![
        (
            Message::binary(vec![1, 2, 3]),
            "Binary messages not supported",
        ),
        (Message::text("{not json"), "Invalid JSON"),
        (Message::text("null"), "Unknown message type: undefined"),
        (
            Message::text(r#"{"threadId":"x"}"#),
            "Unknown message type: undefined",
        ),
        (
            Message::text(r#"{"type":"NOPE"}"#),
            "Unknown message type: NOPE",
        ),
        (
            Message::text(r#"{"type":"JOIN_THREAD"}"#),
            "threadId is required",
        ),
        (
            Message::text(r#"{"type":"LEAVE_THREAD","threadId":""}"#),
            "threadId is required",
        ),
    ];
    for (message, expected) in cases {
        socket.send(message).await.unwrap();
        let reply = frame(&mut socket).await;
        assert_eq!(reply, json!({"type": "ERROR", "message": expected}));
    }
    assert!(!ws::client_frame_is_valid(&json!({"type": "JOIN_THREAD"})));
    assert!(ws::client_frame_is_valid(
        &json!({"type": "JOIN_THREAD", "threadId": "t", "sinceSeq": 3})
    ));
    socket
        .send(Message::text(format!(
            r#"{{"type":"JOIN_THREAD","threadId":"{}"}}"#,
            "x".repeat(70 * 1024)
        )))
        .await
        .unwrap();
    match next(&mut socket, Duration::from_secs(5)).await {
        Next::Closed(Some((code, _))) => assert_eq!(code, 1009),
        other => panic!("expected close 1009, got {other:?}"),
    }
    // Past what the replica reads at all (a 1 MiB frame), and text that is not UTF-8: the
    // close codes of RFC 6455, not a dropped connection.
    let mut huge = open(&stack.realtimes[0], &ana.bearer()).await;
    // The write may be cut short when the server closes: what matters is the close it sent.
    let _ = huge.send(Message::text("x".repeat(1 << 20))).await;
    match next(&mut huge, Duration::from_secs(5)).await {
        Next::Closed(Some((code, _))) => assert_eq!(code, 1009),
        other => panic!("expected close 1009 for 1 MiB, got {other:?}"),
    }
    let mut garbled = open(&stack.realtimes[0], &ana.bearer()).await;
    let not_utf8 = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    garbled.send(Message::Frame(not_utf8)).await.unwrap();
    match next(&mut garbled, Duration::from_secs(5)).await {
        Next::Closed(Some((code, _))) => assert_eq!(code, 1007),
        other => panic!("expected close 1007, got {other:?}"),
    }
    // The replica is alive and well.
    let mut again = open(&stack.realtimes[0], &ana.bearer()).await;
    send(&mut again, json!({"type": "LEAVE_THREAD", "threadId": "t"})).await;
    assert_eq!(frame(&mut again).await["type"], "LEFT_THREAD");
}

/// Asserts the server closed `ws` with 1008 "session ended" (within 5 s).
async fn assert_session_ended(ws: &mut ws::Ws) {
    match next(ws, Duration::from_secs(5)).await {
        Next::Closed(Some((code, reason))) => {
            assert_eq!((code, reason.as_str()), (1008, "session ended"));
        }
        other => panic!("expected the socket closed, got {other:?}"),
    }
}

#[tokio::test]
async fn realtime_membership_loss_sign_out_and_user_deletion_act_at_once() {
    // The periodic session re-check is off (an hour): only the pushed events act in time.
    let (stack, fake) = start(&[("SESSION_CHECK_SECS", "3600")]).await;
    let gateway = stack.gateway();
    let ana = sign_up(gateway, "Ana").await;
    let bob: User = sign_up(gateway, "Bob").await;
    let thread = fake.thread("chan-x", &[&ana.id, &bob.id]);
    let mut a = open(&stack.realtimes[0], &ana.bearer()).await;
    let mut b = open(&stack.realtimes[1], &bob.bearer()).await;
    join(&mut a, &thread, None).await;
    join(&mut b, &thread, None).await;
    // Bob removed from the channel: his socket leaves the thread at once.
    let removed =
        json!({"type": "member.removed", "id": "e1", "channelId": "chan-x", "userId": bob.id});
    fake.nats()
        .publish(
            hilo_proto::subjects::MEMBER_REMOVED,
            removed.to_string().into(),
        )
        .await
        .unwrap();
    assert_eq!(
        frame(&mut b).await,
        json!({"type": "LEFT_THREAD", "threadId": thread, "code": "FORBIDDEN"})
    );
    let posted = fake.post(&thread, "bob is gone").await;
    assert_eq!(frame(&mut a).await, posted);
    assert_silent(&mut b, Duration::from_millis(300)).await;

    // Ana also has a phone session, with a socket on the other replica.
    let phone = common::sign_in(gateway, &ana).await;
    let mut a_phone = open(&stack.realtimes[1], &phone.bearer()).await;
    join(&mut a_phone, &thread, None).await;
    // She signs out on the first device: that socket is closed, the phone's is not.
    let (status, _) = common::call(
        reqwest::Method::POST,
        format!("{}/api/auth/sign-out", stack.gateways[1]),
        Some(&ana),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200);
    assert_session_ended(&mut a).await;
    let posted = fake.post(&thread, "still there?").await;
    assert_eq!(frame(&mut a_phone).await, posted);
    // The replica that knew the ended session forgot it: a new socket with it is refused.
    let bearer = ana.bearer();
    assert_eq!(
        ws::connect(&stack.realtimes[0], &[("authorization", &bearer)])
            .await
            .err(),
        Some(401)
    );
    // Ana deletes her account: every socket of hers is closed; Bob's stays open.
    let (status, _) = common::call(
        reqwest::Method::DELETE,
        format!("{gateway}/api/users/{}", ana.id),
        Some(&phone),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_session_ended(&mut a_phone).await;
    assert_silent(&mut b, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn realtime_trace_continues_from_nats_and_sigterm_closes_1012() {
    // Deliveries are logged at debug level.
    let (mut stack, fake) = start(&[("RUST_LOG", "info,hilo_realtime::pump=debug")]).await;
    let ana = sign_up(stack.gateway(), "Ana").await;
    let thread = fake.thread("c1", &[&ana.id]);
    let mut socket = open(&stack.realtimes[0], &ana.bearer()).await;
    join(&mut socket, &thread, None).await;
    let trace_id = format!("{:032x}", rand::random::<u128>() | 1);
    let frame_ = fake.store(&thread, "traced");
    fake.publish(
        &thread,
        seq(&frame_),
        Some(&format!("00-{trace_id}-00f067aa0ba902b7-01")),
    )
    .await;
    assert_eq!(frame(&mut socket).await, frame_);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = stack.logs().unwrap();
    assert!(
        logs.lines()
            .any(|l| l.contains(&trace_id) && l.contains("thread events fanned out")),
        "the delivery span continues the publisher's trace"
    );
    stack.signal_realtime(0, "TERM").await.unwrap();
    match next(&mut socket, Duration::from_secs(5)).await {
        Next::Closed(Some((code, reason))) => {
            assert_eq!(code, 1012);
            assert_eq!(reason, "reconnect");
        }
        other => panic!("expected 1012, got {other:?}"),
    }
    let status = tokio::time::timeout(Duration::from_secs(10), stack.wait_realtime(0))
        .await
        .expect("exits within the grace period")
        .unwrap();
    assert!(status.success());
}
