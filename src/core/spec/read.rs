//! The spec parser: a walk over `serde_json::Value` that collects every problem, with its JSON
//! path, instead of stopping at the first.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::validate::{
    parse_duration, valid_attribute_name, valid_email, valid_group_name, valid_nextcloud_quota,
    valid_user_id,
};
use super::walk::{as_string_list, index, join, type_name, Cx, Obj};
use super::{
    GroupSpec, LldapSpec, MailcowUser, PasswordMode, PasswordStrategy, Passwords, Removal,
    RemovalGuard, ServiceConnection, ServicePasswords, Services, Spec, SpecError, SpecProblem,
    UserServiceSettings, UserSpec, MARKER_ATTRIBUTE,
};
use crate::core::attributes::Attributes;
use crate::core::id::ServiceKind;

/// Parses and validates a spec document.
///
/// The document is read in two steps so that a spec with 100,000 users never exists as one
/// `serde_json::Value` tree (several times the size of the text): the top level and `users` are
/// split into raw entries that borrow the text, and each user is turned into a `Value` only while
/// it is read.
pub fn parse_spec(text: &str) -> Result<Spec, SpecError> {
    let not_json = |e: serde_json::Error| {
        SpecError::Invalid(vec![SpecProblem {
            path: String::new(),
            message: format!("not valid JSON: {e}"),
        }])
    };
    let top: RawEntries = match serde_json::from_str(text) {
        Ok(top) => top,
        Err(_) => {
            // Not an object: say whether it is not JSON at all or the wrong kind of value.
            let value: Value = serde_json::from_str(text).map_err(not_json)?;
            let mut cx = Cx::default();
            let _ = Obj::new(&mut cx, "", &value);
            return Err(SpecError::Invalid(cx.problems));
        }
    };
    let mut cx = Cx::default();
    let mut root = Map::new();
    let mut users = None;
    for (key, raw) in top.0 {
        if root.contains_key(&key) {
            cx.err(&join("", &key), "this key appears more than once");
            continue;
        }
        let value = if key == "users" {
            match serde_json::from_str::<RawEntries>(raw.get()) {
                Ok(entries) => {
                    users = Some(entries.0);
                    Value::Object(Map::new())
                }
                // Not an object: read_spec reports its type.
                Err(_) => serde_json::from_str(raw.get()).map_err(not_json)?,
            }
        } else {
            serde_json::from_str(raw.get()).map_err(not_json)?
        };
        root.insert(key, value);
    }
    let spec = read_spec(&mut cx, &Value::Object(root), users);
    match spec {
        Some(mut spec) if cx.problems.is_empty() => {
            spec.warnings = cx.warnings;
            Ok(spec)
        }
        _ => Err(SpecError::Invalid(cx.problems)),
    }
}

/// The entries of a JSON object in document order (repeated keys kept), each value as the raw
/// text it has in the document.
struct RawEntries<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for RawEntries<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = RawEntries<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<RawEntries<'a>, A::Error> {
                let mut entries = Vec::with_capacity(m.size_hint().unwrap_or(0));
                while let Some(entry) = m.next_entry::<String, &'de RawValue>()? {
                    entries.push(entry);
                }
                Ok(RawEntries(entries))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// `users` holds the raw entries of the `users` object (`root.users` is then an empty
