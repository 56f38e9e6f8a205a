//! Realtime against the real messaging and channels: a message posted through one gateway
//! reaches a socket on the other realtime replica (also through a gateway's `/ws`), with one
//! trace from the HTTP request to the delivery as exported over OTLP; removal from the channel
//! ends delivery; latencies are exposed as Prometheus histograms on the admin ports.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/otlp.rs"]
mod otlp;
#[path = "common/ws.rs"]
mod ws;

use std::time::Duration;

use common::{User, call, create_thread, sign_up};
use hilo_e2e::{Options, Stack};
use otlp::{Collector, ancestry, names};
use reqwest::Method;
use serde_json::{Value, json};
use ws::{assert_silent, frame, join, open};

/// Two gateways and two realtime replicas, every service exporting its spans to `collector`.
async fn start(collector: &Collector) -> Stack {
    common::stack_with(Options {
        gateways: 2,
        realtimes: 2,
        env: collector.env(),
        ..Options::default()
    })
    .await
}

/// A private channel of `owner` with `member`, and a thread in it.
async fn channel_with_thread(base: &str, owner: &User, member: &User) -> (String, String) {
    let body = json!({ "name": "room", "isPrivate": true });
    let (_, channel) = call(
        Method::POST,
        format!("{base}/api/channels"),
        Some(owner),
        Some(body),
    )
    .await;
    let channel_id = channel["id"].as_str().unwrap().to_owned();
    let body = json!({ "channelId": channel_id, "userId": member.id });
    let (status, _) = call(
        Method::POST,
        format!("{base}/api/members"),
        Some(owner),
        Some(body),
    )
    .await;
    assert_eq!(status, 201);
    let thread = create_thread(base, owner, &channel_id, "topic").await;
    (channel_id, thread)
}

