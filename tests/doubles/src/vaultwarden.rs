//! A test double of Vaultwarden's `/admin` API, checked against the project's derived document
//! `vaultwarden/admin-api.derived.openapi.yaml` (Vaultwarden publishes none).
//!
//! Reproduced (API-NOTES §2.5, `src/api/admin.rs`): log in with `POST /admin` (form `token`) →
//! `200` HTML + `Set-Cookie: VW_ADMIN=<JWT>; Path=/admin; HttpOnly; SameSite=Strict` (a wrong
//! token → `401` HTML); the cookie is required for the JSON routes (missing, unknown or expired →
//! `401` JSON error "Authorization failed."); every POST must carry `Content-Type:
//! application/json`, even without a body, or Rocket finds no route (`404`); invite (`409 "User
//! already exists"`), list, by-mail, by-uuid, disable/enable/delete/deauth, invite/resend;
//! `GET /alive`. Users accept invitations outside the admin API: [`VaultwardenDouble::accept_invite`].

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
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

#[derive(Default)]
struct State {
    users: BTreeMap<String, VaultwardenUser>,
    /// Cookie value → expiry (seconds).
    sessions: HashMap<String, i64>,
}

struct Vaultwarden {
    state: Mutex<State>,
    admin_token: String,
    lifetime: Duration,
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

    /// Number of admin logins that succeeded.
    pub fn session_count(&self) -> usize {
        lock(&self.vw.state).sessions.len()
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

impl Vaultwarden {
    fn login(&self, req: &Req, core: &Core) -> Reply {
        let token = form_urlencoded::parse(&req.body)
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned());
        if token.as_deref() != Some(self.admin_token.as_str()) {
            core.unauthorized();
            return Reply::html(401, "<!DOCTYPE html><html><body><h1>Vaultwarden Admin Panel</h1><p>Invalid admin token, please try again.</p></body></html>");
        }
        let exp = now_secs() + i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX / 4);
        let claims = json!({"nbf": now_secs(), "exp": exp, "iss": "http://localhost|admin", "sub": "admin_panel"});
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!(
            "{}.{}.{}",
            b64(r#"{"typ":"JWT","alg":"RS256"}"#),
            b64(&claims.to_string()),
            random_token(32)
        );
        lock(&self.state).sessions.insert(jwt.clone(), exp);
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
        lock(&self.state)
            .sessions
            .get(&c)
            .is_some_and(|exp| *exp > now_secs())
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
            return Reply::json(200, &json!(datetime(now_secs()).1));
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
            return vw_error(401, "Authorization failed.");
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
        json!({"users": st.users.values().collect::<Vec<_>>(), "sessions": st.sessions.len()})
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