/// placeholder); `None` when `users` is absent or not an object.
fn read_spec(cx: &mut Cx, root: &Value, users: Option<Vec<(String, &RawValue)>>) -> Option<Spec> {
    let mut o = Obj::new(cx, "", root)?;
    let version = match o.req(cx, "version") {
        Some(v) if v.as_u64() == Some(1) => Some(1),
        Some(v) => {
            cx.err(
                "version",
                format!("unsupported version {v} (this paasd reads version 1)"),
            );
            None
        }
        None => None,
    };
    let lldap = o.req(cx, "lldap").and_then(|v| read_lldap(cx, v));
    let removal = o
        .enum_of(
            cx,
            "removal",
            &[
                ("disable", Removal::Disable),
                ("delete", Removal::Delete),
                ("keep", Removal::Keep),
            ],
        )
        .unwrap_or(Removal::Disable);
    let removal_grace_period = match o.string(cx, "removalGracePeriod") {
        Some(s) => {
            match parse_duration(&s) {
                Some(n) => n,
                None => {
                    cx.err(
                    "removalGracePeriod",
                    format!("\"{s}\" is not a duration (examples: \"0\", \"90s\", \"12h\", \"30d\")"),
                );
                    0
                }
            }
        }
        None => 0,
    };
    let removal_guard = match o.opt("removalGuard") {
        Some(v) => read_guard(cx, v),
        None => RemovalGuard { max_percent: 25 },
    };
    let passwords = match o.opt("passwords") {
        Some(v) => read_passwords(cx, v),
        None => Passwords {
            strategy: PasswordStrategy::PerUser,
            universal_password_file: None,
        },
    };
    let groups = match o.opt("groups") {
        Some(v) => read_groups(cx, v),
        None => BTreeMap::new(),
    };
    let mut services = Services::default();
    for kind in ServiceKind::ALL {
        if let Some(conn) = o.opt(kind.name()).and_then(|v| read_service(cx, kind, v)) {
            services.insert(kind, conn);
        }
    }
    let users = match (o.opt("users"), users) {
        (Some(_), Some(entries)) => read_users(cx, entries, &services),
        (Some(v), None) => {
            // Not an object (raw entries are read from every object): Obj says so.
            let _ = Obj::new(cx, "users", v);
            BTreeMap::new()
        }
        (None, _) => BTreeMap::new(),
    };
    o.finish(cx);

    let lldap = lldap?;
    cross_check(cx, &lldap, &groups, &users, &services, &passwords);
    Some(Spec {
        version: version?,
        lldap,
        removal,
        removal_grace_period,
        removal_guard,
        passwords,
        groups,
        users,
        services,
        warnings: Vec::new(),
    })
}

fn read_lldap(cx: &mut Cx, v: &Value) -> Option<LldapSpec> {
    let mut o = Obj::new(cx, "lldap", v)?;
    let url = o.req_string(cx, "url");
    if let Some(u) = &url {
        check_url(cx, "lldap.url", u, &["http", "https"]);
    }
    let ldap_url = o.req_string(cx, "ldapUrl");
    if let Some(u) = &ldap_url {
        check_url(cx, "lldap.ldapUrl", u, &["ldap", "ldaps"]);
    }
    let base_dn = o.req_string(cx, "baseDn");
    if let Some(b) = &base_dn {
        if !b.contains('=') || b.trim() != b {
            cx.err(
                "lldap.baseDn",
                format!("\"{b}\" is not a DN (example: dc=example,dc=com)"),
            );
        }
    }
    let admin_username = o
        .string(cx, "adminUsername")
        .unwrap_or_else(|| "admin".into());
    if !valid_user_id(&admin_username) {
        cx.err(
            "lldap.adminUsername",
            format!("\"{admin_username}\" is not a valid LLDAP user id"),
        );
    }
    let admin_password_file = o.path(cx, "adminPasswordFile", true);
    let disabled_group = o
        .string(cx, "disabledGroup")
        .unwrap_or_else(|| "paas_disabled".into());
    if !valid_group_name(&disabled_group) {
        cx.err(
            "lldap.disabledGroup",
            format!("\"{disabled_group}\" is not a valid group name"),
        );
    }
    let timeout_seconds = o.uint(cx, "timeoutSeconds", 1, 600).unwrap_or(30);
    o.finish(cx);
    Some(LldapSpec {
        url: url?.trim_end_matches('/').to_string(),
        ldap_url: ldap_url?,
        base_dn: base_dn?,
        admin_username,
        admin_password_file: admin_password_file?,
        disabled_group,
        timeout_seconds,
    })
}

fn check_url(cx: &mut Cx, path: &str, s: &str, schemes: &[&str]) {
    match url::Url::parse(s) {
        Ok(u) if schemes.contains(&u.scheme()) && u.host_str().is_some() => {}
        Ok(u) => cx.err(
            path,
            format!(
                "\"{s}\": scheme \"{}\" is not one of {}",
                u.scheme(),
                schemes.join(", ")
            ),
        ),
        Err(e) => cx.err(path, format!("\"{s}\" is not a URL: {e}")),
    }
}

fn read_guard(cx: &mut Cx, v: &Value) -> RemovalGuard {
    let Some(mut o) = Obj::new(cx, "removalGuard", v) else {
        return RemovalGuard { max_percent: 25 };
    };
    let max_percent = o.uint(cx, "maxPercent", 0, 100).unwrap_or(25) as u32;
    o.finish(cx);
    RemovalGuard { max_percent }
}

const STRATEGIES: [(&str, PasswordStrategy); 3] = [
    ("perUser", PasswordStrategy::PerUser),
    ("universal", PasswordStrategy::Universal),
    ("generated", PasswordStrategy::Generated),
];

