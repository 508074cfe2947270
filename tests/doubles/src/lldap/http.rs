//! The HTTP side of the LLDAP double: `/auth/simple/login`, `/api/graphql` and the control
//! endpoints under `/__double/`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tower::ServiceExt as _;

use super::control::{lock, FaultPlan, Stats, Violation};
use super::graphql::{self, Actor};
use super::{SeedUser, Shared, TokenInfo};

/// Lets a handler kill its own connection (TCP reset).
#[derive(Clone)]
pub(crate) struct ConnKill(Arc<Notify>);

const MAX_BODY: usize = 64 << 20;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let lldap = Router::new()
        .route("/auth/simple/login", post(login))
        .route("/auth/refresh", get(refresh))
        .route("/api/graphql", post(graphql_post).get(graphql_get))
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            faults_and_counters,
        ));
    let control = Router::new()
        .route("/__double/stats", get(get_stats))
        .route("/__double/stats/reset", post(reset_stats))
        .route("/__double/violations", get(get_violations))
        .route("/__double/violations/clear", post(clear_violations))
        .route("/__double/state", get(get_state))
        .route("/__double/faults", get(get_faults).post(set_faults))
        .route("/__double/faults/clear", post(clear_faults))
        .route("/__double/expire-tokens", post(expire_tokens))
        .route("/__double/users", post(add_user))
        .route("/__double/seed", post(seed));
    lldap.merge(control).with_state(shared)
}

/// Accept loop: one hyper HTTP/1 connection per socket, killable for the reset fault.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, router.clone(), shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lldap double: accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

