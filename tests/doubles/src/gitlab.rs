//! A test double of GitLab's REST API v4 (users), checked against
//! `gitlab/openapi_v3.users-subset.yaml` (a verbatim subset of GitLab's generated v3 document).
//!
//! Reproduced (API-NOTES §2.3, `lib/api/users.rb`): `PRIVATE-TOKEN` or `Authorization: Bearer`
//! (else `401 {"message":"401 Unauthorized"}`); the user list with `username`, `search`,
//! `extern_uid`+`provider`, `blocked`, `active`, `external`, `admins`,
//! `custom_attributes[key]=value` filters and pagination headers (`X-Total`, `X-Total-Pages`,
//! `X-Page`, `X-Per-Page`, `X-Next-Page`, `X-Prev-Page`, `Link`; `per_page` capped at 100);
//! create (`201`, `409 Email/Username has already been taken`, `400` validation), update (`PUT`,
//! `409`), block/unblock (`201 true`), delete (`204`; GitLab deletes asynchronously, the double at
//! once), custom attributes. Grape also accepts JSON bodies where the document lists
//! `multipart/form-data` only, so both are checked against the same schema.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::http::HeaderName;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::openapi::ContractOptions;
use crate::service::{common_double_methods, lock, now_secs, Core, Reply, Req, Server, Service};
pub use crate::service::{FaultPlan, Faults, Side, StartError, Violation};

/// How to start the GitLab double.
#[derive(Debug, Clone)]
pub struct GitlabConfig {
    /// Default `127.0.0.1:0`.
    pub addr: SocketAddr,
    /// The admin's personal access token (user `root`, id 1).
    pub admin_token: String,
    /// `None`: [`crate::lldap::default_contracts_dir`].
    pub contracts_dir: Option<PathBuf>,
    pub faults: FaultPlan,
}

impl GitlabConfig {
    pub fn new(admin_token: impl Into<String>) -> Self {
        Self {
            admin_token: admin_token.into(),
            ..Self::default()
        }
    }
}

impl Default for GitlabConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_token: "glpat-admin".into(),
            contracts_dir: None,
            faults: FaultPlan::default(),
        }
    }
}

/// A GitLab user (also the read-only view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GitlabUser {
    pub id: u64,
    pub username: String,
    pub name: String,
    pub email: String,
    /// `"active"`, `"blocked"`.
    pub state: String,
    pub admin: bool,
    pub external: bool,
    pub can_create_group: bool,
    pub projects_limit: i64,
    /// (provider, extern_uid).
    pub identities: Vec<(String, String)>,
    pub custom_attributes: BTreeMap<String, String>,
    pub note: Option<String>,
    pub password: Option<String>,
    /// Set when an admin sets the password (GitLab expires it: change at next login).
    pub password_expired: bool,
    pub confirmed: bool,
    pub created_at: i64,
}

impl Default for GitlabUser {
    fn default() -> Self {
        Self {
            id: 0,
            username: String::new(),
            name: String::new(),
            email: String::new(),
            state: "active".into(),
            admin: false,
            external: false,
            can_create_group: true,
            projects_limit: 100_000,
            identities: Vec::new(),
            custom_attributes: BTreeMap::new(),
            note: None,
            password: None,
            password_expired: false,
            confirmed: true,
            created_at: now_secs(),
        }
    }
}

impl GitlabUser {
    pub fn new(username: &str, name: &str, email: &str) -> Self {
        Self {
            username: username.to_owned(),
            name: name.to_owned(),
            email: email.to_owned(),
            ..Self::default()
        }
    }
}

#[derive(Default)]
struct State {
    users: BTreeMap<u64, GitlabUser>,
    next_id: u64,
}

struct Gitlab {
    state: Mutex<State>,
    token: String,
}

/// A running GitLab double.
pub struct GitlabDouble {
    server: Server,
    gl: Arc<Gitlab>,
}

