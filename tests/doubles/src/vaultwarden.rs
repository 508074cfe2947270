//! A test double of Vaultwarden's `/admin` API, checked against the project's derived document
//! `vaultwarden/admin-api.derived.openapi.yaml` (Vaultwarden publishes none).
//!
//! Reproduced (API-NOTES §2.5, `src/api/admin.rs`, `src/ratelimit.rs`): log in with `POST /admin`
//! (form `token`) → `200` HTML + `Set-Cookie: VW_ADMIN=<JWT>; Path=/admin; Max-Age=1200;
//! HttpOnly; SameSite=Strict` (a wrong token → `401` HTML); the admin login's rate limit per
//! client IP — `ADMIN_RATELIMIT_MAX_BURST` (3) at once, then one per `ADMIN_RATELIMIT_SECONDS`
//! (300), checked before the token so wrong tokens count, a refused try does not — answered
//! `429` with the HTML login page and no `Retry-After`; the cookie is required for the JSON
//! routes (missing, unknown or expired on the double's clock → `401` JSON error "Authorization
//! failed."); every POST must carry `Content-Type: application/json`, even without a body, or
//! Rocket finds no route (`404`); invite (`409 "User already exists"`), list, by-mail, by-uuid,
//! disable/enable/delete/deauth, invite/resend; `GET /alive`. Users accept invitations outside
//! the admin API: [`VaultwardenDouble::accept_invite`].
//!
//! Time: sessions and the rate limit go by the double's own clock, the wall clock plus an offset
//! that tests move forward ([`VaultwardenDouble::advance_clock`], `POST /__double/clock
//! {"advanceSecs": N}`) — no test waits.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::header;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::openapi::ContractOptions;
use crate::service::{
    common_double_methods, lock, now_secs, random_token, random_uuid, Core, Reply, Req, Server,
    Service,
};
pub use crate::service::{FaultPlan, Faults, Side, StartError, Violation};

/// How to start the Vaultwarden double.
#[derive(Debug, Clone)]
pub struct VaultwardenConfig {
    /// Default `127.0.0.1:0`.
    pub addr: SocketAddr,
    pub admin_token: String,
    /// `ADMIN_SESSION_LIFETIME` (default 20 minutes).
    pub session_lifetime: Duration,
    /// `ADMIN_RATELIMIT_SECONDS` (default 300): one admin login per this many seconds and
    /// client IP, once the burst is used.
    pub admin_ratelimit_seconds: u64,
    /// `ADMIN_RATELIMIT_MAX_BURST` (default 3): admin logins a client IP may make at once.
    pub admin_ratelimit_max_burst: u32,
    /// `None`: [`crate::lldap::default_contracts_dir`].
    pub contracts_dir: Option<PathBuf>,
    pub faults: FaultPlan,
}

impl VaultwardenConfig {
    pub fn new(admin_token: impl Into<String>) -> Self {
        Self {
            admin_token: admin_token.into(),
            ..Self::default()
        }
    }
}

impl Default for VaultwardenConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_token: "admin-token".into(),
            session_lifetime: Duration::from_secs(20 * 60),
            admin_ratelimit_seconds: 300,
            admin_ratelimit_max_burst: 3,
            contracts_dir: None,
            faults: FaultPlan::default(),
        }
    }
}

/// A Vaultwarden user (also the read-only view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VaultwardenUser {
    pub uuid: String,
    /// Lower-case, as Vaultwarden stores it.
    pub email: String,
    pub name: String,
    /// `false` after `/disable`.
    pub enabled: bool,
    /// `true` once the user registered (accepted the invitation with a master password).
    pub has_master_password: bool,
    /// Seconds since the epoch.
    pub created_at: i64,
    pub security_stamp: String,
    /// Sessions revoked by disable/deauth.
    pub deauth_count: u64,
}

impl Default for VaultwardenUser {
    fn default() -> Self {
        Self {
            uuid: random_uuid(),
            email: String::new(),
            name: String::new(),
            enabled: true,
            has_master_password: false,
            created_at: now_secs(),
            security_stamp: random_uuid(),
            deauth_count: 0,
        }
    }
}

impl VaultwardenUser {
    /// A registered user (with a master password).
    pub fn registered(email: &str, name: &str) -> Self {
        Self {
            email: email.to_lowercase(),
            name: name.to_owned(),
            has_master_password: true,
            ..Self::default()
        }
    }
}

/// What became of the admin logins (`POST /admin`) so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminLogins {
    /// Logged in: a session cookie was set.
    pub ok: u64,
    /// A wrong token (401).
    pub refused: u64,
    /// Rate limited (429).
    pub rate_limited: u64,
}