#[tokio::test]
async fn realtime_live_post_on_gateway_a_reaches_realtime_b_with_one_trace() {
    let collector = Collector::start().await;
    let stack = start(&collector).await;
    let (a, b) = (&stack.gateways[0], &stack.gateways[1]);
    let ana = sign_up(a, "Ana").await;
    let bob = sign_up(a, "Bob").await;
    let eve = sign_up(a, "Eve").await;
    let (channel, thread) = channel_with_thread(a, &ana, &bob).await;

    // Bob on realtime B directly; Ana through gateway A's /ws (handed to realtime A).
    let mut bob_ws = open(&stack.realtimes[1], &bob.bearer()).await;
    assert_eq!(
        join(&mut bob_ws, &thread, None).await[0]["type"],
        "JOINED_THREAD"
    );
    let mut ana_ws = open(&a.replace("http://", "ws://"), &ana.bearer()).await;
    assert_eq!(
        join(&mut ana_ws, &thread, Some(0)).await[0]["type"],
        "JOINED_THREAD"
    );
    // Eve is not a member: refused, and never a frame.
    // Presence: Bob has a socket open, so his profile says so (through the other gateway).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, bob_view) = call(
        Method::GET,
        format!("{b}/api/users/{}", bob.id),
        Some(&ana),
        None,
    )
    .await;
    assert_eq!(bob_view["profile"]["isOnline"], true, "{bob_view}");
    let (_, eve_view) = call(
        Method::GET,
        format!("{b}/api/users/{}", eve.id),
        Some(&ana),
        None,
    )
    .await;
    assert_eq!(eve_view["profile"]["isOnline"], false);
    let mut eve_ws = open(&stack.realtimes[0], &eve.bearer()).await;
    let refused = join(&mut eve_ws, &thread, None).await;
    assert_eq!(refused[0]["type"], "ERROR");
    assert!(matches!(
        refused[0]["code"].as_str(),
        Some("FORBIDDEN" | "NOT_FOUND")
    ));

    let response = common::http()
        .post(format!("{a}/api/messages"))
        .header("authorization", ana.bearer())
        .json(&json!({ "threadId": thread, "content": "hello, live" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let message: Value = response.json().await.unwrap();
    for socket in [&mut bob_ws, &mut ana_ws] {
        let pushed = frame(socket).await;
        assert_eq!(pushed["type"], "NEW_MESSAGE");
        assert_eq!(pushed["threadId"], thread);
        assert_eq!(pushed["seq"], 1);
        assert_eq!(pushed["payload"]["id"], message["id"]);
        assert_eq!(pushed["payload"]["content"], "hello, live");
        assert_eq!(pushed["payload"]["sender"]["id"], ana.id);
    }
    assert_silent(&mut eve_ws, Duration::from_millis(300)).await;

    // One trace, as exported over OTLP: the gateway's request, messaging's RPC, the outbox
    // publish to NATS, then the delivery on each realtime replica.
    let post = collector
        .wait_for("gateway's POST /api/messages", |spans| {
            spans
                .iter()
                .find(|s| {
                    s.service == "hilo-gateway" && s.attribute("path") == Some("/api/messages")
                })
                .cloned()
        })
        .await;
    let deliveries = collector
        .wait_for("the post's delivery on both replicas", |spans| {
            let chains: Vec<Vec<String>> = spans
                .iter()
                .filter(|s| s.name == "deliver" && s.trace_id == post.trace_id)
                .filter_map(|s| ancestry(spans, s).map(|chain| names(&chain)))
                .collect();
            (chains.len() == 2).then_some(chains)
        })
        .await;
    for chain in deliveries {
        assert_eq!(
            chain,
            [
                "hilo-realtime/deliver",
                "hilo-messaging/publish",
                "hilo-messaging/request",
                "hilo-gateway/request",
            ]
        );
    }

    // Bob removed from the channel: his subscription ends at once.
    let (status, _) = call(
        Method::DELETE,
        format!("{a}/api/members/{channel}/{}", bob.id),
        Some(&ana),
        None,
    )
    .await;
    assert!(status == 200 || status == 204, "{status}");
    let left = frame(&mut bob_ws).await;
    assert_eq!(
        left,
        json!({"type": "LEFT_THREAD", "threadId": thread, "code": "FORBIDDEN"})
    );
    let (status, _) = call(
        Method::POST,
        format!("{a}/api/messages"),
        Some(&ana),
        Some(json!({ "threadId": thread, "content": "after bob" })),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(frame(&mut ana_ws).await["seq"], 2);
    assert_silent(&mut bob_ws, Duration::from_millis(300)).await;
    let refused = join(&mut bob_ws, &thread, None).await;
    assert_eq!(refused[0]["type"], "ERROR");

    // The thread is deleted: its last event, then the subscription ends (an unasked LEFT_THREAD),
    // and it cannot be joined again.
    let (status, _) = call(
        Method::DELETE,
        format!("{a}/api/threads/{thread}"),
        Some(&ana),
        None,
    )
    .await;
    assert!(status == 200 || status == 204, "{status}");
    let deleted = frame(&mut ana_ws).await;
    assert_eq!(
        (deleted["type"].as_str(), deleted["seq"].as_i64()),
        (Some("THREAD_DELETED"), Some(3))
    );
    assert_eq!(
        frame(&mut ana_ws).await,
        json!({"type": "LEFT_THREAD", "threadId": thread, "code": "NOT_FOUND"})
    );
    let refused = join(&mut ana_ws, &thread, None).await;
    assert_eq!(
        (refused[0]["type"].as_str(), refused[0]["code"].as_str()),
        (Some("ERROR"), Some("NOT_FOUND"))
    );

    // The WebSocket hop: Ana's socket came through gateway A, and her JOIN_THREAD (a child of
    // the upgrade request) and its authorization by messaging are in that trace.
    let chain = collector
        .wait_for("Ana's join, traced from gateway A's /ws", |spans| {
            spans
                .iter()
                .filter(|s| {
                    s.attribute("path")
                        .is_some_and(|p| p.ends_with("/AuthorizeThread"))
                })
                .filter_map(|s| ancestry(spans, s))
                .find(|chain| {
                    chain.last().is_some_and(|root| {
                        root.service == "hilo-gateway" && root.attribute("path") == Some("/ws")
                    })
                })
                .map(|chain| names(&chain))
        })
        .await;
    assert_eq!(
        chain,
        [
            "hilo-messaging/request",
            "hilo-realtime/command",
            "hilo-realtime/request",
            "hilo-gateway/request",
        ]
    );
}

/// Operators read latencies as Prometheus histograms, which add up across replicas (summaries
/// do not): delivery, publish lag, RPC and HTTP latencies all have buckets, scraped from every
/// process on the metrics port the README documents. The only test on the well-known ports
/// (gateway 8080, realtime 8090, gRPC 50051-50054, metrics 9151-9154, 9180, 9190): it cannot
/// run beside `scripts/up.sh`.
#[tokio::test]
async fn realtime_live_latencies_are_prometheus_histograms() {
    let stack = common::stack_with(Options {
        realtimes: 1,
        well_known_ports: true,
        ..Options::default()
    })
    .await;
    // The README's "What runs where".
    let documented = |process: &str| match process {
        "gateway-0" => 9180,
        "accounts" => 9151,
        "channels" => 9152,
        "messaging" => 9153,
        "uploads" => 9154,
        "realtime-0" => 9190,
        other => panic!("no documented port for {other}"),
    };
    assert_eq!(stack.admins.len(), 6, "{:?}", stack.admins);
    let base = &stack.gateways[0];
    let ana = sign_up(base, "Ana").await;
    let bob = sign_up(base, "Bob").await;
    let (_, thread) = channel_with_thread(base, &ana, &bob).await;
    let mut ws = open(&stack.realtimes[0], &bob.bearer()).await;
    assert_eq!(
        join(&mut ws, &thread, None).await[0]["type"],
        "JOINED_THREAD"
    );
    // One delivery in eight is timed: eight consecutive seqs hold one for any socket.
    for i in 0..8 {
        let (status, _) = call(
            Method::POST,
            format!("{base}/api/messages"),
            Some(&ana),
            Some(json!({ "threadId": thread, "content": format!("m{i}") })),
        )
        .await;
        assert_eq!(status, 201);
    }
    for seq in 1..=8 {
        assert_eq!(frame(&mut ws).await["seq"], seq);
    }
    // And one refused call: a thread that does not exist (NOT_FOUND, code 5).
    let (status, _) = call(
        Method::POST,
        format!("{base}/api/messages"),
        Some(&ana),
        Some(json!({ "threadId": uuid::Uuid::now_v7().to_string(), "content": "lost" })),
    )
    .await;
    assert_eq!(status, 404);
    // Uploads answers too (its limits).
    let (status, _) = call(
        Method::GET,
        format!("{base}/api/uploads/info"),
        Some(&ana),
        None,
    )
    .await;
    assert_eq!(status, 200);
    const POST: &str = "rpc_method=\"/hilo.messaging.v1.MessagingService/PostMessage\"";
    const SERVED: &str = "rpc_server_call_duration_seconds_bucket{";
    // Each series is a line holding all of these.
    let expected: [(&str, &[&str]); 24] = [
        ("gateway-0", &["redis_connected 1"]),
        ("realtime-0", &["redis_ping_seconds "]),
        // Every process: process metrics, help text, and (gRPC) its calls by status code.
        ("accounts", &["process_resident_memory_bytes "]),
        ("channels", &["process_open_fds "]),
        ("uploads", &["# HELP process_cpu_seconds_total "]),
        (
            "accounts",
            &[SERVED, "ExchangeSession", "rpc_grpc_status_code=\"0\""],
        ),
        (
            "channels",
            &[SERVED, "CheckPermission", "rpc_grpc_status_code=\"0\""],
        ),
        (
            "uploads",
            &[SERVED, "GetLimits", "rpc_grpc_status_code=\"0\""],
        ),
        ("accounts", &["db_pool_connections{", "state=\"in_use\""]),
        ("channels", &["nats_connected 1"]),
        // Pools, connections and work in flight.
        ("messaging", &["db_pool_connections{", "state=\"idle\""]),
        ("realtime-0", &["nats_connected 1"]),
        ("gateway-0", &["http_server_active_requests "]),
        ("messaging", &["rpc_server_active_calls "]),
        // Process metrics and help text on every port.
        ("gateway-0", &["process_resident_memory_bytes "]),
        ("realtime-0", &["process_open_fds "]),
        ("messaging", &["# HELP rpc_server_call_duration_seconds "]),
        (
            "realtime-0",
            &["realtime_delivery_seconds_bucket{", "le=\"+Inf\""],
        ),
        (
            "messaging",
            &["relay_publish_lag_seconds_bucket{", "le=\"+Inf\""],
        ),
        // RED per method, server side and in the caller: successes and errors by code.
        (
            "messaging",
            &[
                "rpc_server_call_duration_seconds_bucket{",
                POST,
                "rpc_grpc_status_code=\"0\"",
            ],
        ),
        (
            "messaging",
            &[
                "rpc_server_call_duration_seconds_bucket{",
                POST,
                "rpc_grpc_status_code=\"5\"",
            ],
        ),
        (
            "gateway-0",
            &[
                "rpc_client_call_duration_seconds_bucket{",
                POST,
                "rpc_grpc_status_code=\"0\"",
            ],
        ),
        (
            "gateway-0",
            &[
                "rpc_client_call_duration_seconds_bucket{",
                POST,
                "rpc_grpc_status_code=\"5\"",
            ],
        ),
        ("gateway-0", &["server_request_duration_seconds_bucket{"]),
    ];
    for (process, series) in expected {
        let url = format!("http://127.0.0.1:{}/metrics", documented(process));
        assert_eq!(
            stack.admins[process],
            format!("http://127.0.0.1:{}", documented(process))
        );
        let found = |body: &str| {
            body.lines()
                .any(|line| series.iter().all(|part| line.contains(part)))
        };
        // Samples reach the buckets at the next upkeep (every second).
        let mut body = String::new();
        for _ in 0..50 {
            body = common::http()
                .get(&url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if found(&body) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(found(&body), "{process}: no {series:?} in\n{body}");
        assert!(
            !body.contains("quantile="),
            "{process}: summaries instead of histograms"
        );
    }
}