/// Corrections to GitLab's generated document where it contradicts what the server sends
/// (Grape entities without type documentation default to `string`, collections are documented
/// as single objects, and nullable timestamps are not marked nullable).
fn patch_gitlab(doc: &mut Value) {
    for schema in ["APIEntitiesUserPublic", "APIEntitiesUserWithAdmin"] {
        let Some(props) = doc
            .pointer_mut(&format!("/components/schemas/{schema}/properties"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        // `expose :identities, using: Entities::Identity` is an array.
        props.insert(
            "identities".into(),
            json!({"type": "array", "items": {"$ref": "#/components/schemas/APIEntitiesIdentity"}}),
        );
        if props.contains_key("is_admin") {
            // `expose :admin?, as: :is_admin` is a boolean.
            props.insert("is_admin".into(), json!({"type": "boolean"}));
        }
        if props.contains_key("namespace_id") {
            props.insert(
                "namespace_id".into(),
                json!({"type": "integer", "nullable": true}),
            );
        }
        for k in [
            "note",
            "last_sign_in_at",
            "current_sign_in_at",
            "last_activity_on",
            "confirmed_at",
            "created_by",
        ] {
            if let Some(Value::Object(p)) = props.get_mut(k) {
                if p.contains_key("$ref") {
                    let inner = std::mem::take(p);
                    p.insert("allOf".into(), json!([Value::Object(inner)]));
                }
                p.insert("nullable".into(), json!(true));
            }
        }
    }
    // `GET /users/:id/custom_attributes` presents a collection.
    if let Some(s) = doc.pointer_mut(
        "/paths/~1api~1v4~1users~1{id}~1custom_attributes/get/responses/200/content/application~1json/schema",
    ) {
        let inner = s.take();
        *s = json!({"type": "array", "items": inner});
    }
}

impl GitlabDouble {
    /// Loads the document, binds and serves. The admin `root` (id 1) exists.
    pub async fn start(config: GitlabConfig) -> Result<Self, StartError> {
        let dir = config
            .contracts_dir
            .clone()
            .unwrap_or_else(crate::lldap::default_contracts_dir);
        let contract = crate::service::load_contract(
            "GitLab",
            vec![dir.join("gitlab/openapi_v3.users-subset.yaml")],
            ContractOptions {
                extra_query_params: Vec::new(),
                json_for_form_bodies: true,
            },
            |_, doc| patch_gitlab(doc),
        )?;
        let mut state = State {
            users: BTreeMap::new(),
            next_id: 2,
        };
        let root = GitlabUser {
            id: 1,
            admin: true,
            ..GitlabUser::new("root", "Administrator", "admin@example.com")
        };
        state.users.insert(1, root);
        let gl = Arc::new(Gitlab {
            state: Mutex::new(state),
            token: config.admin_token.clone(),
        });
        let server = Server::start(config.addr, contract, config.faults, gl.clone()).await?;
        Ok(Self { server, gl })
    }

    common_double_methods!();

    /// Creates a user by hand; returns its id (an id of 0 is assigned).
    pub fn seed_user(&self, mut user: GitlabUser) -> u64 {
        let mut st = lock(&self.gl.state);
        if user.id == 0 {
            user.id = st.next_id;
        }
        st.next_id = st.next_id.max(user.id + 1);
        let id = user.id;
        st.users.insert(id, user);
        id
    }

    /// One user by id.
    pub fn user(&self, id: u64) -> Option<GitlabUser> {
        lock(&self.gl.state).users.get(&id).cloned()
    }

    /// One user by username (case-insensitive).
    pub fn user_by_username(&self, username: &str) -> Option<GitlabUser> {
        lock(&self.gl.state)
            .users
            .values()
            .find(|u| u.username.eq_ignore_ascii_case(username))
            .cloned()
    }

    /// All users by id (root included).
    pub fn users(&self) -> Vec<GitlabUser> {
        lock(&self.gl.state).users.values().cloned().collect()
    }
}

fn message(status: u16, m: impl Into<Value>) -> Reply {
    Reply::json(status, &json!({ "message": m.into() }))
}

fn iso(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The admin representation (`Entities::UserWithAdmin`).
fn entity(u: &GitlabUser, with_custom: bool) -> Value {
    let mut v = json!({
        "id": u.id,
        "username": u.username,
        "public_email": "",
        "name": u.name,
        "state": u.state,
        "locked": false,
        "avatar_url": format!("https://secure.gravatar.com/avatar/{}?s=80&d=identicon", u.id),
        "web_url": format!("http://gitlab.example.com/{}", u.username),
        "created_at": iso(u.created_at),
        "bio": "",
        "location": "",
        "linkedin": "",
        "twitter": "",
        "discord": "",
        "website_url": "",
        "github": "",
        "job_title": "",
        "pronouns": "",
        "organization": "",
        "bot": false,
        "work_information": "",
        "local_time": "",
        "last_sign_in_at": null,
        "confirmed_at": if u.confirmed { json!(iso(u.created_at)) } else { Value::Null },
        "last_activity_on": null,
        "email": u.email,
        "theme_id": 3,
        "color_scheme_id": 1,
        "projects_limit": u.projects_limit,
        "current_sign_in_at": null,
        "identities": u.identities.iter().map(|(p, e)| json!({"provider": p, "extern_uid": e})).collect::<Vec<_>>(),
        "can_create_group": u.can_create_group,
        "can_create_project": true,
        "two_factor_enabled": false,
        "external": u.external,
        "private_profile": false,
        "commit_email": u.email,
        "preferred_language": "en",
        "is_admin": u.admin,
        "note": u.note,
        "namespace_id": u.id,
        "created_by": null,
    });
    if with_custom {
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "custom_attributes".into(),
                Value::Array(
                    u.custom_attributes
                        .iter()
                        .map(|(k, v)| json!({"key": k, "value": v}))
                        .collect(),
                ),
            );
        }
    }
    v
}

fn truthy(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        },
        Value::Number(n) => Some(n.as_i64() != Some(0)),
        _ => None,
    }
}

