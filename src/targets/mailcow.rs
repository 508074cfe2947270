//! Mailcow through API v1 with a read-write API key (`X-API-Key`).
//!
//! Managed: one mailbox `<user id>@<domain>` per user in the spec's domain — name (the display
//! name), quota (MiB; Mailcow reports bytes), active (1/0), password; deletion. Mailboxes of
//! other domains are never read. Mailcow answers most errors with HTTP 200 and
//! `"type": "danger"` (or `"error"`): every answer's entries are checked.
//!
//! A mailbox needs a password: without a password strategy for mailcow, creating one fails with
//! a clear error. Mailcow has no marker (`Mark` does nothing). Health: `GET
//! /api/v1/get/status/version` (cheap, documented, and it checks the key).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt as _;
use reqwest::Method;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

use super::accounts::{
    refused, Account, AccountAction, DesiredAccount, Executed, Scalar, Service, ServiceError,
    ServiceUser, NO_BODY,
};
use crate::backoff::Backoff;
use crate::core::id::ServiceKind;
use crate::http::{seg, snippet, Http, Json};
use crate::secret::Secret;

const MIB: u64 = 1024 * 1024;

/// One object, or a list of them: Mailcow answers a list to writes and to `all`, one object to
/// a single mailbox, its errors and an empty result (`{}`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::Many(v) => v,
            OneOrMany::One(t) => vec![t],
        }
    }
}

/// One entry of Mailcow's answer to a write, and its errors: `{"type": "success" | "danger" |
/// "error", "log": […], "msg": …}` (HTTP 200 whatever the outcome).
#[derive(Debug, Default, Deserialize)]
struct Answer {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    msg: Option<Msg>,
}

/// `msg` of an answer: a string, or a list like `["object_exists", "u@d"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Msg {
    One(Scalar),
    Many(Vec<MsgPart>),
    /// Anything else (the body says it).
    Other(IgnoredAny),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum MsgPart {
    Scalar(Option<Scalar>),
    Other(IgnoredAny),
}

/// A mailbox (`GET /api/v1/get/mailbox/…`): of its fields, those paasd reads; with the fields of
/// an [`Answer`], since Mailcow answers a refusal in place of mailboxes.
#[derive(Debug, Default, Deserialize)]
struct Mailbox {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
    /// Bytes.
    #[serde(default)]
    quota: Option<Scalar>,
    /// `"1"`, `1`: active, `0`: not, `2`: no login (numbers or strings, by version).
    #[serde(default)]
    active: Option<Scalar>,
    #[serde(default)]
    active_int: Option<Scalar>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    msg: Option<Msg>,
}

/// `POST /api/v1/add/mailbox` (quota in MiB; flags as `"0"`/`"1"`, as Mailcow's own UI sends
/// them).
#[derive(Serialize)]
struct AddMailbox<'a> {
    local_part: &'a str,
    domain: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quota: Option<&'a str>,
    password: &'a str,
    password2: &'a str,
    active: &'a str,
    force_pw_update: &'a str,
}

/// `POST /api/v1/edit/mailbox`: one mailbox.
#[derive(Serialize)]
struct EditMailbox<'a> {
    items: [&'a str; 1],
    attr: MailboxAttr<'a>,
}

/// What an edit changes.
#[derive(Default, Serialize)]
struct MailboxAttr<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quota: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    active: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password2: Option<&'a str>,
}

/// A refused write, with whether Mailcow said the object exists and how many attempts it took.
struct WriteError {
    error: ServiceError,
    exists: bool,
    attempts: u32,
}

pub struct Mailcow {
    http: Http,
    key: Secret,
    domain: String,
}

