//! A test double of Mailcow's API v1 (mailboxes), checked against `mailcow/openapi.yaml` (3.1).
//!
//! Reproduced (API-NOTES §2.6, `data/web/json_api.php`): `X-API-Key` (unknown or missing →
//! `401 {"type":"error","msg":"authentication failed"}`; a read-only key on add/edit/delete →
//! `403`), a `Sec-Fetch-Dest` header other than `empty` → `403`, invalid JSON → `400`;
//! `GET /api/v1/get/mailbox/{id}` (`all` → array, one mailbox → object, unknown → `{}`),
//! `GET /api/v1/get/mailbox/all/{domain}`; add (`200 [{type:"success",msg:["mailbox_added",…]}]`,
//! and logical errors **also with HTTP 200** and `type:"danger"`: `object_exists`,
//! `domain_not_found`, `password_mismatch`…), edit (`items` + `attr`), delete (array of
//! addresses). Health: `GET /api/v1/get/status/version` (documented, cheap, needs the key).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::openapi::ContractOptions;
use crate::service::{common_double_methods, lock, Core, Reply, Req, Server, Service};
pub use crate::service::{FaultPlan, Faults, Side, StartError, Violation};

/// How to start the Mailcow double.
#[derive(Debug, Clone)]
pub struct MailcowConfig {
    /// Default `127.0.0.1:0`.
    pub addr: SocketAddr,
    /// The read-write API key.
    pub api_key: String,
    /// An optional read-only API key.
    pub read_only_key: Option<String>,
    /// Domains that exist (default `example.com`).
    pub domains: Vec<String>,
    /// `None`: [`crate::lldap::default_contracts_dir`].
    pub contracts_dir: Option<PathBuf>,
    pub faults: FaultPlan,
}

impl MailcowConfig {
    pub fn new(api_key: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            ..Self::default()
        }
    }
}

impl Default for MailcowConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_key: "mailcow-rw-key".into(),
            read_only_key: None,
            domains: vec!["example.com".into()],
            contracts_dir: None,
            faults: FaultPlan::default(),
        }
    }
}

/// A mailbox (also the read-only view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Mailbox {
    pub local_part: String,
    pub domain: String,
    pub name: String,
    pub password: Option<String>,
    /// Bytes (the API takes MiB).
    pub quota: u64,
    /// 0 inactive, 1 active, 2 disallow login (receive only).
    pub active: u8,
    pub force_pw_update: bool,
    pub authsource: String,
    pub tags: Vec<String>,
    pub password_set_count: u64,
}

impl Default for Mailbox {
    fn default() -> Self {
        Self {
            local_part: String::new(),
            domain: String::new(),
            name: String::new(),
            password: None,
            quota: 3072 * 1024 * 1024,
            active: 1,
            force_pw_update: false,
            authsource: "mailcow".into(),
            tags: Vec::new(),
            password_set_count: 0,
        }
    }
}

impl Mailbox {
    pub fn new(local_part: &str, domain: &str, name: &str) -> Self {
        Self {
            local_part: local_part.to_lowercase(),
            domain: domain.to_lowercase(),
            name: name.to_owned(),
            ..Self::default()
        }
    }

    /// `local_part@domain`.
    pub fn username(&self) -> String {
        format!("{}@{}", self.local_part, self.domain)
    }
}

#[derive(Default)]
struct State {
    mailboxes: BTreeMap<String, Mailbox>,
    domains: BTreeSet<String>,
}

struct Mailcow {
    state: Mutex<State>,
    rw_key: String,
    ro_key: Option<String>,
}

/// A running Mailcow double.
pub struct MailcowDouble {
    server: Server,
    mc: Arc<Mailcow>,
}

