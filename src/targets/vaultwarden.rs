//! Vaultwarden through its admin API: `POST /admin` with the admin token (form `token=…`) sets
//! the `VW_ADMIN` session cookie, which is kept and sent with every call; when Vaultwarden
//! answers 401 (the session expired) paasd logs in again, once per call. Every POST carries
//! `Content-Type: application/json`, bodiless ones too (Vaultwarden answers 404 otherwise).
//!
//! Managed: the account (invited by e-mail), enabled/disabled, deletion. Nothing else can be
//! set: a Vaultwarden account's master password and keys are made in the user's client
//! (client-side encryption), so paasd cannot set passwords; the user accepts the invitation and
//! registers. Accounts are matched by e-mail (lower case). Vaultwarden has no marker.
//!
//! An invitation answered with 409 (the e-mail is registered already, made by hand or in an
//! earlier run whose answer was lost) counts as created: paasd looks the account up by e-mail
//! and takes it over — the same thing the next run's plan would do (adopt by key).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt as _;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::accounts::{
    Account, AccountAction, DesiredAccount, Executed, Service, ServiceError, ServiceUser,
};
use crate::backoff::Backoff;
use crate::core::id::ServiceKind;
use crate::http::{seg, snippet, Http, Response};
use crate::secret::Secret;

pub struct Vaultwarden {
    http: Http,
    token: Secret,
    /// `VW_ADMIN=<jwt>`, once logged in.
    cookie: Mutex<Option<Secret>>,
}

impl Vaultwarden {
    pub fn new(url: &str, admin_token: Secret, timeout: Duration) -> Result<Self, ServiceError> {
        Ok(Vaultwarden {
            http: Http::new("vaultwarden", url, timeout)?,
            token: admin_token,
            cookie: Mutex::new(None),
        })
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.http.set_backoff(backoff);
        self
    }

