//! The HTTP plumbing the service backends share: one reqwest client per service with timeouts,
//! retries with backoff for transient failures (connect errors, timeouts, 5xx, 408, 429, bodies
//! cut short), and errors that carry a short snippet of the server's answer — never a secret.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::ServiceError;
use crate::retry::{retry, Backoff};
use crate::secret::Secret;

/// One answer of a service, read completely.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Response {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (an empty body is `null`).
    pub fn json(&self, service: &str) -> Result<Value, ServiceError> {
        if self.body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&self.body).map_err(|e| {
            ServiceError::Transient(format!(
                "{service}: unreadable answer (HTTP {}): {e}",
                self.status
            ))
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body for an error message; for a redirect, where it points (paasd does not follow
    /// redirects: the spec's URL should name the service directly).
    pub fn describe(&self, secret: Option<&Secret>) -> String {
        match self.header("location") {
            Some(to) if (300..400).contains(&self.status) => {
                format!("redirected to {to} (put that URL in the spec)")
            }
            _ => snippet(&self.body, secret),
        }
    }
}

/// What a request achieved, with the number of attempts it took (more than one: an earlier
/// attempt failed transiently and may have taken effect on the server).
#[derive(Debug, Clone)]
pub struct Sent {
    pub response: Response,
    pub attempts: u32,
}

/// Shortens a server's answer for an error message and removes `secret` from it.
pub fn snippet(body: &str, secret: Option<&Secret>) -> String {
    let mut t = body.trim().to_string();
    if let Some(s) = secret {
        if !s.expose().is_empty() {
            t = t.replace(s.expose(), "<redacted>");
        }
    }
    // HTML error pages say little; keep them short.
    let t = if t.starts_with('<') {
        t.chars()
            .filter(|c| !c.is_control())
            .take(120)
            .collect::<String>()
    } else {
        t
    };
    if t.len() <= 200 {
        t
    } else {
        let mut end = 200;
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &t[..end])
    }
}

/// One service's HTTP client.
pub struct Http {
    service: &'static str,
    base: String,
    client: reqwest::Client,
    backoff: Backoff,
    requests: AtomicU64,
}

/// A failed attempt, for the retry loop.
#[derive(Debug)]
struct Attempt(ServiceError);

impl crate::retry::Transient for Attempt {
    fn is_transient(&self) -> bool {
        matches!(self.0, ServiceError::Transient(_))
    }
}

impl Http {
    pub fn new(service: &'static str, base: &str, timeout: Duration) -> Result<Self, ServiceError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(8)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("paasd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                ServiceError::Refused(format!("{service}: cannot build an HTTP client: {e}"))
            })?;
        Ok(Http {
            service,
            base: base.trim_end_matches('/').to_string(),
            client,
            backoff: Backoff::default(),
            requests: AtomicU64::new(0),
        })
    }

    pub fn set_backoff(&mut self, backoff: Backoff) {
        self.backoff = backoff;
    }

    pub fn service(&self) -> &'static str {
        self.service
    }

    /// `base` + `path` (the path starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// HTTP requests sent so far (retries included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn connect_error(&self, e: &reqwest::Error) -> ServiceError {
        // reqwest's Display of a connect error omits the cause; walk the chain. The URL it
        // names carries no secret (credentials travel in headers and bodies only).
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
        ServiceError::Transient(format!(
            "cannot reach {} at {}: {message}",
            self.service, self.base
        ))
    }

    async fn once(
        &self,
        build: &(dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync),
        secret: Option<&Secret>,
    ) -> Result<Response, Attempt> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = build(&self.client)
            .send()
            .await
            .map_err(|e| Attempt(self.connect_error(&e)))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .text()
            .await
            .map_err(|e| Attempt(self.connect_error(&e)))?;
        if status >= 500 || status == 408 || status == 429 {
            return Err(Attempt(ServiceError::Transient(format!(
                "{} answered HTTP {status}: {}",
                self.service,
                snippet(&body, secret)
            ))));
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Sends a request (built afresh for every attempt), retrying transient failures with
    /// backoff. Any other status is returned for the caller to interpret. `secret` is the one
    /// the request carries, if any: it is scrubbed from error messages.
    pub async fn send(
        &self,
        secret: Option<&Secret>,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync,
    ) -> Result<Sent, ServiceError> {
        let (r, attempts) = retry(self.backoff, |_| self.once(&build, secret)).await;
        r.map(|response| Sent { response, attempts })
            .map_err(|a| a.0)
    }

    /// Like [`Http::send`], for answers that must be JSON on success: a 2xx body that does not
    /// parse (cut short) is retried like a transient failure.
    pub async fn send_json(
        &self,
        secret: Option<&Secret>,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync,
    ) -> Result<(Response, Value, u32), ServiceError> {
        let (r, attempts) = retry(self.backoff, |_| async {
            let resp = self.once(&build, secret).await?;
            let v = if resp.ok() {
                resp.json(self.service).map_err(Attempt)?
            } else {
                serde_json::from_str(&resp.body).unwrap_or(Value::Null)
            };
            Ok::<_, Attempt>((resp, v))
        })
        .await;
        r.map(|(resp, v)| (resp, v, attempts)).map_err(|a| a.0)
    }

    /// The error for an unexpected answer: 401/403/4xx are refusals (with the server's words).
    pub fn refused(&self, what: &str, resp: &Response, secret: Option<&Secret>) -> ServiceError {
        ServiceError::Refused(format!(
            "{} refused {what} (HTTP {}): {}",
            self.service,
            resp.status,
            resp.describe(secret)
        ))
    }
}

