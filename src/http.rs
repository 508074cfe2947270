//! The one HTTP layer of every target (LLDAP's GraphQL API and the services' REST APIs): one
//! reqwest client per target with timeouts, no redirects followed (the spec's URL must name the
//! API directly: a redirect is an error that says where it points), retries with backoff for
//! transient failures (connect errors, timeouts, 5xx, 408, 429, answers cut short; a target that
//! reads 429 itself says so, [`Http::answer_rate_limits`]), a request counter, and errors that carry
//! a short, tag-free excerpt of the server's answer ([`snippet`]) — never a secret, never a page.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

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
    /// 5xx, 408 or 429: the server could not answer now. `detail` is the status line and an
    /// excerpt of the answer ([`error_text`]).
    #[error("{target} answered {detail}")]
    Unavailable {
        target: &'static str,
        status: u16,
        detail: String,
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

    /// The body for an error message ([`snippet`]); for a redirect, where it points (paasd does
    /// not follow redirects: the spec's URL should name the service directly).
    pub fn describe(&self, secret: Option<&Secret>) -> String {
        match self.header("location") {
            Some(to) if (300..400).contains(&self.status) => {
                format!("redirected to {to} (put that URL in the spec)")
            }
            _ => snippet(&self.body, secret),
        }
    }

    /// How long the server asked to wait (`Retry-After`: seconds, or an HTTP date), from `now`.
    pub fn retry_after(&self, now: SystemTime) -> Option<Duration> {
        let v = self.header("retry-after")?.trim();
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        let at = crate::clock::parse_http_date(v)?;
        Some(at.duration_since(now).unwrap_or(Duration::ZERO))
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

/// The most characters of an answer that is not JSON in an error message.
const EXCERPT: usize = 120;
/// The most bytes of a JSON answer in an error message.
const JSON_EXCERPT: usize = 200;
/// How much of a page is read for its excerpt.
const PAGE_SCAN: usize = 256 << 10;

/// Shortens a server's answer for an error message and removes `secret` from it. A JSON answer
/// (an error envelope) is kept as it is, up to 200 bytes. Anything else — the HTML page of a
/// server or of a proxy in front of it, plain text — becomes a short excerpt on one line
/// (≤ 120 characters) with no markup: tags, comments, scripts, styles and inline SVG removed,
/// the page's title first, then the text of its `<main>` (or else of the whole page),
/// whitespace collapsed. An error message never carries a page.
pub fn snippet(body: &str, secret: Option<&Secret>) -> String {
    let mut t = body.trim().to_string();
    if let Some(s) = secret {
        if !s.expose().is_empty() {
            t = t.replace(s.expose(), "<redacted>");
        }
    }
    if t.starts_with('{') || t.starts_with('[') {
        let one_line = collapse(&t);
        return cut_bytes(&one_line, JSON_EXCERPT);
    }
    let text = if looks_like_markup(&t) {
        page_text(&t)
    } else {
        collapse(&t)
    };
    cut_chars(&text, EXCERPT)
}

/// The status line (`HTTP 502 Bad Gateway`) and, when the answer says more, an excerpt of it
/// ([`snippet`]): `HTTP 502 Bad Gateway: nginx`. An excerpt that only repeats the status is left
/// out.
pub fn error_text(status: u16, body: &str, secret: Option<&Secret>) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|c| c.canonical_reason());
    let line = match reason {
        Some(r) => format!("HTTP {status} {r}"),
        None => format!("HTTP {status}"),
    };
    let excerpt = snippet(body, secret);
    let plain = reason.map(|r| format!("{status} {r}"));
    let rest = match &plain {
        Some(p) if excerpt.len() >= p.len() && excerpt[..p.len()].eq_ignore_ascii_case(p) => {
            excerpt[p.len()..]
                .trim_start_matches(|c: char| c.is_whitespace() || ":-–—·|".contains(c))
        }
        _ => excerpt.as_str(),
    };
    if rest.is_empty() {
        line
    } else {
        format!("{line}: {rest}")
    }
}

/// `s` on one line: runs of whitespace (newlines too) become one space.
fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first `max` characters of `s`, with `…` when something was cut.
fn cut_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    // At a word's end, when one is near.
    if let Some(space) = out.rfind(' ').filter(|&n| out.len() - n <= 24) {
        out.truncate(space);
    }
    out.truncate(out.trim_end().len());
    out.push('…');
    out
}

/// The first `max` bytes of `s` (at a character boundary), with `…` when something was cut.
fn cut_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Whether `s` holds markup: a `<` that opens a tag, a comment or a declaration.
fn looks_like_markup(s: &str) -> bool {
    s.as_bytes()
        .windows(2)
        .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || b"!/?".contains(&w[1])))
}

/// Elements whose content is not text a reader sees.
const HIDDEN: [&str; 6] = ["script", "style", "svg", "noscript", "template", "iframe"];

