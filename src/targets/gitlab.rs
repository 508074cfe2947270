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
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

use super::accounts::{
    flag, refused, Account, AccountAction, DesiredAccount, Executed, Scalar, Service, ServiceError,
    ServiceUser, NO_BODY,
};
use crate::backoff::Backoff;
use crate::core::id::ServiceKind;
use crate::http::{Http, Json, Response};
use crate::secret::Secret;

/// The custom attribute that marks paasd's accounts.
pub const MARKER: &str = "paasd_managed";
const PER_PAGE: usize = 100;

/// A user as `GET /users` shows it to an admin (`APIEntitiesUserWithAdmin`; the document types
/// the list as `UserBasic`, the server sends the admin entity), and the answer to creating one.
/// Of its many fields, those paasd reads.
#[derive(Debug, Default, Deserialize)]
struct User {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    bot: Option<bool>,
    /// Documented as a string, sent as a boolean.
    #[serde(default)]
    is_admin: Option<Scalar>,
    #[serde(default)]
    external: Option<bool>,
    #[serde(default)]
    can_create_group: Option<bool>,
    #[serde(default)]
    projects_limit: Option<i64>,
}

/// The managed attributes of a user as `POST /users` and `PUT /users/{id}` take them (in the
/// order of the field names).
#[derive(Debug, Default, PartialEq, Serialize)]
struct Attributes {
    #[serde(skip_serializing_if = "Option::is_none")]
    admin: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    can_create_group: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    projects_limit: Option<u64>,
}

impl Attributes {
    /// Sets a field as GitLab's API takes it; `false` for a field that is not managed or a value
    /// it cannot take.
    fn set(&mut self, field: &str, value: &str) -> bool {
        let flag = match value {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        };
        match field {
            "name" => self.name = Some(value.to_string()),
            "email" => self.email = Some(value.to_string()),
            "admin" => self.admin = flag,
            "external" => self.external = flag,
            "can_create_group" => self.can_create_group = flag,
            "projects_limit" => self.projects_limit = value.parse::<u64>().ok(),
            _ => return false,
        }
        match field {
            "admin" | "external" | "can_create_group" => flag.is_some(),
            "projects_limit" => self.projects_limit.is_some(),
            _ => true,
        }
    }
}

/// `POST /users`.
#[derive(Serialize)]
struct NewUser<'a> {
    username: &'a str,
    name: &'a str,
    email: &'a str,
    skip_confirmation: bool,
    /// The other managed fields (not `name`, `email`).
    #[serde(flatten)]
    attributes: Attributes,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    force_random_password: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extern_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'a str>,
}

/// `PUT /users/{id}`: managed fields.
#[derive(Serialize)]
struct EditUser {
    #[serde(flatten)]
    attributes: Attributes,
    #[serde(skip_serializing_if = "Option::is_none")]
    skip_reconfirmation: Option<bool>,
}

/// `PUT /users/{id}`: the password.
#[derive(Serialize)]
struct SetPassword<'a> {
    password: &'a str,
}