/// PHP reads scalars loosely and the document's own examples send `"1"`/`"3072"` where the
/// schemas say boolean/number: accept those spellings (and nothing else).
fn loosen(schema: &mut Value) {
    match schema {
        Value::Object(m) => {
            // Children first: the replacements below must not be loosened again.
            for v in m.values_mut() {
                loosen(v);
            }
            match m.get("type").and_then(Value::as_str) {
                Some("boolean") => {
                    m.remove("type");
                    m.insert(
                        "anyOf".into(),
                        json!([{"type": "boolean"}, {"type": "integer", "enum": [0, 1]}, {"type": "string", "enum": ["0", "1"]}]),
                    );
                }
                Some("number") | Some("integer") => {
                    m.remove("type");
                    m.insert(
                        "anyOf".into(),
                        json!([{"type": "number"}, {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"}]),
                    );
                }
                _ => {}
            }
        }
        Value::Array(a) => a.iter_mut().for_each(loosen),
        _ => {}
    }
}

/// Corrections to the Mailcow document where it contradicts `json_api.php` (each explained).
fn patch_mailcow(doc: &mut Value) {
    let op = |p: &str| format!("/paths/{}/post", p.replace('/', "~1"));
    for p in [
        "/api/v1/add/mailbox",
        "/api/v1/edit/mailbox",
        "/api/v1/delete/mailbox",
    ] {
        // The answer is an array of {type, log, msg} (one per item), documented as one object.
        if let Some(s) = doc.pointer_mut(&format!(
            "{}/responses/200/content/application~1json/schema",
            op(p)
        )) {
            let inner = s.take();
            *s = json!({"type": "array", "items": inner});
        }
        if let Some(s) = doc.pointer_mut(&format!(
            "{}/requestBody/content/application~1json/schema",
            op(p)
        )) {
            loosen(s);
        }
    }
    // delete: the body is the array of addresses (the document's own example), not an object.
    if let Some(s) = doc.pointer_mut(&format!(
        "{}/requestBody/content/application~1json/schema",
        op("/api/v1/delete/mailbox")
    )) {
        *s = json!({"type": "array", "items": {"type": "string"}});
    }
    // edit: `items` is an address or an array of addresses, documented as an object.
    if let Some(s) = doc.pointer_mut(&format!(
        "{}/requestBody/content/application~1json/schema/properties/items",
        op("/api/v1/edit/mailbox")
    )) {
        *s = json!({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]});
    }
    // get/mailbox/{id}: the enum ["all", "user@domain.tld"] lists examples, not the only values.
    if let Some(s) = doc.pointer_mut("/paths/~1api~1v1~1get~1mailbox~1{id}/get/parameters/0/schema")
    {
        if let Some(m) = s.as_object_mut() {
            m.remove("enum");
        }
    }
}

impl MailcowDouble {
    /// Loads the document, binds and serves.
    pub async fn start(config: MailcowConfig) -> Result<Self, StartError> {
        let dir = config
            .contracts_dir
            .clone()
            .unwrap_or_else(crate::lldap::default_contracts_dir);
        let contract = crate::service::load_contract(
            "Mailcow",
            vec![dir.join("mailcow/openapi.yaml")],
            ContractOptions::default(),
            |_, doc| patch_mailcow(doc),
        )?;
        let state = State {
            mailboxes: BTreeMap::new(),
            domains: config.domains.iter().map(|d| d.to_lowercase()).collect(),
        };
        let mc = Arc::new(Mailcow {
            state: Mutex::new(state),
            rw_key: config.api_key.clone(),
            ro_key: config.read_only_key.clone(),
        });
        let server = Server::start(config.addr, contract, config.faults, mc.clone()).await?;
        Ok(Self { server, mc })
    }

    common_double_methods!();

    /// Adds a mailbox by hand (its domain is created if missing).
    pub fn seed_mailbox(&self, mailbox: Mailbox) {
        let mut st = lock(&self.mc.state);
        st.domains.insert(mailbox.domain.clone());
        st.mailboxes.insert(mailbox.username(), mailbox);
    }

    /// Adds a domain by hand.
    pub fn seed_domain(&self, domain: &str) {
        lock(&self.mc.state).domains.insert(domain.to_lowercase());
    }

    /// One mailbox by address.
    pub fn mailbox(&self, username: &str) -> Option<Mailbox> {
        lock(&self.mc.state)
            .mailboxes
            .get(&username.to_lowercase())
            .cloned()
    }

    /// All mailboxes, sorted by address.
    pub fn mailboxes(&self) -> Vec<Mailbox> {
        lock(&self.mc.state).mailboxes.values().cloned().collect()
    }
}

fn result(kind: &str, log: Value, msg: Value) -> Value {
    json!({"type": kind, "log": log, "msg": msg})
}

fn scalar_str(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1".into() } else { "0".into() }),
        _ => None,
    }
}

fn mailbox_json(m: &Mailbox) -> Value {
    json!({
        "username": m.username(),
        "active": m.active.to_string(),
        "active_int": m.active,
        "domain": m.domain,
        "name": m.name,
        "local_part": m.local_part,
        "quota": m.quota,
        "messages": 0,
        "attributes": {"force_pw_update": if m.force_pw_update { "1" } else { "0" }, "force_tfa": "0",
                        "mailbox_format": "maildir:", "quarantine_notification": "never",
                        "sogo_access": "1", "tls_enforce_in": "0", "tls_enforce_out": "0"},
        "custom_attributes": {},
        "quota_used": 0,
        "percent_in_use": 0,
        "percent_class": "success",
        "is_relayed": 0,
        "max_new_quota": 10_737_418_240u64,
        "spam_aliases": 0,
        "rl": false,
        "sender_acl": [],
        "authsource": m.authsource,
        "tags": m.tags,
    })
}

/// A password with the log's masking.
fn masked(attr: &Value) -> Value {
    let mut a = attr.clone();
    if let Some(o) = a.as_object_mut() {
        for k in ["password", "password2"] {
            if o.contains_key(k) {
                o.insert(k.into(), json!("*"));
            }
        }
    }
    a
}

impl Mailcow {
    fn add(&self, body: &Value, core: &Core) -> Vec<Value> {
        let items: Vec<Value> = match body {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        let mut st = lock(&self.state);
        let mut out = Vec::new();
        for attr in items {
            let log = json!(["mailbox", "add", "mailbox", masked(&attr), null]);
            let s = |k: &str| scalar_str(attr.get(k));
            let local = s("local_part").unwrap_or_default().to_lowercase();
            let domain = s("domain").unwrap_or_default().to_lowercase();
            let addr = format!("{local}@{domain}");
            if local.is_empty()
                || !local
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
            {
                out.push(result("danger", log, json!(["mailbox_invalid", local])));
                continue;
            }
            if !st.domains.contains(&domain) {
                out.push(result("danger", log, json!(["domain_not_found", domain])));
                continue;
            }
            if st.mailboxes.contains_key(&addr) {
                out.push(result("danger", log, json!(["object_exists", addr])));
                continue;
            }
            let authsource = s("authsource").unwrap_or_else(|| "mailcow".into());
            let password = s("password").unwrap_or_default();
            if authsource == "mailcow" {
                if password != s("password2").unwrap_or_default() {
                    out.push(result("danger", log, json!(["password_mismatch"])));
                    continue;
                }
                if password.is_empty() {
                    out.push(result("danger", log, json!(["password_empty"])));
                    continue;
                }
            }
            let quota_mib: u64 = s("quota")
                .and_then(|q| q.parse::<f64>().ok())
                .map(|q| q as u64)
                .unwrap_or(3072);
            let mb = Mailbox {
                local_part: local,
                domain,
                name: s("name").unwrap_or_default(),
                password: (!password.is_empty()).then_some(password),
                quota: quota_mib * 1024 * 1024,
                active: s("active").and_then(|a| a.parse().ok()).unwrap_or(1),
                force_pw_update: s("force_pw_update").as_deref() == Some("1"),
                authsource,
                tags: attr
                    .get("tags")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                password_set_count: 1,
            };
            st.mailboxes.insert(addr.clone(), mb);
            core.write("addMailbox");
            out.push(result("success", log, json!(["mailbox_added", addr])));
        }
        out
    }

    fn edit(&self, body: &Value, core: &Core) -> Vec<Value> {
        let items: Vec<String> = match body.get("items") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let attr = body.get("attr").cloned().unwrap_or(json!({}));
        let s = |k: &str| scalar_str(attr.get(k));
        let mut st = lock(&self.state);
        let mut out = Vec::new();
        for item in items {
            let mut logged = masked(&attr);
            if let Some(o) = logged.as_object_mut() {
                o.insert("username".into(), json!([item]));
            }
            let log = json!(["mailbox", "edit", "mailbox", logged, null]);
            let addr = item.to_lowercase();
            let Some(mb) = st.mailboxes.get_mut(&addr) else {
                out.push(result("danger", log, json!(["access_denied"])));
                continue;
            };
            if let Some(pw) = s("password").filter(|p| !p.is_empty()) {
                if Some(&pw) != s("password2").as_ref() {
                    out.push(result("danger", log, json!(["password_mismatch"])));
                    continue;
                }
                mb.password = Some(pw);
                mb.password_set_count += 1;
            }
            if let Some(n) = s("name") {
                mb.name = n;
            }
            if let Some(q) = s("quota").and_then(|q| q.parse::<f64>().ok()) {
                mb.quota = (q as u64) * 1024 * 1024;
            }
            if let Some(a) = s("active")
                .and_then(|a| a.parse::<u8>().ok())
                .filter(|a| *a <= 2)
            {
                mb.active = a;
            }
            if let Some(f) = s("force_pw_update") {
                mb.force_pw_update = f == "1";
            }
            if let Some(a) = s("authsource") {
                mb.authsource = a;
            }
            core.write("editMailbox");
            out.push(result("success", log, json!(["mailbox_modified", addr])));
        }
        out
    }

    fn delete(&self, body: &Value, core: &Core) -> Vec<Value> {
        let items: Vec<String> = match body {
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Value::String(s) => vec![s.clone()],
            _ => Vec::new(),
        };
        let mut st = lock(&self.state);
        let mut out = Vec::new();
        for item in &items {
            let log = json!(["mailbox", "delete", "mailbox", {"username": items}, null]);
            let addr = item.to_lowercase();
            if st.mailboxes.remove(&addr).is_some() {
                core.write("deleteMailbox");
                out.push(result("success", log, json!(["mailbox_removed", addr])));
            } else {
                out.push(result("danger", log, json!(["access_denied"])));
            }
        }
        out
    }
}

impl Service for Mailcow {
    fn health_endpoint(&self) -> (&'static str, &'static str) {
        ("GET", "/api/v1/get/status/version")
    }

    fn handle(&self, req: &Req, core: &Core) -> Reply {
        let Some(parts) = req.segments_after("/api/v1") else {
            return Reply::html(404, "<html><body>Not found</body></html>");
        };
        if req
            .header("sec-fetch-dest")
            .is_some_and(|v| !v.eq_ignore_ascii_case("empty"))
        {
            return Reply::json(
                403,
                &json!({"type": "error", "msg": "requests from a browser context are not allowed"}),
            );
        }
        let key = req.header("x-api-key");
        let rw = key == Some(self.rw_key.as_str());
        let ro = key.is_some() && key == self.ro_key.as_deref();
        if !rw && !ro {
            core.unauthorized();
            return Reply::json(
                401,
                &json!({"type": "error", "msg": "authentication failed"}),
            );
        }
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        if req.method == "POST" {
            if !rw {
                return Reply::json(
                    403,
                    &json!({"type": "error", "msg": "API read/write access denied"}),
                );
            }
            let body: Value = match serde_json::from_slice(&req.body) {
                Ok(v) => v,
                Err(_) => {
                    return Reply::json(
                        400,
                        &json!({"type": "error", "msg": "Request body doesn't contain valid json!"}),
                    )
                }
            };
            let results = match parts.as_slice() {
                ["add", "mailbox"] => self.add(&body, core),
                ["edit", "mailbox"] => self.edit(&body, core),
                ["delete", "mailbox"] => self.delete(&body, core),
                _ => return Reply::json(200, &json!({"type": "error", "msg": "route not found"})),
            };
            return Reply::json(200, &Value::Array(results));
        }
        let st = lock(&self.state);
        match (req.method.as_str(), parts.as_slice()) {
            ("GET", ["get", "status", "version"]) => {
                Reply::json(200, &json!({"version": "2025-09"}))
            }
            ("GET", ["get", "mailbox", "all"]) => Reply::json(
                200,
                &Value::Array(st.mailboxes.values().map(mailbox_json).collect()),
            ),
            ("GET", ["get", "mailbox", "all", domain]) => {
                let domain = domain.to_lowercase();
                Reply::json(
                    200,
                    &Value::Array(
                        st.mailboxes
                            .values()
                            .filter(|m| m.domain == domain)
                            .map(mailbox_json)
                            .collect(),
                    ),
                )
            }
            ("GET", ["get", "mailbox", id]) => match st.mailboxes.get(&id.to_lowercase()) {
                Some(m) => Reply::json(200, &mailbox_json(m)),
                None => Reply::json(200, &json!({})),
            },
            _ => Reply::json(200, &json!({"type": "error", "msg": "route not found"})),
        }
    }

    fn state_json(&self) -> Value {
        let st = lock(&self.state);
        json!({
            "domains": st.domains,
            "mailboxes": st.mailboxes.values().map(|m| {
                let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
                if let Some(o) = v.as_object_mut() { o.remove("password"); }
                v
            }).collect::<Vec<_>>(),
        })
    }

    fn seed_json(&self, v: &Value) -> Result<(), String> {
        let boxes: Vec<Mailbox> =
            serde_json::from_value(v.get("mailboxes").cloned().unwrap_or(json!([])))
                .map_err(|e| e.to_string())?;
        let mut st = lock(&self.state);
        if let Some(ds) = v.get("domains").and_then(Value::as_array) {
            for d in ds.iter().filter_map(Value::as_str) {
                st.domains.insert(d.to_lowercase());
            }
        }
        for m in boxes {
            st.domains.insert(m.domain.clone());
            st.mailboxes.insert(m.username(), m);
        }
        Ok(())
    }
}
