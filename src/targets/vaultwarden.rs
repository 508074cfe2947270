//! Vaultwarden through its admin API: `POST /admin` with the admin token (form `token=…`) sets
//! the `VW_ADMIN` session cookie, which is sent with every call and kept across runs in the
//! [`Sessions`] store (the daemon's memory; `paasctl`'s `<state_dir>/sessions.json`) until
//! shortly before it expires, so repeated runs do not log in each time. When Vaultwarden
//! rejects the session (401, or a redirect to its login page) paasd logs in again, once per
//! call. Every POST carries `Content-Type: application/json`, bodiless ones too (Vaultwarden
//! answers 404 otherwise).
//!
//! API-NOTES (Vaultwarden 1.37, `src/api/admin.rs`, `src/ratelimit.rs`, `src/config.rs`,
//! `src/auth.rs`):
//! - The admin login is rate-limited per client address: `ADMIN_RATELIMIT_MAX_BURST` logins
//!   (default 3) at once, then one per `ADMIN_RATELIMIT_SECONDS` (default 300) — a GCRA limiter
//!   checked *before* the token is, so wrong tokens use the limit up too; a refused try does not.
//!   A limited login answers HTTP 429 with the HTML login page ("Too many requests, try again
//!   later.") and no `Retry-After`. paasd then waits as a target ("rate limited by Vaultwarden
//!   (ADMIN_RATELIMIT_*), next try at …"): a `Retry-After` (a proxy's) is honoured, else the
//!   default window; nothing is retried within the run.
//! - The cookie: `VW_ADMIN=<JWT>; Path=<domain path>/admin; Max-Age=<ADMIN_SESSION_LIFETIME
//!   minutes, default 20>; HttpOnly; SameSite=Strict` (`Secure` over HTTPS); the JWT's `exp` is
//!   the same lifetime. paasd uses a session until a minute before its `Max-Age` ends (20 minutes
//!   when the cookie names no lifetime).
//! - An expired or unknown session answers 401: `"Authorization failed."` as JSON when the
//!   request is JSON, else the login page.
//!
//! Managed: the account (invited by e-mail), enabled/disabled, deletion. Nothing else can be
//! set: a Vaultwarden account's master password and keys are made in the user's client
//! (client-side encryption), so paasd cannot set passwords; the user accepts the invitation and
//! registers. Without SMTP, an invitation creates the user record directly (and an invitation
//! row): the user signs up with that address. Accounts are matched by e-mail (lower case).
//! Vaultwarden has no marker.
//!
//! An invitation answered with 409 (the e-mail is registered already, made by hand or in an
//! earlier run whose answer was lost) counts as created: paasd looks the account up by e-mail
//! and takes it over — the same thing the next run's plan would do (adopt by key).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
use crate::clock::{local_hhmmss, parse_http_date, unix_now};
use crate::core::id::ServiceKind;
use crate::http::{seg, snippet, Http, Json, Response};
use crate::secret::Secret;
use crate::session::Sessions;

/// `ADMIN_SESSION_LIFETIME`'s default: how long a session lives when the cookie does not say.
const SESSION_LIFETIME: Duration = Duration::from_secs(20 * 60);

/// `ADMIN_RATELIMIT_SECONDS`'s default: the longest a rate-limited login has to wait for the
/// next one (when the answer has no `Retry-After`).
const RATELIMIT_WINDOW: Duration = Duration::from_secs(300);

/// How long before its end a session is no longer used (a run must not start on a session that
/// expires under it): a minute, or a quarter of a short lifetime.
fn margin(lifetime: u64) -> u64 {
    (lifetime / 4).min(60)
}

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

