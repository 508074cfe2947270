//! The one HTTP layer of every target (LLDAP's GraphQL API and the services' REST APIs): one
//! reqwest client per target with timeouts, no redirects followed (the spec's URL must name the
//! API directly: a redirect is an error that says where it points), retries with backoff for
//! transient failures (connect errors, timeouts, 5xx, 408, 429, answers cut short), a request
//! counter, and errors that carry a short snippet of the server's answer — never a secret.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

use crate::backoff::{retry, Backoff, Transient};
use crate::secret::Secret;

/// A failure to get an answer (transient ones are retried before they are returned).
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    #[error("cannot reach {target} at {url}: {message}")]
    Unreachable {
        target: &'static str,
        url: String,
        message: String,
        timed_out: bool,
    },
    /// 5xx, 408 or 429: the server could not answer now.
    #[error("{target} answered HTTP {status}: {body}")]
    Unavailable {
        target: &'static str,
        status: u16,
        body: String,
    },
    /// A successful answer that cannot be read (cut short, not what the API sends).
    #[error("{target}: unreadable answer (HTTP {status}): {message}")]
    Unreadable {
        target: &'static str,
        status: u16,
        message: String,
    },
    #[error("{target}: cannot build an HTTP client: {message}")]
    Client {
        target: &'static str,
        message: String,
    },
}

impl Transient for HttpError {
    fn is_transient(&self) -> bool {
        !matches!(self, HttpError::Client { .. })
    }
}

/// One answer, read completely.
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

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as `T` (an empty body as JSON `null`).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        let body = self.body.trim();
        serde_json::from_str(if body.is_empty() { "null" } else { body })
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
pub struct Sent<T = Response> {
    pub answer: T,
    pub attempts: u32,
}

impl<T> Sent<T> {
    /// An earlier attempt of this request failed transiently (it may have taken effect).
    pub fn retried(&self) -> bool {
        self.attempts > 1
    }
}

/// A JSON answer: the body as `T` (always there on success), with the response it came in.
#[derive(Debug, Clone)]
pub struct Json<T> {
    pub response: Response,
    pub body: Option<T>,
    pub attempts: u32,
}

/// How a caller reads an answer: an unreadable answer is retried like a transient failure.
pub enum Decoded<T, E> {
    Ok(T),
    /// Cut short or garbled: try again.
    Unreadable(String),
    /// Read, and it says no: returned as is.
    Fail(E),
}