    async fn login(&self) -> Result<Secret, ServiceError> {
        let url = self.http.url("/admin");
        let sent = self
            .http
            .send(Some(&self.token), |c| {
                c.post(&url).form(&[("token", self.token.expose())])
            })
            .await?;
        let resp = &sent.answer;
        if resp.status == 401 || resp.status == 403 {
            return Err(ServiceError::Refused(
                "vaultwarden refused the admin token (adminTokenFile)".into(),
            ));
        }
        if resp.status == 404 {
            return Err(ServiceError::Refused(
                "vaultwarden has no admin page (ADMIN_TOKEN is not set on the server)".into(),
            ));
        }
        let cookie = resp
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| {
                let first = c.split(';').next()?.trim();
                let (name, value) = first.split_once('=')?;
                (name == "VW_ADMIN" && !value.is_empty()).then(|| first.to_string())
            });
        match cookie {
            Some(c) if resp.status < 400 => Ok(Secret::new(c)),
            _ => Err(ServiceError::Refused(format!(
                "vaultwarden: the admin login set no VW_ADMIN cookie (HTTP {})",
                resp.status
            ))),
        }
    }

    async fn session(&self) -> Result<Secret, ServiceError> {
        let mut guard = self.cookie.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = self.login().await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// One admin API call with the session cookie; a 401 logs in again once.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(Response, Value, u32), ServiceError> {
        let url = self.http.url(path);
        let mut relogged = false;
        loop {
            let cookie = self.session().await?;
            let (resp, v, attempts) = self
                .http
                .send_value(Some(&cookie), |c| {
                    let mut r = c
                        .request(method.clone(), &url)
                        .header("Cookie", cookie.expose())
                        .header("Accept", "application/json");
                    if method == Method::POST {
                        r = r.header("Content-Type", "application/json");
                        r = r.body(body.map(Value::to_string).unwrap_or_default());
                    }
                    r
                })
                .await?;
            if resp.status == 401 && !relogged {
                relogged = true;
                let mut guard = self.cookie.lock().await;
                if guard.as_ref() == Some(&cookie) {
                    *guard = None;
                }
                continue;
            }
            if resp.status == 401 {
                return Err(ServiceError::Refused(format!(
                    "vaultwarden refused the admin session: {}",
                    snippet(&resp.body, Some(&cookie))
                )));
            }
            return Ok((resp, v, attempts));
        }
    }

    fn error(what: &str, resp: &Response, v: &Value) -> ServiceError {
        let msg = v
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| snippet(&resp.body, None));
        ServiceError::Refused(format!(
            "vaultwarden refused {what} (HTTP {}): {msg}",
            resp.status
        ))
    }

    async fn find_by_mail(&self, email: &str) -> Result<Option<String>, ServiceError> {
        let (resp, v, _) = self
            .call(
                Method::GET,
                &format!("/admin/users/by-mail/{}", seg(email)),
                None,
            )
            .await?;
        if resp.status == 404 {
            return Ok(None);
        }
        if !resp.ok() {
            return Err(Self::error(&format!("looking up {email}"), &resp, &v));
        }
        Ok(v.get("id").and_then(Value::as_str).map(str::to_string))
    }

    async fn run(&self, action: &AccountAction) -> Result<Executed, ServiceError> {
        let done = Ok(Executed::default());
        match action {
            AccountAction::Create { key, enabled, .. } => {
                let email = key.trim().to_ascii_lowercase();
                let (resp, v, _) = self
                    .call(
                        Method::POST,
                        "/admin/invite",
                        Some(&json!({ "email": email })),
                    )
                    .await?;
                let id = if resp.ok() {
                    v.get("id").and_then(Value::as_str).map(str::to_string)
                } else if resp.status == 409 {
                    tracing::info!(service = "vaultwarden", user = %action.user(), "already registered; taking the account over");
                    self.find_by_mail(&email).await?
                } else {
                    return Err(Self::error(&format!("inviting {email}"), &resp, &v));
                };
                let Some(id) = id else {
                    return Err(ServiceError::Refused(format!(
                        "vaultwarden invited {email} but named no id"
                    )));
                };
                if !enabled {
                    self.post_user(&id, "disable").await?;
                }
                Ok(Executed {
                    remote_id: Some(id),
                })
            }
            AccountAction::Disable { remote_id, .. } => {
                self.post_user(remote_id, "disable").await?;
                done
            }
            AccountAction::Enable { remote_id, .. } => {
                self.post_user(remote_id, "enable").await?;
                done
            }
            AccountAction::Delete { remote_id, .. } => {
                let (resp, v, _) = self
                    .call(
                        Method::POST,
                        &format!("/admin/users/{}/delete", seg(remote_id)),
                        None,
                    )
                    .await?;
                if resp.ok() || resp.status == 404 {
                    done
                } else {
                    Err(Self::error(&format!("deleting {remote_id}"), &resp, &v))
                }
            }
            AccountAction::SetPassword { .. } => Err(ServiceError::Refused(
                "vaultwarden passwords cannot be set by paasd (client-side encryption)".into(),
            )),
            AccountAction::Update { fields, .. } => Err(ServiceError::Refused(format!(
                "vaultwarden: no field is managed ({})",
                fields.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
            AccountAction::AddToGroup { group, .. }
            | AccountAction::RemoveFromGroup { group, .. } => Err(ServiceError::Refused(format!(
                "vaultwarden: groups are not managed (group {group})"
            ))),
            AccountAction::Mark { .. } | AccountAction::MarkRemoved { .. } => done,
        }
    }

    async fn post_user(&self, id: &str, verb: &str) -> Result<(), ServiceError> {
        let (resp, v, _) = self
            .call(
                Method::POST,
                &format!("/admin/users/{}/{verb}", seg(id)),
                None,
            )
            .await?;
        if resp.ok() {
            Ok(())
        } else {
            Err(Self::error(&format!("{verb} of {id}"), &resp, &v))
        }
    }

    async fn observe_all(&self) -> Result<Vec<Account>, ServiceError> {
        let (resp, v, _) = self.call(Method::GET, "/admin/users", None).await?;
        if !resp.ok() {
            return Err(Self::error("listing users", &resp, &v));
        }
        Ok(v.as_array()
            .map(|a| a.iter().filter_map(account_of).collect())
            .unwrap_or_default())
    }

    async fn check_health(&self) -> Result<(), ServiceError> {
        let url = self.http.url("/alive");
        let resp = self.http.probe(|c| c.get(&url)).await?;
        if resp.ok() {
            Ok(())
        } else {
            Err(ServiceError::Transient(format!(
                "vaultwarden is not alive: /alive answered HTTP {}",
                resp.status
            )))
        }
    }
}

/// One user of `GET /admin/users`, normalised (key = e-mail, lower case).
fn account_of(u: &Value) -> Option<Account> {
    let id = u.get("id").and_then(Value::as_str)?;
    let email = u.get("email").and_then(Value::as_str)?;
    Some(Account {
        remote_id: id.to_string(),
        key: email.trim().to_ascii_lowercase(),
        enabled: u
            .get("userEnabled")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        fields: BTreeMap::new(),
        groups: BTreeSet::new(),
        marked: false,
    })
}

impl Service for Vaultwarden {
    fn kind(&self) -> ServiceKind {
        ServiceKind::Vaultwarden
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
        DesiredAccount {
            key: user.email.trim().to_ascii_lowercase(),
            ..DesiredAccount::of(user, BTreeMap::new())
        }
    }

    fn execute<'a>(
        &'a self,
        action: &'a AccountAction,
        _password: Option<&'a Secret>,
    ) -> BoxFuture<'a, Result<Executed, ServiceError>> {
        self.run(action).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_keyed_by_lower_case_mail() {
        let a = account_of(
            &json!({"id": "u-1", "email": "Alice@X.Y", "userEnabled": false, "_status": 0}),
        )
        .expect("account");
        assert_eq!(a.key, "alice@x.y");
        assert!(!a.enabled);
        let v =
            Vaultwarden::new("http://v", Secret::new("t"), Duration::from_secs(1)).expect("client");
        let d = v.desired(&ServiceUser {
            id: "alice".into(),
            email: "Alice@X.Y".into(),
            enabled: true,
            ..ServiceUser::default()
        });
        assert_eq!(d.key, "alice@x.y");
        assert!(d.fields.is_empty());
        assert!(!v.kind().capabilities().passwords);
    }
}
