//! The gRPC APIs called directly, as an internal system would: every user-facing RPC verifies
//! the caller's access token itself; health and reflection answer, and a Python grpcio client
//! with reflection alone can call every service.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use common::*;
use ed25519_dalek::{SigningKey, pkcs8::EncodePrivateKey};
use hilo_proto::accounts::v1::{self as pb, accounts_service_client::AccountsServiceClient};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tonic::{Code, Request, transport::Channel};

async fn client(url: &str) -> AccountsServiceClient<Channel> {
    AccountsServiceClient::connect(url.to_owned())
        .await
        .expect("accounts answers")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(sub: &str, aud: &str, exp: i64) -> serde_json::Value {
    json!({ "sub": sub, "sid": "", "iss": "hilo", "aud": aud, "iat": now() - 5, "exp": exp })
}

fn eddsa(pem: &str, claims: &serde_json::Value) -> String {
    let key = EncodingKey::from_ed_pem(pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &key).unwrap()
}

fn get_user(user_id: &str, token: Option<&str>) -> Request<pb::GetUserRequest> {
    let mut request = Request::new(pb::GetUserRequest {
        user_id: user_id.to_owned(),
    });
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

#[tokio::test]
async fn accounts_rpcs_refuse_missing_forged_expired_and_wrong_algorithm_tokens() {
    let stack = stack().await;
    let user = sign_up(stack.gateway(), "Target").await;
    let mut accounts = client(&stack.accounts).await;

    // A token made with the real key is accepted: the refusals below are about the token.
    let valid = eddsa(
        &stack.private_key_pem,
        &claims(&user.id, "hilo", now() + 60),
    );
    let found = accounts
        .get_user(get_user(&user.id, Some(&valid)))
        .await
        .expect("a valid token works");
    assert_eq!(
        found.into_inner().user.unwrap().email.as_deref(),
        Some(user.email.as_str())
    );

    let other_key = SigningKey::from_bytes(&[7u8; 32])
        .to_pkcs8_pem(Default::default())
        .unwrap();
    let public_pem = accounts
        .get_public_key(pb::GetPublicKeyRequest {})
        .await
        .unwrap()
        .into_inner()
        .public_key_pem;
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(&user.id, "hilo", now() + 60),
        &EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap();
    let unsigned = {
        let parts: Vec<&str> = valid.split('.').collect();
        format!("{}.{}.", parts[0], parts[1])
    };
    let cases = [
        ("no token", None),
        ("garbage", Some("not-a-jwt".to_owned())),
        (
            "forged with another key",
            Some(eddsa(&other_key, &claims(&user.id, "hilo", now() + 60))),
        ),
        (
            "expired",
            Some(eddsa(
                &stack.private_key_pem,
                &claims(&user.id, "hilo", now() - 120),
            )),
        ),
        (
            "wrong audience",
            Some(eddsa(
                &stack.private_key_pem,
                &claims(&user.id, "elsewhere", now() + 60),
            )),
        ),
        ("HS256 keyed with the public key", Some(hs256)),
        ("signature stripped", Some(unsigned)),
    ];
    for (what, token) in cases {
        let refused = accounts
            .get_user(get_user(&user.id, token.as_deref()))
            .await
            .expect_err(what);
        assert_eq!(refused.code(), Code::Unauthenticated, "{what}");
    }

    let mut update = Request::new(pb::UpdateUserRequest {
        user_id: user.id.clone(),
        name: Some("x".into()),
        ..Default::default()
    });
    update
        .metadata_mut()
        .insert("authorization", "Bearer forged".parse().unwrap());
    assert_eq!(
        accounts.update_user(update).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let list = accounts
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(list.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_valid_token_of_one_user_cannot_change_another() {
    let stack = stack().await;
    let ada = sign_up(stack.gateway(), "Ada").await;
    let bob = sign_up(stack.gateway(), "Bob").await;
    let mut accounts = client(&stack.accounts).await;
    let bobs_token = eddsa(&stack.private_key_pem, &claims(&bob.id, "hilo", now() + 60));
    let mut request = Request::new(pb::DeleteUserRequest {
        user_id: ada.id.clone(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {bobs_token}").parse().unwrap(),
    );
    assert_eq!(
        accounts.delete_user(request).await.unwrap_err().code(),
        Code::PermissionDenied
    );
}

#[tokio::test]
async fn health_and_reflection_answer_on_accounts() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let stack = stack().await;
    let channel = Channel::from_shared(stack.accounts.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();

    let mut health = HealthClient::new(channel.clone());
    for service in ["", "hilo.accounts.v1.AccountsService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let mut stream = reflection
        .server_reflection_info(tokio_stream_once(request))
        .await
        .unwrap()
        .into_inner();
    let reply = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("no service list")
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    // What this server serves, and nothing it does not (the other Hilo services).
    assert_eq!(
        names,
        ["grpc.health.v1.Health", "hilo.accounts.v1.AccountsService"],
    );

    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest as AlphaRequest,
        server_reflection_client::ServerReflectionClient as AlphaClient,
        server_reflection_request::MessageRequest as AlphaMessage,
    };
    let request = AlphaRequest {
        host: String::new(),
        message_request: Some(AlphaMessage::ListServices(String::new())),
    };
    let mut alpha = AlphaClient::new(channel);
    let mut stream = alpha
        .server_reflection_info(tokio_stream_once(request))
        .await
        .unwrap()
        .into_inner();
    assert!(
        stream
            .message()
            .await
            .unwrap()
            .unwrap()
            .message_response
            .is_some(),
        "v1alpha answers too"
    );
}

/// A request stream of one message.
fn tokio_stream_once<T: Send + 'static>(
    item: T,
) -> impl tonic::codegen::tokio_stream::Stream<Item = T> + Send + 'static {
    tonic::codegen::tokio_stream::iter([item])
}

/// Every service as a Python grpcio client sees it with reflection alone (no .proto files):
/// health SERVING, only its own service listed, one call with an access token answered, the
/// same call without one refused. The client's venv is prepared by scripts/test.sh.
#[tokio::test]
async fn every_service_works_for_a_client_that_only_has_reflection() {
    let python = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../.infra/grpc-venv/bin/python"
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/grpc_reflection_client.py"
    );
    assert!(
        std::path::Path::new(python).exists(),
        "no {python}: scripts/test.sh prepares it"
    );
    let stack = stack().await;
    let ada = sign_up(stack.gateway(), "Ada").await;
    let channel = create_channel(stack.gateway(), &ada, "reflected", false).await;
    let token = access_token(&stack.private_key_pem, &ada.id);
    let calls = [
        (
            &stack.accounts,
            "hilo.accounts.v1.AccountsService",
            "GetUser",
            json!({"userId": ada.id}),
        ),
        (
            &stack.channels,
            "hilo.channels.v1.ChannelsService",
            "ListJoinedChannels",
            json!({}),
        ),
        (
            &stack.messaging,
            "hilo.messaging.v1.MessagingService",
            "ListThreads",
            json!({"channelId": channel}),
        ),
        (
            &stack.uploads,
            "hilo.uploads.v1.UploadsService",
            "GetLimits",
            json!({}),
        ),
    ];
    for (url, service, method, request) in calls {
        let addr = url.trim_start_matches("http://");
        let output = tokio::process::Command::new(python)
            .args([script, addr, service, method, &request.to_string(), &token])
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{service}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(seen["health"], "SERVING", "{service}: {seen}");
        assert_eq!(
            seen["services"],
            json!(["grpc.health.v1.Health", service]),
            "{seen}"
        );
        assert_eq!(seen["authorized"], "OK", "{service}: {seen}");
        assert_eq!(seen["refused"], "UNAUTHENTICATED", "{service}: {seen}");
        if method == "GetUser" {
            assert_eq!(seen["response"]["user"]["id"], ada.id.as_str(), "{seen}");
        }
    }
}

#[tokio::test]
async fn accounts_throttles_sign_ins_per_email_and_per_caller_by_itself() {
    let env = vec![(
        "AUTH_THROTTLE".to_owned(),
        "email=3/3600s,caller=5/3600s".to_owned(),
    )];
    let stack = stack_with(hilo_e2e::Options {
        env,
        ..Default::default()
    })
    .await;
    let mut accounts = client(&stack.accounts).await;
    let sign_in = |email: &str, ip: Option<String>| pb::SignInRequest {
        email: email.to_owned(),
        password: "wrong password".to_owned(),
        client: Some(pb::ClientInfo {
            ip_address: ip,
            user_agent: None,
        }),
    };
    // One account guessed at from ever new addresses (as a caller may claim): its budget holds.
    let target = "target@example.com";
    let mut codes = Vec::new();
    for i in 0..4 {
        let ip = Some(format!("192.0.2.{i}"));
        codes.push(
            accounts
                .sign_in(sign_in(target, ip))
                .await
                .unwrap_err()
                .code(),
        );
    }
    assert_eq!(
        codes,
        [
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::ResourceExhausted
        ]
    );
    // Through the gateway too: 429.
    let (status, body) = call(
        reqwest::Method::POST,
        format!("{}/api/auth/sign-in/email", stack.gateway()),
        None,
        Some(json!({ "email": target, "password": "wrong password" })),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("TOO_MANY_REQUESTS"))
    );

    // One caller (no client address: its own, 127.0.0.1, which the gateway's attempt above
    // also came from) trying many accounts: its budget holds.
    let mut codes = Vec::new();
    for i in 0..5 {
        let email = format!("someone-{i}@example.com");
        codes.push(
            accounts
                .sign_in(sign_in(&email, None))
                .await
                .unwrap_err()
                .code(),
        );
    }
    assert_eq!(codes[..4], [Code::Unauthenticated; 4]);
    assert_eq!(codes[4], Code::ResourceExhausted);
}