fn read_passwords(cx: &mut Cx, v: &Value) -> Passwords {
    let mut out = Passwords {
        strategy: PasswordStrategy::PerUser,
        universal_password_file: None,
    };
    let Some(mut o) = Obj::new(cx, "passwords", v) else {
        return out;
    };
    if let Some(s) = o.enum_of(cx, "strategy", &STRATEGIES) {
        out.strategy = s;
    }
    out.universal_password_file = o.path(cx, "universalPasswordFile", false);
    o.finish(cx);
    out
}

fn read_attributes(cx: &mut Cx, path: &str, v: &Value) -> Attributes {
    let mut out = Attributes::new();
    let Value::Object(map) = v else {
        cx.err(path, format!("expected an object, found {}", type_name(v)));
        return out;
    };
    for (name, value) in map {
        let at = join(path, name);
        if !valid_attribute_name(name) {
            cx.err(
                &at,
                "attribute names are 1-64 characters of A-Z a-z 0-9 and -",
            );
            continue;
        }
        if name.eq_ignore_ascii_case(MARKER_ATTRIBUTE) {
            cx.err(
                &at,
                format!(
                    "\"{MARKER_ATTRIBUTE}\" is reserved: paasd uses it to mark what it manages"
                ),
            );
            continue;
        }
        let values = match value {
            Value::String(s) => Some(vec![s.clone()]),
            other => as_string_list(cx, &at, other),
        };
        if let Some(values) = values {
            out.insert(name.to_ascii_lowercase(), values);
        }
    }
    out
}

fn read_groups(cx: &mut Cx, v: &Value) -> BTreeMap<String, GroupSpec> {
    let mut out = BTreeMap::new();
    let Value::Object(map) = v else {
        cx.err(
            "groups",
            format!("expected an object, found {}", type_name(v)),
        );
        return out;
    };
    for (name, g) in map {
        let path = join("groups", name);
        if !valid_group_name(name) {
            cx.err(
                &path,
                "group names are 1-64 characters of A-Z a-z 0-9 _ - . and must not start with \"lldap_\"",
            );
        }
        let Some(mut o) = Obj::new(cx, &path, g) else {
            continue;
        };
        let display_name = o.string(cx, "displayName").unwrap_or_else(|| name.clone());
        if display_name.trim().is_empty() {
            cx.err(&o.at("displayName"), "must not be empty");
        } else if display_name.to_ascii_lowercase().starts_with("lldap_") {
            cx.err(
                &o.at("displayName"),
                "names starting with \"lldap_\" are LLDAP's built-in groups",
            );
        }
        let attributes = match o.opt("attributes") {
            Some(v) => read_attributes(cx, &o.at("attributes"), v),
            None => Attributes::new(),
        };
        o.finish(cx);
        out.insert(
            name.clone(),
            GroupSpec {
                display_name,
                attributes,
            },
        );
    }
    out
}

/// `users`, one raw entry at a time: each user exists as a `Value` only while it is read. The map
/// is built in one go from the sorted entries, which packs its B-tree nodes full.
fn read_users(
    cx: &mut Cx,
    entries: Vec<(String, &RawValue)>,
    services: &Services,
) -> BTreeMap<String, UserSpec> {
    let mut users = Vec::with_capacity(entries.len());
    for (id, raw) in entries {
        let path = join("users", &id);
        if !valid_user_id(&id) {
            cx.err(
                &path,
                "user ids are 1-64 characters of a-z 0-9 _ - . starting with a letter or digit",
            );
        }
        // The text was checked as JSON already: this parse cannot fail on syntax.
        let v: Value = match serde_json::from_str(raw.get()) {
            Ok(v) => v,
            Err(e) => {
                cx.err(&path, format!("not valid JSON: {e}"));
                continue;
            }
        };
        if let Some(user) = read_user(cx, &path, &v, services) {
            users.push((id, user));
        }
    }
    // Stable: of a repeated id, the first occurrence comes first and the later ones are reported.
    users.sort_by(|a, b| a.0.cmp(&b.0));
    for pair in users.windows(2) {
        if pair[0].0 == pair[1].0 {
            cx.err(
                &join("users", &pair[1].0),
                "this user id appears more than once in \"users\"",
            );
        }
    }
    users.into_iter().collect()
}

