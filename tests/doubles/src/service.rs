//! What the service doubles (Nextcloud, GitLab, Jellyfin, Vaultwarden, Mailcow) share: an HTTP
//! server on loopback that checks every request and every response against the service's OpenAPI
//! contract, counters, fault injection (status bursts, delays, connection resets, truncated
//! bodies, a failing health endpoint), and control endpoints under `/__double/`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::openapi::{Contract, ContractError, ContractOptions, RequestParts};

type ContractKey = (String, Vec<std::path::PathBuf>);

static CONTRACTS: std::sync::OnceLock<
    Mutex<std::collections::HashMap<ContractKey, Arc<Contract>>>,
> = std::sync::OnceLock::new();

/// Loads a service's documents once per process (parsing Jellyfin's 2 MB document and compiling
/// its validators is the slow part of starting a double); later doubles share the result.
pub(crate) fn load_contract(
    name: &str,
    files: Vec<std::path::PathBuf>,
    options: ContractOptions,
    patch: fn(&std::path::Path, &mut Value),
) -> Result<Arc<Contract>, ContractError> {
    let key = (name.to_owned(), files.clone());
    let cache = CONTRACTS.get_or_init(|| Mutex::new(std::collections::HashMap::new()));
    if let Some(c) = lock(cache).get(&key) {
        return Ok(c.clone());
    }
    let contract = Arc::new(Contract::load(name, &files, options, patch)?);
    lock(cache).insert(key, contract.clone());
    Ok(contract)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not make the double unusable for the others.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const MAX_BODY: usize = 64 << 20;

/// Faults to inject. Counters (`*_next`) are consumed one request at a time; control endpoints
/// are never affected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct FaultPlan {
    /// Answer the next N requests with `fail_status` (plain-text body, like a reverse proxy).
    pub fail_next: u32,
    /// The status used by `fail_next`; 0 means 503.
    pub fail_status: u16,
    /// Close the connection without answering (TCP reset) for the next N requests.
    pub reset_next: u32,
    /// Delay every response by this many milliseconds.
    pub delay_ms: u64,
    /// Cut the body of the next N responses in half.
    pub truncate_next: u32,
    /// While set, the health endpoint answers this status (e.g. 503) — "still starting".
    pub health_status: Option<u16>,
    /// While set, every request (health included) answers this status — "down".
    pub unavailable_status: Option<u16>,
}

/// A handle to change the faults of a running double (cheap to clone).
#[derive(Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<FaultPlan>>,
}

#[derive(Debug, Default)]
struct Decision {
    delay: Duration,
    reset: bool,
    fail: Option<u16>,
    truncate: bool,
}

impl Faults {
    /// The current plan.
    pub fn plan(&self) -> FaultPlan {
        lock(&self.inner).clone()
    }

    /// Replaces the whole plan.
    pub fn set(&self, plan: FaultPlan) {
        *lock(&self.inner) = plan;
    }

    /// Removes every fault.
    pub fn clear(&self) {
        *lock(&self.inner) = FaultPlan::default();
    }

    /// Answer the next `n` requests with `status` (e.g. a 503 burst).
    pub fn fail_next(&self, n: u32, status: u16) {
        let mut f = lock(&self.inner);
        f.fail_next = n;
        f.fail_status = status;
    }

    /// Reset the connection instead of answering the next `n` requests.
    pub fn reset_next(&self, n: u32) {
        lock(&self.inner).reset_next = n;
    }

    /// Delay every response.
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.inner).delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    }

    /// Truncate the next `n` response bodies.
    pub fn truncate_next(&self, n: u32) {
        lock(&self.inner).truncate_next = n;
    }

    /// `Some(status)`: the health endpoint fails with it until `set_health(None)`.
    pub fn set_health(&self, status: Option<u16>) {
        lock(&self.inner).health_status = status;
    }

    /// `Some(status)`: every request fails with it until `set_unavailable(None)`.
    pub fn set_unavailable(&self, status: Option<u16>) {
        lock(&self.inner).unavailable_status = status;
    }

    fn take(&self, is_health: bool) -> Decision {
        let mut p = lock(&self.inner);
        let mut d = Decision {
            delay: Duration::from_millis(p.delay_ms),
            ..Decision::default()
        };
        if let Some(s) = p.unavailable_status {
            d.fail = Some(s);
        } else if p.reset_next > 0 {
            p.reset_next -= 1;
            d.reset = true;
        } else if p.fail_next > 0 {
            p.fail_next -= 1;
            d.fail = Some(if p.fail_status == 0 {
                503
            } else {
                p.fail_status
            });
        } else if is_health && p.health_status.is_some() {
            d.fail = p.health_status;
        } else if p.truncate_next > 0 {
            p.truncate_next -= 1;
            d.truncate = true;
        }
        d
    }
}

