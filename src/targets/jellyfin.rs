//! Jellyfin through its REST API with an API key (`Authorization: MediaBrowser Token="…"`; the
//! legacy `X-Emby-Token` header is off by default in current servers and is not used).
//!
//! Managed: the account (name = paasd user id), password, and the policy flags admin
//! (`IsAdministrator`), library access (`EnableAllFolders`) and disabled (`IsDisabled`).
//! Jellyfin has no e-mail or display name and no place for a marker (`Mark` does nothing).
//!
//! Policy changes read the user, change the flags in the full policy and post it back (the API
//! takes only the whole object). Jellyfin refuses to disable an administrator, so a disabled
//! user is not an administrator: disabling drops the flag first, and the desired account of a
//! disabled user says `admin = false`.
//!
//! An account created without a password source gets a random password nobody knows (Jellyfin
//! would otherwise accept an empty password).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt as _;
use reqwest::Method;
use serde_json::{json, Value};

use super::accounts::{
    flag, refused, Account, AccountAction, DesiredAccount, Executed, Service, ServiceError,
    ServiceUser,
};
use crate::backoff::Backoff;
use crate::core::id::ServiceKind;
use crate::http::{seg, Http, Response};
use crate::secret::{generate_password, Secret};

pub struct Jellyfin {
    http: Http,
    key: Secret,
}

/// Field name → policy property.
const POLICY_FIELDS: [(&str, &str); 2] = [
    ("admin", "IsAdministrator"),
    ("enableAllFolders", "EnableAllFolders"),
];