#[derive(Default)]
struct State {
    users: BTreeMap<String, VaultwardenUser>,
    /// Cookie value → expiry (seconds, on the double's clock).
    sessions: HashMap<String, i64>,
    /// The admin login limiter: per client IP, the theoretical arrival time of the next login
    /// (milliseconds on the double's clock), as governor's GCRA keeps it.
    limiter: HashMap<IpAddr, i64>,
    logins: AdminLogins,
    /// After this many more admin API calls every session expires.
    expire_after: Option<u32>,
}

struct Vaultwarden {
    state: Mutex<State>,
    admin_token: String,
    lifetime: Duration,
    /// `ADMIN_RATELIMIT_SECONDS`, in milliseconds.
    ratelimit_ms: i64,
    /// `ADMIN_RATELIMIT_MAX_BURST`.
    burst: u32,
    /// The double's clock: the wall clock plus this offset (milliseconds).
    offset_ms: AtomicI64,
}

/// A running Vaultwarden double.
pub struct VaultwardenDouble {
    server: Server,
    vw: Arc<Vaultwarden>,
}

impl VaultwardenDouble {
    /// Loads the derived document, binds and serves.
    pub async fn start(config: VaultwardenConfig) -> Result<Self, StartError> {
        if config.admin_token.is_empty() {
            return Err(StartError::Config("the admin token is empty".into()));
        }
        // Vaultwarden refuses to start with a zero period or burst ("Non-zero admin ratelimit …").
        if config.admin_ratelimit_seconds == 0 || config.admin_ratelimit_max_burst == 0 {
            return Err(StartError::Config(
                "ADMIN_RATELIMIT_SECONDS and ADMIN_RATELIMIT_MAX_BURST must not be zero".into(),
            ));
        }
        let dir = config
            .contracts_dir
            .clone()
            .unwrap_or_else(crate::lldap::default_contracts_dir);
        let contract = crate::service::load_contract(
            "Vaultwarden",
            vec![dir.join("vaultwarden/admin-api.derived.openapi.yaml")],
            ContractOptions::default(),
            |_, _| {},
        )?;
        let vw = Arc::new(Vaultwarden {
            state: Mutex::new(State::default()),
            admin_token: config.admin_token.clone(),
            lifetime: config.session_lifetime,
            ratelimit_ms: i64::try_from(config.admin_ratelimit_seconds)
                .unwrap_or(i64::MAX / 4)
                .saturating_mul(1000),
            burst: config.admin_ratelimit_max_burst,
            offset_ms: AtomicI64::new(0),
        });
        let server = Server::start(config.addr, contract, config.faults, vw.clone()).await?;
        Ok(Self { server, vw })
    }

    common_double_methods!();

    /// Adds a user by hand; returns its uuid.
    pub fn seed_user(&self, user: VaultwardenUser) -> Result<String, String> {
        let mut st = lock(&self.vw.state);
        if st
            .users
            .values()
            .any(|u| u.email == user.email.to_lowercase())
        {
            return Err(format!("user {} exists", user.email));
        }
        let uuid = user.uuid.clone();
        let mut user = user;
        user.email = user.email.to_lowercase();
        st.users.insert(uuid.clone(), user);
        Ok(uuid)
    }

    /// The user accepts the invitation: registers with a name and a master password
    /// (`_status` becomes 0). Returns false if there is no such invited user.
    pub fn accept_invite(&self, email: &str, name: &str) -> bool {
        let mut st = lock(&self.vw.state);
        let email = email.to_lowercase();
        match st.users.values_mut().find(|u| u.email == email) {
            Some(u) if !u.has_master_password => {
                u.has_master_password = true;
                u.name = name.to_owned();
                true
            }
            _ => false,
        }
    }

    /// Every admin session cookie issued so far expires now (the next JSON call gets 401).
    pub fn expire_sessions(&self) {
        let mut st = lock(&self.vw.state);
        for exp in st.sessions.values_mut() {
            *exp = 0;
        }
    }

    /// The next `n` admin API calls are answered; then every session issued so far expires
    /// (a session that ends in the middle of a run).
    pub fn expire_sessions_after(&self, n: u32) {
        lock(&self.vw.state).expire_after = Some(n);
    }

    /// Number of admin logins that succeeded.
    pub fn session_count(&self) -> usize {
        lock(&self.vw.state).sessions.len()
    }

    /// What became of the admin logins so far.
    pub fn logins(&self) -> AdminLogins {
        lock(&self.vw.state).logins
    }

