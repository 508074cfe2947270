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
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::accounts::{
    Account, AccountAction, DesiredAccount, Executed, Service, ServiceError, ServiceUser, NO_BODY,
};
use crate::backoff::Backoff;
use crate::core::id::ServiceKind;
use crate::http::{seg, snippet, Http, Json, Response};
use crate::secret::Secret;

/// A user as the admin API shows it (`GET /admin/users`, `GET /admin/users/by-mail/{mail}`, the
/// profile `POST /admin/invite` answers): of its fields, those paasd reads. Enabled is
/// `userEnabled` (`_status` says whether a master password is set, not whether the account is
/// enabled); the profile of an invitation has no `userEnabled`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdminUser {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    user_enabled: Option<bool>,
}

/// Vaultwarden's error answer (`{"message": …, "errorModel": …, "object": "error", …}`).
#[derive(Debug, Deserialize)]
struct ErrorAnswer {
    #[serde(default)]
    message: Option<String>,
}

/// `POST /admin/invite`.
#[derive(Serialize)]
struct Invite<'a> {
    email: &'a str,
}

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

    /// One admin API call with the session cookie; a 401 logs in again once. A 2xx answer must
    /// read as `T` (`IgnoredAny` for the empty answers of the user actions).
    async fn call<T: DeserializeOwned, B: Serialize + Sync + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Json<T>, ServiceError> {
        let url = self.http.url(path);
        let mut relogged = false;
        loop {
            let cookie = self.session().await?;
            let answer = self
                .http
                .send_json::<T>(Some(&cookie), |c| {
                    let mut r = c
                        .request(method.clone(), &url)
                        .header("Cookie", cookie.expose())
                        .header("Accept", "application/json");
                    if method == Method::POST {
                        // Bodiless POSTs too: Vaultwarden's routes want JSON (404 otherwise).
                        r = r.header("Content-Type", "application/json");
                        r = match body {
                            Some(b) => r.json(b),
                            None => r.body(""),
                        };
                    }
                    r
                })
                .await?;
            let resp = &answer.response;
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
            return Ok(answer);
        }
    }

    /// A refusal, in Vaultwarden's words (its error answer's `message`, else the body).
    fn error(what: &str, resp: &Response) -> ServiceError {
        let msg = resp
            .json::<ErrorAnswer>()
            .ok()
            .and_then(|e| e.message)
            .unwrap_or_else(|| snippet(&resp.body, None));
        ServiceError::Refused(format!(
            "vaultwarden refused {what} (HTTP {}): {msg}",
            resp.status
        ))
    }

    async fn find_by_mail(&self, email: &str) -> Result<Option<String>, ServiceError> {
        let Json {
            response: resp,
            body,
            ..
        } = self
            .call::<AdminUser, _>(
                Method::GET,
                &format!("/admin/users/by-mail/{}", seg(email)),
                NO_BODY,
            )
            .await?;
        if resp.status == 404 {
            return Ok(None);
        }
        if !resp.ok() {
            return Err(Self::error(&format!("looking up {email}"), &resp));
        }
        Ok(body.and_then(|u| u.id))
    }

    async fn run(&self, action: &AccountAction) -> Result<Executed, ServiceError> {
        let done = Ok(Executed::default());
        match action {
            AccountAction::Create { key, enabled, .. } => {
                let email = key.trim().to_ascii_lowercase();
                let Json {
                    response: resp,
                    body: profile,
                    ..
                } = self
                    .call::<AdminUser, _>(
                        Method::POST,
                        "/admin/invite",
                        Some(&Invite { email: &email }),
                    )
                    .await?;
                let id = if resp.ok() {
                    profile.and_then(|u| u.id)
                } else if resp.status == 409 {
                    tracing::info!(service = "vaultwarden", user = %action.user(), "already registered; taking the account over");
                    self.find_by_mail(&email).await?
                } else {
                    return Err(Self::error(&format!("inviting {email}"), &resp));
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
                let resp = self
                    .call::<IgnoredAny, _>(
                        Method::POST,
                        &format!("/admin/users/{}/delete", seg(remote_id)),
                        NO_BODY,
                    )
                    .await?
                    .response;
                if resp.ok() || resp.status == 404 {
                    done
                } else {
                    Err(Self::error(&format!("deleting {remote_id}"), &resp))
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
        let resp = self
            .call::<IgnoredAny, _>(
                Method::POST,
                &format!("/admin/users/{}/{verb}", seg(id)),
                NO_BODY,
            )
            .await?
            .response;
        if resp.ok() {
            Ok(())
        } else {
            Err(Self::error(&format!("{verb} of {id}"), &resp))
        }
    }

    async fn observe_all(&self) -> Result<Vec<Account>, ServiceError> {
        let Json {
            response: resp,
            body,
            ..
        } = self
            .call::<Vec<AdminUser>, _>(Method::GET, "/admin/users", NO_BODY)
            .await?;
        if !resp.ok() {
            return Err(Self::error("listing users", &resp));
        }
        Ok(body.iter().flatten().filter_map(account_of).collect())
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
fn account_of(u: &AdminUser) -> Option<Account> {
    let id = u.id.as_deref()?;
    let email = u.email.as_deref()?;
    Some(Account {
        remote_id: id.to_string(),
        key: email.trim().to_ascii_lowercase(),
        enabled: u.user_enabled.unwrap_or(true),
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
        let u: AdminUser = serde_json::from_str(
            r#"{"id": "u-1", "email": "Alice@X.Y", "userEnabled": false, "_status": 0}"#,
        )
        .expect("a user");
        let a = account_of(&u).expect("account");
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

    #[test]
    fn a_real_user_list_with_unknown_fields_and_nulls() {
        // `GET /admin/users` of a current Vaultwarden: an invited user (no keys, no password)
        // and a disabled one.
        let users: Vec<AdminUser> = serde_json::from_str(
            r#"[{"_status": 1, "accountKeys": null, "avatarColor": null,
                 "creationDate": "2024-06-01T10:00:00.000000Z", "culture": "en-US",
                 "email": "Invited@Example.org", "emailVerified": false,
                 "forcePasswordReset": false, "id": "6f1e6e2a-3b5c-4c9d-9a8e-1f2d3c4b5a69",
                 "key": null, "name": null, "object": "profile", "organizations": [],
                 "premium": true, "premiumFromOrganization": false, "privateKey": null,
                 "providerOrganizations": [], "providers": [], "securityStamp": "b1c2",
                 "twoFactorEnabled": false, "usesKeyConnector": false, "userEnabled": true,
                 "createdAt": "2024-06-01 10:00:00 UTC", "lastActive": null},
                {"_status": 0, "email": "bob@example.org", "id": "u-2", "name": "Bob",
                 "userEnabled": false, "createdAt": "2024-06-01 10:00:00 UTC",
                 "lastActive": "2024-06-02 11:00:00 UTC", "key": "2.abc", "newField": {"x": 1}},
                {"_status": 0, "email": null, "id": "u-3"}]"#,
        )
        .expect("the admin list");
        let accounts: Vec<Account> = users.iter().filter_map(account_of).collect();
        assert_eq!(accounts.len(), 2, "an entry without an e-mail is skipped");
        assert_eq!(accounts[0].key, "invited@example.org");
        assert!(accounts[0].enabled, "invited, not disabled");
        assert_eq!(accounts[1].remote_id, "u-2");
        assert!(!accounts[1].enabled);
        // The profile an invitation answers has no `userEnabled`: enabled.
        let profile: AdminUser = serde_json::from_str(
            r#"{"_status": 1, "id": "u-4", "email": "n@x.y", "object": "profile"}"#,
        )
        .expect("a profile");
        assert!(account_of(&profile).expect("account").enabled);
        // The error answer's message.
        let e: ErrorAnswer = serde_json::from_str(
            r#"{"message": "User already exists", "validationErrors": {"": ["User already exists"]},
                "errorModel": {"message": "User already exists", "object": "error"}, "error": "",
                "error_description": "", "exceptionMessage": null, "exceptionStackTrace": null,
                "innerExceptionMessage": null, "object": "error"}"#,
        )
        .expect("an error");
        assert_eq!(e.message.as_deref(), Some("User already exists"));
    }
}
