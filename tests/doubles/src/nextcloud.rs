//! A test double of Nextcloud's OCS provisioning API (v2, JSON), checked against
//! `nextcloud/provisioning_api.openapi.json` and `…openapi-administration.json`.
//!
//! Reproduced (API-NOTES §2.2): HTTP Basic auth with the admin password or an app password,
//! `OCS-APIRequest: true` on every call (without it the CSRF check fails: OCS 997 → HTTP 401),
//! JSON only when asked for (`Accept: application/json` or `?format=json`, else XML), the v2
//! status mapping (OCS 997 → 401, 998 → 404, 996/999 → 500, other codes <200 or >600 → 400),
//! error codes of UsersController (102 user exists, 104 group missing, 108 password and email
//! empty, 101 unknown user on enable/disable/delete…), quota strings (`none`, `default`, bytes,
//! `"5 GB"`), admin = group `admin`, and maintenance mode (status.php says so, OCS answers 503).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::openapi::ContractOptions;
use crate::service::{common_double_methods, lock, Core, Reply, Req, Server, Service};
pub use crate::service::{FaultPlan, Faults, Side, StartError, Violation};

const PREFIX: &str = "/ocs/v2.php";

/// How to start the Nextcloud double.
#[derive(Debug, Clone)]
pub struct NextcloudConfig {
    /// Default `127.0.0.1:0`.
    pub addr: SocketAddr,
    /// Default `admin` (member of group `admin`).
    pub admin_user: String,
    pub admin_password: String,
    /// Further passwords accepted for the admin (app passwords).
    pub app_passwords: Vec<String>,
    /// `None`: [`crate::lldap::default_contracts_dir`].
    pub contracts_dir: Option<PathBuf>,
    pub faults: FaultPlan,
    /// Reported by status.php. Default `30.0.4.1`.
    pub version: String,
}

impl NextcloudConfig {
    pub fn new(admin_password: impl Into<String>) -> Self {
        Self {
            admin_password: admin_password.into(),
            ..Self::default()
        }
    }
}

impl Default for NextcloudConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_user: "admin".into(),
            admin_password: "password".into(),
            app_passwords: Vec::new(),
            contracts_dir: None,
            faults: FaultPlan::default(),
            version: "30.0.4.1".into(),
        }
    }
}

/// A Nextcloud user (also the read-only view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NextcloudUser {
    pub id: String,
    pub display_name: String,
    pub email: Option<String>,
    /// Stored in plain text: this is a test double.
    pub password: Option<String>,
    pub enabled: bool,
    /// `"none"`, `"default"` or a human-readable size as Nextcloud stores it (`"10 GB"`).
    pub quota: String,
    pub groups: BTreeSet<String>,
    pub language: String,
    /// How many times the password was set through the API.
    pub password_set_count: u64,
}

impl Default for NextcloudUser {
    fn default() -> Self {
        Self {
            id: String::new(),
            display_name: String::new(),
            email: None,
            password: None,
            enabled: true,
            quota: "default".into(),
            groups: BTreeSet::new(),
            language: String::new(),
            password_set_count: 0,
        }
    }
}

impl NextcloudUser {
    /// A user with an id (display name = id) and a password.
    pub fn new(id: impl Into<String>, password: impl Into<String>) -> Self {
        let id = id.into();
        Self {
            display_name: id.clone(),
            id,
            password: Some(password.into()),
            ..Self::default()
        }
    }

    /// Quota in bytes (`None` for `none`/`default`).
    pub fn quota_bytes(&self) -> Option<u64> {
        computer_file_size(&self.quota)
    }
}

#[derive(Debug, Default)]
struct State {
    users: BTreeMap<String, NextcloudUser>,
    /// Group id → display name.
    groups: BTreeMap<String, String>,
    maintenance: bool,
}

impl State {
    /// User ids are unique case-insensitively.
    fn find(&self, id: &str) -> Option<&str> {
        self.users
            .keys()
            .find(|k| k.eq_ignore_ascii_case(id))
            .map(String::as_str)
    }
}

