//! The OAuth providers (GitHub, Google): their `oauth2` clients, built once at start-up; the
//! one HTTP client that talks to them (reqwest 0.13 behind `oauth2`'s `AsyncHttpClient`, with
//! redirects off, so a provider answer cannot bounce a code or a token to another host); and
//! reading the provider's user once the code is exchanged.

use std::{borrow::Cow, time::Duration};

use anyhow::{Context, bail};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, HttpClientError, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, TokenResponse, TokenUrl,
    basic::{BasicClient, BasicErrorResponse},
};
use serde::Deserialize;

use crate::config::{OAuthArgs, Secret};

mod http;
use http::Http;

/// An `oauth2` client with its authorization and token endpoints set.
type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    GitHub,
    Google,
}

/// One configured provider.
pub struct Provider {
    kind: Kind,
    client: Client,
    /// GitHub: the REST API base; Google: the userinfo endpoint.
    user_url: String,
}

impl Provider {
    /// The provider's id in routes and in `identities.provider_id` (Better Auth's ids).
    pub fn id(&self) -> &'static str {
        match self.kind {
            Kind::GitHub => "github",
            Kind::Google => "google",
        }
    }

    /// Better Auth's default scopes (docs/api.md §1.3): enough to read the user and their email.
    fn scopes(&self) -> &'static [&'static str] {
        match self.kind {
            Kind::GitHub => &["read:user", "user:email"],
            Kind::Google => &["openid", "email", "profile"],
        }
    }
}

/// The user as the provider describes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderUser {
    /// The provider's stable user id (GitHub's numeric id, Google's `sub`).
    pub account_id: String,
    pub email: Option<String>,
    /// True only when the provider says it checked the email belongs to this user.
    pub email_verified: bool,
    pub name: Option<String>,
    pub image: Option<String>,
}

/// What a code exchange yields. The access token is used to read the user and then dropped:
/// Hilo calls no provider API on the user's behalf, so it never stores provider tokens.
pub struct Grant {
    access_token: String,
    /// Granted scopes, comma-separated as Better Auth stores them.
    pub scope: String,
}

/// Every configured provider and the HTTP client they share.
pub struct Providers {
    http: Http,
    github: Option<Provider>,
    google: Option<Provider>,
}

impl Providers {
    /// Builds the clients of the providers that have credentials; a provider with only half of
    /// them is a configuration mistake and stops start-up.
    pub fn from_config(args: &OAuthArgs) -> anyhow::Result<Self> {
        let timeout = Duration::from_secs(args.oauth_http_timeout_secs.max(1));
        Ok(Self {
            http: Http::new(timeout)?,
            github: provider(
                Kind::GitHub,
                args.github_client_id.as_deref(),
                args.github_client_secret.as_ref(),
                [
                    &args.github_authorize_url,
                    &args.github_token_url,
                    &args.github_api_url,
                ],
            )?,
            google: provider(
                Kind::Google,
                args.google_client_id.as_deref(),
                args.google_client_secret.as_ref(),
                [
                    &args.google_authorize_url,
                    &args.google_token_url,
                    &args.google_userinfo_url,
                ],
            )?,
        })
    }

    /// The provider called `id`, when it is configured.
    pub fn get(&self, id: &str) -> Option<&Provider> {
        match id {
            "github" => self.github.as_ref(),
            "google" => self.google.as_ref(),
            _ => None,
        }
    }

