//! A test double of Jellyfin 10.11's user API, checked against `jellyfin/jellyfin-openapi-stable.json`.
//!
//! Reproduced (API-NOTES §2.4): `Authorization: MediaBrowser Token="…"` (or `?ApiKey=`); the
//! legacy `X-Emby-Token`, `X-MediaBrowser-Token`, `api_key` and `Emby` scheme only when legacy
//! authorization is enabled (default off) — otherwise `401`; `GET /Users`, `GET /Users/{id}`,
//! `POST /Users/New` (duplicate or invalid name → `400 text/plain "Error processing request."`),
//! `POST /Users?userId=` with the full `UserDto` (rename + configuration), `POST
//! /Users/Password?userId=`, `POST /Users/{id}/Policy` with the full `UserPolicy`
//! (`additionalProperties: false` in the document: unknown fields are violations; `403` for
//! disabling an administrator, demoting the last administrator, disabling the last enabled user),
//! `DELETE /Users/{id}` (`204`; the last administrator cannot be deleted), `GET /health`
//! (`Healthy`, not in the document). Ids are GUIDs written without dashes, as Jellyfin does.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::openapi::ContractOptions;
use crate::service::{common_double_methods, lock, random_uuid, Core, Reply, Req, Server, Service};
pub use crate::service::{FaultPlan, Faults, Side, StartError, Violation};

/// How to start the Jellyfin double.
#[derive(Debug, Clone)]
pub struct JellyfinConfig {
    /// Default `127.0.0.1:0`.
    pub addr: SocketAddr,
    pub api_key: String,
    /// `EnableLegacyAuthorization` (default false).
    pub legacy_authorization: bool,
    /// The administrator created at start (Jellyfin's setup wizard user). Default `root`.
    pub admin_name: String,
    /// `None`: [`crate::lldap::default_contracts_dir`].
    pub contracts_dir: Option<PathBuf>,
    pub faults: FaultPlan,
}

impl JellyfinConfig {
    pub fn new(api_key: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            ..Self::default()
        }
    }
}

impl Default for JellyfinConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_key: "jellyfin-api-key".into(),
            legacy_authorization: false,
            admin_name: "root".into(),
            contracts_dir: None,
            faults: FaultPlan::default(),
        }
    }
}

/// A Jellyfin user (also the read-only view).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct JellyfinUser {
    /// 32 hex digits.
    pub id: String,
    pub name: String,
    pub password: Option<String>,
    /// The whole `UserPolicy` object as last set.
    pub policy: Value,
    /// The whole `UserConfiguration` object as last set.
    pub configuration: Value,
    pub password_set_count: u64,
    pub policy_set_count: u64,
}

impl Default for JellyfinUser {
    fn default() -> Self {
        Self {
            id: random_uuid().replace('-', ""),
            name: String::new(),
            password: None,
            policy: default_policy(),
            configuration: default_configuration(),
            password_set_count: 0,
            policy_set_count: 0,
        }
    }
}

impl JellyfinUser {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }

    pub fn is_admin(&self) -> bool {
        self.policy["IsAdministrator"] == true
    }

    pub fn is_disabled(&self) -> bool {
        self.policy["IsDisabled"] == true
    }
}

/// The policy of a new user (`UserPolicy`'s defaults).
pub fn default_policy() -> Value {
    json!({
        "IsAdministrator": false, "IsHidden": true, "EnableCollectionManagement": false,
        "EnableSubtitleManagement": false, "EnableLyricManagement": false, "IsDisabled": false,
        "BlockedTags": [], "AllowedTags": [], "EnableUserPreferenceAccess": true,
        "AccessSchedules": [], "BlockUnratedItems": [], "EnableRemoteControlOfOtherUsers": false,
        "EnableSharedDeviceControl": true, "EnableRemoteAccess": true, "EnableLiveTvManagement": true,
        "EnableLiveTvAccess": true, "EnableMediaPlayback": true, "EnableAudioPlaybackTranscoding": true,
        "EnableVideoPlaybackTranscoding": true, "EnablePlaybackRemuxing": true,
        "ForceRemoteSourceTranscoding": false, "EnableContentDeletion": false,
        "EnableContentDeletionFromFolders": [], "EnableContentDownloading": true,
        "EnableSyncTranscoding": true, "EnableMediaConversion": true, "EnabledDevices": [],
        "EnableAllDevices": true, "EnabledChannels": [], "EnableAllChannels": true,
        "EnabledFolders": [], "EnableAllFolders": true, "InvalidLoginAttemptCount": 0,
        "LoginAttemptsBeforeLockout": -1, "MaxActiveSessions": 0, "EnablePublicSharing": true,
        "BlockedMediaFolders": [], "BlockedChannels": [], "RemoteClientBitrateLimit": 0,
        "AuthenticationProviderId": "Jellyfin.Server.Implementations.Users.DefaultAuthenticationProvider",
        "PasswordResetProviderId": "Jellyfin.Server.Implementations.Users.DefaultPasswordResetProvider",
        "SyncPlayAccess": "CreateAndJoinGroups"
    })
}