    /// The session cookie values issued so far (to look for them where they must not be).
    pub fn session_cookies(&self) -> Vec<String> {
        lock(&self.vw.state).sessions.keys().cloned().collect()
    }

    /// Moves the double's clock forward: sessions expire and the rate limit refills as if
    /// `by` had passed.
    pub fn advance_clock(&self, by: Duration) {
        self.vw.advance(by);
    }

    /// The double's clock, in seconds since the epoch.
    pub fn now(&self) -> i64 {
        self.vw.now_secs()
    }

    /// One user by e-mail (case-insensitive).
    pub fn user_by_email(&self, email: &str) -> Option<VaultwardenUser> {
        let email = email.to_lowercase();
        lock(&self.vw.state)
            .users
            .values()
            .find(|u| u.email == email)
            .cloned()
    }

    /// All users, sorted by uuid.
    pub fn users(&self) -> Vec<VaultwardenUser> {
        lock(&self.vw.state).users.values().cloned().collect()
    }
}

/// Vaultwarden's error JSON (`src/error.rs`).
fn vw_error(status: u16, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({
            "message": message,
            "validationErrors": {"": [message]},
            "errorModel": {"message": message, "object": "error"},
            "error": "",
            "error_description": "",
            "exceptionMessage": null,
            "exceptionStackTrace": null,
            "innerExceptionMessage": null,
            "object": "error"
        }),
    )
}

/// `YYYY-MM-DD HH:MM:SS` for seconds since the epoch (UTC).
fn datetime(secs: i64) -> (String, String) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    (
        format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC"),
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.000000Z"),
    )
}

fn profile(u: &VaultwardenUser, admin: bool, last_active: bool) -> Value {
    let (created_local, created_iso) = datetime(u.created_at);
    let mut v = json!({
        "_status": if u.has_master_password { 0 } else { 1 },
        "id": u.uuid,
        "name": u.name,
        "email": u.email,
        "emailVerified": u.has_master_password,
        "premium": true,
        "premiumFromOrganization": false,
        "culture": "en-US",
        "twoFactorEnabled": false,
        "key": if u.has_master_password { json!("2.encrypted-key") } else { Value::Null },
        "privateKey": null,
        "securityStamp": u.security_stamp,
        "organizations": [],
        "providers": [],
        "providerOrganizations": [],
        "forcePasswordReset": false,
        "avatarColor": null,
        "usesKeyConnector": false,
        "creationDate": created_iso,
        "object": "profile"
    });
    if admin {
        if let Some(o) = v.as_object_mut() {
            o.insert("userEnabled".into(), json!(u.enabled));
            o.insert("createdAt".into(), json!(created_local));
            if last_active {
                o.insert("lastActive".into(), Value::Null);
            }
        }
    }
    v
}

/// The admin login page (what `POST /admin` answers when it does not log in: a wrong token, a
/// rate limit), with `error` above the form — as Vaultwarden renders it: a head with title,
/// styles and script, an icon sprite, the navigation bar, then the page.
fn login_page(error: Option<&str>) -> String {
    let error = error
        .map(|e| {
            format!(
                "<div class=\"alert p-3 mb-3 bg-warning rounded shadow\"><h6 class=\"mb-0\">Error: {e}</h6></div>"
            )
        })
        .unwrap_or_default();
    format!(
        r#"<!DOCTYPE html>
<html lang="en" data-bs-theme="auto">
<head>
    <meta charset="UTF-8">
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <meta name="robots" content="noindex,nofollow" />
    <title>Vaultwarden Admin Panel</title>
    <link rel="stylesheet" href="/vw_static/bootstrap.css" />
    <script src="/vw_static/admin.js"></script>
</head>
<body>
    <svg xmlns="http://www.w3.org/2000/svg" class="d-none"><symbol id="icon-sun" viewBox="0 0 24 24"><circle cx="12" cy="12" r="5" fill="currentColor"/></symbol></svg>
    <nav class="navbar navbar-dark bg-dark mb-4 shadow fixed-top">
        <div class="container-xxl"><a class="navbar-brand" href="/admin"><img src="/vw_static/vaultwarden-icon.png" alt="V">aultwarden Admin</a></div>
    </nav>
    <main class="container-xxl">
        {error}
        <div class="p-3 mb-3 text-light bg-danger rounded shadow">
            <h6 class="mb-0 text-light">Authentication key needed to continue</h6>
            <small>Please provide it below:</small>
            <form class="form-inline" method="post" action="/admin">
                <input type="password" class="form-control w-50 mr-2" name="token" placeholder="Enter admin token" autofocus="autofocus">
                <button type="submit" class="btn btn-primary mt-2">Enter</button>
            </form>
        </div>
    </main>
</body>
</html>
"#
    )
}