/// Percent-encodes one path segment.
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A password nobody knows (for services that must not get an account without one), from the
/// OS CSPRNG. Never stored, never logged.
pub fn random_password() -> Secret {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_.";
    let mut rng = rand::rngs::OsRng;
    let s: String = (0..40)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect();
    Secret::new(format!("{s}Aa1-"))
}

/// `"true"`/`"false"`.
pub fn flag(b: bool) -> String {
    if b { "true" } else { "false" }.to_string()
}

/// A JSON value as a field string: strings as they are, booleans as `true`/`false`, numbers as
/// decimal; 0/1 and "0"/"1" stay numbers.
pub fn field_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(flag(*b)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_short_and_never_carry_the_secret() {
        let s = Secret::new("hunter2-Secret");
        let body = format!(
            "{{\"error\":\"bad password hunter2-Secret\",\"x\":\"{}\"}}",
            "y".repeat(400)
        );
        let out = snippet(&body, Some(&s));
        assert!(!out.contains("hunter2-Secret"), "{out}");
        assert!(out.contains("<redacted>"));
        assert!(out.chars().count() <= 201);
        assert_eq!(snippet("  short  ", None), "short");
    }

    #[test]
    fn redirects_say_where_to() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "location",
            "https://cloud.example.org/ocs".parse().expect("header"),
        );
        let r = Response {
            status: 301,
            headers,
            body: "<html>moved</html>".into(),
        };
        assert!(r.describe(None).contains("https://cloud.example.org/ocs"));
    }

    fn quick() -> Backoff {
        Backoff {
            attempts: 3,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn silence_and_closed_ports_are_transient_and_retried() {
        // A server that accepts and never answers: every attempt times out.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = accepted.clone();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                held.push(s);
            }
        });
        let mut h = Http::new(
            "nextcloud",
            &format!("http://{addr}"),
            Duration::from_millis(200),
        )
        .expect("client");
        h.set_backoff(quick());
        let url = h.url("/status.php");
        match h.send(None, |c| c.get(&url)).await {
            Err(ServiceError::Transient(m)) => assert!(m.contains("timed out"), "{m}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert_eq!(h.requests(), 3, "retried up to the attempts");
        assert_eq!(accepted.load(Ordering::Relaxed), 3);
        server.abort();
        // Nothing listens: connection refused, transient.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = closed.local_addr().expect("addr").port();
        drop(closed);
        let mut h = Http::new(
            "gitlab",
            &format!("http://127.0.0.1:{port}"),
            Duration::from_secs(2),
        )
        .expect("client");
        h.set_backoff(quick());
        let url = h.url("/-/readiness");
        match h.send(None, |c| c.get(&url)).await {
            Err(ServiceError::Transient(m)) => assert!(m.contains("cannot reach gitlab"), "{m}"),
            other => panic!("expected a connect error, got {other:?}"),
        }
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(seg("a b/c@d.e"), "a%20b%2Fc%40d.e");
        assert_eq!(seg("alice"), "alice");
    }

    #[test]
    fn random_passwords_are_long_and_differ() {
        let a = random_password();
        let b = random_password();
        assert!(a.expose().len() >= 40);
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn field_strings() {
        assert_eq!(
            field_string(&serde_json::json!(true)).as_deref(),
            Some("true")
        );
        assert_eq!(field_string(&serde_json::json!(42)).as_deref(), Some("42"));
        assert_eq!(field_string(&serde_json::json!("x")).as_deref(), Some("x"));
        assert_eq!(field_string(&Value::Null), None);
    }
}