fn default_configuration() -> Value {
    json!({
        "PlayDefaultAudioTrack": true, "SubtitleLanguagePreference": "", "DisplayMissingEpisodes": false,
        "GroupedFolders": [], "SubtitleMode": "Default", "DisplayCollectionsView": false,
        "EnableLocalPassword": false, "OrderedViews": [], "LatestItemsExcludes": [], "MyMediaExcludes": [],
        "HidePlayedInLatest": true, "RememberAudioSelections": true, "RememberSubtitleSelections": true,
        "EnableNextEpisodeAutoPlay": true, "CastReceiverId": "F007D354"
    })
}

#[derive(Default)]
struct State {
    users: BTreeMap<String, JellyfinUser>,
}

struct Jellyfin {
    state: Mutex<State>,
    api_key: String,
    legacy: bool,
    server_id: String,
}

/// A running Jellyfin double.
pub struct JellyfinDouble {
    server: Server,
    jf: Arc<Jellyfin>,
}

/// Jellyfin's controllers are `[Produces("application/json")]`: `NotFound("User not found")` and
/// `StatusCode(403, "…")` send a JSON string, where the document only lists `ProblemDetails`.
fn patch_jellyfin(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (p, item) in paths.iter_mut() {
        if !p.starts_with("/Users") {
            continue;
        }
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            for code in ["403", "404"] {
                let Some(content) = op
                    .pointer_mut(&format!("/responses/{code}/content"))
                    .and_then(Value::as_object_mut)
                else {
                    continue;
                };
                for media in content.values_mut() {
                    if let Some(s) = media.get_mut("schema") {
                        let inner = s.take();
                        *s = json!({"anyOf": [inner, {"type": "string"}]});
                    }
                }
            }
        }
    }
}

impl JellyfinDouble {
    /// Loads the document, binds and serves. An administrator (`config.admin_name`) exists.
    pub async fn start(config: JellyfinConfig) -> Result<Self, StartError> {
        let dir = config
            .contracts_dir
            .clone()
            .unwrap_or_else(crate::lldap::default_contracts_dir);
        let contract = crate::service::load_contract(
            "Jellyfin",
            vec![dir.join("jellyfin/jellyfin-openapi-stable.json")],
            ContractOptions {
                // The API key in the query works on every route (not listed per operation).
                extra_query_params: vec!["ApiKey".into()],
                json_for_form_bodies: false,
            },
            |_, doc| patch_jellyfin(doc),
        )?;
        let mut admin = JellyfinUser::new(&config.admin_name);
        admin.policy["IsAdministrator"] = json!(true);
        admin.policy["IsHidden"] = json!(false);
        let mut state = State::default();
        state.users.insert(admin.id.clone(), admin);
        let jf = Arc::new(Jellyfin {
            state: Mutex::new(state),
            api_key: config.api_key.clone(),
            legacy: config.legacy_authorization,
            server_id: random_uuid().replace('-', ""),
        });
        let server = Server::start(config.addr, contract, config.faults, jf.clone()).await?;
        Ok(Self { server, jf })
    }

    common_double_methods!();

    /// Adds a user by hand; returns its id.
    pub fn seed_user(&self, user: JellyfinUser) -> String {
        let id = user.id.clone();
        lock(&self.jf.state).users.insert(id.clone(), user);
        id
    }

    /// One user by id.
    pub fn user(&self, id: &str) -> Option<JellyfinUser> {
        lock(&self.jf.state).users.get(id).cloned()
    }

    /// One user by name (case-insensitive, as Jellyfin compares).
    pub fn user_by_name(&self, name: &str) -> Option<JellyfinUser> {
        lock(&self.jf.state)
            .users
            .values()
            .find(|u| u.name.eq_ignore_ascii_case(name))
            .cloned()
    }

    /// All users.
    pub fn users(&self) -> Vec<JellyfinUser> {
        lock(&self.jf.state).users.values().cloned().collect()
    }

    /// Whether `password` is the user's password.
    pub fn check_password(&self, id: &str, password: &str) -> bool {
        lock(&self.jf.state)
            .users
            .get(id)
            .is_some_and(|u| u.password.as_deref().unwrap_or("") == password)
    }
}