/// Shortens a server's answer for an error message and removes `secret` from it. HTML pages
/// (proxies, error pages) become their first 120 characters on one line.
pub fn snippet(body: &str, secret: Option<&Secret>) -> String {
    let mut t = body.trim().to_string();
    if let Some(s) = secret {
        if !s.expose().is_empty() {
            t = t.replace(s.expose(), "<redacted>");
        }
    }
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

/// One target's HTTP client.
pub struct Http {
    target: &'static str,
    base: String,
    client: reqwest::Client,
    backoff: Backoff,
    requests: AtomicU64,
}

/// A failed attempt, for the retry loop: the error, or a caller's refusal (never retried).
enum Attempt<E> {
    Http(HttpError),
    Fail(E),
}

impl<E> Transient for Attempt<E> {
    fn is_transient(&self) -> bool {
        matches!(self, Attempt::Http(e) if e.is_transient())
    }
}

impl Http {
    /// `target` names the server in messages (`LLDAP`, `nextcloud`, …); `base` is the URL every
    /// path is appended to.
    pub fn new(target: &'static str, base: &str, timeout: Duration) -> Result<Self, HttpError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(16)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("paasd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::Client {
                target,
                message: e.to_string(),
            })?;
        Ok(Http {
            target,
            base: base.trim_end_matches('/').to_string(),
            client,
            backoff: Backoff::default(),
            requests: AtomicU64::new(0),
        })
    }

    pub fn set_backoff(&mut self, backoff: Backoff) {
        self.backoff = backoff;
    }

    pub fn target(&self) -> &'static str {
        self.target
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `base` + `path` (the path starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// HTTP requests sent so far (retries included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn unreachable(&self, e: &reqwest::Error) -> HttpError {
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
        HttpError::Unreachable {
            target: self.target,
            url: self.base.clone(),
            message,
            timed_out: e.is_timeout(),
        }
    }

    async fn once(
        &self,
        build: &(dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync),
        secret: Option<&Secret>,
    ) -> Result<Response, HttpError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = build(&self.client)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.map_err(|e| self.unreachable(&e))?;
        if status >= 500 || status == 408 || status == 429 {
            return Err(HttpError::Unavailable {
                target: self.target,
                status,
                body: snippet(&body, secret),
            });
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Sends a request (built afresh for every attempt), retrying transient failures with
    /// backoff, and reads the answer with `decode` (an unreadable answer is retried too). `secret`
    /// is the one the request carries, if any: it is scrubbed from error messages.
    pub async fn send_decoded<T, E>(
        &self,
        secret: Option<&Secret>,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync,
        decode: impl Fn(&Response) -> Decoded<T, E>,
    ) -> Result<Sent<T>, E>
    where
        E: From<HttpError>,
    {
        let (r, attempts) = self.send_counted(secret, build, decode).await;
        r.map(|answer| Sent { answer, attempts })
    }

    /// [`Http::send_decoded`], with the number of attempts made whatever the outcome (an error
    /// after a transient failure may be the echo of a request that took effect).
    pub async fn send_counted<T, E>(
        &self,
        secret: Option<&Secret>,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync,
        decode: impl Fn(&Response) -> Decoded<T, E>,
    ) -> (Result<T, E>, u32)
    where
        E: From<HttpError>,
    {
        let (r, attempts) = retry(self.backoff, |_| async {
            let resp = self.once(&build, secret).await.map_err(Attempt::Http)?;
            match decode(&resp) {
                Decoded::Ok(t) => Ok(t),
                Decoded::Unreadable(message) => Err(Attempt::Http(HttpError::Unreadable {
                    target: self.target,
                    status: resp.status,
                    message,
                })),
                Decoded::Fail(e) => Err(Attempt::Fail(e)),
            }
        })
        .await;
        let r = match r {
            Ok(answer) => Ok(answer),
            Err(Attempt::Http(e)) => Err(E::from(e)),
            Err(Attempt::Fail(e)) => Err(e),
        };
        (r, attempts)
    }

    /// [`Http::send_decoded`] that takes any answer that arrived whole; the caller reads the
    /// status.
    pub async fn send(
        &self,
        secret: Option<&Secret>,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync,
    ) -> Result<Sent, HttpError> {
        self.send_decoded(secret, build, |r| Decoded::<_, HttpError>::Ok(r.clone()))
            .await
    }

    /// For answers that must be JSON on success: a 2xx body that does not parse as `T` is
    /// retried like an answer cut short. Any other status comes back with the body parsed if
    /// it parses (error envelopes), for the caller to interpret.
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        secret: Option<&Secret>,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync,
    ) -> Result<Json<T>, HttpError> {
        let sent = self
            .send_decoded(secret, build, |r| {
                if r.ok() {
                    match r.json::<T>() {
                        Ok(t) => Decoded::Ok((r.clone(), Some(t))),
                        Err(e) => Decoded::Unreadable(e.to_string()),
                    }
                } else {
                    Decoded::<_, HttpError>::Ok((r.clone(), r.json::<T>().ok()))
                }
            })
            .await?;
        let (response, body) = sent.answer;
        Ok(Json {
            response,
            body,
            attempts: sent.attempts,
        })
    }

    /// One attempt only (readiness probes: the caller's own wait paces them).
    pub async fn probe(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync,
    ) -> Result<Response, HttpError> {
        self.once(&build, None).await
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
        let html = format!("<html>\n<body>{}</body></html>", "x".repeat(500));
        assert!(snippet(&html, None).chars().count() <= 120);
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
            jitter: true,
        }
    }

    #[tokio::test]
    async fn silence_and_closed_ports_are_transient_and_retried() {
        // A server that accepts and never answers: every attempt times out.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let accepted = std::sync::Arc::new(AtomicU64::new(0));
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
            Err(HttpError::Unreachable {
                message, timed_out, ..
            }) => {
                assert!(timed_out && message.contains("timed out"), "{message}")
            }
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
            Err(e @ HttpError::Unreachable { .. }) => {
                assert!(e.is_transient());
                assert!(e.to_string().contains("cannot reach gitlab"), "{e}")
            }
            other => panic!("expected a connect error, got {other:?}"),
        }
        assert_eq!(h.requests(), 3);
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(seg("a b/c@d.e"), "a%20b%2Fc%40d.e");
        assert_eq!(seg("alice"), "alice");
    }
}
