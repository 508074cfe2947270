//! Who gets an account in which service, and with which password source (pure).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::ServiceUser;
use crate::directory::Directory;
use crate::spec::{PasswordStrategy, Spec, UserServiceSettings};

/// The users that get an account in `service`:
/// - spec users whose `services` lists it, or — without `services` — every spec user when the
///   service has no access `groups`, else only members of those groups;
/// - users of LLDAP (also hand-made ones) that are members of the service's access `groups`.
///
/// A spec user with `enable = false` is included with `enabled = false` (its account is
/// disabled); an LLDAP user in paasd's disabled group likewise.
pub fn service_users(spec: &Spec, dir: &Directory, service: &str) -> BTreeMap<String, ServiceUser> {
    let mut out = BTreeMap::new();
    let Some(conn) = spec.services.get(service) else {
        return out;
    };
    let access: BTreeSet<i64> = conn
        .groups
        .iter()
        .filter_map(|g| dir.group_by_name(g).map(|x| x.id))
        .collect();
    let disabled = dir.group_by_name(&spec.lldap.disabled_group).map(|g| g.id);
    let in_access = |id: &str| {
        dir.user(id)
            .is_some_and(|u| u.groups.iter().any(|g| access.contains(g)))
    };
    // Spec groups by the LLDAP name they have, to see access through the spec itself (a user
    // created in this very run is not in the observed directory yet).
    let declares_access = |groups: &[String]| {
        groups.iter().any(|g| {
            let name = spec
                .groups
                .get(g)
                .map_or(g.as_str(), |x| x.display_name.as_str());
            conn.groups.iter().any(|a| a.eq_ignore_ascii_case(name))
        })
    };
    for (id, u) in &spec.users {
        let listed = match &u.services {
            Some(list) => list.iter().any(|s| s == service),
            None => conn.groups.is_empty() || in_access(id) || declares_access(&u.groups),
        };
        if listed {
            out.insert(
                id.clone(),
                ServiceUser {
                    id: id.clone(),
                    email: u.email.clone(),
                    display_name: u.display_name.clone(),
                    first_name: u.first_name.clone(),
                    last_name: u.last_name.clone(),
                    enabled: u.enable,
                    settings: u.settings().clone(),
                },
            );
        }
    }
    if !access.is_empty() {
        for u in dir.users.values() {
            if out.contains_key(&u.id)
                || spec.users.contains_key(&u.id)
                || u.id.eq_ignore_ascii_case(&spec.lldap.admin_username)
                || !u.groups.iter().any(|g| access.contains(g))
            {
                continue;
            }
            let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
            out.insert(
                u.id.clone(),
                ServiceUser {
                    id: u.id.clone(),
                    email: u.email.clone(),
                    display_name: nonempty(&u.display_name),
                    first_name: nonempty(&u.first_name),
                    last_name: nonempty(&u.last_name),
                    enabled: disabled.is_none_or(|d| !u.groups.contains(&d)),
                    settings: UserServiceSettings::default(),
                },
            );
        }
    }
    out
}

/// Where the password of `user` in `service` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource<'a> {
    /// paasd sets no password in this service.
    None,
    /// A file (the user's passwordFile or the universal file); `enforce` per passwordMode.
    File { path: &'a Path, enforce: bool },
    /// A generated password, kept in the state dir; set at creation.
    Generated,
}