struct Nextcloud {
    state: Mutex<State>,
    admin_user: String,
    passwords: Vec<String>,
    version: String,
}

/// A running Nextcloud double.
pub struct NextcloudDouble {
    server: Server,
    nc: Arc<Nextcloud>,
}

impl NextcloudDouble {
    /// Loads both provisioning documents, binds and serves.
    pub async fn start(config: NextcloudConfig) -> Result<Self, StartError> {
        let dir = config
            .contracts_dir
            .clone()
            .unwrap_or_else(crate::lldap::default_contracts_dir);
        let contract = crate::service::load_contract(
            "Nextcloud",
            vec![
                dir.join("nextcloud/provisioning_api.openapi.json"),
                dir.join("nextcloud/provisioning_api.openapi-administration.json"),
            ],
            ContractOptions {
                // `format=json` selects JSON on every OCS route (the documents only describe JSON
                // and do not list the parameter).
                extra_query_params: vec!["format".into()],
                json_for_form_bodies: false,
            },
            |_, _| {},
        )?;
        let mut state = State::default();
        state.groups.insert("admin".into(), "admin".into());
        let mut admin = NextcloudUser::new(&config.admin_user, &config.admin_password);
        admin.groups.insert("admin".into());
        state.users.insert(config.admin_user.clone(), admin);
        let mut passwords = vec![config.admin_password.clone()];
        passwords.extend(config.app_passwords.iter().cloned());
        let nc = Arc::new(Nextcloud {
            state: Mutex::new(state),
            admin_user: config.admin_user.clone(),
            passwords,
            version: config.version.clone(),
        });
        let server = Server::start(config.addr, contract, config.faults, nc.clone()).await?;
        Ok(Self { server, nc })
    }

    common_double_methods!();

    /// Creates a user by hand (not counted). Missing groups are created.
    pub fn seed_user(&self, user: NextcloudUser) -> Result<(), String> {
        let mut st = lock(&self.nc.state);
        if st.find(&user.id).is_some() {
            return Err(format!("user {} exists", user.id));
        }
        for g in &user.groups {
            st.groups.entry(g.clone()).or_insert_with(|| g.clone());
        }
        st.users.insert(user.id.clone(), user);
        Ok(())
    }

    /// Creates a group by hand.
    pub fn seed_group(&self, id: &str) {
        lock(&self.nc.state)
            .groups
            .entry(id.to_owned())
            .or_insert_with(|| id.to_owned());
    }

    /// One user (exact id).
    pub fn user(&self, id: &str) -> Option<NextcloudUser> {
        lock(&self.nc.state).users.get(id).cloned()
    }

    /// All users, sorted by id (the admin included).
    pub fn users(&self) -> Vec<NextcloudUser> {
        lock(&self.nc.state).users.values().cloned().collect()
    }

    /// All group ids, sorted.
    pub fn groups(&self) -> Vec<String> {
        lock(&self.nc.state).groups.keys().cloned().collect()
    }

    /// Maintenance mode: status.php reports `"maintenance": true` and OCS calls answer 503.
    pub fn set_maintenance(&self, on: bool) {
        lock(&self.nc.state).maintenance = on;
    }

    /// Whether `password` is the user's password.
    pub fn check_password(&self, id: &str, password: &str) -> bool {
        lock(&self.nc.state)
            .users
            .get(id)
            .and_then(|u| u.password.as_deref())
            == Some(password)
    }
}

/// OCS v2: the HTTP status for an OCS status code (`V2Response::getStatus`).
fn v2_status(code: u32) -> u16 {
    match code {
        100 | 200 => 200,
        997 => 401,
        998 => 404,
        996 | 999 => 500,
        c if !(200..=600).contains(&c) => 400,
        c => u16::try_from(c).unwrap_or(500),
    }
}

struct Ocs {
    json: bool,
}

impl Ocs {
    fn ok(&self, data: Value) -> Reply {
        self.reply(200, "", data)
    }

    fn fail(&self, code: u32, message: &str) -> Reply {
        self.reply(code, message, json!([]))
    }