fn read_user(cx: &mut Cx, path: &str, v: &Value, services: &Services) -> Option<UserSpec> {
    let mut o = Obj::new(cx, path, v)?;
    let email = o.req_string(cx, "email");
    if let Some(e) = &email {
        if !valid_email(e) {
            cx.err(&o.at("email"), format!("\"{e}\" is not an e-mail address"));
        }
    }
    let display_name = o.string(cx, "displayName");
    let first_name = o.string(cx, "firstName");
    let last_name = o.string(cx, "lastName");
    let groups = o.string_list(cx, "groups").unwrap_or_default();
    let admin = o.bool(cx, "admin").unwrap_or(false);
    let password_file = o.path(cx, "passwordFile", false);
    let password_mode = o
        .enum_of(
            cx,
            "passwordMode",
            &[
                ("enforce", PasswordMode::Enforce),
                ("initial", PasswordMode::Initial),
            ],
        )
        .unwrap_or(PasswordMode::Enforce);
    let enable = o.bool(cx, "enable").unwrap_or(true);
    let attributes = match o.opt("attributes") {
        Some(v) => read_attributes(cx, &o.at("attributes"), v),
        None => Attributes::new(),
    };
    let password_strategy = o.enum_of(cx, "passwordStrategy", &STRATEGIES);
    let services_list = o.string_list(cx, "services").map(|list| {
        let at = o.at("services");
        let mut seen = BTreeSet::new();
        let mut kinds = Vec::with_capacity(list.len());
        for (i, s) in list.iter().enumerate() {
            match s.parse::<ServiceKind>() {
                Err(e) => cx.err(&index(&at, i), e.to_string()),
                Ok(k) if services.get(k).is_none() => cx.err(
                    &index(&at, i),
                    format!(
                        "service \"{s}\" is not configured (add a top-level \"{s}\" connection)"
                    ),
                ),
                Ok(k) if !seen.insert(k) => {
                    cx.err(&index(&at, i), format!("service \"{s}\" is listed twice"))
                }
                Ok(k) => kinds.push(k),
            }
        }
        kinds
    });
    let mut settings = UserServiceSettings::default();
    for kind in ServiceKind::ALL {
        let name = kind.name();
        let Some(sv) = o.opt(name) else { continue };
        let at = o.at(name);
        let Some(mut so) = Obj::new(cx, &at, sv) else {
            continue;
        };
        match kind {
            ServiceKind::Nextcloud => {
                settings.nextcloud.quota = so.string(cx, "quota");
                if let Some(q) = &settings.nextcloud.quota {
                    if !valid_nextcloud_quota(q) {
                        cx.err(&so.at("quota"), format!("\"{q}\" is not a quota (examples: \"10 GB\", \"500 MB\", \"none\", \"default\")"));
                    }
                }
                settings.nextcloud.groups = so.string_list(cx, "groups").unwrap_or_default();
                settings.nextcloud.admin = so.bool(cx, "admin").unwrap_or(false);
            }
            ServiceKind::Gitlab => {
                settings.gitlab.admin = so.bool(cx, "admin").unwrap_or(false);
                settings.gitlab.external = so.bool(cx, "external").unwrap_or(false);
                settings.gitlab.can_create_group = so.bool(cx, "canCreateGroup");
                settings.gitlab.projects_limit = so.uint(cx, "projectsLimit", 0, 1_000_000);
            }
            ServiceKind::Jellyfin => {
                settings.jellyfin.admin = so.bool(cx, "admin").unwrap_or(false);
                settings.jellyfin.enable_all_folders = so.bool(cx, "enableAllFolders");
            }
            ServiceKind::Mailcow => {
                settings.mailcow = MailcowUser {
                    quota: so.uint(cx, "quota", 0, 1 << 40),
                    active: so.bool(cx, "active"),
                };
            }
            // Vaultwarden has no per-user settings: an empty object is allowed.
            ServiceKind::Vaultwarden => {}
        }
        let non_empty = !so.map.is_empty();
        so.finish(cx);
        if non_empty && services.get(kind).is_none() {
            cx.warn(
                &at,
                format!("service \"{name}\" is not configured: these settings are ignored"),
            );
        }
    }
    o.finish(cx);
    Some(UserSpec {
        email: email?,
        display_name,
        first_name,
        last_name,
        groups,
        admin,
        password_file,
        password_mode,
        enable,
        attributes,
        password_strategy,
        services: services_list,
        service_settings: (settings != UserServiceSettings::default()).then(|| Box::new(settings)),
    })
}