async fn connection(stream: TcpStream, router: Router, mut shutdown: watch::Receiver<bool>) {
    // Keep a duplicate of the socket to be able to set SO_LINGER=0 (reset) when killing it.
    let dup = stream
        .into_std()
        .and_then(|std| Ok((std.try_clone()?, std)))
        .and_then(|(dup, std)| Ok((dup, TcpStream::from_std(std)?)));
    let (dup, stream) = match dup {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "lldap double: cannot set up connection");
            return;
        }
    };
    let kill = Arc::new(Notify::new());
    let kill2 = kill.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnKill(kill2.clone()));
        router.clone().oneshot(req.map(Body::new))
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
    tokio::select! {
        res = conn => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "lldap double: connection ended with an error");
            }
        }
        _ = kill.notified() => {
            let _ = socket2::SockRef::from(&dup).set_linger(Some(Duration::ZERO));
        }
        _ = shutdown.changed() => {}
    }
    drop(dup);
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Counters and faults around every LLDAP endpoint.
async fn faults_and_counters(
    AxState(shared): AxState<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let endpoint = format!("{} {}", req.method(), req.uri().path());
    let kill = req.extensions().get::<ConnKill>().cloned();
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return text(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
    };
    {
        let mut st = lock(&shared.stats);
        Stats::bump(&mut st.requests, &endpoint);
        st.request_bytes += bytes.len() as u64;
    }
    let decision = shared.faults.take_http();
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    if decision.reset {
        Stats::bump(&mut lock(&shared.stats).faults_injected, "http_reset");
        tracing::debug!(%endpoint, "lldap double: injecting connection reset");
        if let Some(kill) = kill {
            kill.0.notify_one();
            std::future::pending::<()>().await;
        }
        return text(StatusCode::INTERNAL_SERVER_ERROR, "reset not possible");
    }
    if let Some(code) = decision.fail {
        Stats::bump(
            &mut lock(&shared.stats).faults_injected,
            &format!("http_{code}"),
        );
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let body = format!(
            "{} {}",
            status.as_str(),
            status.canonical_reason().unwrap_or("Error")
        );
        lock(&shared.stats).response_bytes += body.len() as u64;
        return text(status, body);
    }
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (mut parts, body) = resp.into_parts();
    let mut bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .unwrap_or_default();
    if decision.truncate {
        Stats::bump(&mut lock(&shared.stats).faults_injected, "http_truncate");
        bytes = bytes.slice(0..bytes.len() / 2);
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    lock(&shared.stats).response_bytes += bytes.len() as u64;
    Response::from_parts(parts, Body::from(bytes))
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// A JWT-shaped opaque token (header.claims.signature), remembered by the double.
fn issue_token(shared: &Shared, user: &str) -> String {
    let groups: Vec<String> = lock(&shared.state)
        .groups_of(user)
        .iter()
        .map(|g| g.display_name.clone())
        .collect();
    let now = super::time::now_micros();
    let exp = now + i64::try_from(shared.token_lifetime.as_micros()).unwrap_or(i64::MAX / 2);
    let header = b64url(br#"{"alg":"HS512","typ":"JWT"}"#);
    let claims = b64url(
        json!({"exp": exp / 1_000_000, "iat": now / 1_000_000, "user": user, "groups": groups})
            .to_string()
            .as_bytes(),
    );
    let sig: [u8; 32] = rand::random();
    let token = format!("{header}.{claims}.{}", b64url(&sig));
    lock(&shared.tokens).insert(
        token.clone(),
        TokenInfo {
            user: user.to_owned(),
            expires_micros: exp,
            epoch: shared.faults.token_epoch(),
        },
    );
    token
}

async fn login(AxState(shared): AxState<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let endpoint = "POST /auth/simple/login";
    let ct_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().map(str::trim) == Some("application/json"));
    if !ct_json {
        shared.violation(
            endpoint,
            "login request without Content-Type: application/json",
        );
        return text(StatusCode::BAD_REQUEST, "Content type error");
    }
    #[derive(serde::Deserialize)]
    struct Login {
        username: String,
        password: String,
    }
    let req: Login = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            shared.violation(
                endpoint,
                format!("login body is not {{username, password}}: {e}"),
            );
            return text(
                StatusCode::BAD_REQUEST,
                format!("Json deserialize error: {e}"),
            );
        }
    };
    let user = req.username.to_ascii_lowercase();
    let ok = lock(&shared.state).check_password(&user, &req.password);
    if !ok {
        lock(&shared.stats).login_failures += 1;
        tracing::debug!(user = %user, "lldap double: login failed");
        return text(
            StatusCode::UNAUTHORIZED,
            format!("Authentication error for user \"{}\"", req.username),
        );
    }
    lock(&shared.stats).logins += 1;
    let token = issue_token(&shared, &user);
    let refresh: [u8; 24] = rand::random();
    let refresh_token = format!("{}+{user}", b64url(&refresh));
    lock(&shared.refresh_tokens).insert(refresh_token.clone(), user.clone());
    let mut resp = json_response(
        StatusCode::OK,
        &json!({"token": token, "refreshToken": refresh_token}),
    );
    for cookie in [
        format!("token={token}; Path=/; Max-Age=86400; HttpOnly; SameSite=Strict"),
        format!(
            "refresh_token={refresh_token}; Path=/auth; Max-Age=2592000; HttpOnly; SameSite=Strict"
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// The bearer token: `Authorization: Bearer …`, or the `token` cookie (LLDAP translates it).
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(v.trim().to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("token=").map(str::to_owned))
}

/// Checks the JWT like LLDAP's `check_if_token_is_valid`; returns the user id.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let epoch = shared.faults.tick_token_expiry();
    let Some(token) = bearer_token(headers) else {
        lock(&shared.stats).unauthorized += 1;
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Err(Box::new(r));
    };
    let info = lock(&shared.tokens).get(&token).cloned();
    let Some(info) = info else {
        lock(&shared.stats).unauthorized += 1;
        return Err(Box::new(text(StatusCode::UNAUTHORIZED, "Invalid JWT")));
    };
    if info.epoch < epoch || info.expires_micros < super::time::now_micros() {
        lock(&shared.stats).unauthorized += 1;
        return Err(Box::new(text(StatusCode::UNAUTHORIZED, "Expired JWT")));
    }
    Ok(info.user)
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
}

async fn graphql_post(
    AxState(shared): AxState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let endpoint = "POST /api/graphql";
    let user = match authenticate(&shared, &headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let value: Value = match content_type(&headers).as_deref() {
        Some("application/json") => match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                shared.violation(endpoint, format!("body is not JSON: {e}"));
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("Json deserialize error: {e}"),
                );
            }
        },
        Some("application/graphql") => {
            json!({ "query": String::from_utf8_lossy(&body) })
        }
        other => {
            shared.violation(
                endpoint,
                format!("GraphQL request with Content-Type {other:?} (LLDAP accepts application/json or application/graphql)"),
            );
            return text(StatusCode::BAD_REQUEST, "Content type error");
        }
    };
    execute(&shared, endpoint, user, &value)
}

#[derive(serde::Deserialize)]
struct GetGraphql {
    query: String,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
}

