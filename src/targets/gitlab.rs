//! GitLab through REST v4 with an admin's personal access token (`PRIVATE-TOKEN`).
//!
//! Managed: name, e-mail, admin, external, can_create_group, projects_limit (the last two only
//! when the spec sets them), blocked/active, password (see below), deletion. Accounts paasd
//! created or adopted carry the custom attribute `paasd_managed = true`, read back in one paged
//! list per run. With `ldapProvider` set, accounts are created with `extern_uid` + `provider`
//! so an LDAP login lands in the same account.
//!
//! Passwords: when an admin sets another user's password, GitLab expires it at once — the user
//! must change it at the next login. LDAP or SSO login (`passwordStrategy = "none"`) is the
//! better fit; without a password GitLab gets `force_random_password`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt as _;
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::accounts::{
    field_string, flag, refused, Account, AccountAction, DesiredAccount, Executed, Service,
    ServiceError, ServiceUser,
};
use crate::backoff::Backoff;
use crate::core::id::ServiceKind;
use crate::http::{Http, Response};
use crate::secret::Secret;

/// The custom attribute that marks paasd's accounts.
pub const MARKER: &str = "paasd_managed";
const PER_PAGE: usize = 100;

pub struct Gitlab {
    http: Http,
    token: Secret,
    /// `(provider, base DN of people)` for `extern_uid`.
    ldap: Option<(String, String)>,
}

impl Gitlab {
    /// `ldap_provider` + `base_dn`: new accounts get `extern_uid = uid=<id>,ou=people,<baseDn>`.
    pub fn new(
        url: &str,
        token: Secret,
        ldap_provider: Option<&str>,
        base_dn: &str,
        timeout: Duration,
    ) -> Result<Self, ServiceError> {
        Ok(Gitlab {
            http: Http::new("gitlab", url, timeout)?,
            token,
            ldap: ldap_provider.map(|p| (p.to_string(), base_dn.to_string())),
        })
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.http.set_backoff(backoff);
        self
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        secret: Option<&Secret>,
    ) -> Result<(Response, Value, u32), ServiceError> {
        let url = self.http.url(&format!("/api/v4{path}"));
        let (resp, v, attempts) = self
            .http
            .send_value(secret, |c| {
                let mut r = c
                    .request(method.clone(), &url)
                    .header("PRIVATE-TOKEN", self.token.expose())
                    .query(query);
                if let Some(b) = body {
                    r = r.json(b);
                }
                r
            })
            .await?;
        if resp.status == 401 {
            return Err(ServiceError::Refused(
                "gitlab rejected the token (tokenFile: an admin's personal access token with the api scope)".into(),
            ));
        }
        Ok((resp, v, attempts))
    }

    /// Every page of `GET /users` with `query`, following `X-Next-Page`.
    async fn list(&self, extra: &[(&str, String)]) -> Result<Vec<Value>, ServiceError> {
        let mut out = Vec::new();
        let mut page = 1u64;
        loop {
            let mut q: Vec<(&str, String)> = vec![
                ("per_page", PER_PAGE.to_string()),
                ("page", page.to_string()),
            ];
            q.extend(extra.iter().cloned());
            let (resp, v, _) = self.call(Method::GET, "/users", &q, None, None).await?;
            if !resp.ok() {
                return Err(refused(&self.http, "listing users", &resp, None));
            }
            let items = v.as_array().cloned().unwrap_or_default();
            let n = items.len();
            out.extend(items);
            match resp.header("x-next-page").map(str::trim) {
                Some("") => break,
                Some(next) => match next.parse::<u64>() {
                    Ok(p) if p > page => page = p,
                    _ => break,
                },
                // No pagination headers: go on while pages are full.
                None if n == PER_PAGE => page += 1,
                None => break,
            }
        }
        Ok(out)
    }

    async fn observe_all(&self) -> Result<Vec<Account>, ServiceError> {
        let users = self.list(&[]).await?;
        let filter = format!("custom_attributes[{MARKER}]");
        let marked: BTreeSet<u64> = self
            .list(&[(filter.as_str(), "true".to_string())])
            .await?
            .iter()
            .filter_map(|u| u.get("id").and_then(Value::as_u64))
            .collect();
        Ok(users
            .iter()
            .filter_map(|u| account_of(u, &marked))
            .collect())
    }