fn read_service(cx: &mut Cx, kind: ServiceKind, v: &Value) -> Option<ServiceConnection> {
    let mut o = Obj::new(cx, kind.name(), v)?;
    let url = o.req_string(cx, "url");
    if let Some(u) = &url {
        check_url(cx, &o.at("url"), u, &["http", "https"]);
    }
    let admin_user = if kind.needs_admin_user() {
        o.req_string(cx, "adminUser")
    } else {
        None
    };
    let secret_file = o.path(cx, kind.secret_key(), true);
    let ldap_provider = if kind.has_ldap_provider() {
        o.string(cx, "ldapProvider")
    } else {
        None
    };
    let domain = if kind.needs_domain() {
        let d = o.req_string(cx, "domain");
        if let Some(d) = &d {
            if !d.contains('.') || d.contains('@') || d.contains(char::is_whitespace) {
                cx.err(&o.at("domain"), format!("\"{d}\" is not a mail domain"));
            }
        }
        d
    } else {
        None
    };
    let groups = o.string_list(cx, "groups").unwrap_or_default();
    let password_strategy = if kind.capabilities().passwords {
        let mut choices: Vec<(&str, ServicePasswords)> = STRATEGIES
            .iter()
            .map(|(n, s)| (*n, ServicePasswords::Strategy(*s)))
            .collect();
        choices.push(("none", ServicePasswords::None));
        o.enum_of(cx, "passwordStrategy", &choices)
            .unwrap_or(ServicePasswords::Inherit)
    } else {
        ServicePasswords::None
    };
    o.finish(cx);
    Some(ServiceConnection {
        url: url?,
        admin_user,
        secret_file: secret_file?,
        ldap_provider,
        domain,
        groups,
        password_strategy,
    })
}

fn cross_check(
    cx: &mut Cx,
    lldap: &LldapSpec,
    groups: &BTreeMap<String, GroupSpec>,
    users: &BTreeMap<String, UserSpec>,
    services: &Services,
    passwords: &Passwords,
) {
    // Group names are case-insensitive in LLDAP: two keys/display names must not collide.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for (key, g) in groups {
        let lower = g.display_name.to_ascii_lowercase();
        if let Some(other) = names.get(&lower) {
            cx.err(
                &join(&join("groups", key), "displayName"),
                format!(
                    "group name \"{}\" is also used by groups.{other}",
                    g.display_name
                ),
            );
        } else {
            names.insert(lower, key.clone());
        }
    }
    if names.contains_key(&lldap.disabled_group.to_ascii_lowercase()) {
        cx.err(
            "lldap.disabledGroup",
            format!(
                "\"{}\" is also declared under groups: the disabled group is paasd's own",
                lldap.disabled_group
            ),
        );
    }
    if users.contains_key(&lldap.admin_username) {
        cx.err(
            &join("users", &lldap.admin_username),
            "this is lldap.adminUsername, the account paasd logs in with; paasd never modifies it",
        );
    }
    let mut emails: BTreeMap<String, String> = BTreeMap::new();
    let mut universal_needed = passwords.strategy == PasswordStrategy::Universal;
    for (id, u) in users {
        let path = join("users", id);
        for (i, g) in u.groups.iter().enumerate() {
            let at = index(&join(&path, "groups"), i);
            if !groups.contains_key(g) {
                cx.err(&at, format!("group \"{g}\" is not declared under groups"));
            } else if u.groups[..i].contains(g) {
                cx.err(&at, format!("group \"{g}\" is listed twice"));
            }
        }
        let lower = u.email.to_ascii_lowercase();
        if let Some(other) = emails.get(&lower) {
            cx.err(
                &join(&path, "email"),
                format!("e-mail \"{}\" is also used by users.{other}", u.email),
            );
        } else {
            emails.insert(lower, id.clone());
        }
        if u.password_strategy == Some(PasswordStrategy::Universal) {
            universal_needed = true;
        }
    }
    for (kind, conn) in services.iter() {
        for (i, g) in conn.groups.iter().enumerate() {
            if !valid_group_name(g) {
                cx.err(
                    &index(&join(kind.name(), "groups"), i),
                    format!("\"{g}\" is not a valid group name"),
                );
            }
        }
        if conn.password_strategy == ServicePasswords::Strategy(PasswordStrategy::Universal) {
            universal_needed = true;
        }
    }
    if universal_needed && passwords.universal_password_file.is_none() {
        cx.err(
            "passwords.universalPasswordFile",
            "the \"universal\" password strategy is used, but no universalPasswordFile is set",
        );
    }
}