/// The `VW_ADMIN` cookie of a login answer (`name=value`, to send back as it is) and how long
/// it lives (its `Max-Age`, else its `Expires`, else [`SESSION_LIFETIME`]). `None`: the answer
/// sets no such cookie (or one that is already expired).
fn admin_cookie(resp: &Response, now: SystemTime) -> Option<(Secret, u64)> {
    resp.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            let mut parts = c.split(';');
            let first = parts.next()?.trim();
            let (name, value) = first.split_once('=')?;
            if name != "VW_ADMIN" || value.is_empty() {
                return None;
            }
            let (mut max_age, mut expires) = (None, None);
            for attr in parts {
                let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
                match k.trim().to_ascii_lowercase().as_str() {
                    "max-age" => max_age = v.trim().parse::<i64>().ok(),
                    "expires" => expires = parse_http_date(v),
                    _ => {}
                }
            }
            let lifetime = match (max_age, expires) {
                (Some(s), _) => s,
                (None, Some(at)) => at
                    .duration_since(now)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
                (None, None) => SESSION_LIFETIME.as_secs() as i64,
            };
            let lifetime = u64::try_from(lifetime).ok().filter(|l| *l > 0)?;
            Some((Secret::new(first), lifetime))
        })
}

pub struct Vaultwarden {
    http: Http,
    token: Secret,
    /// Where the admin session (`VW_ADMIN=<jwt>`) is kept, under [`Vaultwarden::scope`].
    sessions: Sessions,
    scope: String,
    /// One login at a time: calls in flight wait for it and share its session.
    login_lock: Mutex<()>,
    logins: AtomicU64,
    /// Vaultwarden rate-limited this client: what to say and until when (Unix time). Later
    /// calls fail with it at once, without a request.
    limited: std::sync::Mutex<Option<(String, u64)>>,
}

impl Vaultwarden {
    /// A client with a session store of its own; [`Vaultwarden::with_sessions`] shares one.
    pub fn new(url: &str, admin_token: Secret, timeout: Duration) -> Result<Self, ServiceError> {
        let mut http = Http::new("vaultwarden", url, timeout)?;
        // A 429 of Vaultwarden lasts minutes: it is read here, not retried.
        http.answer_rate_limits();
        let scope = format!("vaultwarden {}", http.base());
        Ok(Vaultwarden {
            http,
            token: admin_token,
            sessions: Sessions::in_memory(),
            scope,
            login_lock: Mutex::new(()),
            logins: AtomicU64::new(0),
            limited: std::sync::Mutex::new(None),
        })
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.http.set_backoff(backoff);
        self
    }

    /// Keeps the admin session in `sessions` (shared across runs), under this server's URL.
    pub fn with_sessions(mut self, sessions: Sessions) -> Self {
        self.sessions = sessions;
        self
    }

    /// The key of this server's session in the store: `vaultwarden <url>`.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// Admin logins sent so far (rate-limited ones included).
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    /// Vaultwarden (or a proxy in front of it) answered 429 to `what`: the client waits until
    /// the `Retry-After` it sent, else for Vaultwarden's default window.
    fn rate_limited(&self, resp: &Response, what: Option<&str>) -> ServiceError {
        let now = SystemTime::now();
        let wait = resp.retry_after(now).unwrap_or(RATELIMIT_WINDOW);
        // In whole seconds, rounded up: the time said is never too early.
        let retry_at = (now + wait)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
        let at = UNIX_EPOCH + Duration::from_secs(retry_at);
        let message = match what {
            None => format!(
                "rate limited by Vaultwarden (ADMIN_RATELIMIT_*), next try at {}",
                local_hhmmss(at)
            ),
            Some(path) => format!(
                "rate limited by Vaultwarden or a proxy in front of it ({path} answered HTTP 429), next try at {}",
                local_hhmmss(at)
            ),
        };
        tracing::debug!(
            service = "vaultwarden",
            retry_at,
            wait_secs = wait.as_secs(),
            "rate limited"
        );
        if let Ok(mut l) = self.limited.lock() {
            *l = Some((message.clone(), retry_at));
        }
        ServiceError::RateLimited { message, retry_at }
    }