fn valid_username(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 255
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && !u.starts_with(['-', '.'])
        && !u.ends_with(['-', '.'])
        && !u.ends_with(".git")
}

impl Gitlab {
    /// The body as an object (JSON, form or multipart), values as sent.
    fn params(req: &Req) -> Map<String, Value> {
        match req.content_type().as_deref() {
            Some("application/json") => serde_json::from_slice::<Value>(&req.body)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default(),
            Some("application/x-www-form-urlencoded") => form_urlencoded::parse(&req.body)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect(),
            Some("multipart/form-data") => {
                let text = String::from_utf8_lossy(&req.body);
                let mut m = Map::new();
                let Some(first) = text.lines().next().map(str::trim_end) else {
                    return m;
                };
                for part in text.split(first).skip(1) {
                    let part = part.strip_prefix("\r\n").unwrap_or(part);
                    let Some((head, value)) = part.split_once("\r\n\r\n") else {
                        continue;
                    };
                    if let Some(name) = head
                        .split(';')
                        .find_map(|s| s.trim().strip_prefix("name=\""))
                        .and_then(|s| s.split('"').next())
                    {
                        m.insert(
                            name.to_owned(),
                            Value::String(value.strip_suffix("\r\n").unwrap_or(value).to_owned()),
                        );
                    }
                }
                m
            }
            _ => Map::new(),
        }
    }