/// The strategy chain: the service's `passwordStrategy` (where `"none"` = LDAP/SSO login), else
/// the user's `passwordStrategy`, else `passwords.strategy`. Vaultwarden never takes one
/// (client-side encryption).
pub fn password_source<'a>(spec: &'a Spec, service: &str, user: &str) -> PasswordSource<'a> {
    if service == "vaultwarden" {
        return PasswordSource::None;
    }
    let Some(conn) = spec.services.get(service) else {
        return PasswordSource::None;
    };
    let su = spec.users.get(user);
    let strategy = match conn.password_strategy {
        Some(None) => return PasswordSource::None,
        Some(Some(s)) => s,
        None => su
            .and_then(|u| u.password_strategy)
            .unwrap_or(spec.passwords.strategy),
    };
    let enforce = su.is_none_or(|u| u.password_mode == crate::spec::PasswordMode::Enforce);
    match strategy {
        PasswordStrategy::PerUser => match su.and_then(|u| u.password_file.as_deref()) {
            Some(path) => PasswordSource::File { path, enforce },
            None => PasswordSource::None,
        },
        PasswordStrategy::Universal => match spec.passwords.universal_password_file.as_deref() {
            Some(path) => PasswordSource::File { path, enforce },
            None => PasswordSource::None,
        },
        PasswordStrategy::Generated => PasswordSource::Generated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{DirGroup, DirUser};
    use crate::spec::parse_spec;
    use serde_json::json;

    fn spec(extra: serde_json::Value) -> Spec {
        let mut v = json!({
            "version": 1,
            "lldap": { "url": "http://l", "ldapUrl": "ldap://l", "baseDn": "dc=x,dc=y", "adminPasswordFile": "/a" },
            "groups": { "family": {} },
            "users": {
                "alice": { "email": "alice@x.y", "passwordFile": "/p/alice", "groups": ["family"] },
                "bob": { "email": "bob@x.y", "services": ["gitlab"], "passwordStrategy": "generated" },
                "carol": { "email": "carol@x.y", "enable": false, "passwordMode": "initial", "passwordFile": "/p/c" }
            },
            "passwords": { "strategy": "perUser", "universalPasswordFile": "/p/u" },
            "nextcloud": { "url": "http://n", "adminUser": "root", "adminPasswordFile": "/n" },
            "gitlab": { "url": "http://g", "tokenFile": "/g", "passwordStrategy": "none" },
            "vaultwarden": { "url": "http://v", "adminTokenFile": "/v", "groups": ["vault"] }
        });
        for (k, x) in extra.as_object().cloned().unwrap_or_default() {
            v[k] = x;
        }
        parse_spec(&v.to_string()).expect("valid")
    }

    fn dir() -> Directory {
        let mut d = Directory::default();
        for (id, name) in [(5, "vault"), (6, "paas_disabled")] {
            d.groups.insert(
                id,
                DirGroup {
                    id,
                    display_name: name.into(),
                    ..DirGroup::default()
                },
            );
        }
        for (id, groups) in [
            ("alice", vec![5]),
            ("zoe", vec![5]),
            ("yves", vec![5, 6]),
            ("xena", vec![]),
        ] {
            d.users.insert(
                id.into(),
                DirUser {
                    id: id.into(),
                    email: format!("{id}@x.y"),
                    groups: groups.into_iter().collect(),
                    ..DirUser::default()
                },
            );
        }
        d
    }

    #[test]
    fn who_gets_an_account() {
        let s = spec(json!({}));
        let d = dir();
        let nc: Vec<_> = service_users(&s, &d, "nextcloud").into_keys().collect();
        assert_eq!(
            nc,
            vec!["alice", "carol"],
            "no `services` and no access groups: every spec user but bob"
        );
        let gl: Vec<_> = service_users(&s, &d, "gitlab").into_keys().collect();
        assert_eq!(gl, vec!["alice", "bob", "carol"]);
        let vw = service_users(&s, &d, "vaultwarden");
        assert_eq!(
            vw.keys().collect::<Vec<_>>(),
            vec!["alice", "yves", "zoe"],
            "members of the access group, hand-made ones too"
        );
        assert!(!vw["yves"].enabled, "in paasd's disabled group");
        assert!(
            service_users(&s, &d, "jellyfin").is_empty(),
            "not configured"
        );
        assert!(!service_users(&s, &d, "nextcloud")["carol"].enabled);
    }

    #[test]
    fn password_strategy_chain() {
        let s = spec(json!({}));
        assert_eq!(
            password_source(&s, "nextcloud", "alice"),
            PasswordSource::File {
                path: Path::new("/p/alice"),
                enforce: true
            }
        );
        assert_eq!(
            password_source(&s, "nextcloud", "carol"),
            PasswordSource::File {
                path: Path::new("/p/c"),
                enforce: false
            }
        );
        assert_eq!(
            password_source(&s, "nextcloud", "bob"),
            PasswordSource::Generated
        );
        assert_eq!(
            password_source(&s, "gitlab", "alice"),
            PasswordSource::None,
            "service logs in through LDAP"
        );
        assert_eq!(
            password_source(&s, "vaultwarden", "alice"),
            PasswordSource::None
        );
        assert_eq!(
            password_source(&s, "nextcloud", "zoe"),
            PasswordSource::None,
            "LLDAP-only user, perUser: no file"
        );
        let u = spec(
            json!({ "passwords": { "strategy": "universal", "universalPasswordFile": "/p/u" } }),
        );
        assert_eq!(
            password_source(&u, "nextcloud", "zoe"),
            PasswordSource::File {
                path: Path::new("/p/u"),
                enforce: true
            }
        );
    }
}
