//! Access-token verification. Every service verifies the caller's token itself (EdDSA, public
//! key only) and takes the caller from it; no service trusts a user id sent as a plain field.
//! Signing lives in accounts, the only holder of the private key.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use hilo_proto::accounts::v1::{
    GetPublicKeyRequest, accounts_service_client::AccountsServiceClient,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

use crate::{config::VerifierArgs, grpc};

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
    /// Tokens already verified, with their claims: a gateway sends the same token for a user
    /// for up to a minute, and an Ed25519 verification costs more than the rest of most calls.
    verified: moka::sync::Cache<String, Claims>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// A verifier for the Ed25519 public key in `pem` (SubjectPublicKeyInfo, or an X.509
    /// certificate holding it), accepting only EdDSA tokens with this issuer and audience.
    pub fn from_public_pem(pem: &str, issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let key = DecodingKey::from_ed_pem(public_key_pem(pem)?.as_bytes())?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let verified = moka::sync::Cache::builder()
            .max_capacity(20_000)
            .time_to_live(Duration::from_secs(60))
            .build();
        Ok(Self {
            key,
            validation,
            verified,
        })
    }

    /// The verifier a service builds once at start-up: from `JWT_PUBLIC_KEY` when set, else
    /// from accounts' `GetPublicKey`, retried with backoff until accounts answers (services may
    /// start before it). Issuer and audience are always this service's own settings.
    pub async fn load(args: &VerifierArgs) -> anyhow::Result<Self> {
        let (issuer, audience) = (&args.jwt.jwt_issuer, &args.jwt.jwt_audience);
        if let Some(pem) = &args.jwt_public_key {
            return Self::from_public_pem(pem, issuer, audience).context("JWT_PUBLIC_KEY");
        }
        let mut accounts = AccountsServiceClient::new(grpc::connect(&args.accounts_url)?);
        let mut delay = Duration::from_millis(100);
        let key = loop {
            match accounts.get_public_key(GetPublicKeyRequest {}).await {
                Ok(response) => break response.into_inner(),
                Err(status) => {
                    tracing::warn!(
                        accounts = %args.accounts_url, code = ?status.code(), retry_in_ms = delay.as_millis() as u64,
                        "accounts' public key is not available yet"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        };
        if (&key.issuer, &key.audience) != (issuer, audience) {
            tracing::warn!(
                accounts_issuer = key.issuer,
                accounts_audience = key.audience,
                "accounts signs for another issuer or audience than JWT_ISSUER/JWT_AUDIENCE: its tokens will be refused"
            );
        }
        tracing::info!(accounts = %args.accounts_url, "token verification key fetched from accounts");
        Self::from_public_pem(&key.public_key_pem, issuer, audience)
            .context("the public key sent by accounts")
    }

    /// Checks signature, algorithm, expiry, issuer and audience (the signature once per
    /// token: a token seen before is the same bytes, so only its expiry is checked again).
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        if let Some(claims) = self.verified.get(token) {
            if claims.exp + LEEWAY_SECS > now_secs() {
                return Ok(claims);
            }
            self.verified.invalidate(token);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)?.claims;
        self.verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    /// The caller of a gRPC request, from its `authorization: Bearer <jwt>` metadata.
    /// Anything missing, malformed, forged or expired answers UNAUTHENTICATED, without
    /// saying which (no oracle for forgers).
    pub fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
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

/// The `sid` claim of an access token, read WITHOUT checking its signature: only for matching
/// a token this process got from accounts itself to a revocation event (realtime finds the
/// sockets of an ended session this way), never to authorize anything.
pub fn unverified_session_id(token: &str) -> Option<String> {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    #[derive(Deserialize)]
    struct Sid {
        #[serde(default)]
        sid: String,
    }
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    let claims: Sid = serde_json::from_slice(&payload).ok()?;
    Some(claims.sid).filter(|sid| !sid.is_empty())
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The credentials of an `Authorization: Bearer <credentials>` value; the scheme's name is
/// case-insensitive (RFC 9110 11.1), and spaces around the credentials are not part of them.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim_start().split_once(' ')?;
    let credentials = credentials.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty()).then_some(credentials)
}

/// The SubjectPublicKeyInfo PEM of an Ed25519 key given as one, or inside an X.509
/// certificate: the Helm chart pins the key it generates as a self-signed certificate, the one
/// form of a public key Helm can derive from a private key.
fn public_key_pem(pem: &str) -> anyhow::Result<String> {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Ok(pem.to_owned());
    }
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = STANDARD
        .decode(body)
        .context("JWT_PUBLIC_KEY: the certificate is not base64")?;
    // An Ed25519 SubjectPublicKeyInfo: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING of
    // 32 bytes }. Its first 12 bytes occur nowhere else in a certificate (the signature
    // algorithm has the OID without the outer 44-byte SEQUENCE).
    const ED25519_SPKI: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    let at = der
        .windows(ED25519_SPKI.len())
        .position(|w| w == ED25519_SPKI)
        .context("JWT_PUBLIC_KEY: no Ed25519 public key in the certificate")?;
    let spki = der
        .get(at..at + 44)
        .context("JWT_PUBLIC_KEY: the certificate is truncated")?;
    Ok(format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(spki)
    ))
}

