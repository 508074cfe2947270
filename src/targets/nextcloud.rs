//! Nextcloud through the OCS provisioning API (v2, JSON): HTTP Basic auth as the admin (an app
//! password works too), `OCS-APIRequest: true` and `Accept: application/json` on every call.
//!
//! Managed: display name, e-mail, quota, group memberships (groups are created when missing),
//! admin (= membership of group `admin`), enabled, password. Nextcloud has no place for a marker:
//! ownership lives in paasd's state only, so `Mark` does nothing.
//!
//! Quota: Nextcloud stores a quota as a rounded human-readable size ("1.6 GB") and reports it
//! in bytes (or `none`); both sides are compared as the byte count Nextcloud ends up with, so a
//! spec value like "1.55 GB" is compared after the same rounding Nextcloud applies. `"default"`
//! is not managed (Nextcloud reports the resolved default, not the word).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt as _;
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::accounts::{
    Account, AccountAction, DesiredAccount, Executed, Service, ServiceError, ServiceUser,
};
use crate::backoff::Backoff;
use crate::core::id::ServiceKind;
use crate::http::{seg, snippet, Http};
use crate::secret::Secret;

const OCS: &str = "/ocs/v2.php";
/// Users per page of `cloud/users/details`.
const PAGE: usize = 500;

pub struct Nextcloud {
    http: Http,
    user: String,
    password: Secret,
    /// Groups whose membership paasd decides for every account (besides `admin` and each
    /// user's own groups): the groups any spec user lists for Nextcloud.
    managed: BTreeSet<String>,
}

/// One OCS answer.
#[derive(Debug)]
struct Ocs {
    status: u16,
    code: u64,
    message: String,
    data: Value,
    attempts: u32,
}

impl Ocs {
    fn ok(&self) -> bool {
        self.code == 100 || self.code == 200
    }
}

impl Nextcloud {
    pub fn new(
        url: &str,
        admin_user: &str,
        password: Secret,
        timeout: Duration,
    ) -> Result<Self, ServiceError> {
        Ok(Nextcloud {
            http: Http::new("nextcloud", url, timeout)?,
            user: admin_user.to_string(),
            password,
            managed: BTreeSet::new(),
        })
    }

    /// Groups whose membership paasd manages for every account: a user removed from one of
    /// them in the spec is removed from it in Nextcloud. The registry passes every group any
    /// spec user lists under `nextcloud.groups`.
    pub fn with_managed_groups(mut self, groups: impl IntoIterator<Item = String>) -> Self {
        self.managed.extend(groups);
        self
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.http.set_backoff(backoff);
        self
    }

    async fn ocs(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        secret: Option<&Secret>,
    ) -> Result<Ocs, ServiceError> {
        let url = self.http.url(&format!("{OCS}{path}"));
        let (resp, v, attempts) = self
            .http
            .send_value(secret, |c| {
                let mut r = c
                    .request(method.clone(), &url)
                    .basic_auth(&self.user, Some(self.password.expose()))
                    .header("OCS-APIRequest", "true")
                    .header("Accept", "application/json")
                    .query(query);
                if let Some(b) = body {
                    r = r.json(b);
                }
                r
            })
            .await?;
        let Some(meta) = v.pointer("/ocs/meta") else {
            return Err(if resp.status == 401 || resp.status == 403 {
                self.login_refused(&snippet(&resp.body, secret))
            } else {
                ServiceError::Refused(format!(
                    "nextcloud: {method} {path}: not an OCS answer (HTTP {}): {}",
                    resp.status,
                    resp.describe(secret)
                ))
            });
        };
        let code = meta.get("statuscode").and_then(Value::as_u64).unwrap_or(0);
        let message = meta
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let o = Ocs {
            status: resp.status,
            code,
            message: snippet(&message, secret),
            data: v.pointer("/ocs/data").cloned().unwrap_or(Value::Null),
            attempts,
        };
        if o.status == 401 || o.code == 997 {
            return Err(self.login_refused(&o.message));
        }
        Ok(o)
    }