/// Counters of what clients did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Requests by documented endpoint, e.g. `"GET /api/v4/users/{id}"` (undocumented ones by
    /// `"METHOD /path"`); the health endpoint included, control endpoints not.
    pub requests: BTreeMap<String, u64>,
    /// Bytes of request bodies received.
    pub request_bytes: u64,
    /// Bytes of response bodies sent (after truncation).
    pub response_bytes: u64,
    /// Requests refused for missing or bad credentials.
    pub unauthorized: u64,
    /// Requests that changed state (create, update, delete…), by operation name, e.g. `"createUser"`.
    pub writes: BTreeMap<String, u64>,
    /// Responses whose status the document does not describe (not checkable), by `"endpoint status"`.
    pub unchecked_responses: BTreeMap<String, u64>,
    /// Faults actually injected, by kind (`http_503`, `http_reset`, `http_truncate`, `health_503`…).
    pub faults_injected: BTreeMap<String, u64>,
}

impl Stats {
    /// Requests to one endpoint, e.g. `"GET /api/v4/users"`.
    pub fn requests_to(&self, endpoint: &str) -> u64 {
        self.requests.get(endpoint).copied().unwrap_or(0)
    }

    /// All requests (health included).
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// How often a write operation was executed.
    pub fn writes_of(&self, op: &str) -> u64 {
        self.writes.get(op).copied().unwrap_or(0)
    }

    /// All state-changing operations executed.
    pub fn total_writes(&self) -> u64 {
        self.writes.values().sum()
    }

    pub(crate) fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
        *map.entry(key.to_owned()).or_default() += 1;
    }
}

/// Which side of an exchange broke the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Side {
    /// The client sent something the document does not allow.
    Request,
    /// The double answered something the document does not allow (a bug in the double).
    Response,
}

/// One contract violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// `"POST /ocs/v2.php/cloud/users"` (the path as sent).
    pub endpoint: String,
    pub side: Side,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = match self.side {
            Side::Request => "request",
            Side::Response => "response",
        };
        write!(f, "{side} {}: {}", self.endpoint, self.message)
    }
}

/// Why a double could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Contract(#[from] ContractError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// A request as a service double sees it (already checked against the contract).
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The client's address (a service that limits by client address keys on its IP).
    pub peer: Option<SocketAddr>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The last value of a query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The media type of the body, lower-case, without parameters.
    pub fn content_type(&self) -> Option<String> {
        self.header("content-type")
            .map(crate::openapi::normalize_media)
    }

    /// Path segments after a prefix, percent-decoded.
    pub fn segments_after(&self, prefix: &str) -> Option<Vec<String>> {
        let rest = self.path.strip_prefix(prefix)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        Some(
            rest.split('/')
                .filter(|s| !s.is_empty())
                .map(|s| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8_lossy()
                        .into_owned()
                })
                .collect(),
        )
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| {
                let (k, v) = c.trim().split_once('=')?;
                (k == name).then(|| v.to_owned())
            })
    }
}

/// A response of a service double.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, v: &Value) -> Self {
        Self {
            status,
            headers: vec![(
                header::CONTENT_TYPE,
                "application/json; charset=utf-8".into(),
            )],
            body: v.to_string().into_bytes(),
        }
    }

    pub fn text(status: u16, s: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![(header::CONTENT_TYPE, "text/plain; charset=utf-8".into())],
            body: s.into().into_bytes(),
        }
    }

    pub fn html(status: u16, s: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![(header::CONTENT_TYPE, "text/html; charset=utf-8".into())],
            body: s.into().into_bytes(),
        }
    }

    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// What each service double implements.