    async fn expect(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        secret: Option<&Secret>,
    ) -> Result<Value, ServiceError> {
        let (resp, v, _) = self.call(method, path, &[], body, secret).await?;
        if resp.ok() {
            Ok(v)
        } else {
            Err(refused(&self.http, what, &resp, secret))
        }
    }

    async fn mark(&self, id: &str) -> Result<(), ServiceError> {
        self.expect(
            &format!("marking user {id}"),
            Method::PUT,
            &format!("/users/{id}/custom_attributes/{MARKER}"),
            Some(&json!({ "value": "true" })),
            None,
        )
        .await
        .map(|_| ())
    }

    async fn create(
        &self,
        key: &str,
        fields: &BTreeMap<String, String>,
        password: Option<&Secret>,
    ) -> Result<Executed, ServiceError> {
        let mut body = Map::new();
        body.insert("username".into(), json!(key));
        body.insert(
            "name".into(),
            json!(fields.get("name").map(String::as_str).unwrap_or(key)),
        );
        let Some(email) = fields.get("email").filter(|e| !e.is_empty()) else {
            return Err(ServiceError::Refused(format!(
                "gitlab cannot create {key} without an e-mail address"
            )));
        };
        body.insert("email".into(), json!(email));
        body.insert("skip_confirmation".into(), json!(true));
        for (k, v) in fields {
            if let Some(x) = attribute(k, v) {
                if k != "name" && k != "email" {
                    body.insert(k.clone(), x);
                }
            }
        }
        match password {
            Some(p) => body.insert("password".into(), json!(p.expose())),
            None => body.insert("force_random_password".into(), json!(true)),
        };
        if let Some((provider, base_dn)) = &self.ldap {
            body.insert(
                "extern_uid".into(),
                json!(format!("uid={key},ou=people,{base_dn}")),
            );
            body.insert("provider".into(), json!(provider));
        }
        let body = Value::Object(body);
        let (resp, v, attempts) = self
            .call(Method::POST, "/users", &[], Some(&body), password)
            .await?;
        let id = if resp.ok() {
            v.get("id").and_then(Value::as_u64).ok_or_else(|| {
                ServiceError::Refused(format!("gitlab created {key} but named no id"))
            })?
        } else if resp.status == 409 && attempts > 1 {
            // An earlier attempt created it before its answer was lost.
            self.find_username(key)
                .await?
                .ok_or_else(|| refused(&self.http, &format!("creating {key}"), &resp, password))?
        } else {
            return Err(refused(
                &self.http,
                &format!("creating {key}"),
                &resp,
                password,
            ));
        };
        let id = id.to_string();
        self.mark(&id).await?;
        Ok(Executed {
            remote_id: Some(id),
        })
    }

    async fn find_username(&self, username: &str) -> Result<Option<u64>, ServiceError> {
        let (resp, v, _) = self
            .call(
                Method::GET,
                "/users",
                &[("username", username.to_string())],
                None,
                None,
            )
            .await?;
        if !resp.ok() {
            return Err(refused(&self.http, "looking up a user", &resp, None));
        }
        Ok(v.as_array()
            .and_then(|a| a.first())
            .and_then(|u| u.get("id"))
            .and_then(Value::as_u64))
    }