    fn reply(&self, code: u32, message: &str, data: Value) -> Reply {
        let status = if code == 100 || code == 200 {
            "ok"
        } else {
            "failure"
        };
        let http = v2_status(code);
        if self.json {
            Reply::json(
                http,
                &json!({"ocs": {"meta": {"status": status, "statuscode": code, "message": message}, "data": data}}),
            )
        } else {
            let mut r = Reply::text(
                http,
                format!(
                    "<?xml version=\"1.0\"?>\n<ocs>\n <meta>\n  <status>{status}</status>\n  <statuscode>{code}</statuscode>\n  <message>{}</message>\n </meta>\n <data/>\n</ocs>\n",
                    xml_escape(message)
                ),
            );
            r.headers = vec![(
                axum::http::header::CONTENT_TYPE,
                "application/xml; charset=utf-8".into(),
            )];
            r
        }
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `\OC_Helper::computerFileSize`: "5 GB", "5GB", "1.5 mb", "1024" → bytes (1024-based).
pub fn computer_file_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    if s.is_empty() {
        return None;
    }
    let idx = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(idx);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim() {
        "" | "b" => 1.0,
        "k" | "kb" => 1024.0,
        "m" | "mb" => 1024f64.powi(2),
        "g" | "gb" => 1024f64.powi(3),
        "t" | "tb" => 1024f64.powi(4),
        "p" | "pb" => 1024f64.powi(5),
        _ => return None,
    };
    let v = (n * mult).round();
    if v.is_finite() && v >= 0.0 {
        Some(v as u64)
    } else {
        None
    }
}

/// `\OCP\Util::humanFileSize`, as Nextcloud stores a quota.
fn human_file_size(bytes: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    let rounded = (v * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{} {}", rounded as u64, units[i])
    } else {
        format!("{rounded} {}", units[i])
    }
}

/// Validates a quota value as `editUser` does; returns the stored string.
fn parse_quota(value: &str) -> Result<String, String> {
    match value {
        "none" | "default" => Ok(value.to_owned()),
        v => match computer_file_size(v) {
            Some(b) => Ok(human_file_size(b)),
            None => Err(format!("Invalid quota value: {v}")),
        },
    }
}

fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !e.contains(' ')
}

fn valid_uid(u: &str) -> bool {
    !u.trim().is_empty()
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || " _.@-'".contains(c))
}

impl Nextcloud {
    fn details(&self, st: &State, u: &NextcloudUser) -> Value {
        // Users that never logged in have no storage yet: Nextcloud then reports only
        // `{"quota": <bytes> | "none", "used": 0}` (UsersController::fillStorageInfo).
        let quota = match computer_file_size(&u.quota) {
            Some(b) => json!(b),
            None => json!("none"),
        };
        let subadmin: Vec<String> = Vec::new();
        let _ = st;
        json!({
            "enabled": u.enabled,
            "storageLocation": format!("/var/lib/nextcloud/data/{}", u.id),
            "id": u.id,
            "lastLogin": 0,
            "backend": "Database",
            "subadmin": subadmin,
            "quota": {"quota": quota, "used": 0},
            "manager": "",
            "email": u.email,
            "additional_mail": [],
            "displayname": u.display_name,
            "display-name": u.display_name,
            "phone": "",
            "address": "",
            "website": "",
            "twitter": "",
            "fediverse": "",
            "organisation": "",
            "role": "",
            "headline": "",
            "biography": "",
            "profile_enabled": "1",
            "pronouns": "",
            "groups": u.groups.iter().collect::<Vec<_>>(),
            "language": u.language,
            "locale": "",
            "notify_email": null,
            "backendCapabilities": {"setDisplayName": true, "setPassword": true}
        })
    }

