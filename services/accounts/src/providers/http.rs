//! `oauth2`'s HTTP client over reqwest 0.13 (its own `reqwest` feature would pull reqwest
//! 0.12): one client for the process, redirects off, answers capped in size.

use std::{future::Future, pin::Pin, time::Duration};

use anyhow::{Context, bail};
use oauth2::{AsyncHttpClient, HttpClientError, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;

/// Largest response body read from a provider (their answers are a few hundred bytes).
const MAX_BODY: usize = 1024 * 1024;

/// `oauth2`'s HTTP client over the one reqwest client of the process. It never follows
/// redirects and reads at most [`MAX_BODY`] bytes of an answer.
pub struct Http(reqwest::Client);

impl Http {
    /// The process's one client for the providers, built at start-up (connection reuse).
    pub fn new(timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            // GitHub's API refuses requests without a User-Agent.
            .user_agent(concat!("hilo-accounts/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the OAuth HTTP client")?;
        Ok(Self(client))
    }

    async fn send(
        &self,
        request: reqwest::Request,
    ) -> Result<HttpResponse, HttpClientError<reqwest::Error>> {
        let mut response = self.0.execute(request).await.map_err(Box::new)?;
        let too_large = || HttpClientError::Other("provider response too large".to_owned());
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY as u64)
        {
            return Err(too_large());
        }
        let mut builder = http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(Box::new)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(builder.body(body)?)
    }

    /// GETs `url` with the access token and parses its JSON; any non-2xx is an error.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str, token: &str) -> anyhow::Result<T> {
        let request = self
            .0
            .get(url)
            .bearer_auth(token)
            .header(http::header::ACCEPT, "application/json")
            .build()?;
        let response = self.send(request).await?;
        if !response.status().is_success() {
            bail!("{url} answered {}", response.status());
        }
        serde_json::from_slice(response.body()).with_context(|| format!("reading {url}"))
    }
}

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpClientError<reqwest::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).map_err(Box::new)?;
            self.send(request).await
        })
    }
}