    async fn post_state(&self, id: &str, verb: &str) -> Result<Response, ServiceError> {
        let (resp, _, _) = self
            .call(
                Method::POST,
                &format!("/users/{id}/{verb}"),
                &[],
                None,
                None,
            )
            .await?;
        Ok(resp)
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
                with_password,
                ..
            } => {
                let pw = if *with_password { password } else { None };
                let r = self.create(key, fields, pw).await?;
                if !enabled {
                    if let Some(id) = &r.remote_id {
                        let resp = self.post_state(id, "block").await?;
                        if !resp.ok() {
                            return Err(refused(
                                &self.http,
                                &format!("blocking {key}"),
                                &resp,
                                None,
                            ));
                        }
                    }
                }
                Ok(r)
            }
            AccountAction::Update {
                remote_id, fields, ..
            } => {
                let mut body = Map::new();
                for (k, v) in fields {
                    let x = attribute(k, v).ok_or_else(|| {
                        ServiceError::Refused(format!("gitlab: field {k} = {v:?} is not managed"))
                    })?;
                    body.insert(k.clone(), x);
                }
                if body.contains_key("email") {
                    body.insert("skip_reconfirmation".into(), json!(true));
                }
                self.expect(
                    &format!("updating user {remote_id}"),
                    Method::PUT,
                    &format!("/users/{remote_id}"),
                    Some(&Value::Object(body)),
                    None,
                )
                .await?;
                done
            }
            AccountAction::SetPassword { remote_id, .. } => {
                let Some(pw) = password else {
                    return Err(ServiceError::Refused(format!(
                        "gitlab: no password to set for user {remote_id}"
                    )));
                };
                self.expect(
                    &format!("setting the password of user {remote_id}"),
                    Method::PUT,
                    &format!("/users/{remote_id}"),
                    Some(&json!({ "password": pw.expose() })),
                    Some(pw),
                )
                .await?;
                done
            }
            AccountAction::Disable { remote_id, .. } => {
                let resp = self.post_state(remote_id, "block").await?;
                if resp.ok() {
                    done
                } else {
                    Err(refused(
                        &self.http,
                        &format!("blocking user {remote_id}"),
                        &resp,
                        None,
                    ))
                }
            }
            AccountAction::Enable { remote_id, .. } => {
                let resp = self.post_state(remote_id, "unblock").await?;
                if resp.ok() {
                    return done;
                }
                // A deactivated (not blocked) user is activated instead.
                if resp.status == 403 && resp.body.to_ascii_lowercase().contains("deactivated") {
                    let r2 = self.post_state(remote_id, "activate").await?;
                    if r2.ok() {
                        return done;
                    }
                    return Err(refused(
                        &self.http,
                        &format!("activating user {remote_id}"),
                        &r2,
                        None,
                    ));
                }
                Err(refused(
                    &self.http,
                    &format!("unblocking user {remote_id}"),
                    &resp,
                    None,
                ))
            }
            AccountAction::Mark { remote_id, .. } => {
                self.mark(remote_id).await?;
                done
            }
            AccountAction::Delete { remote_id, .. } => {
                let (resp, _, _) = self
                    .call(
                        Method::DELETE,
                        &format!("/users/{remote_id}"),
                        &[],
                        None,
                        None,
                    )
                    .await?;
                // 204 (deletion runs in the background); 404: already gone.
                if resp.ok() || resp.status == 404 {
                    done
                } else {
                    Err(refused(
                        &self.http,
                        &format!("deleting user {remote_id}"),
                        &resp,
                        None,
                    ))
                }
            }
            AccountAction::AddToGroup { group, .. }
            | AccountAction::RemoveFromGroup { group, .. } => Err(ServiceError::Refused(format!(
                "gitlab: group memberships are not managed (group {group})"
            ))),
            AccountAction::MarkRemoved { .. } => done,
        }
    }

    async fn check_health(&self) -> Result<(), ServiceError> {
        let url = self.http.url("/-/readiness");
        let resp = self.http.probe(|c| c.get(&url)).await?;
        if resp.ok() {
            return Ok(());
        }
        // Readiness answers only clients on GitLab's monitoring allow-list (else 404): fall back
        // to the version endpoint, which also checks the token.
        if matches!(resp.status, 403 | 404) {
            let (resp, _, _) = self.call(Method::GET, "/version", &[], None, None).await?;
            if resp.ok() {
                return Ok(());
            }
            return Err(ServiceError::Transient(format!(
                "gitlab is not ready: /api/v4/version answered HTTP {}",
                resp.status
            )));
        }
        Err(ServiceError::Transient(format!(
            "gitlab is not ready: /-/readiness answered HTTP {}",
            resp.status
        )))
    }
}

/// A field as GitLab's API takes it.
fn attribute(field: &str, value: &str) -> Option<Value> {
    match field {
        "name" | "email" => Some(json!(value)),
        "admin" | "external" | "can_create_group" => match value {
            "true" => Some(json!(true)),
            "false" => Some(json!(false)),
            _ => None,
        },
        "projects_limit" => value.parse::<u64>().ok().map(|n| json!(n)),
        _ => None,
    }
}

