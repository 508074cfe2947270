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
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;

use super::accounts::{
    Account, AccountAction, DesiredAccount, Executed, Service, ServiceError, ServiceUser, NO_BODY,
};
use crate::backoff::Backoff;
use crate::core::id::ServiceKind;
use crate::http::{seg, snippet, Decoded, Http, Response};
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

mod ocs;
mod quota;

use ocs::*;
pub use quota::{computer_file_size, desired_quota, human_file_size, observed_quota};

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

    /// One OCS call; `data` is read as `T` (`IgnoredAny` where it does not matter).
    async fn ocs<T: DeserializeOwned, B: Serialize + Sync + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        secret: Option<&Secret>,
    ) -> Result<Reply<T>, ServiceError> {
        let url = self.http.url(&format!("{OCS}{path}"));
        let sent = self
            .http
            .send_decoded(
                secret,
                |c| {
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
                },
                read_ocs::<T>,
            )
            .await?;
        let (response, envelope) = sent.answer;
        let Some((meta, data)) = envelope else {
            return Err(if response.status == 401 || response.status == 403 {
                self.login_refused(&snippet(&response.body, secret))
            } else {
                ServiceError::Refused(format!(
                    "nextcloud: {method} {path}: not an OCS answer (HTTP {}): {}",
                    response.status,
                    response.describe(secret)
                ))
            });
        };
        let o = Reply {
            code: meta.statuscode,
            message: snippet(meta.message.as_deref().unwrap_or(""), secret),
            data,
            attempts: sent.attempts,
            response,
        };
        if o.status() == 401 || o.code == 997 {
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

    fn fail<T>(what: &str, o: &Reply<T>) -> ServiceError {
        ServiceError::Refused(format!(
            "nextcloud refused {what}: OCS {} (HTTP {}){}",
            o.code,
            o.status(),
            if o.message.is_empty() {
                String::new()
            } else {
                format!(": {}", o.message)
            }
        ))
    }

    async fn expect_ok<B: Serialize + Sync + ?Sized>(
        &self,
        what: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<(), ServiceError> {
        let o = self
            .ocs::<IgnoredAny, B>(method, path, query, body, None)
            .await?;
        if o.ok() {
            Ok(())
        } else {
            Err(Self::fail(what, &o))
        }
    }

    /// Creates a group; an existing one is fine.
    async fn ensure_group(&self, group: &str) -> Result<(), ServiceError> {
        let o = self
            .ocs::<IgnoredAny, _>(
                Method::POST,
                "/cloud/groups",
                &[],
                Some(&GroupId { groupid: group }),
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
                .ocs::<UsersDetails, _>(
                    Method::GET,
                    "/cloud/users/details",
                    &[("limit", PAGE.to_string()), ("offset", offset.to_string())],
                    NO_BODY,
                    None,
                )
                .await?;
            if !o.ok() {
                return Err(Self::fail("listing users", &o));
            }
            let entries = o.data.unwrap_or_default().users.0;
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
        let email = fields
            .get("email")
            .map(String::as_str)
            .filter(|e| !e.is_empty());
        if password.is_none() && email.is_none() {
            return Err(ServiceError::Refused(format!(
                "nextcloud cannot create {key}: it needs a password (set a password strategy) or an e-mail address for the welcome mail"
            )));
        }
        let body = NewUser {
            userid: key,
            display_name: fields.get("displayname").map(String::as_str),
            email,
            quota: fields.get("quota").map(String::as_str),
            groups: groups.iter().map(String::as_str).collect(),
            password: password.map(Secret::expose),
        };
        let mut created_groups = false;
        let o = loop {
            let o = self
                .ocs::<Created, _>(Method::POST, "/cloud/users", &[], Some(&body), password)
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
            o.data.and_then(|d| d.id).unwrap_or_else(|| key.to_string())
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
                NO_BODY,
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
                        Some(&EditUser { key, value: v }),
                    )
                    .await?;
                }
                done
            }
            AccountAction::AddToGroup {
                remote_id, group, ..
            } => {
                let path = format!("/cloud/users/{}/groups", seg(remote_id));
                let body = GroupId { groupid: group };
                let mut o = self
                    .ocs::<IgnoredAny, _>(Method::POST, &path, &[], Some(&body), None)
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
                    .ocs::<IgnoredAny, _>(
                        Method::DELETE,
                        &format!("/cloud/users/{}/groups", seg(remote_id)),
                        &[("groupid", group.clone())],
                        NO_BODY,
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
                    .ocs::<IgnoredAny, _>(
                        Method::PUT,
                        &format!("/cloud/users/{}", seg(remote_id)),
                        &[],
                        Some(&EditUser {
                            key: "password",
                            value: pw.expose(),
                        }),
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
                    NO_BODY,
                )
                .await?;
                done
            }
            AccountAction::Delete { remote_id, .. } => {
                let path = format!("/cloud/users/{}", seg(remote_id));
                let o = self
                    .ocs::<IgnoredAny, _>(Method::DELETE, &path, &[], NO_BODY, None)
                    .await?;
                if o.ok() {
                    return done;
                }
                // Nextcloud answers 101 (HTTP 400) for an unknown user: look before failing.
                let g = self
                    .ocs::<IgnoredAny, _>(Method::GET, &path, &[], NO_BODY, None)
                    .await?;
                if g.status() == 404 || g.code == 404 || g.code == 998 {
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
        let status: Status = resp.json().map_err(|e| {
            ServiceError::Transient(format!("nextcloud: unreadable status.php: {e}"))
        })?;
        if status.installed != Some(true) {
            return Err(ServiceError::Transient(
                "nextcloud is not installed yet (status.php)".into(),
            ));
        }
        if status.maintenance == Some(true) {
            return Err(ServiceError::Transient(
                "nextcloud is in maintenance mode".into(),
            ));
        }
        if status.needs_db_upgrade == Some(true) {
            return Err(ServiceError::Transient(
                "nextcloud needs a database upgrade (occ upgrade)".into(),
            ));
        }
        Ok(())
    }
}

/// An answer's OCS meta and `data`, `None` if it is no OCS envelope.
type Envelope<T> = Option<(OcsMeta, Option<T>)>;

/// Reads an OCS answer: the envelope's meta, with `data` as `T` (`None` when absent, `null`, or —
/// for a failure — not a `T`). `None` for an answer that is no OCS envelope: JSON of another shape,
/// or a failure's body that is not JSON. A 2xx answer that is not JSON, or a success whose `data`
/// is not a `T`, is unreadable: retried like an answer cut short.
fn read_ocs<T: DeserializeOwned>(r: &Response) -> Decoded<(Response, Envelope<T>), ServiceError> {
    let e = match r.json::<Ocs<T>>() {
        Ok(o) => return Decoded::Ok((r.clone(), Some((o.ocs.meta, o.ocs.data)))),
        Err(e) => e,
    };
    match r.json::<Ocs<IgnoredAny>>() {
        Ok(o) if r.ok() && ok_code(o.ocs.meta.statuscode) => Decoded::Unreadable(e.to_string()),
        Ok(o) => Decoded::Ok((r.clone(), Some((o.ocs.meta, None)))),
        Err(_) if r.ok() && r.json::<IgnoredAny>().is_err() => Decoded::Unreadable(e.to_string()),
        Err(_) => Decoded::Ok((r.clone(), None)),
    }
}

/// One entry of `cloud/users/details`, normalised.
fn account_of(uid: &str, d: &UserDetails) -> Account {
    let id = d.id.clone().unwrap_or_else(|| uid.to_string());
    let mut fields = BTreeMap::new();
    if let Some(n) = d.displayname.as_ref().or(d.display_name.as_ref()) {
        fields.insert("displayname".to_string(), n.clone());
    }
    if let Some(e) = &d.email {
        fields.insert("email".to_string(), e.trim().to_ascii_lowercase());
    }
    if let Some(q) = d
        .quota
        .as_ref()
        .and_then(|q| q.quota.as_ref())
        .and_then(observed_quota)
    {
        fields.insert("quota".to_string(), q);
    }
    Account {
        remote_id: id.clone(),
        key: id,
        enabled: d.enabled.unwrap_or(true),
        fields,
        groups: d.groups.iter().flatten().cloned().collect(),
        marked: false,
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
    use crate::targets::accounts::Scalar;

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

    /// A quota as the details carry it.
    fn q(json: &str) -> Scalar {
        serde_json::from_str(json).expect("a scalar")
    }

    /// `users` of one page of `cloud/users/details`, as an OCS answer.
    fn page(body: &str) -> Vec<(String, UserDetails)> {
        let o: Ocs<UsersDetails> = serde_json::from_str(body).expect("an OCS answer");
        assert!(ok_code(o.ocs.meta.statuscode));
        o.ocs.data.unwrap_or_default().users.0
    }

    #[test]
    fn spec_and_observed_quotas_compare_equal() {
        // "10 GB" in the spec, 10737418240 bytes in the details.
        assert_eq!(desired_quota("10 GB"), observed_quota(&q("10737418240")));
        assert_eq!(desired_quota("10737418240"), desired_quota("10 GB"));
        assert_eq!(desired_quota("10 gb"), desired_quota("10GB"));
        // Nextcloud rounds "1.55 GB" to "1.6 GB" when it stores it.
        assert_eq!(
            desired_quota("1.55 GB"),
            Some(computer_file_size("1.6 GB").unwrap().to_string())
        );
        assert_eq!(desired_quota("none"), Some("none".into()));
        assert_eq!(observed_quota(&q("-3")), Some("none".into()));
        assert_eq!(observed_quota(&q("\"none\"")), Some("none".into()));
        // A float of bytes (PHP's `float` for large quotas).
        assert_eq!(observed_quota(&q("5368709120.0")), desired_quota("5 GB"));
        // Users that never logged in: the stored string.
        assert_eq!(observed_quota(&q("\"10 GB\"")), desired_quota("10 GB"));
        assert_eq!(desired_quota("default"), None);
    }

    #[test]
    fn details_become_accounts() {
        let d: UserDetails = serde_json::from_str(
            r#"{"id": "alice", "enabled": false, "displayname": "Alice A", "email": "Alice@X.Y",
                "quota": {"quota": 5368709120, "used": 0}, "groups": ["admin", "family"]}"#,
        )
        .expect("details");
        let a = account_of("alice", &d);
        assert_eq!(a.remote_id, "alice");
        assert!(!a.enabled);
        assert_eq!(a.fields["email"], "alice@x.y");
        assert_eq!(a.fields["quota"], desired_quota("5 GB").unwrap());
        assert_eq!(a.fields["displayname"], "Alice A");
        assert!(a.groups.contains("family"));
        // An entry Nextcloud could not fill: only the id.
        let b = account_of(
            "bob",
            &serde_json::from_str(r#"{"id": "bob"}"#).expect("id"),
        );
        assert!(b.enabled && b.fields.is_empty());
    }

    #[test]
    fn a_real_details_page_with_unknown_fields_and_nulls() {
        // What a current Nextcloud sends (more than the document, nulls where it has nothing).
        let users = page(
            r#"{"ocs": {"meta": {"status": "ok", "statuscode": 200, "message": "OK",
                "totalitems": "", "itemsperpage": ""},
              "data": {"users": {
                "carol": {"enabled": true, "storageLocation": "/var/lib/nextcloud/data/carol",
                  "id": "carol", "firstLoginTimestamp": 1718000000, "lastLogin": 1718000500,
                  "backend": "Database", "subadmin": [], "quota": {"free": 1073741824,
                  "used": 1234, "total": 1073742058, "relative": 0, "quota": 1073741824},
                  "manager": "", "avatarScope": "v2-federated", "email": null,
                  "emailScope": "v2-federated", "additional_mail": [], "displayname": "Carol",
                  "display-name": "Carol", "phone": "", "address": "", "website": "",
                  "twitter": "", "fediverse": "", "organisation": "", "role": "", "headline": "",
                  "biography": "", "profile_enabled": "1", "pronouns": "", "groups": ["family"],
                  "language": "en", "locale": "", "notify_email": null,
                  "backendCapabilities": {"setDisplayName": true, "setPassword": true}},
                "dave": {"id": "dave", "quota": {"quota": "none", "used": 0},
                  "displayname": null, "display-name": "Dave", "groups": null, "email": "D@x.y"},
                "erin": {"id": "erin", "quota": []}
              }}}}"#,
        );
        let accounts: Vec<Account> = users.iter().map(|(u, d)| account_of(u, d)).collect();
        let keys: Vec<&str> = accounts.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["carol", "dave", "erin"], "in the server's order");
        assert!(accounts[0].enabled && !accounts[0].fields.contains_key("email"));
        assert_eq!(accounts[0].fields["quota"], desired_quota("1 GB").unwrap());
        assert!(accounts[0].groups.contains("family"));
        assert_eq!(accounts[1].fields["quota"], "none");
        assert_eq!(accounts[1].fields["displayname"], "Dave");
        assert_eq!(accounts[1].fields["email"], "d@x.y");
        assert!(accounts[1].groups.is_empty());
        assert!(accounts[2].fields.is_empty());
        // PHP's empty map, a map of numeric ids as a list, no users at all.
        let empty = r#"{"ocs": {"meta": {"statuscode": 200}, "data": {"users": []}}}"#;
        assert!(page(empty).is_empty());
        let list = page(
            r#"{"ocs": {"meta": {"statuscode": 200, "message": null},
                "data": {"users": [{"id": "1001", "enabled": true}, {"enabled": true}]}}}"#,
        );
        assert_eq!(list.len(), 1, "an entry without an id is skipped");
        assert_eq!(list[0].0, "1001");
        assert!(
            page(r#"{"ocs": {"meta": {"statuscode": 200}, "data": {"users": null}}}"#).is_empty()
        );
    }

    #[test]
    fn envelopes_of_failures_and_other_answers() {
        let answer = |status: u16, body: &str| Response {
            status,
            headers: Default::default(),
            body: body.to_string(),
        };
        // A failure's `data` is PHP's empty array: read as no data.
        let r = answer(
            400,
            r#"{"ocs": {"meta": {"status": "failure", "statuscode": 102,
                "message": "User already exists"}, "data": []}}"#,
        );
        match read_ocs::<Created>(&r) {
            Decoded::Ok((_, Some((meta, data)))) => {
                assert_eq!(meta.statuscode, 102);
                assert_eq!(meta.message.as_deref(), Some("User already exists"));
                assert!(data.is_some_and(|d| d.id.is_none()));
            }
            _ => panic!("expected the envelope"),
        }
        // A success whose data is not what it should be: unreadable, retried.
        let r = answer(
            200,
            r#"{"ocs": {"meta": {"statuscode": 200}, "data": {"users": 7}}}"#,
        );
        assert!(matches!(
            read_ocs::<UsersDetails>(&r),
            Decoded::Unreadable(_)
        ));
        // Cut short: unreadable.
        let r = answer(200, r#"{"ocs": {"meta": {"statuscode": 2"#);
        assert!(matches!(read_ocs::<IgnoredAny>(&r), Decoded::Unreadable(_)));
        // JSON of another shape, an HTML error page: no envelope.
        let r = answer(200, r#"{"installed": true}"#);
        assert!(matches!(read_ocs::<IgnoredAny>(&r), Decoded::Ok((_, None))));
        let r = answer(403, "<html>Forbidden</html>");
        assert!(matches!(read_ocs::<IgnoredAny>(&r), Decoded::Ok((_, None))));
    }

    #[test]
    fn request_bodies() {
        let body = NewUser {
            userid: "alice",
            display_name: Some("Alice"),
            email: None,
            quota: Some("10 GB"),
            groups: vec!["family"],
            password: Some("pw"),
        };
        assert_eq!(
            serde_json::to_string(&body).expect("json"),
            r#"{"userid":"alice","displayName":"Alice","quota":"10 GB","groups":["family"],"password":"pw"}"#
        );
        let bare = NewUser {
            userid: "bob",
            display_name: None,
            email: Some("b@x.y"),
            quota: None,
            groups: Vec::new(),
            password: None,
        };
        assert_eq!(
            serde_json::to_string(&bare).expect("json"),
            r#"{"userid":"bob","email":"b@x.y"}"#
        );
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