impl Vaultwarden {
    /// The double's clock, in milliseconds since the epoch.
    fn now_ms(&self) -> i64 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4))
            .unwrap_or(0);
        wall.saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 4);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// One admin login of `ip` against the limiter (governor's GCRA, `src/ratelimit.rs`): a
    /// cell per `ADMIN_RATELIMIT_SECONDS`, `ADMIN_RATELIMIT_MAX_BURST` of them at once. A
    /// refused check changes nothing.
    fn admit(&self, st: &mut State, ip: IpAddr) -> bool {
        let now = self.now_ms();
        let tau = self.ratelimit_ms * i64::from(self.burst - 1);
        let tat = st.limiter.get(&ip).copied().unwrap_or(now);
        if now < tat - tau {
            return false;
        }
        st.limiter.insert(ip, tat.max(now) + self.ratelimit_ms);
        true
    }

    fn login(&self, req: &Req, core: &Core) -> Reply {
        let ip = req.peer.map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |p| p.ip());
        // The limit is checked before the token: wrong tokens use it up too.
        {
            let mut st = lock(&self.state);
            if !self.admit(&mut st, ip) {
                st.logins.rate_limited += 1;
                return Reply::html(429, login_page(Some("Too many requests, try again later.")));
            }
        }
        let token = form_urlencoded::parse(&req.body)
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned());
        if token.as_deref() != Some(self.admin_token.as_str()) {
            core.unauthorized();
            lock(&self.state).logins.refused += 1;
            return Reply::html(
                401,
                login_page(Some("Invalid admin token, please try again.")),
            );
        }
        let now = self.now_secs();
        let exp = now + i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX / 4);
        let claims =
            json!({"nbf": now, "exp": exp, "iss": "http://localhost|admin", "sub": "admin_panel"});
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!(
            "{}.{}.{}",
            b64(r#"{"typ":"JWT","alg":"RS256"}"#),
            b64(&claims.to_string()),
            random_token(32)
        );
        {
            let mut st = lock(&self.state);
            st.sessions.insert(jwt.clone(), exp);
            st.logins.ok += 1;
        }
        let max_age = self.lifetime.as_secs();
        let cookie =
            format!("VW_ADMIN={jwt}; Path=/admin; Max-Age={max_age}; HttpOnly; SameSite=Strict");
        let redirect = form_urlencoded::parse(&req.body)
            .find(|(k, _)| k == "redirect")
            .map(|(_, v)| v.into_owned());
        match redirect {
            Some(r) => Reply::empty(303)
                .with_header(header::LOCATION, format!("/admin{r}"))
                .with_header(header::SET_COOKIE, cookie),
            None => Reply::html(
                200,
                "<!DOCTYPE html><html><body><h1>Vaultwarden Admin Panel</h1></body></html>",
            )
            .with_header(header::SET_COOKIE, cookie),
        }
    }

    fn session_valid(&self, req: &Req) -> bool {
        let Some(c) = req.cookie("VW_ADMIN") else {
            return false;
        };
        let now = self.now_secs();
        let mut st = lock(&self.state);
        match st.expire_after {
            Some(0) => {
                st.expire_after = None;
                for exp in st.sessions.values_mut() {
                    *exp = 0;
                }
            }
            Some(n) => st.expire_after = Some(n - 1),
            None => {}
        }
        st.sessions.get(&c).is_some_and(|exp| *exp > now)
    }
}

impl Service for Vaultwarden {
    fn health_endpoint(&self) -> (&'static str, &'static str) {
        ("GET", "/alive")
    }