    /// Ids of the configured providers, for the start-up log.
    pub fn enabled(&self) -> Vec<&'static str> {
        [&self.github, &self.google]
            .into_iter()
            .flatten()
            .map(Provider::id)
            .collect()
    }

    /// The provider's authorization URL: our state, the S256 challenge, the scopes and the
    /// redirect URI (and Google's account chooser).
    pub fn authorize_url(
        &self,
        provider: &Provider,
        redirect_uri: &str,
        state: &str,
        challenge: PkceCodeChallenge,
    ) -> anyhow::Result<String> {
        let redirect = RedirectUrl::new(redirect_uri.to_owned()).context("redirect URI")?;
        let state = state.to_owned();
        let mut request = provider
            .client
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(
                provider
                    .scopes()
                    .iter()
                    .map(|s| Scope::new((*s).to_owned())),
            )
            .set_pkce_challenge(challenge)
            .set_redirect_uri(Cow::Owned(redirect));
        if provider.kind == Kind::Google {
            request = request.add_extra_param("prompt", "select_account");
        }
        Ok(request.url().0.to_string())
    }

    /// Exchanges `code` with its PKCE verifier and the redirect URI of the authorization.
    pub async fn exchange(
        &self,
        provider: &Provider,
        code: String,
        verifier: String,
        redirect_uri: &str,
    ) -> anyhow::Result<Grant> {
        let redirect = RedirectUrl::new(redirect_uri.to_owned()).context("redirect URI")?;
        let token = provider
            .client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier))
            .set_redirect_uri(Cow::Owned(redirect))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let scope = match token.scopes() {
            Some(scopes) => scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(","),
            None => provider.scopes().join(","),
        };
        Ok(Grant {
            access_token: token.access_token().secret().clone(),
            scope,
        })
    }

    /// Reads the signed-in user from the provider with the grant's access token.
    pub async fn user(&self, provider: &Provider, grant: &Grant) -> anyhow::Result<ProviderUser> {
        let token = &grant.access_token;
        match provider.kind {
            Kind::GitHub => {
                let api = &provider.user_url;
                let user: GitHubUser = self.http.get_json(&format!("{api}/user"), token).await?;
                let emails: Vec<GitHubEmail> = self
                    .http
                    .get_json(&format!("{api}/user/emails"), token)
                    .await?;
                Ok(github_user(user, emails))
            }
            Kind::Google => {
                let user: GoogleUser = self.http.get_json(&provider.user_url, token).await?;
                Ok(ProviderUser {
                    account_id: user.sub,
                    email: user.email,
                    email_verified: user.email_verified,
                    name: user.name,
                    image: user.picture,
                })
            }
        }
    }
}

/// A failed exchange, described for the log. GitHub refuses with a 200 and an OAuth error
/// body, which `oauth2` reports as unparsable; name the provider's error code instead.
fn token_error(
    error: RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>,
) -> anyhow::Error {
    if let RequestTokenError::Parse(_, body) = &error
        && let Ok(refusal) = serde_json::from_slice::<BasicErrorResponse>(body)
    {
        return anyhow::anyhow!("token request refused: {refusal}");
    }
    anyhow::Error::new(error).context("token request")
}

fn provider(
    kind: Kind,
    client_id: Option<&str>,
    secret: Option<&Secret>,
    [authorize, token, user]: [&String; 3],
) -> anyhow::Result<Option<Provider>> {
    let name = match kind {
        Kind::GitHub => "GITHUB",
        Kind::Google => "GOOGLE",
    };
    let client_id = client_id.filter(|s| !s.is_empty());
    let secret = secret.filter(|s| !s.expose().is_empty());
    let (client_id, secret) = match (client_id, secret) {
        (None, None) => return Ok(None),
        (Some(id), Some(secret)) => (id, secret),
        _ => bail!("{name}_CLIENT_ID and {name}_CLIENT_SECRET must be set together"),
    };
    let client = BasicClient::new(ClientId::new(client_id.to_owned()))
        .set_client_secret(ClientSecret::new(secret.expose().to_owned()))
        .set_auth_uri(
            AuthUrl::new(authorize.clone()).with_context(|| format!("{name}_AUTHORIZE_URL"))?,
        )
        .set_token_uri(TokenUrl::new(token.clone()).with_context(|| format!("{name}_TOKEN_URL"))?)
        // Both providers take the client credentials as form fields.
        .set_auth_type(AuthType::RequestBody);
    url::Url::parse(user).with_context(|| format!("{name} user endpoint {user}"))?;
    Ok(Some(Provider {
        kind,
        client,
        user_url: user.trim_end_matches('/').to_owned(),
    }))
}

#[derive(Deserialize)]
struct GitHubUser {
    id: u64,
    login: String,
    name: Option<String>,
    avatar_url: Option<String>,
}

#[derive(Deserialize)]
struct GitHubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