pub(crate) trait Service: Send + Sync + 'static {
    /// The method and path of the health endpoint.
    fn health_endpoint(&self) -> (&'static str, &'static str);
    /// Answers a request (the health endpoint included, unless a fault answers it).
    fn handle(&self, req: &Req, core: &Core) -> Reply;
    /// A JSON dump of the state (`GET /__double/state`).
    fn state_json(&self) -> Value;
    /// `POST /__double/seed` (a service-specific JSON document).
    fn seed_json(&self, v: &Value) -> Result<(), String>;
    /// A control endpoint of this service (`/__double/<rest>`) the common ones do not cover;
    /// `None`: unknown.
    fn control(&self, _method: &str, _rest: &str, _body: &[u8]) -> Option<Reply> {
        None
    }
}

pub(crate) struct Core {
    pub contract: Arc<Contract>,
    pub faults: Faults,
    pub stats: Mutex<Stats>,
    pub violations: Mutex<Vec<Violation>>,
    pub service: Arc<dyn Service>,
}

impl Core {
    /// Counts one state-changing operation.
    pub fn write(&self, op: &str) {
        Stats::bump(&mut lock(&self.stats).writes, op);
    }

    /// Counts one refused authentication.
    pub fn unauthorized(&self) {
        lock(&self.stats).unauthorized += 1;
    }

    /// Records a violation the document cannot express (a hand-coded rule of the service).
    pub fn request_violation(&self, req: &Req, message: impl Into<String>) {
        self.violation(
            &format!("{} {}", req.method, req.path),
            Side::Request,
            message.into(),
        );
    }

    fn violation(&self, endpoint: &str, side: Side, message: String) {
        tracing::warn!(service = %self.contract.name(), %endpoint, ?side, %message, "double: contract violation");
        lock(&self.violations).push(Violation {
            endpoint: endpoint.to_owned(),
            side,
            message,
        });
    }
}

/// The running HTTP server of a double.
pub(crate) struct Server {
    pub core: Arc<Core>,
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    pub async fn start(
        addr: SocketAddr,
        contract: Arc<Contract>,
        faults: FaultPlan,
        service: Arc<dyn Service>,
    ) -> Result<Self, StartError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let core = Arc::new(Core {
            contract,
            faults: Faults {
                inner: Arc::new(Mutex::new(faults)),
            },
            stats: Mutex::new(Stats::default()),
            violations: Mutex::new(Vec::new()),
            service,
        });
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, core.clone(), rx));
        tracing::info!(service = %core.contract.name(), addr = %bound, "double started");
        Ok(Self {
            core,
            addr: bound,
            shutdown,
            task: Some(task),
        })
    }

    pub fn stats(&self) -> Stats {
        lock(&self.core.stats).clone()
    }

    pub fn reset_stats(&self) {
        *lock(&self.core.stats) = Stats::default();
    }

    pub fn violations(&self) -> Vec<Violation> {
        lock(&self.core.violations).clone()
    }

    pub fn take_violations(&self) -> Vec<Violation> {
        std::mem::take(&mut *lock(&self.core.violations))
    }

    pub fn assert_no_violations(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "the {} contract was violated {} time(s):\n{}",
            self.core.contract.name(),
            v.len(),
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// The methods every service double has, delegated to its [`Server`].
macro_rules! common_double_methods {
    () => {
        /// The bound address.
        pub fn addr(&self) -> std::net::SocketAddr {
            self.server.addr
        }

        /// `http://127.0.0.1:<port>` (no trailing slash).
        pub fn url(&self) -> String {
            format!("http://{}", self.server.addr)
        }

        /// A snapshot of the counters.
        pub fn stats(&self) -> $crate::service::Stats {
            self.server.stats()
        }

        /// Resets the counters.
        pub fn reset_stats(&self) {
            self.server.reset_stats()
        }

        /// Contract violations recorded so far (request and response side).
        pub fn violations(&self) -> Vec<$crate::service::Violation> {
            self.server.violations()
        }

        /// Returns and clears the violations.
        pub fn take_violations(&self) -> Vec<$crate::service::Violation> {
            self.server.take_violations()
        }

        /// Panics (listing them) if any violation was recorded.
        pub fn assert_no_violations(&self) {
            self.server.assert_no_violations()
        }

        /// The fault-injection handle.
        pub fn faults(&self) -> $crate::service::Faults {
            self.server.core.faults.clone()
        }

        /// Stops the server (dropping the double does too).
        pub async fn stop(self) {
            self.server.stop().await
        }
    };
}
pub(crate) use common_double_methods;

/// Lets the handler kill its own connection (TCP reset).
type Kill = Arc<Notify>;

async fn serve(listener: TcpListener, core: Arc<Core>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(connection(stream, peer, core.clone(), shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "double: accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    core: Arc<Core>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Keep a duplicate of the socket to set SO_LINGER=0 (reset) when killing it.
    let dup = stream
        .into_std()
        .and_then(|std| Ok((std.try_clone()?, std)))
        .and_then(|(dup, std)| Ok((dup, TcpStream::from_std(std)?)));
    let (dup, stream) = match dup {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "double: cannot set up connection");
            return;
        }
    };
    let kill: Kill = Arc::new(Notify::new());
    let kill2 = kill.clone();
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let core = core.clone();
        let kill = kill2.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(core, kill, peer, req).await) }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
    tokio::select! {
        res = conn => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "double: connection ended with an error");
            }
        }
        _ = kill.notified() => {
            let _ = socket2::SockRef::from(&dup).set_linger(Some(Duration::ZERO));
        }
        _ = shutdown.changed() => {}
    }
    drop(dup);
}