    fn search<'a>(st: &'a State, req: &Req) -> Vec<&'a NextcloudUser> {
        let search = req.query("search").unwrap_or("").to_lowercase();
        let offset: usize = req
            .query("offset")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let limit: Option<usize> = req.query("limit").and_then(|v| v.parse().ok());
        st.users
            .values()
            .filter(|u| {
                search.is_empty()
                    || u.id.to_lowercase().contains(&search)
                    || u.display_name.to_lowercase().contains(&search)
                    || u.email
                        .as_deref()
                        .unwrap_or("")
                        .to_lowercase()
                        .contains(&search)
            })
            .skip(offset)
            .take(limit.unwrap_or(usize::MAX))
            .collect()
    }

    fn ocs(&self, req: &Req, rest: &[String], core: &Core, ocs: &Ocs) -> Reply {
        let write = |op: &str| core.write(op);
        let body: Value = match req.content_type().as_deref() {
            Some("application/json") => serde_json::from_slice(&req.body).unwrap_or(Value::Null),
            Some("application/x-www-form-urlencoded") => Value::Object(
                form_urlencoded::parse(&req.body)
                    .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                    .collect(),
            ),
            _ => Value::Null,
        };
        let str_field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        let parts: Vec<&str> = rest.iter().map(String::as_str).collect();
        let mut st = lock(&self.state);
        match (req.method.as_str(), parts.as_slice()) {
            ("GET", ["cloud", "users"]) => {
                let users: Vec<&str> = Self::search(&st, req).iter().map(|u| u.id.as_str()).collect();
                ocs.ok(json!({ "users": users }))
            }
            ("GET", ["cloud", "users", "details"]) => {
                let mut m = serde_json::Map::new();
                for u in Self::search(&st, req) {
                    m.insert(u.id.clone(), self.details(&st, u));
                }
                ocs.ok(json!({ "users": m }))
            }
            ("POST", ["cloud", "users"]) => {
                let Some(uid) = str_field("userid") else {
                    return ocs.fail(101, "Invalid user name");
                };
                if st.find(&uid).is_some() {
                    return ocs.fail(102, "User already exists");
                }
                if !valid_uid(&uid) {
                    return ocs.fail(101, "Only the following characters are allowed in a username: \"a-z\", \"A-Z\", \"0-9\", spaces and \"_.@-'\"");
                }
                let groups: Vec<String> = body
                    .get("groups")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default();
                for g in &groups {
                    if !st.groups.contains_key(g) {
                        return ocs.fail(104, &format!("Group {g} does not exist"));
                    }
                }
                let password = str_field("password").unwrap_or_default();
                let email = str_field("email").unwrap_or_default();
                if password.is_empty() && email.is_empty() {
                    return ocs.fail(108, "To send a password link to the user an email address is required.");
                }
                if !email.is_empty() && !valid_email(&email) {
                    return ocs.fail(101, "Invalid mail address");
                }
                let quota = match str_field("quota").filter(|q| !q.is_empty()) {
                    None => "default".to_owned(),
                    Some(q) => match parse_quota(&q) {
                        Ok(q) => q,
                        Err(m) => return ocs.fail(102, &m),
                    },
                };
                let display = str_field("displayName").filter(|d| !d.is_empty());
                let user = NextcloudUser {
                    display_name: display.unwrap_or_else(|| uid.clone()),
                    email: (!email.is_empty()).then_some(email),
                    password: (!password.is_empty()).then_some(password),
                    password_set_count: 1,
                    quota,
                    groups: groups.into_iter().collect(),
                    language: str_field("language").unwrap_or_default(),
                    ..NextcloudUser::new(uid.clone(), "")
                };
                st.users.insert(uid.clone(), user);
                write("createUser");
                ocs.ok(json!({ "id": uid }))
            }
            ("GET", ["cloud", "users", uid]) => match st.find(uid).and_then(|k| st.users.get(k)) {
                Some(u) => ocs.ok(self.details(&st, u)),
                None => ocs.fail(404, "User does not exist"),
            },
            ("PUT", ["cloud", "users", uid]) => {
                // UsersController::editUser: an unknown target user is "unauthorised" (997).
                let Some(key) = st.find(uid).map(str::to_owned) else {
                    return ocs.fail(997, "");
                };
                let (Some(k), Some(v)) = (str_field("key"), str_field("value")) else {
                    return ocs.fail(101, "");
                };
                let Some(u) = st.users.get_mut(&key) else {
                    return ocs.fail(997, "");
                };
                match k.as_str() {
                    "displayname" | "display" => u.display_name = v,
                    "email" => {
                        if v.is_empty() {
                            u.email = None;
                        } else if valid_email(&v) {
                            u.email = Some(v);
                        } else {
                            return ocs.fail(101, "");
                        }
                    }
                    "password" => {
                        if v.is_empty() {
                            return ocs.fail(101, "");
                        }
                        u.password = Some(v);
                        u.password_set_count += 1;
                    }
                    "quota" => match parse_quota(&v) {
                        Ok(q) => u.quota = q,
                        Err(m) => return ocs.fail(102, &m),
                    },
                    "language" => u.language = v,
                    "locale" | "phone" | "address" | "website" | "twitter" | "fediverse"
                    | "organisation" | "role" | "headline" | "biography" | "profile_enabled"
                    | "pronouns" | "manager" => {}
                    _ => return ocs.fail(103, ""),
                }
                write(&format!("editUser.{k}"));
                ocs.ok(json!([]))
            }
            ("DELETE", ["cloud", "users", uid]) => {
                let Some(key) = st.find(uid).map(str::to_owned) else {
                    return ocs.fail(101, "");
                };
                if key == self.admin_user {
                    return ocs.fail(101, "");
                }
                st.users.remove(&key);
                write("deleteUser");
                ocs.ok(json!([]))
            }
            ("PUT", ["cloud", "users", uid, action @ ("enable" | "disable")]) => {
                let Some(key) = st.find(uid).map(str::to_owned) else {
                    return ocs.fail(101, "");
                };
                if key == self.admin_user {
                    return ocs.fail(101, "");
                }
                if let Some(u) = st.users.get_mut(&key) {
                    u.enabled = *action == "enable";
                }
                write(&format!("{action}User"));
                ocs.ok(json!([]))
            }
            ("GET", ["cloud", "users", uid, "groups"]) => match st.find(uid).and_then(|k| st.users.get(k)) {
                Some(u) => ocs.ok(json!({"groups": u.groups.iter().collect::<Vec<_>>()})),
                None => ocs.fail(998, "User does not exist"),
            },
            ("POST", ["cloud", "users", uid, "groups"]) => {
                let group = str_field("groupid").unwrap_or_default();
                if group.is_empty() {
                    return ocs.fail(101, "");
                }
                if !st.groups.contains_key(&group) {
                    return ocs.fail(102, "");
                }
                let Some(key) = st.find(uid).map(str::to_owned) else {
                    return ocs.fail(103, "");
                };
                if let Some(u) = st.users.get_mut(&key) {
                    u.groups.insert(group);
                }
                write("addToGroup");
                ocs.ok(json!([]))
            }
            ("DELETE", ["cloud", "users", uid, "groups"]) => {
                let group = req.query("groupid").unwrap_or_default().to_owned();
                if group.is_empty() {
                    return ocs.fail(101, "");
                }
                if !st.groups.contains_key(&group) {
                    return ocs.fail(102, "");
                }
                let Some(key) = st.find(uid).map(str::to_owned) else {
                    return ocs.fail(103, "");
                };
                if key == self.admin_user && group == "admin" {
                    return ocs.fail(105, "Cannot remove yourself from the admin group");
                }
                if let Some(u) = st.users.get_mut(&key) {
                    u.groups.remove(&group);
                }
                write("removeFromGroup");
                ocs.ok(json!([]))
            }
            ("GET", ["cloud", "groups"]) => {
                let search = req.query("search").unwrap_or("").to_lowercase();
                let groups: Vec<&String> = st
                    .groups
                    .keys()
                    .filter(|g| g.to_lowercase().contains(&search))
                    .collect();
                ocs.ok(json!({ "groups": groups }))
            }
            ("POST", ["cloud", "groups"]) => {
                let id = str_field("groupid").unwrap_or_default();
                if id.is_empty() {
                    return ocs.fail(101, "Invalid group name");
                }
                if st.groups.contains_key(&id) {
                    return ocs.fail(102, "group exists");
                }
                let display = str_field("displayname").filter(|d| !d.is_empty()).unwrap_or_else(|| id.clone());
                st.groups.insert(id, display);
                write("createGroup");
                ocs.ok(json!([]))
            }
            _ => ocs.fail(998, "Invalid query, please check the syntax. API specifications are here: http://www.freedesktop.org/wiki/Specifications/open-collaboration-services."),
        }
    }
}

