//! Arbitrary spec + observed LLDAP directory → plan → simulated apply → the next plan is empty
//! (within two runs when the first plan reported a problem that its own changes resolve).
//! Also: the admin account, hand-made undeclared users and built-in groups are never touched.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use paasd::targets::lldap::directory::{AttributeSchema, DirGroup, DirUser, Directory};
use paasd::core::policy::DesiredPassword;
use paasd::targets::lldap::plan::{self, Action, LldapPlan as Plan, PlanInput};
use paasd::targets::lldap::simulate;
use paasd::core::spec::{parse_spec, Spec, MARKER_ATTRIBUTE};
use paasd::core::state::{OwnedUser, State};
use serde_json::{json, Map, Value};

const NOW: u64 = 1_800_000_000;
const USERS: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "zoe", "yann",
];
const GROUPS: [&str; 4] = ["family", "media", "devs", "ops"];
const DIR_GROUPS: [&str; 7] = [
    "family",
    "Media",
    "devs",
    "Team",
    "paas_disabled",
    "old",
    "OPS",
];
const MARKERS: [&str; 6] = ["family", "media", "devs", "ops", "gone", "paas_disabled"];

#[derive(Debug, Arbitrary)]
struct User {
    id: u8,
    groups: Vec<u8>,
    admin: bool,
    disabled: bool,
    initial: bool,
    password: u8,
    fingerprint: u8,
    display_name: Option<u8>,
    nickname: Option<u8>,
    tags: Option<Vec<u8>>,
    other_email: bool,
}

#[derive(Debug, Arbitrary)]
struct DirUserIn {
    id: u8,
    marked: bool,
    in_state: bool,
    groups: Vec<u8>,
    builtin: Vec<u8>,
    display_name: Option<u8>,
    nickname: Option<u8>,
    other_email: bool,
}

#[derive(Debug, Arbitrary)]
struct Input {
    users: Vec<User>,
    groups: Vec<(u8, u8, Option<u8>)>,
    removal: u8,
    grace: bool,
    guard: bool,
    dir_users: Vec<DirUserIn>,
    dir_groups: Vec<(u8, Option<u8>, Option<u8>)>,
    force: bool,
}

fn schema(is_list: bool) -> AttributeSchema {
    AttributeSchema {
        attribute_type: "STRING".into(),
        is_list,
        is_editable: true,
        is_readonly: false,
        is_hardcoded: false,
    }
}

fn pick<'a>(pool: &[&'a str], i: u8) -> &'a str {
    pool[i as usize % pool.len()]
}