/// One user of `GET /users` (admin view), normalised; bots are not accounts of people.
fn account_of(u: &Value, marked: &BTreeSet<u64>) -> Option<Account> {
    let id = u.get("id").and_then(Value::as_u64)?;
    let username = u.get("username").and_then(Value::as_str)?;
    if u.get("bot").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let mut fields = BTreeMap::new();
    for (field, key) in [
        ("name", "name"),
        ("email", "email"),
        ("admin", "is_admin"),
        ("external", "external"),
        ("can_create_group", "can_create_group"),
        ("projects_limit", "projects_limit"),
    ] {
        if let Some(v) = u.get(key).and_then(field_string) {
            let v = if field == "email" {
                v.trim().to_ascii_lowercase()
            } else {
                v
            };
            fields.insert(field.to_string(), v);
        }
    }
    let state = u.get("state").and_then(Value::as_str).unwrap_or("active");
    Some(Account {
        remote_id: id.to_string(),
        key: username.to_string(),
        enabled: state == "active",
        fields,
        groups: BTreeSet::new(),
        marked: marked.contains(&id),
    })
}

/// GitLab's `name` for a user: the display name, else first and last name.
fn display_name(user: &ServiceUser) -> Option<String> {
    if let Some(d) = user
        .display_name
        .as_deref()
        .filter(|d| !d.trim().is_empty())
    {
        return Some(d.to_string());
    }
    let parts: Vec<&str> = [user.first_name.as_deref(), user.last_name.as_deref()]
        .into_iter()
        .flatten()
        .filter(|s| !s.trim().is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

impl Service for Gitlab {
    fn kind(&self) -> ServiceKind {
        ServiceKind::Gitlab
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
        let s = &user.settings.gitlab;
        let mut fields = BTreeMap::new();
        if let Some(n) = display_name(user) {
            fields.insert("name".to_string(), n);
        }
        if !user.email.is_empty() {
            fields.insert("email".to_string(), user.email.trim().to_ascii_lowercase());
        }
        fields.insert("admin".to_string(), flag(s.admin));
        fields.insert("external".to_string(), flag(s.external));
        if let Some(c) = s.can_create_group {
            fields.insert("can_create_group".to_string(), flag(c));
        }
        if let Some(p) = s.projects_limit {
            fields.insert("projects_limit".to_string(), p.to_string());
        }
        DesiredAccount::of(user, fields)
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
    fn admin_entities_become_accounts() {
        let u = json!({
            "id": 7, "username": "alice", "name": "Alice", "email": "Alice@X.Y", "state": "blocked",
            "is_admin": true, "external": false, "can_create_group": true, "projects_limit": 100
        });
        let a = account_of(&u, &BTreeSet::from([7])).expect("account");
        assert_eq!(a.remote_id, "7");
        assert_eq!(a.key, "alice");
        assert!(!a.enabled && a.marked);
        assert_eq!(a.fields["email"], "alice@x.y");
        assert_eq!(a.fields["admin"], "true");
        assert_eq!(a.fields["projects_limit"], "100");
        assert!(account_of(
            &json!({"id": 8, "username": "bot", "bot": true}),
            &BTreeSet::new()
        )
        .is_none());
    }

    #[test]
    fn desired_fields_only_what_the_spec_sets() {
        let g = Gitlab::new(
            "http://g",
            Secret::new("t"),
            None,
            "dc=x",
            Duration::from_secs(1),
        )
        .expect("client");
        let mut u = ServiceUser {
            id: "bob".into(),
            email: "Bob@X.Y".into(),
            first_name: Some("Bob".into()),
            last_name: Some("B".into()),
            enabled: true,
            ..ServiceUser::default()
        };
        let d = g.desired(&u);
        assert_eq!(d.fields["name"], "Bob B");
        assert_eq!(d.fields["email"], "bob@x.y");
        assert_eq!(d.fields["admin"], "false");
        assert!(!d.fields.contains_key("projects_limit"));
        u.settings.gitlab.projects_limit = Some(5);
        u.settings.gitlab.can_create_group = Some(false);
        let d = g.desired(&u);
        assert_eq!(d.fields["projects_limit"], "5");
        assert_eq!(d.fields["can_create_group"], "false");
        assert_eq!(attribute("projects_limit", "5"), Some(json!(5)));
        assert_eq!(attribute("admin", "true"), Some(json!(true)));
        assert_eq!(attribute("admin", "maybe"), None);
    }
}
