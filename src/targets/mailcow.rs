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
use serde_json::{json, Map, Value};

use super::accounts::{
    field_string, refused, Account, AccountAction, DesiredAccount, Executed, Service, ServiceError,
    ServiceUser,
};
use crate::backoff::Backoff;
use crate::core::id::ServiceKind;
use crate::http::{seg, snippet, Http, Response};
use crate::secret::Secret;

const MIB: u64 = 1024 * 1024;

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

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        secret: Option<&Secret>,
    ) -> Result<(Response, Value, u32), ServiceError> {
        let url = self.http.url(path);
        let (resp, v, attempts) = self
            .http
            .send_value(secret, |c| {
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
        if resp.status == 401 || resp.status == 403 {
            return Err(ServiceError::Refused(format!(
                "mailcow refused the API key (apiKeyFile; a read-write key, with paasd's address in its allow-list): {}",
                message_of(&v).unwrap_or_else(|| snippet(&resp.body, secret))
            )));
        }
        Ok((resp, v, attempts))
    }

    /// A write: HTTP 200 whose entries all say `success` (anything else is a refusal, with
    /// Mailcow's message).
    async fn write(
        &self,
        what: &str,
        path: &str,
        body: &Value,
        secret: Option<&Secret>,
    ) -> Result<u32, WriteError> {
        let fail = |error, exists, attempts| WriteError {
            error,
            exists,
            attempts,
        };
        let (resp, v, attempts) = self
            .call(Method::POST, path, Some(body), secret)
            .await
            .map_err(|e| fail(e, false, 1))?;
        if !resp.ok() {
            return Err(fail(
                refused(&self.http, what, &resp, secret),
                false,
                attempts,
            ));
        }
        let entries: Vec<&Value> = match &v {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        if entries.is_empty() {
            return Err(fail(
                ServiceError::Refused(format!("mailcow: {what}: empty answer")),
                false,
                attempts,
            ));
        }
        for e in entries {
            let kind = e.get("type").and_then(Value::as_str).unwrap_or("");
            if kind != "success" {
                let msg = message_of(e).unwrap_or_else(|| snippet(&e.to_string(), secret));
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
        attr: Value,
        secret: Option<&Secret>,
    ) -> Result<(), ServiceError> {
        self.write(
            what,
            "/api/v1/edit/mailbox",
            &json!({ "items": [address], "attr": attr }),
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
        let mut body = Map::new();
        body.insert("local_part".into(), json!(local));
        body.insert("domain".into(), json!(domain));
        if let Some(n) = fields.get("name") {
            body.insert("name".into(), json!(n));
        }
        if let Some(q) = fields.get("quota") {
            body.insert("quota".into(), json!(q));
        }
        body.insert("password".into(), json!(pw.expose()));
        body.insert("password2".into(), json!(pw.expose()));
        body.insert("active".into(), json!(if enabled { "1" } else { "0" }));
        body.insert("force_pw_update".into(), json!("0"));
        match self
            .write(
                &format!("creating {address}"),
                "/api/v1/add/mailbox",
                &Value::Object(body),
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
                let mut attr = Map::new();
                for (k, v) in fields {
                    match k.as_str() {
                        "name" | "quota" => {
                            attr.insert(k.clone(), json!(v));
                        }
                        other => {
                            return Err(ServiceError::Refused(format!(
                                "mailcow: field {other} is not managed"
                            )))
                        }
                    }
                }
                self.edit(
                    &format!("updating {remote_id}"),
                    remote_id,
                    Value::Object(attr),
                    None,
                )
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
                    json!({ "active": if on { "1" } else { "0" } }),
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
                    json!({ "password": pw.expose(), "password2": pw.expose() }),
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
                        &json!([remote_id]),
                        None,
                    )
                    .await
                {
                    Ok(_) => done,
                    Err(WriteError { error: e, .. }) => {
                        // Already gone?
                        if self.mailbox(remote_id).await?.is_none() {
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

    async fn mailbox(&self, address: &str) -> Result<Option<Value>, ServiceError> {
        let (resp, v, _) = self
            .call(
                Method::GET,
                &format!("/api/v1/get/mailbox/{}", seg(address)),
                None,
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
        Ok(v.get("username").is_some().then_some(v))
    }

    async fn observe_all(&self) -> Result<Vec<Account>, ServiceError> {
        let (resp, v, _) = self
            .call(
                Method::GET,
                &format!("/api/v1/get/mailbox/all/{}", seg(&self.domain)),
                None,
                None,
            )
            .await?;
        if !resp.ok() {
            return Err(refused(&self.http, "listing mailboxes", &resp, None));
        }
        if let Some(kind) = v.get("type").and_then(Value::as_str) {
            if kind != "success" {
                return Err(ServiceError::Refused(format!(
                    "mailcow refused listing mailboxes: {kind}: {}",
                    message_of(&v).unwrap_or_default()
                )));
            }
        }
        // No mailbox: `{}` or `[]`.
        let items: Vec<&Value> = match &v {
            Value::Array(a) => a.iter().collect(),
            Value::Object(o) if o.contains_key("username") => vec![&v],
            _ => Vec::new(),
        };
        Ok(items
            .into_iter()
            .filter_map(account_of)
            .filter(|a| {
                a.key
                    .rsplit_once('@')
                    .is_some_and(|(_, d)| d == self.domain)
            })
            .collect())
    }

    async fn check_health(&self) -> Result<(), ServiceError> {
        let (resp, _, _) = self
            .call(Method::GET, "/api/v1/get/status/version", None, None)
            .await?;
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

/// `msg` of an answer entry: a string, or a list like `["object_exists", "u@d"]`.
fn message_of(v: &Value) -> Option<String> {
    match v.get("msg")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => Some(
            a.iter()
                .map(|x| field_string(x).unwrap_or_else(|| x.to_string()))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        other => Some(other.to_string()),
    }
}

/// Mailcow's byte count as whole MiB (rounded).
pub fn quota_mib(bytes: u64) -> u64 {
    (bytes + MIB / 2) / MIB
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// One mailbox, normalised: key = address (lower case), enabled = `active` is 1.
fn account_of(m: &Value) -> Option<Account> {
    let address = m
        .get("username")
        .and_then(Value::as_str)?
        .trim()
        .to_ascii_lowercase();
    let active = m
        .get("active_int")
        .and_then(number)
        .or_else(|| m.get("active").and_then(number))
        .unwrap_or(1);
    let mut fields = BTreeMap::new();
    if let Some(n) = m.get("name").and_then(Value::as_str) {
        fields.insert("name".to_string(), n.to_string());
    }
    if let Some(q) = m.get("quota").and_then(number) {
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

    #[test]
    fn mailboxes_become_accounts() {
        let m = json!({"username": "Alice@Example.org", "active": "0", "active_int": 0, "name": "Alice", "quota": 3_221_225_472u64});
        let a = account_of(&m).expect("account");
        assert_eq!(a.key, "alice@example.org");
        assert_eq!(a.remote_id, "alice@example.org");
        assert!(!a.enabled);
        assert_eq!(a.fields["quota"], "3072");
        let b = account_of(&json!({"username": "b@e.org", "active": 1, "quota": "0"}))
            .expect("account");
        assert!(b.enabled);
        assert_eq!(b.fields["quota"], "0");
        // "Disallow login" (2) is not enabled.
        assert!(
            !account_of(&json!({"username": "c@e.org", "active": 2}))
                .expect("a")
                .enabled
        );
    }

    #[test]
    fn quotas_in_mib() {
        assert_eq!(quota_mib(3072 * MIB), 3072);
        assert_eq!(quota_mib(0), 0);
        assert_eq!(quota_mib(MIB / 2 + 1), 1);
    }

    #[test]
    fn danger_messages() {
        assert_eq!(
            message_of(&json!({"type": "danger", "msg": ["object_exists", "a@b.c"]})).as_deref(),
            Some("object_exists a@b.c")
        );
        assert_eq!(message_of(&json!({"msg": "x"})).as_deref(), Some("x"));
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
