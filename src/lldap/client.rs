//! LLDAP's HTTP API: `/auth/simple/login` once, then GraphQL at `/api/graphql` with the JWT,
//! reused for every request and renewed when LLDAP answers 401 (expired or logged out).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::retry::{retry, Backoff, Transient};
use crate::secret::Secret;

/// What went wrong talking to LLDAP over HTTP.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LldapError {
    #[error("cannot reach LLDAP at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("LLDAP answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("LLDAP refused the login of {user}: {body}")]
    Login { user: String, body: String },
    #[error("LLDAP rejected the token: {0}")]
    Unauthorized(String),
    #[error("unreadable answer from LLDAP: {0}")]
    Decode(String),
    #[error("LLDAP: {0}")]
    Graphql(String),
}

impl Transient for LldapError {
    fn is_transient(&self) -> bool {
        match self {
            LldapError::Connect { .. } | LldapError::Decode(_) => true,
            LldapError::Http { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }
}

/// A GraphQL error, with whether an earlier attempt of the same request failed transiently
/// (then the request may have taken effect on the server before the connection broke).
#[derive(Debug, Clone)]
pub struct CallError {
    pub error: LldapError,
    pub after_transient: bool,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

/// Shortens a server's answer for an error message.
fn snippet(body: &str) -> String {
    let t = body.trim();
    if t.len() <= 200 {
        t.to_string()
    } else {
        let mut end = 200;
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &t[..end])
    }
}

pub struct GraphqlClient {
    http: reqwest::Client,
    base: String,
    admin: String,
    password: Secret,
    token: Mutex<Option<String>>,
    backoff: Backoff,
    requests: AtomicU64,
    logins: AtomicU64,
}

impl GraphqlClient {
    pub fn new(
        base: &str,
        admin: &str,
        password: Secret,
        timeout: Duration,
        backoff: Backoff,
    ) -> Result<Self, LldapError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(16)
            .user_agent(concat!("paasd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LldapError::Connect {
                url: base.to_string(),
                message: e.to_string(),
            })?;
        Ok(GraphqlClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            admin: admin.to_string(),
            password,
            token: Mutex::new(None),
            backoff,
            requests: AtomicU64::new(0),
            logins: AtomicU64::new(0),
        })
    }

    /// HTTP requests sent so far (logins included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    fn connect_error(&self, e: &reqwest::Error) -> LldapError {
        // reqwest's Display of a connect error omits the cause; walk the chain.
        let mut message = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            message.push_str(": ");
            message.push_str(&s.to_string());
            src = s.source();
        }
        if e.is_timeout() {
            message = format!("timed out ({message})");
        }
        LldapError::Connect {
            url: self.base.clone(),
            message,
        }
    }

    async fn login_once(&self) -> Result<String, LldapError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.logins.fetch_add(1, Ordering::Relaxed);
        let resp = self
            .http
            .post(format!("{}/auth/simple/login", self.base))
            .json(&json!({ "username": self.admin, "password": self.password.expose() }))
            .send()
            .await
            .map_err(|e| self.connect_error(&e))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| self.connect_error(&e))?;
        match status {
            200 => {
                let v: Value = serde_json::from_str(&body)
                    .map_err(|e| LldapError::Decode(format!("login answer: {e}")))?;
                v.get("token")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| LldapError::Decode("login answer has no token".into()))
            }
            400..=499 if status != 408 && status != 429 => Err(LldapError::Login {
                user: self.admin.clone(),
                body: snippet(&body),
            }),
            _ => Err(LldapError::Http {
                status,
                body: snippet(&body),
            }),
        }
    }

    /// Logs in (with retries) and keeps the JWT.
    pub async fn login(&self) -> Result<(), LldapError> {
        let (r, _) = retry(self.backoff, |_| self.login_once()).await;
        *self.token.lock().await = Some(r?);
        Ok(())
    }

    async fn token(&self) -> Result<String, LldapError> {
        let mut guard = self.token.lock().await;
        if let Some(t) = guard.as_ref() {
            return Ok(t.clone());
        }
        let (r, _) = retry(self.backoff, |_| self.login_once()).await;
        let t = r?;
        *guard = Some(t.clone());
        Ok(t)
    }

    async fn post_once<T: DeserializeOwned>(
        &self,
        token: &str,
        body: &Value,
    ) -> Result<T, LldapError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = self
            .http
            .post(format!("{}/api/graphql", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .map_err(|e| self.connect_error(&e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| self.connect_error(&e))?;
        if status == 401 {
            return Err(LldapError::Unauthorized(snippet(&String::from_utf8_lossy(
                &bytes,
            ))));
        }
        if status != 200 {
            return Err(LldapError::Http {
                status,
                body: snippet(&String::from_utf8_lossy(&bytes)),
            });
        }
        decode_answer(&bytes)
    }

    /// Runs one GraphQL operation. Transient failures are retried with backoff; a 401 renews the
    /// token once; GraphQL `errors` in an HTTP 200 answer are errors.
    pub async fn call(
        &self,
        operation: &str,
        query: &str,
        variables: Value,
    ) -> Result<Value, CallError> {
        self.call_as(operation, query, variables).await
    }

    /// [`GraphqlClient::call`], with the answer's `data` deserialised straight into `T` (no
    /// `serde_json::Value` tree: the observe answer of 100k users is tens of MB of text).
    pub async fn call_as<T: DeserializeOwned>(
        &self,
        operation: &str,
        query: &str,
        variables: Value,
    ) -> Result<T, CallError> {
        let body = json!({ "query": query, "variables": variables, "operationName": operation });
        let mut relogged = false;
        let mut after_transient = false;
        loop {
            let token = self.token().await.map_err(|error| CallError {
                error,
                after_transient,
            })?;
            let (r, attempts) = retry(self.backoff, |_| self.post_once(&token, &body)).await;
            if attempts > 1 {
                after_transient = true;
            }
            match r {
                Err(LldapError::Unauthorized(_)) if !relogged => {
                    relogged = true;
                    let mut guard = self.token.lock().await;
                    if guard.as_deref() == Some(token.as_str()) {
                        *guard = None;
                    }
                }
                Err(error) => {
                    return Err(CallError {
                        error,
                        after_transient,
                    })
                }
                Ok(v) => return Ok(v),
            }
        }
    }
}

/// A GraphQL answer as sent: `data` is kept as raw text until the errors are checked.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    errors: Vec<AnswerError>,
}

#[derive(Deserialize)]
struct AnswerError {
    #[serde(default)]
    message: Option<String>,
}

/// Decodes the body of a GraphQL answer: `errors` (even in an HTTP 200 answer) become
/// [`LldapError::Graphql`]; otherwise `data` is deserialised as `T`.
pub fn decode_answer<T: DeserializeOwned>(body: &[u8]) -> Result<T, LldapError> {
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| LldapError::Decode(format!("GraphQL answer: {e}")))?;
    if !answer.errors.is_empty() {
        let msgs: Vec<&str> = answer
            .errors
            .iter()
            .map(|e| e.message.as_deref().unwrap_or("(no message)"))
            .collect();
        return Err(LldapError::Graphql(msgs.join("; ")));
    }
    // `"data": null` deserialises as `None`, like a missing `data`.
    match answer.data {
        Some(d) => serde_json::from_str(d.get())
            .map_err(|e| LldapError::Decode(format!("GraphQL answer data: {e}"))),
        None => Err(LldapError::Decode("GraphQL answer has no data".into())),
    }
}