fn error_processing() -> Reply {
    Reply::text(400, "Error processing request.")
}

fn valid_name(n: &str) -> bool {
    // ^(?!\s)[\w\ \-'._@+]+(?<!\s)$
    !n.is_empty()
        && !n.starts_with(char::is_whitespace)
        && !n.ends_with(char::is_whitespace)
        && n.chars()
            .all(|c| c.is_alphanumeric() || " _-'.@+".contains(c))
}

/// The `Token` of a `MediaBrowser …` (or `Emby …`) authorization header.
fn header_token(value: &str, legacy: bool) -> Option<String> {
    let (scheme, params) = value.trim().split_once(' ')?;
    let ok_scheme = scheme.eq_ignore_ascii_case("MediaBrowser")
        || (legacy && scheme.eq_ignore_ascii_case("Emby"));
    if !ok_scheme {
        return None;
    }
    params.split(',').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("Token")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

impl Jellyfin {
    fn dto(&self, u: &JellyfinUser) -> Value {
        let has_pw = u.password.as_deref().is_some_and(|p| !p.is_empty());
        json!({
            "Name": u.name,
            "ServerId": self.server_id,
            "Id": u.id,
            "HasPassword": has_pw,
            "HasConfiguredPassword": has_pw,
            "HasConfiguredEasyPassword": false,
            "EnableAutoLogin": false,
            "LastLoginDate": null,
            "LastActivityDate": null,
            "Configuration": u.configuration,
            "Policy": u.policy,
        })
    }

    fn authorized(&self, req: &Req) -> bool {
        let mut tokens: Vec<String> = Vec::new();
        if let Some(t) = req
            .header("authorization")
            .and_then(|h| header_token(h, self.legacy))
        {
            tokens.push(t);
        }
        if let Some(t) = req.query("ApiKey") {
            tokens.push(t.to_owned());
        }
        if self.legacy {
            for h in ["x-emby-token", "x-mediabrowser-token"] {
                if let Some(t) = req.header(h) {
                    tokens.push(t.to_owned());
                }
            }
            if let Some(t) = req
                .header("x-emby-authorization")
                .and_then(|h| header_token(h, true))
            {
                tokens.push(t);
            }
            if let Some(t) = req.query("api_key") {
                tokens.push(t.to_owned());
            }
        }
        tokens.contains(&self.api_key)
    }
}

fn not_found() -> Reply {
    Reply::json(404, &json!("User not found"))
}

impl Service for Jellyfin {
    fn health_endpoint(&self) -> (&'static str, &'static str) {
        ("GET", "/health")
    }

    fn handle(&self, req: &Req, core: &Core) -> Reply {
        if req.path == "/health" {
            return Reply::text(200, "Healthy");
        }
        if !self.authorized(req) {
            core.unauthorized();
            return Reply::empty(401);
        }
        let parts: Vec<String> = req.segments_after("").unwrap_or_default();
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let body = || serde_json::from_slice::<Value>(&req.body).unwrap_or(Value::Null);
        let mut st = lock(&self.state);
        // Jellyfin parses GUIDs with or without dashes.
        let norm = |id: &str| id.replace('-', "").to_ascii_lowercase();
        match (req.method.as_str(), parts.as_slice()) {
            ("GET", ["Users"]) => {
                let flag = |k: &str| req.query(k).map(|v| v.eq_ignore_ascii_case("true"));
                let list: Vec<Value> = st
                    .users
                    .values()
                    .filter(|u| flag("isDisabled").is_none_or(|f| u.is_disabled() == f))
                    .filter(|u| {
                        flag("isHidden").is_none_or(|f| (u.policy["IsHidden"] == true) == f)
                    })
                    .map(|u| self.dto(u))
                    .collect();
                Reply::json(200, &Value::Array(list))
            }
            ("GET", ["Users", id]) => match st.users.get(&norm(id)) {
                Some(u) => Reply::json(200, &self.dto(u)),
                None => not_found(),
            },
            ("POST", ["Users", "New"]) => {
                let b = body();
                let Some(name) = b
                    .get("Name")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .map(str::to_owned)
                else {
                    return error_processing();
                };
                if !valid_name(&name)
                    || st
                        .users
                        .values()
                        .any(|u| u.name.eq_ignore_ascii_case(&name))
                {
                    return error_processing();
                }
                let mut u = JellyfinUser::new(&name);
                if let Some(pw) = b
                    .get("Password")
                    .and_then(Value::as_str)
                    .filter(|p| !p.is_empty())
                {
                    u.password = Some(pw.to_owned());
                    u.password_set_count = 1;
                }
                let v = self.dto(&u);
                st.users.insert(u.id.clone(), u);
                core.write("createUser");
                Reply::json(200, &v)
            }
            ("POST", ["Users"]) => {
                let Some(id) = req.query("userId").map(norm) else {
                    return Reply::json(403, &json!("User update not allowed."));
                };
                let b = body();
                if !st.users.contains_key(&id) {
                    return not_found();
                }
                let Some(name) = b.get("Name").and_then(Value::as_str).map(str::to_owned) else {
                    return error_processing();
                };
                // UserController.UpdateUser hands `Configuration` to UpdateConfigurationAsync
                // unconditionally: a DTO without it fails on the server.
                let Some(config) = b.get("Configuration").filter(|c| c.is_object()).cloned() else {
                    return Reply::text(500, "Error processing request.");
                };
                if st
                    .users
                    .values()
                    .any(|u| u.id != id && u.name.eq_ignore_ascii_case(&name))
                    || !valid_name(&name)
                {
                    return error_processing();
                }
                if let Some(u) = st.users.get_mut(&id) {
                    u.name = name;
                    let mut merged = default_configuration();
                    if let (Some(m), Some(c)) = (merged.as_object_mut(), config.as_object()) {
                        for (k, v) in c {
                            m.insert(k.clone(), v.clone());
                        }
                    }
                    u.configuration = merged;
                }
                core.write("updateUser");
                Reply::empty(204)
            }
            ("POST", ["Users", "Password"]) => {
                let Some(id) = req.query("userId").map(norm) else {
                    return Reply::json(403, &json!("User is not allowed to update the password."));
                };
                let b = body();
                let Some(u) = st.users.get_mut(&id) else {
                    return not_found();
                };
                if b.get("ResetPassword").and_then(Value::as_bool) == Some(true) {
                    u.password = None;
                } else {
                    u.password = b.get("NewPw").and_then(Value::as_str).map(str::to_owned);
                }
                u.password_set_count += 1;
                core.write("setPassword");
                Reply::empty(204)
            }
            ("POST", ["Users", id, "Policy"]) => {
                let id = norm(id);
                let b = body();
                let Some(newp) = b.as_object() else {
                    return error_processing();
                };
                let Some(user) = st.users.get(&id).cloned() else {
                    return not_found();
                };
                let new_admin = newp
                    .get("IsAdministrator")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let new_disabled = newp
                    .get("IsDisabled")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if new_admin && new_disabled {
                    return Reply::json(403, &json!("Administrators cannot be disabled."));
                }
                if user.is_admin()
                    && !new_admin
                    && st.users.values().filter(|u| u.is_admin()).count() == 1
                {
                    return Reply::json(403, &json!("There must be at least one user in the system with administrative access."));
                }
                if !user.is_disabled()
                    && new_disabled
                    && st.users.values().filter(|u| !u.is_disabled()).count() == 1
                {
                    return Reply::json(
                        403,
                        &json!("There must be at least one enabled user in the system."),
                    );
                }
                // Fields left out take the C# defaults of UserPolicy, not the stored values.
                let mut merged: Map<String, Value> =
                    default_policy().as_object().cloned().unwrap_or_default();
                for (k, v) in newp {
                    merged.insert(k.clone(), v.clone());
                }
                for k in [
                    "IsAdministrator",
                    "IsDisabled",
                    "IsHidden",
                    "EnableAllFolders",
                ] {
                    if !newp.contains_key(k) {
                        merged.insert(k.into(), json!(false));
                    }
                }
                if let Some(u) = st.users.get_mut(&id) {
                    u.policy = Value::Object(merged);
                    u.policy_set_count += 1;
                }
                core.write("updatePolicy");
                Reply::empty(204)
            }
            ("DELETE", ["Users", id]) => {
                let id = norm(id);
                let Some(user) = st.users.get(&id) else {
                    return not_found();
                };
                if user.is_admin() && st.users.values().filter(|u| u.is_admin()).count() == 1 {
                    return error_processing();
                }
                st.users.remove(&id);
                core.write("deleteUser");
                Reply::empty(204)
            }
            _ => Reply::empty(404),
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
        let users: Vec<JellyfinUser> =
            serde_json::from_value(v.get("users").cloned().unwrap_or(json!([])))
                .map_err(|e| e.to_string())?;
        let mut st = lock(&self.state);
        for u in users {
            st.users.insert(u.id.clone(), u);
        }
        Ok(())
    }
}