    fn list(&self, req: &Req, st: &State) -> Reply {
        let q = |k: &str| req.query(k);
        let is_true = |k: &str| q(k) == Some("true");
        let custom: Vec<(String, String)> = req
            .query
            .iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix("custom_attributes[")?.strip_suffix(']')?;
                Some((key.to_owned(), v.clone()))
            })
            .collect();
        let search = q("search").map(str::to_lowercase);
        let mut users: Vec<&GitlabUser> = st
            .users
            .values()
            .filter(|u| q("username").is_none_or(|n| u.username.eq_ignore_ascii_case(n)))
            .filter(|u| match (q("extern_uid"), q("provider")) {
                (Some(e), Some(p)) => u.identities.iter().any(|(pp, ee)| pp == p && ee == e),
                _ => true,
            })
            .filter(|u| {
                search.as_ref().is_none_or(|s| {
                    u.username.to_lowercase().contains(s)
                        || u.name.to_lowercase().contains(s)
                        || u.email.to_lowercase() == *s
                })
            })
            .filter(|u| !is_true("blocked") || u.state == "blocked")
            .filter(|u| !is_true("active") || u.state == "active")
            .filter(|u| !is_true("external") || u.external)
            .filter(|u| !is_true("admins") || u.admin)
            .filter(|u| {
                custom
                    .iter()
                    .all(|(k, v)| u.custom_attributes.get(k) == Some(v))
            })
            .collect();
        if q("sort") == Some("asc") {
            users.sort_by_key(|u| u.id);
        } else {
            users.sort_by_key(|u| std::cmp::Reverse(u.id));
        }
        let per_page: usize = q("per_page")
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(20)
            .min(100);
        let page: usize = q("page")
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(1);
        let total = users.len();
        let pages = total.div_ceil(per_page).max(1);
        let items: Vec<Value> = users
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .map(|u| entity(u, is_true("with_custom_attributes")))
            .collect();
        let next = if page < pages {
            (page + 1).to_string()
        } else {
            String::new()
        };
        let prev = if page > 1 {
            (page - 1).to_string()
        } else {
            String::new()
        };
        let h = |n: &'static str| HeaderName::from_static(n);
        let mut r = Reply::json(200, &Value::Array(items))
            .with_header(h("x-total"), total.to_string())
            .with_header(h("x-total-pages"), pages.to_string())
            .with_header(h("x-per-page"), per_page.to_string())
            .with_header(h("x-page"), page.to_string())
            .with_header(h("x-next-page"), next.clone())
            .with_header(h("x-prev-page"), prev);
        if !next.is_empty() {
            r = r.with_header(
                h("link"),
                format!("<http://gitlab.example.com/api/v4/users?page={next}&per_page={per_page}>; rel=\"next\""),
            );
        }
        r
    }

    fn conflicts(
        st: &State,
        me: u64,
        email: Option<&str>,
        username: Option<&str>,
    ) -> Option<Reply> {
        if let Some(e) = email {
            if st
                .users
                .values()
                .any(|u| u.id != me && u.email.eq_ignore_ascii_case(e))
            {
                return Some(message(409, "Email has already been taken"));
            }
        }
        if let Some(n) = username {
            if st
                .users
                .values()
                .any(|u| u.id != me && u.username.eq_ignore_ascii_case(n))
            {
                return Some(message(409, "Username has already been taken"));
            }
        }
        None
    }

    fn create(&self, req: &Req, core: &Core, st: &mut State) -> Reply {
        let p = Self::params(req);
        let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_owned);
        let missing: Vec<&str> = ["email", "name", "username"]
            .into_iter()
            .filter(|k| s(k).is_none_or(|v| v.is_empty()))
            .collect();
        if !missing.is_empty() {
            let e: Vec<String> = missing.iter().map(|k| format!("{k} is missing")).collect();
            return Reply::json(400, &json!({"error": e.join(", ")}));
        }
        let has_pw = s("password").is_some_and(|v| !v.is_empty());
        if !has_pw
            && truthy(p.get("reset_password")) != Some(true)
            && truthy(p.get("force_random_password")) != Some(true)
        {
            return Reply::json(
                400,
                &json!({"error": "password, reset_password, force_random_password are missing, exactly one parameter must be provided"}),
            );
        }
        let (email, name, username) = (
            s("email").unwrap_or_default(),
            s("name").unwrap_or_default(),
            s("username").unwrap_or_default(),
        );
        if let Some(r) = Self::conflicts(st, 0, Some(&email), Some(&username)) {
            return r;
        }
        let mut errors = Map::new();
        if !valid_username(&username) {
            errors.insert("username".into(), json!(["can contain only letters, digits, '_', '-' and '.'. Cannot start with '-' or end in '.', '.git' or '.atom'."]));
        }
        if !email.contains('@') {
            errors.insert("email".into(), json!(["is invalid"]));
        }
        if has_pw && s("password").is_some_and(|pw| pw.chars().count() < 8) {
            errors.insert(
                "password".into(),
                json!(["is too short (minimum is 8 characters)"]),
            );
        }
        if !errors.is_empty() {
            return message(400, Value::Object(errors));
        }
        let mut u = GitlabUser::new(&username, &name, &email);
        u.id = st.next_id;
        st.next_id += 1;
        u.password = s("password");
        u.confirmed = truthy(p.get("skip_confirmation")) == Some(true);
        u.admin = truthy(p.get("admin")).unwrap_or(false);
        u.external = truthy(p.get("external")).unwrap_or(false);
        if let Some(b) = truthy(p.get("can_create_group")) {
            u.can_create_group = b;
        }
        if let Some(n) = p
            .get("projects_limit")
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
        {
            u.projects_limit = n;
        }
        u.note = s("note");
        if let (Some(e), Some(pr)) = (s("extern_uid"), s("provider")) {
            u.identities.push((pr, e));
        }
        let v = entity(&u, false);
        st.users.insert(u.id, u);
        core.write("createUser");
        Reply::json(201, &v)
    }

    fn update(&self, req: &Req, core: &Core, st: &mut State, id: u64) -> Reply {
        if !st.users.contains_key(&id) {
            return message(404, "404 User Not Found");
        }
        let p = Self::params(req);
        let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_owned);
        if let Some(r) = Self::conflicts(st, id, s("email").as_deref(), s("username").as_deref()) {
            return r;
        }
        if s("password").is_some_and(|pw| pw.chars().count() < 8) {
            return message(
                400,
                json!({"password": ["is too short (minimum is 8 characters)"]}),
            );
        }
        let Some(u) = st.users.get_mut(&id) else {
            return message(404, "404 User Not Found");
        };
        if let Some(v) = s("email") {
            u.email = v;
        }
        if let Some(v) = s("name") {
            u.name = v;
        }
        if let Some(v) = s("username") {
            u.username = v;
        }
        if let Some(v) = s("password") {
            u.password = Some(v);
            u.password_expired = true;
        }
        if let Some(b) = truthy(p.get("admin")) {
            u.admin = b;
        }
        if let Some(b) = truthy(p.get("external")) {
            u.external = b;
        }
        if let Some(b) = truthy(p.get("can_create_group")) {
            u.can_create_group = b;
        }
        if let Some(n) = p
            .get("projects_limit")
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
        {
            u.projects_limit = n;
        }
        if p.contains_key("note") {
            u.note = s("note");
        }
        if let (Some(e), Some(pr)) = (s("extern_uid"), s("provider")) {
            u.identities.retain(|(pp, _)| *pp != pr);
            u.identities.push((pr, e));
        }
        let v = entity(u, false);
        core.write("updateUser");
        Reply::json(200, &v)
    }
}