impl Mailcow {
    pub fn new(
        url: &str,
        api_key: Secret,
        domain: &str,
        timeout: Duration,
    ) -> Result<Self, ServiceError> {
        Ok(Mailcow {
            http: Http::new("mailcow", url, timeout)?,
            key: api_key,
            domain: domain.trim().to_ascii_lowercase(),
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
        body: Option<&B>,
        secret: Option<&Secret>,
    ) -> Result<Json<T>, ServiceError> {
        let url = self.http.url(path);
        let answer = self
            .http
            .send_json::<T>(secret, |c| {
                let mut r = c
                    .request(method.clone(), &url)
                    .header("X-API-Key", self.key.expose())
                    .header("Accept", "application/json");
                if let Some(b) = body {
                    r = r.json(b);
                }
                r
            })
            .await?;
        let resp = &answer.response;
        if resp.status == 401 || resp.status == 403 {
            let said = resp
                .json::<Answer>()
                .ok()
                .and_then(|a| message_of(a.msg.as_ref()));
            return Err(ServiceError::Refused(format!(
                "mailcow refused the API key (apiKeyFile; a read-write key, with paasd's address in its allow-list): {}",
                said.unwrap_or_else(|| snippet(&resp.body, secret))
            )));
        }
        Ok(answer)
    }

    /// A write: HTTP 200 whose entries all say `success` (anything else is a refusal, with
    /// Mailcow's message).
    async fn write<B: Serialize + Sync + ?Sized>(
        &self,
        what: &str,
        path: &str,
        body: &B,
        secret: Option<&Secret>,
    ) -> Result<u32, WriteError> {
        let fail = |error, exists, attempts| WriteError {
            error,
            exists,
            attempts,
        };
        let Json {
            response: resp,
            body: answer,
            attempts,
        } = self
            .call::<OneOrMany<Answer>, B>(Method::POST, path, Some(body), secret)
            .await
            .map_err(|e| fail(e, false, 1))?;
        if !resp.ok() {
            return Err(fail(
                refused(&self.http, what, &resp, secret),
                false,
                attempts,
            ));
        }
        let entries = answer.map(OneOrMany::into_vec).unwrap_or_default();
        if entries.is_empty() {
            return Err(fail(
                ServiceError::Refused(format!("mailcow: {what}: empty answer")),
                false,
                attempts,
            ));
        }
        for e in entries {
            let kind = e.kind.as_deref().unwrap_or("");
            if kind != "success" {
                let msg = message_of(e.msg.as_ref()).unwrap_or_else(|| snippet(&resp.body, secret));
                let msg = match secret {
                    Some(s) => msg.replace(s.expose(), "<redacted>"),
                    None => msg,
                };
                let exists = msg.contains("object_exists");
                let kind = if kind.is_empty() {
                    String::new()
                } else {
                    format!("{kind}: ")
                };
                return Err(fail(
                    ServiceError::Refused(format!("mailcow refused {what}: {kind}{msg}")),
                    exists,
                    attempts,
                ));
            }
        }
        Ok(attempts)
    }

    async fn edit(
        &self,
        what: &str,
        address: &str,
        attr: MailboxAttr<'_>,
        secret: Option<&Secret>,
    ) -> Result<(), ServiceError> {
        self.write(
            what,
            "/api/v1/edit/mailbox",
            &EditMailbox {
                items: [address],
                attr,
            },
            secret,
        )
        .await
        .map(|_| ())
        .map_err(|w| w.error)
    }

    async fn create(
        &self,
        key: &str,
        enabled: bool,
        fields: &BTreeMap<String, String>,
        password: Option<&Secret>,
    ) -> Result<Executed, ServiceError> {
        let address = key.trim().to_ascii_lowercase();
        let Some((local, domain)) = address.split_once('@') else {
            return Err(ServiceError::Refused(format!(
                "mailcow: {address} is not an address"
            )));
        };
        let Some(pw) = password else {
            return Err(ServiceError::Refused(format!(
                "mailcow needs a password strategy to create {address} (a mailbox cannot be created without a password; set passwordStrategy for mailcow or a password for the user)"
            )));
        };
        let body = AddMailbox {
            local_part: local,
            domain,
            name: fields.get("name").map(String::as_str),
            quota: fields.get("quota").map(String::as_str),
            password: pw.expose(),
            password2: pw.expose(),
            active: if enabled { "1" } else { "0" },
            force_pw_update: "0",
        };
        match self
            .write(
                &format!("creating {address}"),
                "/api/v1/add/mailbox",
                &body,
                Some(pw),
            )
            .await
        {
            Ok(_) => {}
            // After a lost answer, "exists" is the earlier attempt's success.
            Err(w) if w.exists && w.attempts > 1 => {}
            Err(w) => return Err(w.error),
        }
        Ok(Executed {
            remote_id: Some(address),
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
                ..
            } => self.create(key, *enabled, fields, password).await,
            AccountAction::Update {
                remote_id, fields, ..
            } => {
                let mut attr = MailboxAttr::default();
                for (k, v) in fields {
                    match k.as_str() {
                        "name" => attr.name = Some(v),
                        "quota" => attr.quota = Some(v),
                        other => {
                            return Err(ServiceError::Refused(format!(
                                "mailcow: field {other} is not managed"
                            )))
                        }
                    }
                }
                self.edit(&format!("updating {remote_id}"), remote_id, attr, None)
                    .await?;
                done
            }
            AccountAction::Disable { remote_id, .. } | AccountAction::Enable { remote_id, .. } => {
                let on = matches!(action, AccountAction::Enable { .. });
                self.edit(
                    &format!(
                        "{} {remote_id}",
                        if on { "activating" } else { "deactivating" }
                    ),
                    remote_id,
                    MailboxAttr {
                        active: Some(if on { "1" } else { "0" }),
                        ..MailboxAttr::default()
                    },
                    None,
                )
                .await?;
                done
            }
            AccountAction::SetPassword { remote_id, .. } => {
                let Some(pw) = password else {
                    return Err(ServiceError::Refused(format!(
                        "mailcow: no password to set for {remote_id}"
                    )));
                };
                self.edit(
                    &format!("setting the password of {remote_id}"),
                    remote_id,
                    MailboxAttr {
                        password: Some(pw.expose()),
                        password2: Some(pw.expose()),
                        ..MailboxAttr::default()
                    },
                    Some(pw),
                )
                .await?;
                done
            }
            AccountAction::Delete { remote_id, .. } => {
                match self
                    .write(
                        &format!("deleting {remote_id}"),
                        "/api/v1/delete/mailbox",
                        &[remote_id.as_str()],
                        None,
                    )
                    .await
                {
                    Ok(_) => done,
                    Err(WriteError { error: e, .. }) => {
                        // Already gone?
                        if !self.mailbox_exists(remote_id).await? {
                            done
                        } else {
                            Err(e)
                        }
                    }
                }
            }
            AccountAction::AddToGroup { group, .. }
            | AccountAction::RemoveFromGroup { group, .. } => Err(ServiceError::Refused(format!(
                "mailcow: groups are not managed (group {group})"
            ))),
            AccountAction::Mark { .. } | AccountAction::MarkRemoved { .. } => done,
        }
    }

    /// Whether the mailbox exists (Mailcow answers `{}` for one that does not).
    async fn mailbox_exists(&self, address: &str) -> Result<bool, ServiceError> {
        let Json {
            response: resp,
            body,
            ..
        } = self
            .call::<OneOrMany<Mailbox>, _>(
                Method::GET,
                &format!("/api/v1/get/mailbox/{}", seg(address)),
                NO_BODY,
                None,
            )
            .await?;
        if !resp.ok() {
            return Err(refused(
                &self.http,
                &format!("reading {address}"),
                &resp,
                None,
            ));
        }
        Ok(body
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .iter()
            .any(|m| m.username.is_some()))
    }

    async fn observe_all(&self) -> Result<Vec<Account>, ServiceError> {
        let Json {
            response: resp,
            body,
            ..
        } = self
            .call::<OneOrMany<Mailbox>, _>(
                Method::GET,
                &format!("/api/v1/get/mailbox/all/{}", seg(&self.domain)),
                NO_BODY,
                None,
            )
            .await?;
        if !resp.ok() {
            return Err(refused(&self.http, "listing mailboxes", &resp, None));
        }
        let items = match body {
            Some(OneOrMany::Many(list)) => list,
            // One object: a refusal, one mailbox, or none (`{}`).
            Some(OneOrMany::One(m)) => {
                if let Some(kind) = m.kind.as_deref().filter(|k| *k != "success") {
                    return Err(ServiceError::Refused(format!(
                        "mailcow refused listing mailboxes: {kind}: {}",
                        message_of(m.msg.as_ref()).unwrap_or_default()
                    )));
                }
                if m.username.is_some() {
                    vec![m]
                } else {
                    Vec::new()
                }
            }
            None => Vec::new(),
        };
        Ok(items
            .iter()
            .filter_map(account_of)
            .filter(|a| {
                a.key
                    .rsplit_once('@')
                    .is_some_and(|(_, d)| d == self.domain)
            })
            .collect())
    }

    async fn check_health(&self) -> Result<(), ServiceError> {
        let resp = self
            .call::<IgnoredAny, _>(Method::GET, "/api/v1/get/status/version", NO_BODY, None)
            .await?
            .response;
        if resp.ok() {
            Ok(())
        } else {
            Err(ServiceError::Transient(format!(
                "mailcow is not ready: /api/v1/get/status/version answered HTTP {}",
                resp.status
            )))
        }
    }
}

/// `msg` of an answer entry: a string, or a list like `["object_exists", "u@d"]` joined with
/// spaces (`None`: no message, or one of another shape).
fn message_of(msg: Option<&Msg>) -> Option<String> {
    match msg? {
        Msg::One(s) => Some(s.to_string()),
        Msg::Many(parts) => Some(
            parts
                .iter()
                .map(|p| match p {
                    MsgPart::Scalar(Some(s)) => s.to_string(),
                    MsgPart::Scalar(None) => "null".to_string(),
                    MsgPart::Other(_) => "…".to_string(),
                })
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Msg::Other(_) => None,
    }
}

/// Mailcow's byte count as whole MiB (rounded).
pub fn quota_mib(bytes: u64) -> u64 {
    (bytes + MIB / 2) / MIB
}

/// A count Mailcow sends as a number or a string of digits (negative: 0).
fn number(v: &Scalar) -> Option<u64> {
    match v {
        Scalar::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        Scalar::Text(s) => s.trim().parse().ok(),
        Scalar::Bool(_) => None,
    }
}

/// One mailbox, normalised: key = address (lower case), enabled = `active` is 1.
fn account_of(m: &Mailbox) -> Option<Account> {
    let address = m.username.as_deref()?.trim().to_ascii_lowercase();
    let active = m
        .active_int
        .as_ref()
        .and_then(number)
        .or_else(|| m.active.as_ref().and_then(number))
        .unwrap_or(1);
    let mut fields = BTreeMap::new();
    if let Some(n) = &m.name {
        fields.insert("name".to_string(), n.clone());
    }
    if let Some(q) = m.quota.as_ref().and_then(number) {
        fields.insert("quota".to_string(), quota_mib(q).to_string());
    }
    Some(Account {
        remote_id: address.clone(),
        key: address,
        enabled: active == 1,
        fields,
        groups: BTreeSet::new(),
        marked: false,
    })
}

impl Service for Mailcow {
    fn kind(&self) -> ServiceKind {
        ServiceKind::Mailcow
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
        let s = &user.settings.mailcow;
        let mut fields = BTreeMap::new();
        if let Some(d) = user.display_name.as_deref().filter(|d| !d.is_empty()) {
            fields.insert("name".to_string(), d.to_string());
        }
        if let Some(q) = s.quota {
            fields.insert("quota".to_string(), q.to_string());
        }
        DesiredAccount {
            key: format!("{}@{}", user.id.to_ascii_lowercase(), self.domain),
            enabled: user.enabled && s.active.unwrap_or(true),
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

    fn mailbox(json: &str) -> Mailbox {
        serde_json::from_str(json).expect("a mailbox")
    }

    #[test]
    fn mailboxes_become_accounts() {
        let m = mailbox(
            r#"{"username": "Alice@Example.org", "active": "0", "active_int": 0,
                "name": "Alice", "quota": 3221225472}"#,
        );
        let a = account_of(&m).expect("account");
        assert_eq!(a.key, "alice@example.org");
        assert_eq!(a.remote_id, "alice@example.org");
        assert!(!a.enabled);
        assert_eq!(a.fields["quota"], "3072");
        let b = account_of(&mailbox(
            r#"{"username": "b@e.org", "active": 1, "quota": "0"}"#,
        ))
        .expect("account");
        assert!(b.enabled);
        assert_eq!(b.fields["quota"], "0");
        // "Disallow login" (2) is not enabled.
        assert!(
            !account_of(&mailbox(r#"{"username": "c@e.org", "active": 2}"#))
                .expect("a")
                .enabled
        );
    }

    #[test]
    fn a_real_mailbox_list_with_unknown_fields_and_nulls() {
        let list: OneOrMany<Mailbox> = serde_json::from_str(
            r#"[{"active": 1, "active_int": 1, "attributes": {"force_pw_update": "0",
                  "force_tfa": "0", "sogo_access": "1", "imap_access": "1", "pop3_access": "1",
                  "smtp_access": "1", "sieve_access": "1", "relayhost": "0",
                  "passwd_update": "2024-06-01 10:00:00", "mailbox_format": "maildir:",
                  "quarantine_notification": "hourly", "quarantine_category": "reject",
                  "recovery_email": ""}, "custom_attributes": {}, "domain": "example.org",
                  "domain_active": 1, "is_relayed": 0, "last_imap_login": 0,
                  "last_pop3_login": 0, "last_smtp_login": 0, "local_part": "alice",
                  "max_new_quota": 10737418240, "messages": 12, "name": "Alice", "percent_class":
                  "success", "percent_in_use": 1, "pushover_active": 0, "quota": 3221225472,
                  "quota_used": 1048576, "rl": false, "rl_scope": "domain", "spam_aliases": 0,
                  "tags": [], "username": "alice@example.org", "authsource": "mailcow",
                  "created": "2024-06-01 10:00:00", "modified": null},
                 {"username": "bob@example.org", "active": "0", "name": null, "quota": "0",
                  "active_int": null},
                 {"username": null, "active": 1}]"#,
        )
        .expect("a list");
        let accounts: Vec<Account> = list.into_vec().iter().filter_map(account_of).collect();
        assert_eq!(accounts.len(), 2, "an entry without an address is skipped");
        assert!(accounts[0].enabled);
        assert_eq!(accounts[0].fields["quota"], "3072");
        assert_eq!(accounts[0].fields["name"], "Alice");
        assert!(!accounts[1].enabled, "active_int null: active says");
        assert!(!accounts[1].fields.contains_key("name"));
        // No mailbox at all: `{}`; a refusal in place of mailboxes.
        let none: OneOrMany<Mailbox> = serde_json::from_str("{}").expect("{}");
        assert!(matches!(
            none,
            OneOrMany::One(Mailbox { username: None, .. })
        ));
        let refusal: OneOrMany<Mailbox> =
            serde_json::from_str(r#"{"type": "error", "msg": "route not found"}"#).expect("error");
        match refusal {
            OneOrMany::One(m) => {
                assert_eq!(m.kind.as_deref(), Some("error"));
                assert_eq!(
                    message_of(m.msg.as_ref()).as_deref(),
                    Some("route not found")
                );
            }
            OneOrMany::Many(_) => panic!("one object"),
        }
    }

    #[test]
    fn quotas_in_mib() {
        assert_eq!(quota_mib(3072 * MIB), 3072);
        assert_eq!(quota_mib(0), 0);
        assert_eq!(quota_mib(MIB / 2 + 1), 1);
    }

    fn answer(json: &str) -> Vec<Answer> {
        serde_json::from_str::<OneOrMany<Answer>>(json)
            .expect("an answer")
            .into_vec()
    }

    #[test]
    fn danger_messages() {
        let a = answer(
            r#"[{"type": "danger", "log": ["mailbox", "add", "mailbox", {"local_part": "a",
                "password": "*"}, null], "msg": ["object_exists", "a@b.c"]}]"#,
        );
        assert_eq!(a[0].kind.as_deref(), Some("danger"));
        assert_eq!(
            message_of(a[0].msg.as_ref()).as_deref(),
            Some("object_exists a@b.c")
        );
        let a = answer(r#"{"msg": "x"}"#);
        assert_eq!(message_of(a[0].msg.as_ref()).as_deref(), Some("x"));
        assert!(a[0].kind.is_none());
        // Numbers, nulls and nesting in a list; a message of another shape is none.
        let a =
            answer(r#"[{"type": "danger", "msg": ["mailbox_quota_exceeds", 10240, null, [1]]}]"#);
        assert_eq!(
            message_of(a[0].msg.as_ref()).as_deref(),
            Some("mailbox_quota_exceeds 10240 null …")
        );
        let a = answer(r#"[{"type": "danger", "msg": {"x": 1}}, {"type": "success"}]"#);
        assert_eq!(message_of(a[0].msg.as_ref()), None);
        assert_eq!(a[1].kind.as_deref(), Some("success"));
        assert!(answer("[]").is_empty());
    }

    #[test]
    fn request_bodies() {
        let edit = EditMailbox {
            items: ["a@b.c"],
            attr: MailboxAttr {
                active: Some("0"),
                ..MailboxAttr::default()
            },
        };
        assert_eq!(
            serde_json::to_string(&edit).expect("json"),
            r#"{"items":["a@b.c"],"attr":{"active":"0"}}"#
        );
        let add = AddMailbox {
            local_part: "a",
            domain: "b.c",
            name: None,
            quota: Some("2048"),
            password: "pw",
            password2: "pw",
            active: "1",
            force_pw_update: "0",
        };
        assert_eq!(
            serde_json::to_string(&add).expect("json"),
            r#"{"local_part":"a","domain":"b.c","quota":"2048","password":"pw","password2":"pw","active":"1","force_pw_update":"0"}"#
        );
    }

    #[test]
    fn desired_mailbox() {
        let m = Mailcow::new(
            "http://m",
            Secret::new("k"),
            "Example.org",
            Duration::from_secs(1),
        )
        .expect("client");
        let mut u = ServiceUser {
            id: "alice".into(),
            display_name: Some("Alice".into()),
            enabled: true,
            ..ServiceUser::default()
        };
        u.settings.mailcow.quota = Some(2048);
        let d = m.desired(&u);
        assert_eq!(d.key, "alice@example.org");
        assert_eq!(d.fields["quota"], "2048");
        assert!(d.enabled);
        u.settings.mailcow.active = Some(false);
        assert!(!m.desired(&u).enabled);
    }
}