#[derive(Deserialize)]
struct GoogleUser {
    sub: String,
    email: Option<String>,
    #[serde(default)]
    email_verified: bool,
    name: Option<String>,
    picture: Option<String>,
}

/// GitHub's user with its primary email (from `/user/emails`, which says whether GitHub
/// verified it; the profile's public email says nothing about that). The name falls back to
/// the login, as Better Auth does.
fn github_user(user: GitHubUser, emails: Vec<GitHubEmail>) -> ProviderUser {
    let primary = emails.into_iter().find(|e| e.primary);
    ProviderUser {
        account_id: user.id.to_string(),
        email_verified: primary.as_ref().is_some_and(|e| e.verified),
        email: primary.map(|e| e.email),
        name: user
            .name
            .filter(|n| !n.trim().is_empty())
            .or(Some(user.login)),
        image: user.avatar_url,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        oauth: OAuthArgs,
    }

    fn providers(args: &[&str]) -> anyhow::Result<Providers> {
        let args = Args::try_parse_from(std::iter::once("test").chain(args.iter().copied()))?;
        Providers::from_config(&args.oauth)
    }

    fn query(url: &str) -> Vec<(String, String)> {
        url::Url::parse(url)
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn providers_need_both_credentials_and_are_off_without_them() {
        let none = providers(&[]).unwrap();
        assert!(none.get("github").is_none() && none.get("google").is_none());
        let half = providers(&["--github-client-id", "id"]);
        let error = half.err().unwrap().to_string();
        assert!(error.contains("GITHUB_CLIENT_SECRET"), "{error}");
        let github =
            providers(&["--github-client-id", "id", "--github-client-secret", "s"]).unwrap();
        assert_eq!(github.enabled(), ["github"]);
        assert!(github.get("google").is_none() && github.get("twitter").is_none());
    }

    #[test]
    fn authorize_urls_carry_state_s256_challenge_scopes_and_redirect() {
        let all = providers(&[
            "--github-client-id=gh",
            "--github-client-secret=s",
            "--google-client-id=go",
            "--google-client-secret=s",
        ])
        .unwrap();
        let (challenge, _verifier) = PkceCodeChallenge::new_random_sha256();
        let github = all.get("github").unwrap();
        let url = all
            .authorize_url(
                github,
                "http://gw/api/auth/callback/github",
                "id.secret",
                challenge.clone(),
            )
            .unwrap();
        assert!(url.starts_with("https://github.com/login/oauth/authorize?"));
        let q = query(&url);
        let has = |k: &str, v: &str| q.contains(&(k.to_owned(), v.to_owned()));
        assert!(has("state", "id.secret") && has("client_id", "gh"));
        assert!(has("code_challenge_method", "S256"));
        assert!(has("code_challenge", challenge.as_str()));
        assert!(has("scope", "read:user user:email"));
        assert!(has("redirect_uri", "http://gw/api/auth/callback/github"));
        assert!(!q.iter().any(|(k, _)| k == "prompt"));

        let google = all.get("google").unwrap();
        let url = all
            .authorize_url(google, "http://gw/cb", "s", challenge)
            .unwrap();
        let q = query(&url);
        assert!(q.contains(&("scope".to_owned(), "openid email profile".to_owned())));
        assert!(q.contains(&("prompt".to_owned(), "select_account".to_owned())));
    }

    #[test]
    fn github_takes_the_primary_email_and_its_verification() {
        let user = || GitHubUser {
            id: 42,
            login: "octo".to_owned(),
            name: None,
            avatar_url: None,
        };
        let email = |email: &str, primary, verified| GitHubEmail {
            email: email.to_owned(),
            primary,
            verified,
        };
        let got = github_user(
            user(),
            vec![email("a@x.io", false, true), email("b@x.io", true, false)],
        );
        assert_eq!(got.email.as_deref(), Some("b@x.io"));
        assert!(!got.email_verified);
        assert_eq!(got.name.as_deref(), Some("octo"));
        assert_eq!(got.account_id, "42");
        let none = github_user(user(), vec![email("a@x.io", false, true)]);
        assert_eq!(none.email, None);
        assert!(!none.email_verified);
    }
}