    fn login_refused(&self, message: &str) -> ServiceError {
        ServiceError::Refused(format!(
            "nextcloud refused the login of {} (check adminUser and adminPasswordFile){}",
            self.user,
            if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            }
        ))
    }

    fn fail(what: &str, o: &Ocs) -> ServiceError {
        ServiceError::Refused(format!(
            "nextcloud refused {what}: OCS {} (HTTP {}){}",
            o.code,
            o.status,
            if o.message.is_empty() {
                String::new()
            } else {
                format!(": {}", o.message)
            }
        ))
    }

    async fn expect_ok(
        &self,
        what: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(), ServiceError> {
        let o = self.ocs(method, path, query, body, None).await?;
        if o.ok() {
            Ok(())
        } else {
            Err(Self::fail(what, &o))
        }
    }

    /// Creates a group; an existing one is fine.
    async fn ensure_group(&self, group: &str) -> Result<(), ServiceError> {
        let o = self
            .ocs(
                Method::POST,
                "/cloud/groups",
                &[],
                Some(&json!({ "groupid": group })),
                None,
            )
            .await?;
        if o.ok() {
            tracing::info!(service = "nextcloud", group, "created group");
            Ok(())
        } else if o.code == 102 {
            Ok(())
        } else {
            Err(Self::fail(&format!("creating group {group}"), &o))
        }
    }

    async fn observe_all(&self) -> Result<Vec<Account>, ServiceError> {
        let mut out: Vec<Account> = Vec::new();
        let mut seen = BTreeSet::new();
        let mut offset = 0usize;
        loop {
            let o = self
                .ocs(
                    Method::GET,
                    "/cloud/users/details",
                    &[("limit", PAGE.to_string()), ("offset", offset.to_string())],
                    None,
                    None,
                )
                .await?;
            if !o.ok() {
                return Err(Self::fail("listing users", &o));
            }
            // PHP renders an empty map as `[]`, and a map of numeric ids may become a list.
            let entries: Vec<(String, Value)> = match o.data.get("users") {
                Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| {
                        let id = v.get("id").and_then(Value::as_str)?;
                        Some((id.to_string(), v.clone()))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let n = entries.len();
            for (uid, d) in entries {
                if seen.insert(uid.clone()) {
                    out.push(account_of(&uid, &d));
                }
            }
            if n < PAGE {
                break;
            }
            offset += n;
        }
        Ok(out)
    }

    async fn create(
        &self,
        key: &str,
        enabled: bool,
        fields: &BTreeMap<String, String>,
        groups: &BTreeSet<String>,
        password: Option<&Secret>,
    ) -> Result<Executed, ServiceError> {
        let mut body = Map::new();
        body.insert("userid".into(), json!(key));
        if let Some(d) = fields.get("displayname") {
            body.insert("displayName".into(), json!(d));
        }
        let email = fields.get("email").filter(|e| !e.is_empty());
        if let Some(e) = email {
            body.insert("email".into(), json!(e));
        }
        if let Some(q) = fields.get("quota") {
            body.insert("quota".into(), json!(q));
        }
        if !groups.is_empty() {
            body.insert("groups".into(), json!(groups.iter().collect::<Vec<_>>()));
        }
        match password {
            Some(p) => {
                body.insert("password".into(), json!(p.expose()));
            }
            None if email.is_none() => {
                return Err(ServiceError::Refused(format!(
                    "nextcloud cannot create {key}: it needs a password (set a password strategy) or an e-mail address for the welcome mail"
                )))
            }
            None => {}
        }
        let body = Value::Object(body);
        let mut created_groups = false;
        let o = loop {
            let o = self
                .ocs(Method::POST, "/cloud/users", &[], Some(&body), password)
                .await?;
            // 104: a group does not exist — create the groups and try once more.
            if o.code == 104 && !created_groups {
                for g in groups {
                    self.ensure_group(g).await?;
                }
                created_groups = true;
                continue;
            }
            break o;
        };
        let id = if o.ok() {
            o.data
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or(key)
                .to_string()
        } else if o.code == 102 && o.attempts > 1 {
            // An earlier attempt created it before its answer was lost.
            key.to_string()
        } else if o.code == 109 {
            // The account exists; only the welcome mail failed.
            tracing::warn!(
                service = "nextcloud",
                user = key,
                "created, but Nextcloud could not send the welcome mail"
            );
            key.to_string()
        } else {
            return Err(Self::fail(&format!("creating {key}"), &o));
        };
        if !enabled {
            self.expect_ok(
                &format!("disabling {id}"),
                Method::PUT,
                &format!("/cloud/users/{}/disable", seg(&id)),
                &[],
                None,
            )
            .await?;
        }
        Ok(Executed {
            remote_id: Some(id),
        })
    }

    async fn run(
        &self,
        action: &AccountAction,
        password: Option<&Secret>,
    ) -> Result<Executed, ServiceError> {
        let done = Ok(Executed::default());
        match action {
            AccountAction::Create {
                key,
                enabled,
                fields,
                groups,
                with_password,
                ..
            } => {
                let pw = if *with_password { password } else { None };
                self.create(key, *enabled, fields, groups, pw).await
            }
            AccountAction::Update {
                remote_id, fields, ..
            } => {
                for (k, v) in fields {
                    let key = match k.as_str() {
                        "displayname" | "email" | "quota" => k.as_str(),
                        other => {
                            return Err(ServiceError::Refused(format!(
                                "nextcloud: field {other} is not managed"
                            )))
                        }
                    };
                    self.expect_ok(
                        &format!("setting {key} of {remote_id}"),
                        Method::PUT,
                        &format!("/cloud/users/{}", seg(remote_id)),
                        &[],
                        Some(&json!({ "key": key, "value": v })),
                    )
                    .await?;
                }
                done
            }
            AccountAction::AddToGroup {
                remote_id, group, ..
            } => {
                let path = format!("/cloud/users/{}/groups", seg(remote_id));
                let body = json!({ "groupid": group });
                let mut o = self
                    .ocs(Method::POST, &path, &[], Some(&body), None)
                    .await?;
                if o.code == 102 {
                    // The group does not exist yet.
                    self.ensure_group(group).await?;
                    o = self
                        .ocs(Method::POST, &path, &[], Some(&body), None)
                        .await?;
                }
                if o.ok() {
                    done
                } else {
                    Err(Self::fail(&format!("adding {remote_id} to {group}"), &o))
                }
            }
            AccountAction::RemoveFromGroup {
                remote_id, group, ..
            } => {
                let o = self
                    .ocs(
                        Method::DELETE,
                        &format!("/cloud/users/{}/groups", seg(remote_id)),
                        &[("groupid", group.clone())],
                        None,
                        None,
                    )
                    .await?;
                // 102: the group is gone, so is the membership.
                if o.ok() || o.code == 102 {
                    done
                } else {
                    Err(Self::fail(
                        &format!("removing {remote_id} from {group}"),
                        &o,
                    ))
                }
            }
            AccountAction::SetPassword { remote_id, .. } => {
                let Some(pw) = password else {
                    return Err(ServiceError::Refused(format!(
                        "nextcloud: no password to set for {remote_id}"
                    )));
                };
                let o = self
                    .ocs(
                        Method::PUT,
                        &format!("/cloud/users/{}", seg(remote_id)),
                        &[],
                        Some(&json!({ "key": "password", "value": pw.expose() })),
                        Some(pw),
                    )
                    .await?;
                if o.ok() {
                    done
                } else {
                    Err(Self::fail(
                        &format!("setting the password of {remote_id}"),
                        &o,
                    ))
                }
            }
            AccountAction::Disable { remote_id, .. } | AccountAction::Enable { remote_id, .. } => {
                let verb = if matches!(action, AccountAction::Disable { .. }) {
                    "disable"
                } else {
                    "enable"
                };
                self.expect_ok(
                    &format!("{verb} of {remote_id}"),
                    Method::PUT,
                    &format!("/cloud/users/{}/{verb}", seg(remote_id)),
                    &[],
                    None,
                )
                .await?;
                done
            }
            AccountAction::Delete { remote_id, .. } => {
                let path = format!("/cloud/users/{}", seg(remote_id));
                let o = self.ocs(Method::DELETE, &path, &[], None, None).await?;
                if o.ok() {
                    return done;
                }
                // Nextcloud answers 101 (HTTP 400) for an unknown user: look before failing.
                let g = self.ocs(Method::GET, &path, &[], None, None).await?;
                if g.status == 404 || g.code == 404 || g.code == 998 {
                    done
                } else {
                    Err(Self::fail(&format!("deleting {remote_id}"), &o))
                }
            }
            // No marker in Nextcloud; removal timestamps live in paasd's state.
            AccountAction::Mark { .. } | AccountAction::MarkRemoved { .. } => done,
        }
    }

    async fn check_health(&self) -> Result<(), ServiceError> {
        let url = self.http.url("/status.php");
        let resp = self
            .http
            .probe(|c| c.get(&url).header("Accept", "application/json"))
            .await?;
        if !resp.ok() {
            return Err(ServiceError::Transient(format!(
                "nextcloud status.php answered HTTP {}: {}",
                resp.status,
                snippet(&resp.body, None)
            )));
        }
        let v: Value = resp.json().map_err(|e| {
            ServiceError::Transient(format!("nextcloud: unreadable status.php: {e}"))
        })?;
        let flag = |k: &str| v.get(k).and_then(Value::as_bool);
        if flag("installed") != Some(true) {
            return Err(ServiceError::Transient(
                "nextcloud is not installed yet (status.php)".into(),
            ));
        }
        if flag("maintenance") == Some(true) {
            return Err(ServiceError::Transient(
                "nextcloud is in maintenance mode".into(),
            ));
        }
        if flag("needsDbUpgrade") == Some(true) {
            return Err(ServiceError::Transient(
                "nextcloud needs a database upgrade (occ upgrade)".into(),
            ));
        }
        Ok(())
    }
}

/// One entry of `cloud/users/details`, normalised.
fn account_of(uid: &str, d: &Value) -> Account {
    let id = d
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or(uid)
        .to_string();
    let mut fields = BTreeMap::new();
    if let Some(n) = d
        .get("displayname")
        .or_else(|| d.get("display-name"))
        .and_then(Value::as_str)
    {
        fields.insert("displayname".to_string(), n.to_string());
    }
    if let Some(e) = d.get("email").and_then(Value::as_str) {
        fields.insert("email".to_string(), e.trim().to_ascii_lowercase());
    }
    if let Some(q) = d
        .get("quota")
        .and_then(|q| q.get("quota"))
        .and_then(observed_quota)
    {
        fields.insert("quota".to_string(), q);
    }
    let groups = d
        .get("groups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Account {
        remote_id: id.clone(),
        key: id,
        enabled: d.get("enabled").and_then(Value::as_bool).unwrap_or(true),
        fields,
        groups,
        marked: false,
    }
}

/// `\OC_Helper::computerFileSize`: "5 GB", "5gb", "1.5 M", "1024" → bytes (1024-based, rounded).
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
    (v.is_finite() && v >= 0.0 && v < u64::MAX as f64).then_some(v as u64)
}

/// `\OC_Helper::humanFileSize`, which is how Nextcloud stores a quota: B exact, KB rounded to
/// an integer, MB and up to one decimal.
pub fn human_file_size(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = (bytes as f64 / 1024.0).round();
    if v < 1024.0 {
        return format!("{v} KB");
    }
    for unit in ["MB", "GB", "TB"] {
        v = (v / 1024.0 * 10.0).round() / 10.0;
        if v < 1024.0 {
            return format!("{v} {unit}");
        }
    }
    v = (v / 1024.0 * 10.0).round() / 10.0;
    format!("{v} PB")
}

/// A spec quota as Nextcloud will report it: `none`, or the byte count after Nextcloud's
/// rounding. `default` (and anything unparsable) is not managed.
pub fn desired_quota(q: &str) -> Option<String> {
    let q = q.trim();
    if q.eq_ignore_ascii_case("none") {
        return Some("none".into());
    }
    if q.eq_ignore_ascii_case("default") {
        return None;
    }
    let bytes = computer_file_size(q)?;
    computer_file_size(&human_file_size(bytes)).map(|b| b.to_string())
}

/// The `quota.quota` of a user's details: bytes (negative = unlimited) or a string (`none`, or a
/// size for users whose storage is not set up yet).
pub fn observed_quota(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => {
            let f = n.as_f64()?;
            Some(if f < 0.0 {
                "none".into()
            } else {
                format!("{}", f.round() as u64)
            })
        }
        Value::String(s) if s.eq_ignore_ascii_case("none") => Some("none".into()),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(f) if f < 0.0 => Some("none".into()),
            _ => computer_file_size(s).map(|b| b.to_string()),
        },
        _ => None,
    }
}