/// `PUT /users/{id}/custom_attributes/{key}`.
#[derive(Serialize)]
struct CustomAttribute<'a> {
    value: &'a str,
}

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

    /// One call; a 2xx answer must read as `T` (`IgnoredAny` where it does not matter).
    async fn call<T: DeserializeOwned, B: Serialize + Sync + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        secret: Option<&Secret>,
    ) -> Result<Json<T>, ServiceError> {
        let url = self.http.url(&format!("/api/v4{path}"));
        let answer = self
            .http
            .send_json::<T>(secret, |c| {
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
        if answer.response.status == 401 {
            return Err(ServiceError::Refused(
                "gitlab rejected the token (tokenFile: an admin's personal access token with the api scope)".into(),
            ));
        }
        Ok(answer)
    }

    /// Every page of `GET /users` with `query`, following `X-Next-Page`.
    async fn list(&self, extra: &[(&str, String)]) -> Result<Vec<User>, ServiceError> {
        let mut out = Vec::new();
        let mut page = 1u64;
        loop {
            let mut q: Vec<(&str, String)> = vec![
                ("per_page", PER_PAGE.to_string()),
                ("page", page.to_string()),
            ];
            q.extend(extra.iter().cloned());
            let Json {
                response: resp,
                body,
                ..
            } = self
                .call::<Vec<User>, _>(Method::GET, "/users", &q, NO_BODY, None)
                .await?;
            if !resp.ok() {
                return Err(refused(&self.http, "listing users", &resp, None));
            }
            let items = body.unwrap_or_default();
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
            .filter_map(|u| u.id)
            .collect();
        Ok(users
            .iter()
            .filter_map(|u| account_of(u, &marked))
            .collect())
    }

    /// A call that must succeed (its answer is not read).
    async fn expect<B: Serialize + Sync + ?Sized>(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&B>,
        secret: Option<&Secret>,
    ) -> Result<(), ServiceError> {
        let answer = self
            .call::<IgnoredAny, B>(method, path, &[], body, secret)
            .await?;
        if answer.response.ok() {
            Ok(())
        } else {
            Err(refused(&self.http, what, &answer.response, secret))
        }
    }

    async fn mark(&self, id: &str) -> Result<(), ServiceError> {
        self.expect(
            &format!("marking user {id}"),
            Method::PUT,
            &format!("/users/{id}/custom_attributes/{MARKER}"),
            Some(&CustomAttribute { value: "true" }),
            None,
        )
        .await
    }

    async fn create(
        &self,
        key: &str,
        fields: &BTreeMap<String, String>,
        password: Option<&Secret>,
    ) -> Result<Executed, ServiceError> {
        let Some(email) = fields.get("email").filter(|e| !e.is_empty()) else {
            return Err(ServiceError::Refused(format!(
                "gitlab cannot create {key} without an e-mail address"
            )));
        };
        // Fields GitLab cannot take are left out here (an update refuses them).
        let mut attributes = Attributes::default();
        for (k, v) in fields {
            if k != "name" && k != "email" {
                attributes.set(k, v);
            }
        }
        let body = NewUser {
            username: key,
            name: fields.get("name").map(String::as_str).unwrap_or(key),
            email,
            skip_confirmation: true,
            attributes,
            password: password.map(Secret::expose),
            force_random_password: password.is_none().then_some(true),
            extern_uid: self
                .ldap
                .as_ref()
                .map(|(_, base_dn)| format!("uid={key},ou=people,{base_dn}")),
            provider: self.ldap.as_ref().map(|(p, _)| p.as_str()),
        };
        let Json {
            response: resp,
            body: user,
            attempts,
        } = self
            .call::<User, _>(Method::POST, "/users", &[], Some(&body), password)
            .await?;
        let id = if resp.ok() {
            user.and_then(|u| u.id).ok_or_else(|| {
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
        let Json {
            response: resp,
            body,
            ..
        } = self
            .call::<Vec<User>, _>(
                Method::GET,
                "/users",
                &[("username", username.to_string())],
                NO_BODY,
                None,
            )
            .await?;
        if !resp.ok() {
            return Err(refused(&self.http, "looking up a user", &resp, None));
        }
        Ok(body.unwrap_or_default().first().and_then(|u| u.id))
    }

    async fn post_state(&self, id: &str, verb: &str) -> Result<Response, ServiceError> {
        let answer = self
            .call::<IgnoredAny, _>(
                Method::POST,
                &format!("/users/{id}/{verb}"),
                &[],
                NO_BODY,
                None,
            )
            .await?;
        Ok(answer.response)
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
                let mut attributes = Attributes::default();
                for (k, v) in fields {
                    if !attributes.set(k, v) {
                        return Err(ServiceError::Refused(format!(
                            "gitlab: field {k} = {v:?} is not managed"
                        )));
                    }
                }
                let body = EditUser {
                    skip_reconfirmation: attributes.email.is_some().then_some(true),
                    attributes,
                };
                self.expect(
                    &format!("updating user {remote_id}"),
                    Method::PUT,
                    &format!("/users/{remote_id}"),
                    Some(&body),
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
                    Some(&SetPassword {
                        password: pw.expose(),
                    }),
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
                let resp = self
                    .call::<IgnoredAny, _>(
                        Method::DELETE,
                        &format!("/users/{remote_id}"),
                        &[],
                        NO_BODY,
                        None,
                    )
                    .await?
                    .response;
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
            let resp = self
                .call::<IgnoredAny, _>(Method::GET, "/version", &[], NO_BODY, None)
                .await?
                .response;
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

/// One user of `GET /users` (admin view), normalised; bots are not accounts of people.
fn account_of(u: &User, marked: &BTreeSet<u64>) -> Option<Account> {
    let id = u.id?;
    let username = u.username.as_deref()?;
    if u.bot == Some(true) {
        return None;
    }
    let mut fields = BTreeMap::new();
    let mut put = |field: &str, v: Option<String>| {
        if let Some(v) = v {
            fields.insert(field.to_string(), v);
        }
    };
    put("name", u.name.clone());
    put(
        "email",
        u.email.as_deref().map(|e| e.trim().to_ascii_lowercase()),
    );
    put("admin", u.is_admin.as_ref().map(Scalar::to_string));
    put("external", u.external.map(flag));
    put("can_create_group", u.can_create_group.map(flag));
    put("projects_limit", u.projects_limit.map(|n| n.to_string()));
    let state = u.state.as_deref().unwrap_or("active");
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

    fn user(json: &str) -> User {
        serde_json::from_str(json).expect("a user")
    }

    #[test]
    fn admin_entities_become_accounts() {
        let u = user(
            r#"{"id": 7, "username": "alice", "name": "Alice", "email": "Alice@X.Y",
                "state": "blocked", "is_admin": true, "external": false, "can_create_group": true,
                "projects_limit": 100}"#,
        );
        let a = account_of(&u, &BTreeSet::from([7])).expect("account");
        assert_eq!(a.remote_id, "7");
        assert_eq!(a.key, "alice");
        assert!(!a.enabled && a.marked);
        assert_eq!(a.fields["email"], "alice@x.y");
        assert_eq!(a.fields["admin"], "true");
        assert_eq!(a.fields["projects_limit"], "100");
        assert!(account_of(
            &user(r#"{"id": 8, "username": "bot", "bot": true}"#),
            &BTreeSet::new()
        )
        .is_none());
    }

    #[test]
    fn a_real_admin_list_with_unknown_fields_and_nulls() {
        let users: Vec<User> = serde_json::from_str(
            r#"[{"id": 1, "username": "root", "public_email": null, "name": "Administrator",
                 "state": "active", "locked": false, "avatar_url": "https://secure.gravatar.com/x",
                 "web_url": "https://git.example.org/root", "created_at": "2024-01-01T00:00:00.000Z",
                 "bio": "", "location": "", "linkedin": "", "twitter": "", "discord": "",
                 "website_url": "", "organization": "", "job_title": "", "pronouns": null,
                 "bot": false, "work_information": null, "local_time": null,
                 "last_sign_in_at": null, "confirmed_at": "2024-01-01T00:00:00.000Z",
                 "last_activity_on": "2024-06-01", "email": "admin@example.org", "theme_id": 3,
                 "color_scheme_id": 1, "projects_limit": 100000, "current_sign_in_at": null,
                 "identities": [{"provider": "ldapmain", "extern_uid": "uid=root,ou=people,dc=x",
                 "saml_provider_id": null}], "can_create_group": true, "can_create_project": true,
                 "two_factor_enabled": false, "external": false, "private_profile": false,
                 "commit_email": "admin@example.org", "shared_runners_minutes_limit": null,
                 "extra_shared_runners_minutes_limit": null, "scim_identities": [],
                 "is_admin": true, "note": null, "namespace_id": 1, "created_by": null,
                 "email_reset_offered_at": null, "using_license_seat": false},
                {"id": 2, "username": "ghost", "name": "Ghost User", "state": "deactivated",
                 "email": null, "is_admin": "false", "external": null, "can_create_group": null,
                 "projects_limit": null, "bot": null},
                {"id": 3, "username": "project_1_bot", "state": "active", "bot": true},
                {"id": 4, "name": "no username"}]"#,
        )
        .expect("a page of users");
        let accounts: Vec<Account> = users
            .iter()
            .filter_map(|u| account_of(u, &BTreeSet::from([2])))
            .collect();
        assert_eq!(
            accounts.len(),
            2,
            "the bot and the entry without a username are skipped"
        );
        let root = &accounts[0];
        assert!(root.enabled && !root.marked);
        assert_eq!(root.fields["admin"], "true");
        assert_eq!(root.fields["projects_limit"], "100000");
        assert_eq!(root.fields["email"], "admin@example.org");
        let ghost = &accounts[1];
        assert!(!ghost.enabled && ghost.marked);
        assert_eq!(ghost.fields["admin"], "false", "a string is taken as it is");
        assert_eq!(
            ghost.fields.keys().collect::<Vec<_>>(),
            ["admin", "name"],
            "nulls are no values"
        );
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
    }

    #[test]
    fn request_bodies_as_gitlab_takes_them() {
        let mut a = Attributes::default();
        assert!(a.set("projects_limit", "5") && a.set("admin", "true"));
        assert_eq!((a.projects_limit, a.admin), (Some(5), Some(true)));
        assert!(!a.set("admin", "maybe") && a.admin.is_none());
        assert!(!a.set("projects_limit", "-1"));
        assert!(!a.set("bio", "x"));
        let mut attributes = Attributes::default();
        assert!(attributes.set("email", "a@x.y") && attributes.set("external", "false"));
        let edit = EditUser {
            skip_reconfirmation: attributes.email.is_some().then_some(true),
            attributes,
        };
        assert_eq!(
            serde_json::to_string(&edit).expect("json"),
            r#"{"email":"a@x.y","external":false,"skip_reconfirmation":true}"#
        );
        let mut attributes = Attributes::default();
        attributes.set("admin", "false");
        attributes.set("projects_limit", "10");
        let new = NewUser {
            username: "alice",
            name: "Alice",
            email: "a@x.y",
            skip_confirmation: true,
            attributes,
            password: None,
            force_random_password: Some(true),
            extern_uid: Some("uid=alice,ou=people,dc=x".into()),
            provider: Some("ldapmain"),
        };
        assert_eq!(
            serde_json::to_string(&new).expect("json"),
            r#"{"username":"alice","name":"Alice","email":"a@x.y","skip_confirmation":true,"admin":false,"projects_limit":10,"force_random_password":true,"extern_uid":"uid=alice,ou=people,dc=x","provider":"ldapmain"}"#
        );
    }
}