impl Jellyfin {
    pub fn new(url: &str, api_key: Secret, timeout: Duration) -> Result<Self, ServiceError> {
        Ok(Jellyfin {
            http: Http::new("jellyfin", url, timeout)?,
            key: api_key,
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
        let url = self.http.url(path);
        let auth = format!("MediaBrowser Token=\"{}\"", self.key.expose());
        let (resp, v, attempts) = self
            .http
            .send_value(secret, |c| {
                let mut r = c
                    .request(method.clone(), &url)
                    .header("Authorization", &auth)
                    .header("Accept", "application/json")
                    .query(query);
                if let Some(b) = body {
                    r = r.json(b);
                }
                r
            })
            .await?;
        if resp.status == 401 {
            return Err(ServiceError::Refused(
                "jellyfin rejected the API key (apiKeyFile)".into(),
            ));
        }
        Ok((resp, v, attempts))
    }

    async fn expect(
        &self,
        what: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        secret: Option<&Secret>,
    ) -> Result<Value, ServiceError> {
        let (resp, v, _) = self.call(method, path, query, body, secret).await?;
        if resp.ok() {
            Ok(v)
        } else {
            Err(refused(&self.http, what, &resp, secret))
        }
    }

    async fn users(&self) -> Result<Vec<Value>, ServiceError> {
        let v = self
            .expect("listing users", Method::GET, "/Users", &[], None, None)
            .await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    async fn policy_of(&self, id: &str) -> Result<Value, ServiceError> {
        let u = self
            .expect(
                &format!("reading user {id}"),
                Method::GET,
                &format!("/Users/{}", seg(id)),
                &[],
                None,
                None,
            )
            .await?;
        match u.get("Policy") {
            Some(p @ Value::Object(_)) => Ok(p.clone()),
            _ => Err(ServiceError::Refused(format!(
                "jellyfin: user {id} has no policy in its answer"
            ))),
        }
    }

    async fn post_policy(&self, id: &str, policy: &Value) -> Result<(), ServiceError> {
        self.expect(
            &format!("updating the policy of user {id}"),
            Method::POST,
            &format!("/Users/{}/Policy", seg(id)),
            &[],
            Some(policy),
            None,
        )
        .await
        .map(|_| ())
    }

    /// Sets the policy flags in `changes` (property → value), with one read and as few writes
    /// as Jellyfin allows: an administrator is demoted before it is disabled.
    async fn change_policy(
        &self,
        id: &str,
        mut policy: Value,
        changes: &[(&str, bool)],
    ) -> Result<(), ServiceError> {
        let get = |p: &Value, k: &str| p.get(k).and_then(Value::as_bool).unwrap_or(false);
        let disabling =
            changes.iter().any(|(k, v)| *k == "IsDisabled" && *v) && !get(&policy, "IsDisabled");
        if disabling && get(&policy, "IsAdministrator") {
            policy["IsAdministrator"] = json!(false);
            self.post_policy(id, &policy).await?;
        }
        let mut changed = false;
        // Only an enabled user is desired as an administrator (see `desired`), and Jellyfin
        // refuses a disabled administrator: promoting enables in the same write (the Enable
        // that follows in the plan then finds nothing to do).
        let promoting = changes.iter().any(|(k, v)| *k == "IsAdministrator" && *v);
        if promoting && !disabling && get(&policy, "IsDisabled") {
            policy["IsDisabled"] = json!(false);
            changed = true;
        }
        for (k, v) in changes {
            if disabling && *k == "IsAdministrator" && *v {
                continue;
            }
            if policy.get(*k).and_then(Value::as_bool) != Some(*v) {
                policy[*k] = json!(v);
                changed = true;
            }
        }
        if changed {
            self.post_policy(id, &policy).await?;
        }
        Ok(())
    }

    async fn create(
        &self,
        key: &str,
        enabled: bool,
        fields: &BTreeMap<String, String>,
        password: Option<&Secret>,
    ) -> Result<Executed, ServiceError> {
        let random;
        let pw = match password {
            Some(p) => p,
            None => {
                random = generate_password().map_err(|e| {
                    ServiceError::Refused(format!("jellyfin: cannot draw a password: {e}"))
                })?;
                &random
            }
        };
        let body = json!({ "Name": key, "Password": pw.expose() });
        let (resp, v, attempts) = self
            .call(Method::POST, "/Users/New", &[], Some(&body), Some(pw))
            .await?;
        let user = if resp.ok() {
            v
        } else if resp.status == 400 && attempts > 1 {
            // Jellyfin's answer to a duplicate name is a bare 400; after a lost answer, look.
            self.users()
                .await?
                .into_iter()
                .find(|u| {
                    u.get("Name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.eq_ignore_ascii_case(key))
                })
                .ok_or_else(|| refused(&self.http, &format!("creating {key}"), &resp, Some(pw)))?
        } else {
            return Err(refused(
                &self.http,
                &format!("creating {key}"),
                &resp,
                Some(pw),
            ));
        };
        let id = user
            .get("Id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ServiceError::Refused(format!("jellyfin created {key} but named no id"))
            })?
            .to_string();
        let mut changes: Vec<(&str, bool)> = Vec::new();
        for (field, prop) in POLICY_FIELDS {
            if let Some(v) = fields.get(field) {
                changes.push((prop, v == "true"));
            }
        }
        changes.push(("IsDisabled", !enabled));
        let policy = match user.get("Policy") {
            Some(p @ Value::Object(_)) => p.clone(),
            _ => self.policy_of(&id).await?,
        };
        self.change_policy(&id, policy, &changes).await?;
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
                with_password,
                ..
            } => {
                let pw = if *with_password { password } else { None };
                self.create(key, *enabled, fields, pw).await
            }
            AccountAction::Update {
                remote_id, fields, ..
            } => {
                let mut changes = Vec::new();
                for (k, v) in fields {
                    let Some((_, prop)) = POLICY_FIELDS.iter().find(|(f, _)| f == k) else {
                        return Err(ServiceError::Refused(format!(
                            "jellyfin: field {k} is not managed"
                        )));
                    };
                    changes.push((*prop, v == "true"));
                }
                let policy = self.policy_of(remote_id).await?;
                self.change_policy(remote_id, policy, &changes).await?;
                done
            }
            AccountAction::Disable { remote_id, .. } | AccountAction::Enable { remote_id, .. } => {
                let disable = matches!(action, AccountAction::Disable { .. });
                let policy = self.policy_of(remote_id).await?;
                self.change_policy(remote_id, policy, &[("IsDisabled", disable)])
                    .await?;
                done
            }
            AccountAction::SetPassword { remote_id, .. } => {
                let Some(pw) = password else {
                    return Err(ServiceError::Refused(format!(
                        "jellyfin: no password to set for user {remote_id}"
                    )));
                };
                self.expect(
                    &format!("setting the password of user {remote_id}"),
                    Method::POST,
                    "/Users/Password",
                    &[("userId", remote_id.clone())],
                    Some(&json!({ "NewPw": pw.expose(), "ResetPassword": false })),
                    Some(pw),
                )
                .await?;
                done
            }
            AccountAction::Delete { remote_id, .. } => {
                let (resp, _, _) = self
                    .call(
                        Method::DELETE,
                        &format!("/Users/{}", seg(remote_id)),
                        &[],
                        None,
                        None,
                    )
                    .await?;
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
                "jellyfin has no groups (group {group})"
            ))),
            AccountAction::Mark { .. } | AccountAction::MarkRemoved { .. } => done,
        }
    }

    async fn check_health(&self) -> Result<(), ServiceError> {
        let url = self.http.url("/health");
        let resp = self.http.probe(|c| c.get(&url)).await?;
        if resp.ok() {
            Ok(())
        } else {
            Err(ServiceError::Transient(format!(
                "jellyfin is not healthy: /health answered HTTP {}",
                resp.status
            )))
        }
    }

    async fn observe_all(&self) -> Result<Vec<Account>, ServiceError> {
        Ok(self.users().await?.iter().filter_map(account_of).collect())
    }
}