async fn graphql_get(
    AxState(shared): AxState<Arc<Shared>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let endpoint = "GET /api/graphql";
    let user = match authenticate(&shared, &headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let q: GetGraphql = match axum::extract::Query::<GetGraphql>::try_from_uri(&uri).map(|q| q.0) {
        Ok(q) => q,
        Err(e) => {
            shared.violation(endpoint, format!("bad query string: {e}"));
            return text(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let variables = match q.variables.as_deref().map(serde_json::from_str::<Value>) {
        None => Value::Null,
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            shared.violation(endpoint, format!("variables are not JSON: {e}"));
            return text(StatusCode::BAD_REQUEST, format!("invalid variables: {e}"));
        }
    };
    let value =
        json!({"query": q.query, "operationName": q.operation_name, "variables": variables});
    execute(&shared, endpoint, user, &value)
}

fn execute(shared: &Shared, endpoint: &str, user_id: String, value: &Value) -> Response {
    let actor = Actor { user_id };
    let outcome = {
        let mut st = lock(&shared.state);
        graphql::handle(&shared.contract, &mut st, &actor, value)
    };
    for v in &outcome.violations {
        shared.violation(endpoint, v.clone());
    }
    {
        let mut stats = lock(&shared.stats);
        for (name, typ, fields) in &outcome.operations {
            Stats::bump(&mut stats.graphql_operations, name);
            for f in fields {
                Stats::bump(&mut stats.graphql_fields, &format!("{typ}.{f}"));
            }
        }
        for rows in &outcome.user_lists {
            stats.user_lists.record(*rows);
        }
    }
    let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::OK);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        outcome.body,
    )
        .into_response()
}

/// `GET /auth/refresh` with the `refresh_token` cookie or `refresh-token` header.
async fn refresh(AxState(shared): AxState<Arc<Shared>>, headers: HeaderMap) -> Response {
    let from_cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("refresh_token=").map(str::to_owned));
    let token = from_cookie.or_else(|| {
        headers
            .get("refresh-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let Some(token) = token else {
        return text(
            StatusCode::UNAUTHORIZED,
            "Authentication error Missing refresh token",
        );
    };
    let user = lock(&shared.refresh_tokens).get(&token).cloned();
    let Some(user) = user else {
        return text(
            StatusCode::UNAUTHORIZED,
            "Authentication error Invalid refresh token",
        );
    };
    let token = issue_token(&shared, &user);
    let mut resp = json_response(
        StatusCode::OK,
        &json!({"token": token, "refreshToken": null}),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "token={token}; Path=/; Max-Age=86400; HttpOnly; SameSite=Strict"
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

// ---- control endpoints ------------------------------------------------------------------------

async fn get_stats(AxState(shared): AxState<Arc<Shared>>) -> Response {
    let stats = lock(&shared.stats).clone();
    json_response(
        StatusCode::OK,
        &serde_json::to_value(stats).unwrap_or(Value::Null),
    )
}

async fn reset_stats(AxState(shared): AxState<Arc<Shared>>) -> Response {
    *lock(&shared.stats) = Stats::default();
    json_response(StatusCode::OK, &json!({"ok": true}))
}

async fn get_violations(AxState(shared): AxState<Arc<Shared>>) -> Response {
    let v: Vec<Violation> = lock(&shared.violations).clone();
    json_response(
        StatusCode::OK,
        &serde_json::to_value(v).unwrap_or(Value::Null),
    )
}

async fn clear_violations(AxState(shared): AxState<Arc<Shared>>) -> Response {
    lock(&shared.violations).clear();
    json_response(StatusCode::OK, &json!({"ok": true}))
}

async fn get_state(AxState(shared): AxState<Arc<Shared>>) -> Response {
    let v = lock(&shared.state).to_json();
    json_response(StatusCode::OK, &v)
}

async fn get_faults(AxState(shared): AxState<Arc<Shared>>) -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::to_value(shared.faults.plan()).unwrap_or(Value::Null),
    )
}

/// Merges the given keys into the current plan.
async fn set_faults(AxState(shared): AxState<Arc<Shared>>, body: Bytes) -> Response {
    let patch: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return text(StatusCode::BAD_REQUEST, "expected a JSON object"),
    };
    let mut current = serde_json::to_value(shared.faults.plan()).unwrap_or_else(|_| json!({}));
    if let (Some(cur), Some(p)) = (current.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            cur.insert(k.clone(), v.clone());
        }
    }
    match serde_json::from_value::<FaultPlan>(current) {
        Ok(plan) => {
            shared.faults.set(plan.clone());
            json_response(
                StatusCode::OK,
                &serde_json::to_value(plan).unwrap_or(Value::Null),
            )
        }
        Err(e) => text(StatusCode::BAD_REQUEST, format!("invalid fault plan: {e}")),
    }
}

async fn clear_faults(AxState(shared): AxState<Arc<Shared>>) -> Response {
    shared.faults.clear();
    json_response(StatusCode::OK, &json!({"ok": true}))
}

async fn expire_tokens(AxState(shared): AxState<Arc<Shared>>) -> Response {
    shared.faults.expire_tokens_now();
    json_response(StatusCode::OK, &json!({"ok": true}))
}

async fn add_user(AxState(shared): AxState<Arc<Shared>>, Json(user): Json<SeedUser>) -> Response {
    match shared.seed_user(&user) {
        Ok(()) => json_response(StatusCode::OK, &json!({"ok": true})),
        Err(e) => text(StatusCode::BAD_REQUEST, e.0),
    }
}

async fn seed(AxState(shared): AxState<Arc<Shared>>, Json(req): Json<Value>) -> Response {
    let n = req.get("users").and_then(Value::as_u64).unwrap_or(0);
    match shared.seed_users(usize::try_from(n).unwrap_or(0)) {
        Ok(()) => json_response(StatusCode::OK, &json!({"ok": true})),
        Err(e) => text(StatusCode::BAD_REQUEST, e.0),
    }
}