/// The visible text of an HTML page: its title, then the text of `<main>` if it has one, else of
/// the whole page; without tags, comments or hidden elements, entities decoded (except those of
/// `<` and `>`), whitespace collapsed.
fn page_text(page: &str) -> String {
    let mut end = page.len().min(PAGE_SCAN);
    while !page.is_char_boundary(end) {
        end -= 1;
    }
    let page = &page[..end];
    // ASCII lower-casing keeps every byte offset, so `lower` indexes `page`.
    let lower = page.to_ascii_lowercase();
    let (mut title, mut main, mut all) = (String::new(), String::new(), String::new());
    let (mut in_title, mut in_main) = (false, false);
    let mut i = 0;
    while i < page.len() {
        let rest = &page[i..];
        if !rest.starts_with('<') {
            let next = rest.find('<').map_or(page.len(), |n| i + n);
            let text = decode_entities(&page[i..next]);
            if in_title {
                title.push_str(&text);
            } else {
                all.push_str(&text);
                if in_main {
                    main.push_str(&text);
                }
            }
            i = next;
            continue;
        }
        if lower[i..].starts_with("<!--") {
            i = lower[i..].find("-->").map_or(page.len(), |n| i + n + 3);
            continue;
        }
        let tag_end = tag_end(page, i);
        let name: String = lower[(i + 1).min(tag_end)..tag_end]
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let closing = lower[(i + 1).min(page.len())..].starts_with('/');
        i = (tag_end + 1).min(page.len());
        if !closing && HIDDEN.contains(&name.as_str()) {
            // Skip to the end of the element (its closing tag), or of the page.
            let close = format!("</{name}");
            i = match lower[i..].find(&close) {
                Some(n) => tag_end_after(page, i + n),
                None => page.len(),
            };
            continue;
        }
        match (name.as_str(), closing) {
            ("title", false) => in_title = true,
            ("title", true) => in_title = false,
            ("main", false) => in_main = true,
            ("main", true) => in_main = false,
            _ => {}
        }
        // A tag separates words.
        all.push(' ');
        if in_main {
            main.push(' ');
        }
    }
    let title = collapse(&title);
    let text = collapse(if main.trim().is_empty() { &all } else { &main });
    match (title.is_empty(), text.is_empty()) {
        (true, _) => text,
        (false, true) => title,
        (false, false) if text.starts_with(&title) => text,
        (false, false) => format!("{title}: {text}"),
    }
}

/// The index of the `>` that ends the tag starting at `start` (quoted attribute values may hold
/// a `>`), or the length of `page` when the tag is not closed.
fn tag_end(page: &str, start: usize) -> usize {
    let mut quote: Option<u8> = None;
    for (n, b) in page.as_bytes()[start..].iter().enumerate() {
        match (quote, *b) {
            (None, b'"' | b'\'') => quote = Some(*b),
            (Some(q), c) if c == q => quote = None,
            (None, b'>') => return start + n,
            _ => {}
        }
    }
    page.len()
}

/// The index after the `>` of the tag starting at `start`.
fn tag_end_after(page: &str, start: usize) -> usize {
    (tag_end(page, start) + 1).min(page.len())
}