impl Service for Nextcloud {
    fn kind(&self) -> ServiceKind {
        ServiceKind::Nextcloud
    }

    fn requests(&self) -> u64 {
        self.http.requests()
    }

    fn health(&self) -> BoxFuture<'_, Result<(), ServiceError>> {
        self.check_health().boxed()
    }

    fn observe(&self) -> BoxFuture<'_, Result<Vec<Account>, ServiceError>> {
        self.observe_all().boxed()
    }

    fn desired(&self, user: &ServiceUser) -> DesiredAccount {
        let s = &user.settings.nextcloud;
        let mut fields = BTreeMap::new();
        if let Some(d) = user.display_name.as_deref().filter(|d| !d.is_empty()) {
            fields.insert("displayname".to_string(), d.to_string());
        }
        if !user.email.is_empty() {
            fields.insert("email".to_string(), user.email.trim().to_ascii_lowercase());
        }
        if let Some(q) = s.quota.as_deref().and_then(desired_quota) {
            fields.insert("quota".to_string(), q);
        }
        let mut groups: BTreeSet<String> = s.groups.iter().cloned().collect();
        if s.admin {
            groups.insert("admin".to_string());
        }
        let mut managed_groups: BTreeSet<String> = s.groups.iter().cloned().collect();
        managed_groups.extend(self.managed.iter().cloned());
        managed_groups.insert("admin".to_string());
        DesiredAccount {
            groups,
            managed_groups,
            ..DesiredAccount::of(user, fields)
        }
    }

    fn execute<'a>(
        &'a self,
        action: &'a AccountAction,
        password: Option<&'a Secret>,
    ) -> BoxFuture<'a, Result<Executed, ServiceError>> {
        self.run(action, password).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_sizes_follow_nextcloud() {
        assert_eq!(computer_file_size("5 GB"), Some(5 << 30));
        assert_eq!(computer_file_size("5gb"), Some(5 << 30));
        assert_eq!(computer_file_size("1.5 M"), Some(1_572_864));
        assert_eq!(computer_file_size("1024"), Some(1024));
        assert_eq!(computer_file_size("ten"), None);
        assert_eq!(human_file_size(512), "512 B");
        assert_eq!(human_file_size(10 << 30), "10 GB");
        assert_eq!(human_file_size(1_572_864), "1.5 MB");
        assert_eq!(human_file_size(3000), "3 KB");
    }

    #[test]
    fn spec_and_observed_quotas_compare_equal() {
        // "10 GB" in the spec, 10737418240 bytes in the details.
        assert_eq!(
            desired_quota("10 GB"),
            observed_quota(&json!(10_737_418_240u64))
        );
        assert_eq!(desired_quota("10737418240"), desired_quota("10 GB"));
        assert_eq!(desired_quota("10 gb"), desired_quota("10GB"));
        // Nextcloud rounds "1.55 GB" to "1.6 GB" when it stores it.
        assert_eq!(
            desired_quota("1.55 GB"),
            Some(computer_file_size("1.6 GB").unwrap().to_string())
        );
        assert_eq!(desired_quota("none"), Some("none".into()));
        assert_eq!(observed_quota(&json!(-3)), Some("none".into()));
        assert_eq!(observed_quota(&json!("none")), Some("none".into()));
        // Users that never logged in: the stored string.
        assert_eq!(observed_quota(&json!("10 GB")), desired_quota("10 GB"));
        assert_eq!(desired_quota("default"), None);
    }

    #[test]
    fn details_become_accounts() {
        let d = json!({
            "id": "alice", "enabled": false, "displayname": "Alice A", "email": "Alice@X.Y",
            "quota": {"quota": 5_368_709_120u64, "used": 0}, "groups": ["admin", "family"]
        });
        let a = account_of("alice", &d);
        assert_eq!(a.remote_id, "alice");
        assert!(!a.enabled);
        assert_eq!(a.fields["email"], "alice@x.y");
        assert_eq!(a.fields["quota"], desired_quota("5 GB").unwrap());
        assert_eq!(a.fields["displayname"], "Alice A");
        assert!(a.groups.contains("family"));
        // An entry Nextcloud could not fill: only the id.
        let b = account_of("bob", &json!({"id": "bob"}));
        assert!(b.enabled && b.fields.is_empty());
    }

    #[test]
    fn desired_accounts() {
        let nc = Nextcloud::new(
            "http://n",
            "admin",
            Secret::new("x"),
            Duration::from_secs(1),
        )
        .expect("client");
        let mut u = ServiceUser {
            id: "alice".into(),
            email: "Alice@X.Y".into(),
            display_name: Some("Alice".into()),
            enabled: true,
            ..ServiceUser::default()
        };
        u.settings.nextcloud.quota = Some("10 GB".into());
        u.settings.nextcloud.groups = vec!["family".into()];
        let d = nc.desired(&u);
        assert_eq!(d.key, "alice");
        assert_eq!(d.fields["email"], "alice@x.y");
        assert_eq!(d.fields["quota"], "10737418240");
        assert_eq!(d.groups, BTreeSet::from(["family".to_string()]));
        assert_eq!(
            d.managed_groups,
            BTreeSet::from(["admin".to_string(), "family".to_string()])
        );
        u.settings.nextcloud.admin = true;
        u.settings.nextcloud.quota = Some("default".into());
        let d = nc.desired(&u);
        assert!(d.groups.contains("admin"));
        assert!(!d.fields.contains_key("quota"));
    }
}
