//! Secrets accounts makes and signs: random ids and session tokens, and EdDSA access tokens.
//! Only accounts holds the private key; verifiers get the public key.

use anyhow::Context;
use ed25519_dalek::{
    SigningKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding},
};
use hilo_kit::auth::Claims;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::{Rng, distr::Alphanumeric};
use sha2::{Digest, Sha256};

/// A random 32-character `[a-zA-Z0-9]` string (about 190 bits): the format of Better Auth's
/// ids and session tokens, kept so imported data and clients see the same shapes.
pub fn random_id() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// What is stored for a session token: its SHA-256, hex. Tokens have enough entropy that a
/// plain hash is safe, and a lookup stays one indexed query.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new Ed25519 private key as PKCS#8 PEM.
pub fn generate_private_key_pem() -> anyhow::Result<String> {
    let mut seed = [0u8; 32];
    rand::rng().fill(&mut seed);
    let pem = SigningKey::from_bytes(&seed)
        .to_pkcs8_pem(LineEnding::LF)
        .context("encoding the key")?;
    Ok(pem.to_string())
}

/// The public key (SubjectPublicKeyInfo PEM) of an Ed25519 private key (PKCS#8 PEM): what
/// token verifiers are pinned to (JWT_PUBLIC_KEY).
pub fn public_key_pem(private_pem: &str) -> anyhow::Result<String> {
    let signing =
        SigningKey::from_pkcs8_pem(private_pem.trim()).context("not an Ed25519 PKCS#8 PEM key")?;
    signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .context("encoding the public key")
}

/// Signs access tokens.
pub struct Signer {
    key: EncodingKey,
    public_pem: String,
    issuer: String,
    audience: String,
    ttl_secs: u64,
}

impl Signer {
    /// A signer for the Ed25519 key in `private_pem`.
    pub fn new(
        private_pem: &str,
        issuer: &str,
        audience: &str,
        ttl_secs: u64,
    ) -> anyhow::Result<Self> {
        let public_pem = public_key_pem(private_pem).context("JWT_PRIVATE_KEY")?;
        let key =
            EncodingKey::from_ed_pem(private_pem.as_bytes()).context("loading the signing key")?;
        Ok(Self {
            key,
            public_pem,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl_secs,
        })
    }

    /// The SubjectPublicKeyInfo PEM that verifies this signer's tokens.
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// An access token for `user_id` in session `session_id`, and its expiry (Unix seconds).
    pub fn sign(&self, user_id: &str, session_id: &str) -> anyhow::Result<(String, u64)> {
        let claims = Claims::new(
            user_id,
            session_id,
            &self.issuer,
            &self.audience,
            self.ttl_secs,
        );
        let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.key)
            .context("signing an access token")?;
        Ok((token, claims.exp))
    }
}