/// `&amp;`, `&quot;`, `&apos;`, `&nbsp;` and numeric references decoded; `&lt;`, `&gt;` (and
/// references to `<` and `>`) and unknown ones kept as written, so the result holds no markup.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(n) = rest.find('&') {
        out.push_str(&rest[..n]);
        rest = &rest[n..];
        let Some(semi) = rest[..rest.len().min(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let name = &rest[1..semi];
        let decoded = match name {
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            _ => name
                .strip_prefix("#x")
                .or_else(|| name.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) if c != '<' && c != '>' => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// One target's HTTP client.
pub struct Http {
    target: &'static str,
    base: String,
    client: reqwest::Client,
    backoff: Backoff,
    requests: AtomicU64,
    /// 429 answers go to the caller as they are (not retried): [`Http::answer_rate_limits`].
    rate_limits_to_caller: bool,
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
            rate_limits_to_caller: false,
        })
    }

    pub fn set_backoff(&mut self, backoff: Backoff) {
        self.backoff = backoff;
    }

    /// 429 (Too Many Requests) answers are returned to the caller like any other answer, not
    /// retried: for a server whose rate limit lasts minutes (Vaultwarden's admin login), where
    /// retrying within the run only waits in vain and the caller reports when to try again.
    pub fn answer_rate_limits(&mut self) {
        self.rate_limits_to_caller = true;
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
        if status >= 500 || status == 408 || (status == 429 && !self.rate_limits_to_caller) {
            return Err(HttpError::Unavailable {
                target: self.target,
                status,
                detail: error_text(status, &body, secret),
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
        assert_eq!(
            snippet("Bad\n  request\n", None),
            "Bad request",
            "plain text on one line"
        );
        assert_eq!(
            snippet("{\"a\": 1 <b>}", None),
            "{\"a\": 1 <b>}",
            "JSON as it is"
        );
    }

    /// The page Vaultwarden answers a rate-limited admin login with (HTTP 429): its admin
    /// login page with the error on top — head, an icon sprite, a script, the navigation bar.
    const VAULTWARDEN_429: &str = r#"<!DOCTYPE html>
<html lang="en" data-bs-theme="auto">
<head>
    <meta charset="UTF-8">
    <meta name="robots" content="noindex,nofollow" />
    <link rel="icon" type="image/png" href="/vw_static/vaultwarden-favicon.png">
    <title>Vaultwarden Admin Panel</title>
    <link rel="stylesheet" href="/vw_static/bootstrap.css" />
    <style>body { padding-top: 75px; } .vw-icon > path { fill: #000; }</style>
    <script src="/vw_static/admin.js"></script>
    <script>if (a < b && c > d) { document.title = "<b>x</b>"; }</script>
</head>
<body>
    <svg xmlns="http://www.w3.org/2000/svg" class="d-none"><symbol id="vw-icon-sun" viewBox="0 0 24 24"><circle cx="12" cy="12" r="5"/></symbol></svg>
    <nav class="navbar navbar-expand-md navbar-dark bg-dark mb-4 shadow fixed-top">
        <a class="navbar-brand" href="/admin"><img src="/vw_static/vaultwarden-icon.png" alt="V">aultwarden Admin</a>
        <!-- <li>hidden</li> -->
    </nav>
    <main class="container-xxl">
        <div class="align-items-center p-3 mb-3 bg-warning rounded shadow">
            <h6 class="mb-0 text-dark">Error: Too many requests, try again later.</h6>
        </div>
        <div class="p-3 mb-3 bg-danger rounded shadow">
            <h6 class="mb-0 text-light">Authentication key needed to continue</h6>
            <small>Please provide it below:</small>
            <form class="form-inline" method="post" action="/admin">
                <input type="password" class="form-control w-50 mr-2" name="token" placeholder="Enter admin token" autofocus="autofocus">
                <button type="submit" class="btn btn-primary mt-2">Enter</button>
            </form>
        </div>
    </main>
</body>
</html>"#;

    /// nginx's own page for a backend that does not answer.
    const NGINX_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n";

    #[test]
    fn an_error_never_carries_a_page() {
        let vw = error_text(429, VAULTWARDEN_429, None);
        assert!(!vw.contains('<') && !vw.contains('>'), "{vw}");
        assert!(vw.starts_with("HTTP 429 Too Many Requests: "), "{vw}");
        assert_eq!(
            vw,
            "HTTP 429 Too Many Requests: Vaultwarden Admin Panel: Error: Too many requests, try again later. Authentication key needed to continue Please…"
        );
        assert!(!vw.contains("document.title") && !vw.contains("padding-top"));
        assert!(snippet(VAULTWARDEN_429, None).chars().count() <= 120);
        let nginx = error_text(502, NGINX_502, None);
        assert_eq!(nginx, "HTTP 502 Bad Gateway: nginx/1.24.0");
        // A page without <main>: all of its text; entities decoded except < and >.
        let p = snippet(
            "<p>Fish &amp; chips &lt;b&gt; &#233;t&#xE9; &#60; &bogus; & more</p>",
            None,
        );
        assert_eq!(p, "Fish & chips &lt;b&gt; été &#60; &bogus; & more");
        // The status alone when the answer adds nothing; the secret never.
        assert_eq!(
            error_text(503, "503 Service Unavailable", None),
            "HTTP 503 Service Unavailable"
        );
        assert_eq!(error_text(599, "", None), "HTTP 599");
        let s = Secret::new("tok-Secret-1");
        let e = error_text(500, "<h1>Error</h1><p>bad token tok-Secret-1</p>", Some(&s));
        assert!(!e.contains("tok-Secret-1") && !e.contains('<'), "{e}");
        // Unclosed markup and a cut in a multi-byte character do not panic.
        for broken in [
            "<html><script>never closed",
            "<a href=\"x>y",
            "<p>x <",
            "<p",
        ] {
            let out = snippet(broken, None);
            assert!(!out.contains('<'), "{broken}: {out}");
        }
        assert_eq!(snippet("a <é", None), "a <é", "not markup: text as it is");
        let big = format!("<p>{}</p>", "é".repeat(300_000));
        assert!(snippet(&big, None).chars().count() <= 120);
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let with = |v: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("retry-after", v.parse().expect("header"));
            Response {
                status: 429,
                headers,
                body: String::new(),
            }
            .retry_after(now)
        };
        assert_eq!(with("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            with("Sun, 06 Nov 1994 08:50:37 GMT"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(with("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(with("soon"), None);
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
