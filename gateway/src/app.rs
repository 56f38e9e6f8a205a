//! Builds the gateway: clients (once), shared state, the router and its layers, and serves it.

use std::{net::SocketAddr, ops::Deref, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    serve::ListenerExt as _,
};
use hilo_kit::{
    admin,
    config::RateLimit,
    grpc::{self, RetryingChannel},
    shutdown::CancellationToken,
    telemetry,
};
use hilo_proto::{
    accounts::v1::accounts_service_client::AccountsServiceClient,
    channels::v1::channels_service_client::ChannelsServiceClient,
    messaging::v1::messaging_service_client::MessagingServiceClient,
    uploads::v1::uploads_service_client::UploadsServiceClient,
};
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
};

use crate::{
    auth::Cookies,
    config::Config,
    error::{ApiError, default_code},
    routes,
};

/// What handlers share; built once, cloned per request (one `Arc`).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub accounts: AccountsServiceClient<RetryingChannel>,
    pub channels: ChannelsServiceClient<RetryingChannel>,
    pub messaging: MessagingServiceClient<RetryingChannel>,
    /// Health of each service, by name, for `/readyz`.
    pub health: Vec<(&'static str, HealthClient<RetryingChannel>)>,
    /// Its calls may last as long as an upload request (UPLOAD_TIMEOUT_SECS).
    pub uploads: UploadsServiceClient<Channel>,
    pub redis: redis::aio::ConnectionManager,
    pub cookies: Cookies,
    /// BETTER_AUTH_URL without a trailing slash: OAuth redirect URIs and default redirects.
    pub base_url: String,
    pub trusted_origins: Vec<String>,
    pub auth_rate_limit: RateLimit,
    /// RATE_LIMITS: the budgets of app routes.
    pub budgets: crate::ratelimit::Budgets,
    /// TRUSTED_PROXY_HOPS: which `X-Forwarded-For` entry is the client.
    pub proxy_hops: u8,
    /// `host:port` of the realtime replica `/ws` is handed to.
    pub realtime: Option<String>,
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// A built, not yet serving, gateway.
pub struct App {
    listener: TcpListener,
    admin_addr: SocketAddr,
    router: Router,
}

impl App {
    /// Validates configuration, connects clients, binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let secret = config.secret()?;
        let accounts = grpc::connect(&config.accounts_url)?;
        let channels = grpc::connect(&config.channels_url)?;
        let messaging = grpc::connect(&config.messaging_url)?;
        let uploads = grpc::connect_with_timeout(&config.uploads_url, config.upload_timeout())?;
        let redis = hilo_kit::session::connect_redis(&config.redis_url).await?;
        let state = AppState(Arc::new(Shared {
            accounts: AccountsServiceClient::new(accounts.clone()),
            channels: ChannelsServiceClient::new(channels.clone()),
            messaging: MessagingServiceClient::new(messaging.clone()),
            health: vec![
                ("accounts", HealthClient::new(accounts)),
                ("channels", HealthClient::new(channels)),
                ("messaging", HealthClient::new(messaging)),
                ("uploads", HealthClient::new(uploads.clone().into())),
            ],
            uploads: UploadsServiceClient::new(uploads),
            redis,
            cookies: Cookies::new(&secret, config.origins.secure_prefix(), config.production()),
            base_url: config
                .origins
                .better_auth_url
                .trim_end_matches('/')
                .to_owned(),
            trusted_origins: config.origins.trusted()?,
            auth_rate_limit: config.auth_rate_limit,
            budgets: config.rate_limits,
            proxy_hops: config.proxy_hops(),
            realtime: config.realtime_addr()?,
        }));
        let router = router(state, &config)?;
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("binding {}", config.listen_addr))?;
        Ok(Self {
            listener,
            admin_addr: config.admin_addr,
            router,
        })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` is cancelled, then lets in-flight requests finish.
    pub async fn run(
        self,
        metrics: admin::Handle,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let admin = admin::serve(self.admin_addr, metrics, shutdown.clone()).await?;
        tracing::info!(http = %self.listener.local_addr()?, %admin, "gateway serving");
        // TCP_NODELAY: a response written in two segments must not wait for a delayed ACK.
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(
            listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("serving HTTP")
    }
}

/// The OpenAPI 3.1 document of the REST API, as `/openapi.json` serves it (also printed by
/// `hilo-gateway openapi`, for client generators and the validation in `scripts/test.sh`).
pub fn openapi() -> anyhow::Result<String> {
    routes::openapi::document().context("serialising the OpenAPI document")
}

/// The whole HTTP surface with its layers, outermost first: hardening headers, request id,
/// panic catcher, request span + metrics, CORS, origin check, rate limits, impossible ids,
/// timeout, JSON error bodies.
fn router(state: AppState, config: &Config) -> anyhow::Result<Router> {
    let (api, _) = routes::api();
    let openapi = openapi()?;
    let request_id = HeaderName::from_static("x-request-id");
    // On every response: no MIME sniffing (an error body or a file is never run as a page)
    // and no framing by other sites (clickjacking); pages with a CSP of their own keep it.
    let layers = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        ))
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("handler panicked").into_response()
        }))
        .layer(middleware::from_fn(telemetry::observe))
        .layer(cors(config)?)
        .layer(middleware::from_fn_with_state(state.clone(), origin_check))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::ratelimit::limit,
        ))
        .layer(middleware::from_fn(impossible_ids))
        .layer(middleware::from_fn_with_state(
            Timeouts {
                request: config.request_timeout(),
                upload: config.upload_timeout(),
            },
            timeout,
        ))
        .layer(middleware::map_response(json_errors));
    Ok(api
        .merge(routes::meta::router(openapi))
        .route("/ws", axum::routing::any(crate::wsproxy::proxy))
        .fallback(not_found)
        .with_state(state)
        .layer(layers))
}

fn cors(config: &Config) -> anyhow::Result<CorsLayer> {
    let origins = config
        .origins
        .cors_origins()
        .iter()
        .map(|o| HeaderValue::from_str(o).with_context(|| format!("CORS_ORIGIN entry {o}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::CONTENT_LENGTH,
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-retry-after"),
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-reset"),
        ])
        .max_age(std::time::Duration::from_secs(600)))
}

/// Refuses (403) unsafe requests from untrusted origins, and those sent by cookie with no
/// origin at all: the CSRF defence of every route ([`crate::auth::check_origin`]).
async fn origin_check(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !req.method().is_safe()
        && let Err(error) = crate::auth::check_origin(req.headers(), &state.trusted_origins)
    {
        return error.into_response();
    }
    next.run(req).await
}

/// How long a request may take: uploads get their own, longer budget.
#[derive(Clone, Copy)]
struct Timeouts {
    request: Duration,
    upload: Duration,
}

/// Answers 504 when a request takes longer than its budget.
async fn timeout(State(limits): State<Timeouts>, req: Request, next: Next) -> Response {
    let limit = if req.uri().path().starts_with("/api/uploads/") {
        limits.upload
    } else {
        limits.request
    };
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "GATEWAY_TIMEOUT",
            "The request took too long",
        )
        .into_response(),
    }
}

/// Longest path segment a route matches: ids are at most 36 characters (UUIDs), providers
/// and names shorter still.
const MAX_SEGMENT: usize = 256;

/// A path segment no id can be (longer than [`MAX_SEGMENT`], or not UTF-8, or holding a NUL
/// once decoded) is a 404 here: it would otherwise reach PostgreSQL (which refuses a NUL: a
/// 500) or be echoed, unbounded, into error messages and gRPC trailers.
async fn impossible_ids(req: Request, next: Next) -> Response {
    let impossible = req.uri().path().split('/').any(|segment| {
        segment.len() > MAX_SEGMENT
            || percent_encoding::percent_decode_str(segment)
                .decode_utf8()
                .map_or(true, |decoded| decoded.contains('\0'))
    });
    if impossible {
        return ApiError::not_found("Not Found").into_response();
    }
    next.run(req).await
}

/// Unknown routes: 404 with the path (docs/api.md §2).
async fn not_found(req: Request) -> ApiError {
    let mut error = ApiError::not_found("Not Found");
    error.body.path = Some(req.uri().path().to_owned());
    error
}

/// Errors produced below the handlers (405, 408/504 timeouts, body limits) come without a
/// JSON body; give them the one error shape.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let message = status.canonical_reason().unwrap_or("Error");
    let mut fixed = ApiError::new(status, default_code(status), message).into_response();
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fixed
}