fn to_response(r: Reply) -> Response {
    let mut resp = Response::new(Body::from(r.body));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().append(k, v);
        }
    }
    resp
}

async fn handle(
    core: Arc<Core>,
    kill: Kill,
    peer: SocketAddr,
    req: hyper::Request<hyper::body::Incoming>,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return to_response(Reply::text(400, format!("cannot read the body: {e}"))),
    };
    if bytes.len() > MAX_BODY {
        return to_response(Reply::text(413, "body too large"));
    }
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().map(str::to_owned);
    if let Some(rest) = path.strip_prefix("/__double/") {
        return to_response(control(&core, &method, rest, &bytes));
    }
    let (health_method, health_path) = core.service.health_endpoint();
    let is_health = method == health_method && path == health_path;
    let check = core.contract.check_request(&RequestParts {
        method: &method,
        path: &path,
        query: raw_query.as_deref(),
        headers: &parts.headers,
        body: &bytes,
    });
    let endpoint_key = check
        .operation
        .as_ref()
        .map(|o| o.endpoint.clone())
        .unwrap_or_else(|| format!("{method} {path}"));
    {
        let mut st = lock(&core.stats);
        Stats::bump(&mut st.requests, &endpoint_key);
        st.request_bytes += bytes.len() as u64;
    }
    let decision = core.faults.take(is_health);
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    if decision.reset {
        Stats::bump(&mut lock(&core.stats).faults_injected, "http_reset");
        kill.notify_one();
        std::future::pending::<()>().await;
    }
    if let Some(code) = decision.fail {
        let kind = if is_health { "health" } else { "http" };
        Stats::bump(
            &mut lock(&core.stats).faults_injected,
            &format!("{kind}_{code}"),
        );
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let body = format!(
            "{} {}",
            status.as_str(),
            status.canonical_reason().unwrap_or("Error")
        );
        lock(&core.stats).response_bytes += body.len() as u64;
        return to_response(Reply::text(code, body));
    }
    // The health endpoints of Nextcloud, GitLab, Jellyfin and Vaultwarden are not in their
    // documents: an undocumented health request is not a violation.
    if !(is_health && check.operation.is_none()) {
        for v in &check.violations {
            core.violation(&format!("{method} {path}"), Side::Request, v.clone());
        }
    }
    let query: Vec<(String, String)> =
        form_urlencoded::parse(raw_query.as_deref().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let req = Req {
        method: method.clone(),
        path: path.clone(),
        query,
        headers: parts.headers,
        body: bytes,
        peer: Some(peer),
    };
    let reply = core.service.handle(&req, &core);
    if let Some(op) = &check.operation {
        let ct = reply
            .headers
            .iter()
            .find(|(k, _)| *k == header::CONTENT_TYPE)
            .map(|(_, v)| v.as_str());
        match core
            .contract
            .check_response(op, reply.status, ct, &reply.body)
        {
            Some(vs) => {
                for v in vs {
                    core.violation(&format!("{method} {path}"), Side::Response, v);
                }
            }
            None => Stats::bump(
                &mut lock(&core.stats).unchecked_responses,
                &format!("{} {}", op.endpoint, reply.status),
            ),
        }
    }
    let mut reply = reply;
    if decision.truncate {
        Stats::bump(&mut lock(&core.stats).faults_injected, "http_truncate");
        reply.body.truncate(reply.body.len() / 2);
    }
    lock(&core.stats).response_bytes += reply.body.len() as u64;
    to_response(reply)
}