/// One `UserDto`, normalised.
fn account_of(u: &Value) -> Option<Account> {
    let id = u.get("Id").and_then(Value::as_str)?;
    let name = u.get("Name").and_then(Value::as_str)?;
    let policy = u.get("Policy").cloned().unwrap_or(Value::Null);
    let get = |k: &str| policy.get(k).and_then(Value::as_bool).unwrap_or(false);
    let mut fields = BTreeMap::new();
    for (field, prop) in POLICY_FIELDS {
        fields.insert(field.to_string(), flag(get(prop)));
    }
    Some(Account {
        remote_id: id.to_string(),
        key: name.to_string(),
        enabled: !get("IsDisabled"),
        fields,
        groups: BTreeSet::new(),
        marked: false,
    })
}

impl Service for Jellyfin {
    fn kind(&self) -> ServiceKind {
        ServiceKind::Jellyfin
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
        let s = &user.settings.jellyfin;
        let mut fields = BTreeMap::new();
        fields.insert("admin".to_string(), flag(s.admin && user.enabled));
        if let Some(all) = s.enable_all_folders {
            fields.insert("enableAllFolders".to_string(), flag(all));
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
    fn user_dtos_become_accounts() {
        let u = json!({"Id": "0f0e", "Name": "Alice", "Policy": {"IsAdministrator": true, "IsDisabled": true, "EnableAllFolders": false}});
        let a = account_of(&u).expect("account");
        assert_eq!(a.remote_id, "0f0e");
        assert_eq!(a.key, "Alice");
        assert!(!a.enabled);
        assert_eq!(a.fields["admin"], "true");
        assert_eq!(a.fields["enableAllFolders"], "false");
        assert!(account_of(&json!({"Name": "x"})).is_none());
    }

    #[test]
    fn a_disabled_user_is_no_administrator() {
        let j =
            Jellyfin::new("http://j", Secret::new("k"), Duration::from_secs(1)).expect("client");
        let mut u = ServiceUser {
            id: "alice".into(),
            enabled: true,
            ..ServiceUser::default()
        };
        u.settings.jellyfin.admin = true;
        assert_eq!(j.desired(&u).fields["admin"], "true");
        assert!(!j.desired(&u).fields.contains_key("enableAllFolders"));
        u.enabled = false;
        assert_eq!(j.desired(&u).fields["admin"], "false");
    }
}