fn build(inp: &Input) -> Option<(Spec, Directory, State, BTreeMap<String, DesiredPassword>)> {
    let mut groups = Map::new();
    for (g, variant, color) in inp.groups.iter().take(6) {
        let key = pick(&GROUPS, *g);
        let name = match variant % 3 {
            0 => key.to_string(),
            1 => key.to_ascii_uppercase(),
            _ => format!("{key}-team"),
        };
        let mut o = json!({ "displayName": name });
        if let Some(c) = color {
            o["attributes"] = json!({ "color": format!("c{}", c % 3) });
        }
        groups.insert(key.to_string(), o);
    }
    let mut users = Map::new();
    let mut passwords = BTreeMap::new();
    for u in inp.users.iter().take(8) {
        let id = pick(&USERS[..6], u.id);
        let email = if u.other_email {
            "zoe@example.com".to_string()
        } else {
            format!("{id}@example.com")
        };
        let gs: BTreeSet<&str> = u
            .groups
            .iter()
            .take(4)
            .map(|g| pick(&GROUPS, *g))
            .filter(|g| groups.contains_key(*g))
            .collect();
        let mut o =
            json!({ "email": email, "groups": gs, "admin": u.admin, "enable": !u.disabled });
        if u.initial {
            o["passwordMode"] = json!("initial");
        }
        if let Some(d) = u.display_name {
            o["displayName"] = json!(format!("{id} {}", d % 3));
        }
        let mut attrs = Map::new();
        if let Some(n) = u.nickname {
            attrs.insert("nickname".into(), json!(format!("nick{}", n % 3)));
        }
        if let Some(t) = &u.tags {
            attrs.insert(
                "tags".into(),
                json!(t
                    .iter()
                    .take(3)
                    .map(|x| format!("t{}", x % 3))
                    .collect::<Vec<_>>()),
            );
        }
        o["attributes"] = Value::Object(attrs);
        match u.password % 3 {
            1 => {
                o["passwordFile"] = json!(format!("/run/pw/{id}"));
                passwords.insert(
                    id.to_string(),
                    DesiredPassword::Known {
 fingerprint: format!("fp{}", u.fingerprint % 3),
 mode: paasd::core::spec::PasswordMode::Enforce,
 },
                );
            }
            2 => {
                o["passwordFile"] = json!(format!("/run/pw/{id}"));
                passwords.insert(id.to_string(), DesiredPassword::Unusable("bad mode".into()));
            }
            _ => {}
        }
        users.insert(id.to_string(), o);
    }
    let removal = ["disable", "delete", "keep"][inp.removal as usize % 3];
    let spec_json = json!({
        "version": 1,
        "lldap": { "url": "http://127.0.0.1:17170", "ldapUrl": "ldap://127.0.0.1:3890",
                   "baseDn": "dc=example,dc=com", "adminPasswordFile": "/run/pw/admin" },
        "removal": removal,
        "removalGracePeriod": if inp.grace { "1h" } else { "0" },
        "removalGuard": { "maxPercent": if inp.guard { 100 } else { 25 } },
        "groups": groups,
        "users": users,
    });
    let spec = parse_spec(&spec_json.to_string()).ok()?;

    let mut dir = Directory::default();
    for (id, name) in [
        (1, "lldap_admin"),
        (2, "lldap_password_manager"),
        (3, "lldap_strict_readonly"),
    ] {
        dir.groups.insert(
            id,
            DirGroup {
                id,
                display_name: name.into(),
                attributes: Default::default(),
            },
        );
    }
    dir.users.insert(
        "admin".into(),
        DirUser {
            id: "admin".into(),
            email: "admin@example.com".into(),
            groups: vec![1],
            ..DirUser::default()
        },
    );
    dir.user_attributes.insert("nickname".into(), schema(false));
    dir.user_attributes.insert("tags".into(), schema(true));
    dir.group_attributes.insert("color".into(), schema(false));
    if inp.dir_users.iter().any(|u| u.marked) || inp.dir_groups.iter().any(|g| g.1.is_some()) {
        dir.user_attributes
            .insert(MARKER_ATTRIBUTE.into(), schema(false));
        dir.group_attributes
            .insert(MARKER_ATTRIBUTE.into(), schema(false));
    }
    let (mut names, mut markers, mut ids) = (BTreeSet::new(), BTreeSet::new(), BTreeMap::new());
    for (i, (n, marker, color)) in inp.dir_groups.iter().take(7).enumerate() {
        let name = pick(&DIR_GROUPS, *n);
        if !names.insert(name.to_ascii_lowercase()) {
            continue;
        }
        let id = 10 + i as i64;
        let mut attributes = BTreeMap::new();
        if let Some(m) = marker {
            let key = pick(&MARKERS, *m);
            if markers.insert(key) {
                attributes.insert(MARKER_ATTRIBUTE.to_string(), vec![key.to_string()]);
            }
        }
        if let Some(c) = color {
            attributes.insert("color".into(), vec![format!("c{}", c % 3)]);
        }
        dir.groups.insert(
            id,
            DirGroup {
                id,
                display_name: name.into(),
                attributes: attributes.into_iter().collect(),
            },
        );
        ids.insert(*n as usize % DIR_GROUPS.len(), id);
    }
    let mut state = State::default();
    let mut emails = BTreeSet::from(["admin@example.com".to_string()]);
    for u in inp.dir_users.iter().take(8) {
        let id = pick(&USERS, u.id);
        let email = if u.other_email {
            format!("{id}@hand.example.org")
        } else {
            format!("{id}@example.com")
        };
        if dir.users.contains_key(id) || !emails.insert(email.clone()) {
            continue;
        }
        let mut attributes = BTreeMap::new();
        if u.marked {
            attributes.insert(MARKER_ATTRIBUTE.to_string(), vec!["true".to_string()]);
        }
        if let Some(n) = u.nickname {
            attributes.insert("nickname".into(), vec![format!("nick{}", n % 3)]);
        }
        let mut gs: BTreeSet<i64> = u
            .groups
            .iter()
            .filter_map(|g| ids.get(&(*g as usize % DIR_GROUPS.len())).copied())
            .collect();
        gs.extend(u.builtin.iter().take(2).map(|b| 1 + i64::from(b % 3)));
        let display_name = u
            .display_name
            .map(|d| format!("{id} {}", d % 3))
            .unwrap_or_default();
        dir.users.insert(
            id.to_string(),
            DirUser {
                id: id.to_string(),
                email,
                display_name,
                attributes: attributes.into_iter().collect(),
                groups: gs.into_iter().collect(),
                ..DirUser::default()
            },
        );
        if u.in_state {
            state.lldap.users.insert(
                id.to_string(),
                OwnedUser {
                    origin: paasd::core::state::Origin::Created,
                    ..OwnedUser::default()
                },
            );
        }
    }
    Some((spec, dir, state, passwords))
}