fn control(core: &Core, method: &str, rest: &str, body: &[u8]) -> Reply {
    match (method, rest) {
        ("GET", "stats") => Reply::json(
            200,
            &serde_json::to_value(&*lock(&core.stats)).unwrap_or(Value::Null),
        ),
        ("POST", "stats/reset") => {
            *lock(&core.stats) = Stats::default();
            Reply::json(200, &json!({"ok": true}))
        }
        ("GET", "violations") => Reply::json(
            200,
            &serde_json::to_value(&*lock(&core.violations)).unwrap_or(Value::Null),
        ),
        ("POST", "violations/clear") => {
            lock(&core.violations).clear();
            Reply::json(200, &json!({"ok": true}))
        }
        ("GET", "state") => Reply::json(200, &core.service.state_json()),
        ("GET", "faults") => Reply::json(
            200,
            &serde_json::to_value(core.faults.plan()).unwrap_or(Value::Null),
        ),
        ("POST", "faults/clear") => {
            core.faults.clear();
            Reply::json(200, &json!({"ok": true}))
        }
        ("POST", "faults") => {
            let patch: Value = match serde_json::from_slice(body) {
                Ok(v @ Value::Object(_)) => v,
                _ => return Reply::text(400, "expected a JSON object"),
            };
            let mut current =
                serde_json::to_value(core.faults.plan()).unwrap_or_else(|_| json!({}));
            if let (Some(cur), Some(p)) = (current.as_object_mut(), patch.as_object()) {
                for (k, v) in p {
                    cur.insert(k.clone(), v.clone());
                }
            }
            match serde_json::from_value::<FaultPlan>(current) {
                Ok(plan) => {
                    core.faults.set(plan.clone());
                    Reply::json(200, &serde_json::to_value(plan).unwrap_or(Value::Null))
                }
                Err(e) => Reply::text(400, format!("invalid fault plan: {e}")),
            }
        }
        ("POST", "seed") => match serde_json::from_slice::<Value>(body) {
            Ok(v) => match core.service.seed_json(&v) {
                Ok(()) => Reply::json(200, &json!({"ok": true})),
                Err(e) => Reply::text(400, e),
            },
            Err(e) => Reply::text(400, format!("not JSON: {e}")),
        },
        _ => core
            .service
            .control(method, rest, body)
            .unwrap_or_else(|| Reply::text(404, "unknown control endpoint")),
    }
}

/// Writes `{"addr", "port", "url"}` to a port file atomically (used by the binary).
pub fn write_port_file(path: &std::path::Path, addr: SocketAddr) -> std::io::Result<()> {
    let v = json!({"addr": addr.to_string(), "port": addr.port(), "url": format!("http://{addr}")});
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{v}\n"))?;
    std::fs::rename(&tmp, path)
}

/// A random token of `n` bytes, base64url.
pub(crate) fn random_token(n: usize) -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A random RFC 4122 v4 UUID.
pub(crate) fn random_uuid() -> String {
    let b: [u8; 16] = rand::random();
    let mut b = b;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