    /// The rate limit this client met, while it lasts.
    fn still_limited(&self) -> Option<ServiceError> {
        let mut l = self.limited.lock().ok()?;
        match &*l {
            Some((message, retry_at)) if unix_now() < *retry_at => {
                Some(ServiceError::RateLimited {
                    message: message.clone(),
                    retry_at: *retry_at,
                })
            }
            _ => {
                *l = None;
                None
            }
        }
    }

    /// `POST /admin`: a new session and until when to use it (Unix time).
    async fn login(&self) -> Result<(Secret, u64), ServiceError> {
        let url = self.http.url("/admin");
        self.logins.fetch_add(1, Ordering::Relaxed);
        let sent = self
            .http
            .send(Some(&self.token), |c| {
                c.post(&url).form(&[("token", self.token.expose())])
            })
            .await?;
        let resp = &sent.answer;
        if resp.status == 429 {
            return Err(self.rate_limited(resp, None));
        }
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
        match admin_cookie(resp, SystemTime::now()) {
            Some((cookie, lifetime)) if resp.status < 400 => {
                let expires_at = unix_now() + lifetime - margin(lifetime);
                tracing::info!(
                    service = "vaultwarden",
                    session_secs = lifetime,
                    "logged in to the admin API"
                );
                Ok((cookie, expires_at))
            }
            _ => Err(ServiceError::Refused(format!(
                "vaultwarden: the admin login set no VW_ADMIN cookie (HTTP {})",
                resp.status
            ))),
        }
    }

    /// The admin session: the one kept, while it lasts; else a new login (one at a time).
    async fn session(&self) -> Result<Secret, ServiceError> {
        let _one_login = self.login_lock.lock().await;
        if let Some(c) = self.sessions.get(&self.scope) {
            return Ok(c);
        }
        if let Some(e) = self.still_limited() {
            return Err(e);
        }
        let (cookie, expires_at) = self.login().await?;
        self.sessions.put(&self.scope, cookie.clone(), expires_at);
        Ok(cookie)
    }

    /// Vaultwarden answered with its login page instead (a redirect to `/admin`).
    fn sent_to_login(resp: &Response) -> bool {
        (300..400).contains(&resp.status)
            && resp.header("location").is_some_and(|to| {
                let path = to
                    .split(['?', '#'])
                    .next()
                    .unwrap_or(to)
                    .trim_end_matches('/');
                path.ends_with("/admin") || path.contains("login")
            })
    }

    /// One admin API call with the session cookie; a rejected session (401, or a redirect to
    /// the login page) logs in again once; a 429 is the target's rate limit. A 2xx answer must
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
            if resp.status == 429 {
                return Err(self.rate_limited(resp, Some(path)));
            }
            let rejected = resp.status == 401 || Self::sent_to_login(resp);
            if rejected && !relogged {
                relogged = true;
                tracing::debug!(
                    service = "vaultwarden",
                    status = resp.status,
                    "the admin session was rejected; logging in again"
                );
                self.sessions.forget(&self.scope, &cookie);
                continue;
            }
            if rejected {
                return Err(ServiceError::Refused(format!(
                    "vaultwarden refused the admin session (HTTP {}): {}",
                    resp.status,
                    resp.describe(Some(&cookie))
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

    /// Ready: `/alive` answers, and there is an admin session — the kept one, or a new login
    /// (a wrong token fails the target here; a rate limit makes it wait).
    async fn check_health(&self) -> Result<(), ServiceError> {
        let url = self.http.url("/alive");
        let resp = self.http.probe(|c| c.get(&url)).await?;
        if resp.status == 429 {
            return Err(self.rate_limited(&resp, Some("/alive")));
        }
        if !resp.ok() {
            return Err(ServiceError::Transient(format!(
                "vaultwarden is not alive: /alive answered HTTP {}",
                resp.status
            )));
        }
        self.session().await.map(|_| ())
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
