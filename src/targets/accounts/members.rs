//! Who gets an account in which service (pure).

use std::collections::BTreeMap;

use super::ServiceUser;
use crate::core::id::ServiceKind;
use crate::core::members::Members;
use crate::core::spec::{Spec, UserServiceSettings};

/// The users that get an account in `service`:
/// - spec users whose `services` lists it, or — without `services` — every spec user when the
///   service has no access `groups`, else only members of those groups;
/// - users of LLDAP (also hand-made ones) that are members of the service's access `groups`.
///
/// A spec user with `enable = false` is included with `enabled = false` (its account is
/// disabled); an LLDAP user in paasd's disabled group likewise. `members` is `None` when nobody
/// is known to be a member (LLDAP was never read): then only the spec gives access.
pub fn service_users(
    spec: &Spec,
    members: Option<&Members>,
    service: ServiceKind,
) -> BTreeMap<String, ServiceUser> {
    let mut out = BTreeMap::new();
    let Some(conn) = spec.services.get(service) else {
        return out;
    };
    let in_access = |id: &str| members.is_some_and(|m| m.in_any(id, &conn.groups));
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
            Some(list) => list.contains(&service),
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
    let Some(members) = members.filter(|_| !conn.groups.is_empty()) else {
        return out;
    };
    for m in members.users.values() {
        if out.contains_key(&m.id)
            || spec.users.contains_key(&m.id)
            || m.id.eq_ignore_ascii_case(&spec.lldap.admin_username)
            || !m.in_any(&conn.groups)
        {
            continue;
        }
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        out.insert(
            m.id.clone(),
            ServiceUser {
                id: m.id.clone(),
                email: m.email.clone(),
                display_name: nonempty(&m.display_name),
                first_name: nonempty(&m.first_name),
                last_name: nonempty(&m.last_name),
                enabled: !m.disabled,
                settings: UserServiceSettings::default(),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec::parse_spec;
    use crate::targets::lldap::directory::{DirGroup, DirUser, Directory};
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
        let members = dir().members(s.services.access_groups(), "paas_disabled");
        let d = Some(&members);
        let nc: Vec<_> = service_users(&s, d, ServiceKind::Nextcloud)
            .into_keys()
            .collect();
        assert_eq!(
            nc,
            vec!["alice", "carol"],
            "no `services` and no access groups: every spec user but bob"
        );
        let gl: Vec<_> = service_users(&s, d, ServiceKind::Gitlab)
            .into_keys()
            .collect();
        assert_eq!(gl, vec!["alice", "bob", "carol"]);
        let vw = service_users(&s, d, ServiceKind::Vaultwarden);
        assert_eq!(
            vw.keys().collect::<Vec<_>>(),
            vec!["alice", "yves", "zoe"],
            "members of the access group, hand-made ones too"
        );
        assert!(!vw["yves"].enabled, "in paasd's disabled group");
        assert!(
            service_users(&s, d, ServiceKind::Jellyfin).is_empty(),
            "not configured"
        );
        assert!(!service_users(&s, d, ServiceKind::Nextcloud)["carol"].enabled);
    }

    #[test]
    fn without_known_members_only_the_spec_gives_access() {
        let s = spec(json!({
            "groups": { "family": {}, "vault": {} },
            "users": {
                "alice": { "email": "alice@x.y", "groups": ["vault"] },
                "bob": { "email": "bob@x.y" }
            }
        }));
        let vw: Vec<_> = service_users(&s, None, ServiceKind::Vaultwarden)
            .into_keys()
            .collect();
        assert_eq!(
            vw,
            vec!["alice"],
            "alice is in the access group by the spec"
        );
    }
}