impl Service for Gitlab {
    fn health_endpoint(&self) -> (&'static str, &'static str) {
        ("GET", "/-/readiness")
    }

    fn handle(&self, req: &Req, core: &Core) -> Reply {
        if req.path == "/-/readiness" {
            return Reply::json(
                200,
                &json!({"status": "ok", "master_check": [{"status": "ok"}]}),
            );
        }
        let Some(parts) = req.segments_after("/api/v4") else {
            return Reply::html(
                404,
                "<!DOCTYPE html><html><body>The page could not be found</body></html>",
            );
        };
        let token = req.header("private-token").map(str::to_owned).or_else(|| {
            req.header("authorization")
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(|t| t.trim().to_owned())
        });
        if token.as_deref() != Some(self.token.as_str()) {
            core.unauthorized();
            return message(401, "401 Unauthorized");
        }
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let mut st = lock(&self.state);
        let not_found = || message(404, "404 User Not Found");
        let id_of = |s: &str| s.parse::<u64>().ok();
        match (req.method.as_str(), parts.as_slice()) {
            ("GET", ["users"]) => self.list(req, &st),
            ("POST", ["users"]) => self.create(req, core, &mut st),
            ("GET", ["user"]) => match st.users.get(&1) {
                Some(u) => Reply::json(200, &entity(u, false)),
                None => not_found(),
            },
            ("GET", ["users", id]) => match id_of(id).and_then(|i| st.users.get(&i)) {
                Some(u) => Reply::json(
                    200,
                    &entity(u, req.query("with_custom_attributes") == Some("true")),
                ),
                None => not_found(),
            },
            ("PUT", ["users", id]) => match id_of(id) {
                Some(i) => self.update(req, core, &mut st, i),
                None => not_found(),
            },
            ("DELETE", ["users", id]) => match id_of(id) {
                Some(1) => message(403, "403 Forbidden"),
                Some(i) if st.users.remove(&i).is_some() => {
                    core.write("deleteUser");
                    Reply::empty(204)
                }
                _ => not_found(),
            },
            ("POST", ["users", id, action @ ("block" | "unblock" | "deactivate" | "activate")]) => {
                let Some(i) = id_of(id) else {
                    return not_found();
                };
                if i == 1 && *action == "block" {
                    return message(
                        403,
                        "403 Forbidden - The API initiating user cannot be blocked by the API",
                    );
                }
                let Some(u) = st.users.get_mut(&i) else {
                    return not_found();
                };
                match *action {
                    "block" => u.state = "blocked".into(),
                    "unblock" => u.state = "active".into(),
                    "deactivate" => u.state = "deactivated".into(),
                    _ => {
                        if u.state == "blocked" {
                            return message(
                                403,
                                "403 Forbidden - A blocked user must be unblocked to be activated",
                            );
                        }
                        u.state = "active".into();
                    }
                }
                core.write(&format!("{action}User"));
                Reply::json(201, &json!(true))
            }
            ("GET", ["users", id, "custom_attributes"]) => {
                match id_of(id).and_then(|i| st.users.get(&i)) {
                    Some(u) => Reply::json(
                        200,
                        &Value::Array(
                            u.custom_attributes
                                .iter()
                                .map(|(k, v)| json!({"key": k, "value": v}))
                                .collect(),
                        ),
                    ),
                    None => not_found(),
                }
            }
            ("GET", ["users", id, "custom_attributes", key]) => {
                match id_of(id).and_then(|i| st.users.get(&i)) {
                    Some(u) => match u.custom_attributes.get(*key) {
                        Some(v) => Reply::json(200, &json!({"key": key, "value": v})),
                        None => message(404, "404 Not found"),
                    },
                    None => not_found(),
                }
            }
            ("PUT", ["users", id, "custom_attributes", key]) => {
                let p = Self::params(req);
                let Some(value) = p.get("value").and_then(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .or_else(|| Some(v.to_string()))
                }) else {
                    return Reply::json(400, &json!({"error": "value is missing"}));
                };
                match id_of(id).and_then(|i| st.users.get_mut(&i)) {
                    Some(u) => {
                        u.custom_attributes.insert((*key).to_owned(), value.clone());
                        core.write("setCustomAttribute");
                        Reply::json(200, &json!({"key": key, "value": value}))
                    }
                    None => not_found(),
                }
            }
            ("DELETE", ["users", id, "custom_attributes", key]) => {
                match id_of(id).and_then(|i| st.users.get_mut(&i)) {
                    Some(u) => {
                        if u.custom_attributes.remove(*key).is_none() {
                            return message(404, "404 Not found");
                        }
                        core.write("deleteCustomAttribute");
                        Reply::empty(204)
                    }
                    None => not_found(),
                }
            }
            _ => Reply::json(404, &json!({"error": "404 Not Found"})),
        }
    }

    fn state_json(&self) -> Value {
        let st = lock(&self.state);
        json!({"users": st.users.values().map(|u| {
            let mut v = serde_json::to_value(u).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() { o.remove("password"); }
            v
        }).collect::<Vec<_>>()})
    }

    fn seed_json(&self, v: &Value) -> Result<(), String> {
        let users: Vec<GitlabUser> =
            serde_json::from_value(v.get("users").cloned().unwrap_or(json!([])))
                .map_err(|e| e.to_string())?;
        let mut st = lock(&self.state);
        for mut u in users {
            if u.id == 0 {
                u.id = st.next_id;
            }
            st.next_id = st.next_id.max(u.id + 1);
            st.users.insert(u.id, u);
        }
        Ok(())
    }
}