fn run(
    spec: &Spec,
    dir: &Directory,
    state: &State,
    pw: &BTreeMap<String, DesiredPassword>,
    force: bool,
) -> Plan {
    plan::plan(&PlanInput {
        spec,
        dir,
        state,
        passwords: pw,
        verify_passwords: false,
        force,
        now: NOW,
    })
}

fuzz_target!(|inp: Input| {
    let Some((spec, mut dir, mut state, pw)) = build(&inp) else {
        return;
    };
    let p = run(&spec, &dir, &state, &pw, inp.force);
    assert_eq!(
        p,
        run(&spec, &dir, &state, &pw, inp.force),
        "plan is not deterministic"
    );
    let managed: BTreeSet<String> = dir
        .users
        .values()
        .filter(|u| u.is_marked() || state.lldap.users.contains_key(&u.id))
        .map(|u| u.id.clone())
        .collect();
    for a in p.changes.iter().flat_map(|c| &c.actions) {
        let user = match a {
            Action::CreateUser { id, .. }
                        | Action::DeleteUser { id } => Some(id),
            Action::AddToGroup { user, .. }
            | Action::RemoveFromGroup { user, .. }
            | Action::SetPassword { user, .. }
            | Action::MarkRemoved { user, .. } => Some(user),
            _ => None,
        };
        if let Some(u) = user {
            assert_ne!(u, "admin", "the admin account is touched: {a:?}");
            assert!(
                spec.users.contains_key(u) || managed.contains(u),
                "hand-made user touched: {a:?}"
            );
        }
        match a {
            Action::UpdateGroup { id, .. } | Action::DeleteGroup { id, .. } => {
                assert!(*id > 3, "built-in group: {a:?}")
            }
            Action::AddToGroup { group, .. } | Action::RemoveFromGroup { group, .. } => {
                assert!(
                    !matches!(group.id, Some(2 | 3)),
                    "built-in group membership: {a:?}"
                )
            }
            _ => {}
        }
    }
    simulate::apply(&p, &mut dir, &mut state, &pw);
    let again = run(&spec, &dir, &state, &pw, inp.force);
    if p.problems.is_empty() {
        assert!(again.is_empty(), "not converged:\n{p}\nthen:\n{again}");
    } else {
        simulate::apply(&again, &mut dir, &mut state, &pw);
        let third = run(&spec, &dir, &state, &pw, inp.force);
        assert!(
            third.is_empty(),
            "not converged in two runs:\n{p}\nthen:\n{again}\nthen:\n{third}"
        );
    }
});