#[cfg(test)]
mod tests {
    /// A certificate the chart's template made (`genSelfSignedCertWithKey` from
    /// `genPrivateKey "ed25519"`), and a token signed with that key, valid until 2100; the key
    /// itself was thrown away.
    const CHART_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBJTCB2KADAgECAhEA+sf645S3nDsbhJOU7iO7GDAFBgMrZXAwEzERMA8GA1UE\nAxMIaGlsby1qd3QwIBcNMjYxMjA0MTkxMzM5WhgPMjEyNjExMTAxOTEzMzlaMBMx\nETAPBgNVBAMTCGhpbG8tand0MCowBQYDK2VwAyEAhlxpJMpQXpVqqt5zYTqPN2WZ\nYNSDmq1lnv9xZRnPD76jPzA9MA4GA1UdDwEB/wQEAwIFoDAdBgNVHSUEFjAUBggr\nBgEFBQcDAQYIKwYBBQUHAwIwDAYDVR0TAQH/BAIwADAFBgMrZXADQQAHsTfl8Pu1\nv7zVIJy9Gq6wvYDjK7g8OcOitoSBOvJsDUKghtA4/xxr+Q7Ezlj9fsliNNK9YmKl\nO+dIf5j4vm8F\n-----END CERTIFICATE-----";
    const TOKEN_UNTIL_2100: &str = "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEiLCJzaWQiOiIiLCJpc3MiOiJoaWxvIiwiYXVkIjoiaGlsbyIsImlhdCI6MTc2NDg3NjAwMCwiZXhwIjo0MTAyNDQ0ODAwfQ.0kynTCddfxpMK9WiVWjiYePdbUzbOVzz5yBYuDnwlD1lDOPQ6jTbmv1fAKromjAFcy8AFc4rI6s7nlqDHTGQCA";

    #[test]
    fn a_certificate_pins_the_key_it_holds() {
        let verifier = TokenVerifier::from_public_pem(CHART_CERT, "hilo", "hilo").unwrap();
        assert_eq!(verifier.verify(TOKEN_UNTIL_2100).unwrap().sub, "user-1");
        // The same token against another key fails.
        let other = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAeC7D9Y9MjRlKzIbKUM7iAAN5B+SKPABV/M7LrNuN9hw=\n-----END PUBLIC KEY-----\n";
        let other = TokenVerifier::from_public_pem(other, "hilo", "hilo").unwrap();
        assert!(other.verify(TOKEN_UNTIL_2100).is_err());
        let broken = CHART_CERT.replace("MCowBQYDK2VwAyEA", "MCowBQYDK2VwAyEB");
        assert!(TokenVerifier::from_public_pem(&broken, "hilo", "hilo").is_err());
    }

    use super::*;
    use crate::config::JwtArgs;

    fn args(pem: &str) -> VerifierArgs {
        VerifierArgs {
            jwt_public_key: Some(pem.to_owned()),
            // Nothing listens there: a configured key must not need accounts.
            accounts_url: "http://127.0.0.1:1".to_owned(),
            jwt: JwtArgs {
                jwt_issuer: "hilo".to_owned(),
                jwt_audience: "hilo".to_owned(),
            },
        }
    }

    #[test]
    fn the_session_id_is_read_from_a_token_and_nothing_else() {
        use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
        let token = |claims: &str| format!("h.{}.s", URL_SAFE_NO_PAD.encode(claims));
        let sid = unverified_session_id(&token(r#"{"sub":"u","sid":"s1","exp":1}"#));
        assert_eq!(sid.as_deref(), Some("s1"));
        assert_eq!(unverified_session_id(&token(r#"{"sub":"svc"}"#)), None);
        assert_eq!(unverified_session_id(&token("not json")), None);
        assert_eq!(unverified_session_id("no-dots"), None);
        assert_eq!(unverified_session_id("a.!!!.c"), None);
    }

    #[tokio::test]
    async fn a_configured_public_key_is_used_without_asking_accounts() {
        let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAeC7D9Y9MjRlKzIbKUM7iAAN5B+SKPABV/M7LrNuN9hw=\n-----END PUBLIC KEY-----\n";
        let verifier = TokenVerifier::load(&args(pem)).await;
        assert!(verifier.is_ok_and(|v| v.verify("not.a.jwt").is_err()));
        assert!(TokenVerifier::load(&args("not a key")).await.is_err());
    }
}
