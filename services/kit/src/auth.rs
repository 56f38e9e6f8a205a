//! Access-token verification. Every service verifies the caller's token itself (EdDSA, public
//! key only) and takes the caller from it; no service trusts a user id sent as a plain field.
//! Signing lives in accounts, the only holder of the private key.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

/// Seconds of clock skew tolerated on `exp`/`nbf` between signer and verifiers.
const LEEWAY_SECS: u64 = 5;

/// The claims of a Hilo access token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id (or the service name for service tokens).
    pub sub: String,
    /// The session this token was exchanged from; empty for service tokens.
    #[serde(default)]
    pub sid: String,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

impl Claims {
    /// Claims for `sub` valid from now for `ttl_secs`.
    pub fn new(sub: &str, sid: &str, iss: &str, aud: &str, ttl_secs: u64) -> Self {
        let now = now_secs();
        Self {
            sub: sub.to_owned(),
            sid: sid.to_owned(),
            iss: iss.to_owned(),
            aud: aud.to_owned(),
            iat: now,
            exp: now + ttl_secs,
        }
    }
}

/// Who is calling, as proven by a verified access token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub session_id: String,
    /// The verified token itself, for calling other services on the caller's behalf.
    pub token: String,
}

/// Verifies access tokens. Built once at start-up; cheap to clone into handlers.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// A verifier for the Ed25519 public key in `pem` (SubjectPublicKeyInfo), accepting only
    /// EdDSA tokens with this issuer and audience.
    pub fn from_public_pem(pem: &str, issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let key = DecodingKey::from_ed_pem(pem.as_bytes())?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(Self { key, validation })
    }

    /// Checks signature, algorithm, expiry, issuer and audience.
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map(|data| data.claims)
    }

    /// The caller of a gRPC request, from its `authorization: Bearer <jwt>` metadata.
    /// Anything missing, malformed, forged or expired answers UNAUTHENTICATED, without
    /// saying which (no oracle for forgers).
    pub fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("missing access token"))?;
        let claims = self.verify(token).map_err(|error| {
            tracing::debug!(%error, "access token rejected");
            Status::unauthenticated("invalid access token")
        })?;
        Ok(Caller {
            user_id: claims.sub,
            session_id: claims.sid,
            token: token.to_owned(),
        })
    }
}

/// The verifier a service uses: from `JWT_PUBLIC_KEY`, or else fetched from accounts'
/// `GetPublicKey`, retried for up to a minute so services may start in any order.
pub async fn verifier(args: &crate::config::VerifierArgs) -> anyhow::Result<TokenVerifier> {
    use hilo_proto::accounts::v1::{
        GetPublicKeyRequest, accounts_service_client::AccountsServiceClient,
    };
    let (iss, aud) = (&args.jwt.jwt_issuer, &args.jwt.jwt_audience);
    if let Some(pem) = &args.jwt_public_key {
        return TokenVerifier::from_public_pem(pem, iss, aud);
    }
    let mut client = AccountsServiceClient::new(crate::grpc::connect(&args.accounts_url)?);
    let mut delay = std::time::Duration::from_millis(100);
    for attempt in 1.. {
        match client.get_public_key(GetPublicKeyRequest {}).await {
            Ok(reply) => {
                return TokenVerifier::from_public_pem(
                    &reply.into_inner().public_key_pem,
                    iss,
                    aud,
                );
            }
            Err(status) if attempt < 20 => {
                tracing::warn!(attempt, code = ?status.code(), "accounts not reachable for the public key yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
            Err(status) => anyhow::bail!("fetching the token public key from accounts: {status}"),
        }
    }
    unreachable!("the loop returns")
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