impl Service for Nextcloud {
    fn health_endpoint(&self) -> (&'static str, &'static str) {
        ("GET", "/status.php")
    }

    fn handle(&self, req: &Req, core: &Core) -> Reply {
        let maintenance = lock(&self.state).maintenance;
        if req.path == "/status.php" {
            let v: Vec<&str> = self.version.split('.').collect();
            return Reply::json(
                200,
                &json!({"installed": true, "maintenance": maintenance, "needsDbUpgrade": false,
                        "version": self.version, "versionstring": v.iter().take(3).copied().collect::<Vec<_>>().join("."),
                        "edition": "", "productname": "Nextcloud", "extendedSupport": false}),
            );
        }
        let json = req.query("format") == Some("json")
            || req
                .header("accept")
                .is_some_and(|a| a.contains("application/json"));
        let ocs = Ocs { json };
        let Some(rest) = req.segments_after(PREFIX) else {
            return Reply::html(
                404,
                "<!DOCTYPE html><html><body>Page not found</body></html>",
            );
        };
        if maintenance {
            return Reply::html(
                503,
                "<!DOCTYPE html><html><body>Nextcloud is in maintenance mode</body></html>",
            );
        }
        // Basic auth as the admin (password or app password).
        let authorized = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                let (u, p) = s.split_once(':')?;
                Some(u == self.admin_user && self.passwords.iter().any(|x| x == p))
            })
            .unwrap_or(false);
        if !authorized {
            core.unauthorized();
            return ocs.fail(997, "Current user is not logged in");
        }
        if req.header("ocs-apirequest") != Some("true") {
            core.unauthorized();
            return ocs.fail(997, "CSRF check failed");
        }
        self.ocs(req, &rest, core, &ocs)
    }

    fn state_json(&self) -> Value {
        let st = lock(&self.state);
        json!({
            "users": st.users.values().map(|u| {
                let mut v = serde_json::to_value(u).unwrap_or(Value::Null);
                if let Some(o) = v.as_object_mut() { o.remove("password"); }
                v
            }).collect::<Vec<_>>(),
            "groups": st.groups,
            "maintenance": st.maintenance,
        })
    }

    fn seed_json(&self, v: &Value) -> Result<(), String> {
        let users: Vec<NextcloudUser> =
            serde_json::from_value(v.get("users").cloned().unwrap_or(json!([])))
                .map_err(|e| e.to_string())?;
        let mut st = lock(&self.state);
        for u in users {
            for g in &u.groups {
                st.groups.entry(g.clone()).or_insert_with(|| g.clone());
            }
            st.users.insert(u.id.clone(), u);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_strings() {
        assert_eq!(computer_file_size("5 GB"), Some(5 * 1024 * 1024 * 1024));
        assert_eq!(computer_file_size("1.5mb"), Some(1_572_864));
        assert_eq!(computer_file_size("1024"), Some(1024));
        assert_eq!(computer_file_size("lots"), None);
        assert_eq!(parse_quota("10737418240").unwrap(), "10 GB");
        assert_eq!(parse_quota("none").unwrap(), "none");
        assert!(parse_quota("ten").is_err());
    }

    #[test]
    fn v2_mapping() {
        assert_eq!(v2_status(102), 400);
        assert_eq!(v2_status(997), 401);
        assert_eq!(v2_status(998), 404);
        assert_eq!(v2_status(999), 500);
        assert_eq!(v2_status(200), 200);
        assert_eq!(v2_status(404), 404);
    }
}