    fn handle(&self, req: &Req, core: &Core) -> Reply {
        let not_found = || {
            Reply::html(404, "<!DOCTYPE html><html><body><h1>404: Not Found</h1><p>The requested resource could not be found.</p></body></html>")
        };
        if req.method == "GET" && req.path == "/alive" {
            return Reply::json(200, &json!(datetime(self.now_secs()).1));
        }
        if req.method == "POST" && req.path == "/admin" {
            return self.login(req, core);
        }
        let Some(parts) = req.segments_after("/admin") else {
            return not_found();
        };
        // Rocket routes declared `format = "application/json"`: any other Content-Type (or none)
        // matches no route. The derived document cannot express this for bodiless POSTs.
        if req.method == "POST" && req.content_type().as_deref() != Some("application/json") {
            core.request_violation(
                req,
                "POST without Content-Type: application/json (Vaultwarden answers 404)",
            );
            return not_found();
        }
        if !self.session_valid(req) {
            core.unauthorized();
            let reply = vw_error(401, "Authorization failed.");
            // An invalid or expired cookie is also removed (`AdminToken`'s guard).
            return match req.cookie("VW_ADMIN") {
                Some(_) => reply.with_header(
                    header::SET_COOKIE,
                    "VW_ADMIN=; Path=/admin; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                ),
                None => reply,
            };
        }
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let mut st = lock(&self.state);
        let find = |st: &State, id: &str| st.users.contains_key(id);
        match (req.method.as_str(), parts.as_slice()) {
            ("POST", ["invite"]) => {
                let email = serde_json::from_slice::<Value>(&req.body)
                    .ok()
                    .and_then(|v| {
                        v.get("email")
                            .and_then(Value::as_str)
                            .map(str::to_lowercase)
                    });
                let Some(email) = email else {
                    return vw_error(400, "Data guard failed");
                };
                if st.users.values().any(|u| u.email == email) {
                    return vw_error(409, "User already exists");
                }
                let user = VaultwardenUser {
                    name: email.clone(),
                    email,
                    ..VaultwardenUser::default()
                };
                let v = profile(&user, false, false);
                st.users.insert(user.uuid.clone(), user);
                core.write("invite");
                Reply::json(200, &v)
            }
            ("GET", ["users"]) => Reply::json(
                200,
                &Value::Array(st.users.values().map(|u| profile(u, true, true)).collect()),
            ),
            ("GET", ["users", "by-mail", mail]) => {
                let mail = mail.to_lowercase();
                match st.users.values().find(|u| u.email == mail) {
                    Some(u) => Reply::json(200, &profile(u, true, false)),
                    None => vw_error(404, "User doesn't exist"),
                }
            }
            ("GET", ["users", id]) => match st.users.get(*id) {
                Some(u) => Reply::json(200, &profile(u, true, false)),
                None => vw_error(404, "User doesn't exist"),
            },
            ("POST", ["users", id, action @ ("disable" | "enable" | "delete" | "deauth")]) => {
                if !find(&st, id) {
                    return vw_error(404, "User doesn't exist");
                }
                match *action {
                    "delete" => {
                        st.users.remove(*id);
                    }
                    a => {
                        if let Some(u) = st.users.get_mut(*id) {
                            if a != "enable" {
                                u.security_stamp = random_uuid();
                                u.deauth_count += 1;
                            }
                            match a {
                                "disable" => u.enabled = false,
                                "enable" => u.enabled = true,
                                _ => {}
                            }
                        }
                    }
                }
                core.write(action);
                Reply::empty(200)
            }
            ("POST", ["users", id, "invite", "resend"]) => match st.users.get(*id) {
                None => vw_error(404, "User doesn't exist"),
                Some(u) if u.has_master_password => {
                    vw_error(400, "User already accepted invitation")
                }
                Some(_) => Reply::empty(200),
            },
            _ => not_found(),
        }
    }

    fn state_json(&self) -> Value {
        let st = lock(&self.state);
        json!({"users": st.users.values().collect::<Vec<_>>(), "sessions": st.sessions.len(),
               "logins": st.logins})
    }

    /// `GET /__double/clock` → `{"now", "offsetSecs"}`; `POST /__double/clock
    /// {"advanceSecs": N}` moves it forward.
    fn control(&self, method: &str, rest: &str, body: &[u8]) -> Option<Reply> {
        if rest != "clock" {
            return None;
        }
        if method == "POST" {
            let secs = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("advanceSecs").and_then(Value::as_u64));
            match secs {
                Some(n) => self.advance(Duration::from_secs(n)),
                None => return Some(Reply::text(400, "expected {\"advanceSecs\": N}")),
            }
        } else if method != "GET" {
            return None;
        }
        Some(Reply::json(
            200,
            &json!({"now": self.now_secs(),
                    "offsetSecs": self.offset_ms.load(Ordering::Relaxed).div_euclid(1000)}),
        ))
    }

    fn seed_json(&self, v: &Value) -> Result<(), String> {
        let users: Vec<VaultwardenUser> =
            serde_json::from_value(v.get("users").cloned().unwrap_or(json!([])))
                .map_err(|e| e.to_string())?;
        let mut st = lock(&self.state);
        for mut u in users {
            u.email = u.email.to_lowercase();
            st.users.insert(u.uuid.clone(), u);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn datetime_formats() {
        assert_eq!(super::datetime(0).0, "1970-01-01 00:00:00 UTC");
        assert_eq!(
            super::datetime(1_700_000_000).1,
            "2023-11-14T22:13:20.000000Z"
        );
    }
}
