//! Property tests of the pure plan: random specs against random observed LLDAP directories.
//!
//! Properties, for every generated (spec, directory, state, passwords):
//! 1. convergence: after `simulate::apply` of the plan, the next plan (same passwords, same
//!    `now`) has no change;
//! 2. hand-made users that the spec does not declare never appear in any action;
//! 3. the admin account is never in any action, built-in `lldap_*` groups are never updated or
//!    deleted, and only `lldap_admin` memberships of built-in groups ever change;
//! 4. the plan is deterministic (same input → same plan, also after a JSON round trip of the
//!    directory and the state).

use std::collections::{BTreeMap, BTreeSet};

use paasd::core::attributes::Attributes;
use paasd::core::policy::DesiredPassword;
use paasd::core::spec::{parse_spec, Spec, MARKER_ATTRIBUTE};
use paasd::core::state::{OwnedUser, State};
use paasd::targets::lldap::directory::{AttributeSchema, DirGroup, DirUser, Directory};
use paasd::targets::lldap::plan::{self, Action, LldapPlan as Plan, PlanInput};
use paasd::targets::lldap::simulate;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Map, Value};

const NOW: u64 = 1_800_000_000;
/// Users the spec may declare; the directory may hold any of them, plus `zoe` and `yann`.
const USER_POOL: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "frank"];
const HAND_POOL: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "zoe", "yann",
];
const GROUP_POOL: [&str; 4] = ["family", "media", "devs", "ops"];
/// Names LLDAP groups may have (case varies: LLDAP compares names case-insensitively).
const DIR_GROUP_NAMES: [&str; 7] = [
    "family",
    "Media",
    "devs",
    "Team",
    "paas_disabled",
    "old",
    "OPS",
];
const BUILTIN: [(i64, &str); 3] = [
    (1, "lldap_admin"),
    (2, "lldap_password_manager"),
    (3, "lldap_strict_readonly"),
];

fn schema(is_list: bool) -> AttributeSchema {
    AttributeSchema {
        attribute_type: "STRING".into(),
        is_list,
        is_editable: true,
        is_readonly: false,
        is_hardcoded: false,
    }
}

// ---------------------------------------------------------------------------------------------
// Generated inputs.

#[derive(Debug, Clone)]
struct GenUser {
    id: usize,
    groups: Vec<usize>,
    admin: bool,
    enable: bool,
    initial: bool,
    /// 0 none, 1 a fingerprint, 2 an unusable file.
    password: u8,
    fingerprint: u8,
    display_name: Option<u8>,
    first_name: Option<u8>,
    nickname: Option<u8>,
    tags: Option<Vec<u8>>,
    /// Use the e-mail of a hand-made user (a conflict).
    steal_email: bool,
}

#[derive(Debug, Clone)]
struct GenDirUser {
    id: usize,
    marked: bool,
    in_state: bool,
    groups: Vec<usize>,
    builtin_groups: Vec<i64>,
    display_name: Option<u8>,
    nickname: Option<u8>,
    other_email: bool,
}

#[derive(Debug, Clone)]
struct GenDirGroup {
    name: usize,
    /// Index into GROUP_POOL + ["gone", "paas_disabled"] for the marker.
    marker: Option<usize>,
    color: Option<u8>,
}

#[derive(Debug, Clone)]
struct Case {
    users: Vec<GenUser>,
    /// (group index, display name variant, color).
    groups: Vec<(usize, u8, Option<u8>)>,
    removal: u8,
    grace: bool,
    guard: u8,
    dir_users: Vec<GenDirUser>,
    dir_groups: Vec<GenDirGroup>,
    force: bool,
    verify: bool,
}

fn gen_user() -> impl Strategy<Value = GenUser> {
    (
        (
            0..USER_POOL.len(),
            prop::collection::vec(0..GROUP_POOL.len(), 0..3),
            any::<bool>(),
            prop::bool::weighted(0.85),
            any::<bool>(),
            0u8..3,
            0u8..3,
        ),
        (
            prop::option::of(0u8..3),
            prop::option::of(0u8..3),
            prop::option::of(0u8..3),
            prop::option::of(prop::collection::vec(0u8..3, 0..3)),
            prop::bool::weighted(0.1),
        ),
    )
        .prop_map(
            |(
                (id, groups, admin, enable, initial, password, fingerprint),
                (display_name, first_name, nickname, tags, steal_email),
            )| GenUser {
                id,
                groups,
                admin,
                enable,
                initial,
                password,
                fingerprint,
                display_name,
                first_name,
                nickname,
                tags,
                steal_email,
            },
        )
}

fn gen_dir_user() -> impl Strategy<Value = GenDirUser> {
    (
        0..HAND_POOL.len(),
        prop::bool::weighted(0.4),
        prop::bool::weighted(0.2),
        prop::collection::vec(0..DIR_GROUP_NAMES.len(), 0..3),
        prop::collection::vec(1i64..4, 0..2),
        prop::option::of(0u8..3),
        prop::option::of(0u8..3),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(
                id,
                marked,
                in_state,
                groups,
                builtin_groups,
                display_name,
                nickname,
                other_email,
            )| {
                GenDirUser {
                    id,
                    marked,
                    in_state,
                    groups,
                    builtin_groups,
                    display_name,
                    nickname,
                    other_email,
                }
            },
        )
}

fn gen_dir_group() -> impl Strategy<Value = GenDirGroup> {
    (
        0..DIR_GROUP_NAMES.len(),
        prop::option::of(0..GROUP_POOL.len() + 2),
        prop::option::of(0u8..3),
    )
        .prop_map(|(name, marker, color)| GenDirGroup {
            name,
            marker,
            color,
        })
}

fn gen_case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(gen_user(), 0..6),
        prop::collection::vec(
            (0..GROUP_POOL.len(), 0u8..3, prop::option::of(0u8..3)),
            0..4,
        ),
        0u8..3,
        any::<bool>(),
        0u8..2,
        prop::collection::vec(gen_dir_user(), 0..7),
        prop::collection::vec(gen_dir_group(), 0..5),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(users, groups, removal, grace, guard, dir_users, dir_groups, force, verify)| Case {
                users,
                groups,
                removal,
                grace,
                guard,
                dir_users,
                dir_groups,
                force,
                verify,
            },
        )
}

// ---------------------------------------------------------------------------------------------
// Building spec, directory, state and passwords from a case.

struct World {
    spec: Spec,
    dir: Directory,
    state: State,
    passwords: BTreeMap<String, DesiredPassword>,
    force: bool,
    verify: bool,
}

fn group_display(key: &str, variant: u8) -> String {
    match variant {
        0 => key.to_string(),
        1 => key.to_ascii_uppercase(),
        _ => format!("{key}-team"),
    }
}

fn build(case: &Case) -> Option<World> {
    // Spec groups: a group may be referenced by users only if declared.
    let mut groups = Map::new();
    for (g, variant, color) in &case.groups {
        let key = GROUP_POOL[*g];
        let mut o = json!({ "displayName": group_display(key, *variant) });
        if let Some(c) = color {
            o["attributes"] = json!({ "color": format!("c{c}") });
        }
        groups.insert(key.to_string(), o);
    }
    let mut users = Map::new();
    let mut passwords = BTreeMap::new();
    for u in &case.users {
        let id = USER_POOL[u.id];
        let mut o = Map::new();
        let email = if u.steal_email {
            // zoe's address, if zoe exists by hand this is a conflict.
            "zoe@example.com".to_string()
        } else {
            format!("{id}@example.com")
        };
        o.insert("email".into(), json!(email));
        let gs: Vec<&str> = u
            .groups
            .iter()
            .map(|g| GROUP_POOL[*g])
            .filter(|g| groups.contains_key(*g))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        o.insert("groups".into(), json!(gs));
        o.insert("admin".into(), json!(u.admin));
        o.insert("enable".into(), json!(u.enable));
        if u.initial {
            o.insert("passwordMode".into(), json!("initial"));
        }
        if let Some(d) = u.display_name {
            o.insert("displayName".into(), json!(format!("{id} {d}")));
        }
        if let Some(f) = u.first_name {
            o.insert("firstName".into(), json!(format!("F{f}")));
        }
        let mut attrs = Map::new();
        if let Some(n) = u.nickname {
            attrs.insert("nickname".into(), json!(format!("nick{n}")));
        }
        if let Some(t) = &u.tags {
            attrs.insert(
                "tags".into(),
                json!(t.iter().map(|x| format!("t{x}")).collect::<Vec<_>>()),
            );
        }
        if !attrs.is_empty() {
            o.insert("attributes".into(), Value::Object(attrs));
        }
        match u.password {
            1 => {
                o.insert("passwordFile".into(), json!(format!("/run/pw/{id}")));
                passwords.insert(
                    id.to_string(),
                    DesiredPassword::Known {
                        fingerprint: format!("fp{}", u.fingerprint),
                        mode: paasd::core::spec::PasswordMode::Enforce,
                    },
                );
            }
            2 => {
                o.insert("passwordFile".into(), json!(format!("/run/pw/{id}")));
                passwords.insert(id.to_string(), DesiredPassword::Unusable("bad mode".into()));
            }
            _ => {}
        }
        users.insert(id.to_string(), Value::Object(o));
    }
    let removal = ["disable", "delete", "keep"][case.removal as usize];
    let max_percent = [25, 100][case.guard as usize];
    let spec_json = json!({
        "version": 1,
        "lldap": {
            "url": "http://127.0.0.1:17170",
            "ldapUrl": "ldap://127.0.0.1:3890",
            "baseDn": "dc=example,dc=com",
            "adminPasswordFile": "/run/pw/admin"
        },
        "removal": removal,
        "removalGracePeriod": if case.grace { "1h" } else { "0" },
        "removalGuard": { "maxPercent": max_percent },
        "groups": groups,
        "users": users,
    });
    // Duplicate e-mails (stolen twice) are a spec error: such a case is not generated.
    let spec = parse_spec(&spec_json.to_string()).ok()?;

    // The directory: a fresh LLDAP, then groups and users.
    let mut dir = Directory::default();
    for (id, name) in BUILTIN {
        dir.groups.insert(
            id,
            DirGroup {
                id,
                display_name: name.into(),
                attributes: Attributes::new(),
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
    let any_marker = case.dir_users.iter().any(|u| u.marked)
        || case.dir_groups.iter().any(|g| g.marker.is_some());
    if any_marker {
        dir.user_attributes
            .insert(MARKER_ATTRIBUTE.into(), schema(false));
        dir.group_attributes
            .insert(MARKER_ATTRIBUTE.into(), schema(false));
    }
    let mut names = BTreeSet::new();
    let mut markers = BTreeSet::new();
    let mut name_to_id = BTreeMap::new();
    for (i, g) in case.dir_groups.iter().enumerate() {
        let name = DIR_GROUP_NAMES[g.name];
        // LLDAP group names are unique (case-insensitively); markers are unique too.
        if !names.insert(name.to_ascii_lowercase()) {
            continue;
        }
        let id = 10 + i as i64;
        let mut attributes = BTreeMap::new();
        if let Some(m) = g.marker {
            let key = GROUP_POOL
                .get(m)
                .copied()
                .unwrap_or(if m == GROUP_POOL.len() {
                    "gone"
                } else {
                    "paas_disabled"
                });
            if markers.insert(key) {
                attributes.insert(MARKER_ATTRIBUTE.to_string(), vec![key.to_string()]);
            }
        }
        if let Some(c) = g.color {
            attributes.insert("color".into(), vec![format!("c{c}")]);
        }
        dir.groups.insert(
            id,
            DirGroup {
                id,
                display_name: name.into(),
                attributes: attributes.into_iter().collect(),
            },
        );
        name_to_id.insert(g.name, id);
    }
    let mut state = State::default();
    let mut emails = BTreeSet::from(["admin@example.com".to_string()]);
    for u in &case.dir_users {
        let id = HAND_POOL[u.id];
        if dir.users.contains_key(id) {
            continue;
        }
        let email = if u.other_email {
            format!("{id}@hand.example.org")
        } else {
            format!("{id}@example.com")
        };
        if !emails.insert(email.clone()) {
            continue;
        }
        let mut attributes = BTreeMap::new();
        if u.marked {
            attributes.insert(MARKER_ATTRIBUTE.to_string(), vec!["true".to_string()]);
        }
        if let Some(n) = u.nickname {
            attributes.insert("nickname".into(), vec![format!("nick{n}")]);
        }
        let mut groups: BTreeSet<i64> = u
            .groups
            .iter()
            .filter_map(|g| name_to_id.get(g).copied())
            .collect();
        groups.extend(u.builtin_groups.iter().copied());
        dir.users.insert(
            id.to_string(),
            DirUser {
                id: id.to_string(),
                email,
                display_name: u
                    .display_name
                    .map(|d| format!("{id} {d}"))
                    .unwrap_or_default(),
                attributes: attributes.into_iter().collect(),
                groups: groups.into_iter().collect(),
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
    Some(World {
        spec,
        dir,
        state,
        passwords,
        force: case.force,
        verify: case.verify,
    })
}

impl World {
    fn plan(&self) -> Plan {
        plan::plan(&PlanInput {
            spec: &self.spec,
            dir: &self.dir,
            state: &self.state,
            passwords: &self.passwords,
            verify_passwords: self.verify,
            force: self.force,
            now: NOW,
        })
    }
}

/// The user an action is about, if any.
fn action_user(a: &Action) -> Option<&str> {
    match a {
        Action::CreateUser { id, .. } | Action::DeleteUser { id } => Some(id),
        Action::AddToGroup { user, .. }
        | Action::RemoveFromGroup { user, .. }
        | Action::SetPassword { user, .. }
        | Action::MarkRemoved { user, .. } => Some(user),
        _ => None,
    }
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let Some(mut w) = build(case) else {
        return Ok(());
    };
    let p = w.plan();

    // 4. Deterministic, also from a serialised copy of the inputs.
    prop_assert_eq!(&p, &w.plan());
    let dir2: Directory =
        serde_json::from_str(&serde_json::to_string(&w.dir).expect("ser")).expect("de");
    let state2: State =
        serde_json::from_str(&serde_json::to_string(&w.state).expect("ser")).expect("de");
    let p2 = plan::plan(&PlanInput {
        spec: &w.spec,
        dir: &dir2,
        state: &state2,
        passwords: &w.passwords,
        verify_passwords: w.verify,
        force: w.force,
        now: NOW,
    });
    prop_assert_eq!(&p, &p2);

    // 2. and 3.
    let managed: BTreeSet<String> = w
        .dir
        .users
        .values()
        .filter(|u| u.is_marked() || w.state.lldap.users.contains_key(&u.id))
        .map(|u| u.id.clone())
        .collect();
    for c in &p.changes {
        for a in &c.actions {
            if let Some(u) = action_user(a) {
                let lower = u.to_ascii_lowercase();
                prop_assert!(
                    lower != "admin",
                    "the admin account is in an action: {:?}",
                    a
                );
                prop_assert!(
                    w.spec.users.contains_key(&lower) || managed.contains(&lower),
                    "unmanaged, undeclared user {} is in an action: {:?}\n{}",
                    u,
                    a,
                    p
                );
            }
            match a {
                Action::UpdateGroup { id, .. } | Action::DeleteGroup { id, .. } => {
                    prop_assert!(*id > 3, "built-in group {} modified: {:?}", id, a);
                    let name = &w.dir.groups[id].display_name;
                    prop_assert!(!name.starts_with("lldap_"), "{:?}", a);
                }
                Action::AddToGroup { group, .. } | Action::RemoveFromGroup { group, .. } => {
                    prop_assert!(
                        !matches!(group.id, Some(2) | Some(3)),
                        "membership of a built-in group other than lldap_admin: {:?}",
                        a
                    );
                }
                _ => {}
            }
        }
    }

    // 1. Convergence.
    simulate::apply(&p, &mut w.dir, &mut w.state, &w.passwords);
    // `verify_passwords` re-verifies every enforced password on each run by design.
    w.verify = false;
    let again = w.plan();
    if p.problems.is_empty() {
        prop_assert!(
            again.is_empty(),
            "the plan after applying the plan is not empty:\nfirst:\n{}\nsecond:\n{}",
            p,
            again
        );
    } else {
        // A conflict reported as a problem may be resolved by the plan's own changes (a group
        // named like paasd's disabled group but marked as another spec group is renamed or
        // deleted): the object that had the problem is then handled by the next run.
        simulate::apply(&again, &mut w.dir, &mut w.state, &w.passwords);
        let third = w.plan();
        prop_assert!(
            third.is_empty(),
            "no convergence in two runs:\nfirst:\n{}\nsecond:\n{}\nthird:\n{}",
            p,
            again,
            third
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config {
        cases: 400,
        max_shrink_iters: 2000,
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn plan_properties(case in gen_case()) {
        check(&case)?;
    }
}

/// The generator produces the interesting cases, not only trivial ones: measured over a fixed
/// sample, most plans have changes and some have problems, adoptions and removals.
#[test]
fn generator_covers_interesting_cases() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut built, mut with_changes, mut with_problems, mut adopts, mut removals) =
        (0, 0, 0, 0, 0);
    for _ in 0..300 {
        let case = gen_case()
            .new_tree(&mut runner)
            .expect("generate")
            .current();
        let Some(w) = build(&case) else { continue };
        built += 1;
        let p = w.plan();
        with_changes += usize::from(!p.is_empty());
        with_problems += usize::from(!p.problems.is_empty());
        adopts += usize::from(p.count(paasd::core::plan::Op::Adopt) > 0);
        removals += usize::from(p.changes.iter().any(|c| {
            !w.spec.users.contains_key(&c.name) && c.kind == paasd::core::plan::ObjectKind::User
        }));
    }
    assert!(built > 250, "most generated specs are valid: {built}");
    assert!(with_changes > 200, "{with_changes}");
    assert!(with_problems > 10, "{with_problems}");
    assert!(adopts > 30, "{adopts}");
    assert!(removals > 10, "{removals}");
}

/// Shrunk from `plan_properties` (bug in `State::record`, src/state.rs): a user paasd owns only
/// through its `paasd-managed` marker (the state file was lost, or never listed it) leaves the
/// spec under `removal = "delete"` with a grace period. The plan records the removal time with a
/// `MarkRemoved` action, but `State::record(Effect::MarkRemoved)` only updates users already in
/// the state, so the timestamp is dropped: every run plans the same `MarkRemoved` again, the
/// grace period never starts and the user is never deleted.
#[test]
fn removal_timestamp_is_kept_for_users_owned_through_the_marker() {
    let case = Case {
        users: vec![],
        groups: vec![],
        removal: 1, // delete
        grace: true,
        guard: 0,
        dir_users: vec![GenDirUser {
            id: 0, // alice, marked, not in the state file
            marked: true,
            in_state: false,
            groups: vec![],
            builtin_groups: vec![],
            display_name: None,
            nickname: None,
            other_email: false,
        }],
        dir_groups: vec![],
        force: false,
        verify: false,
    };
    let mut w = build(&case).expect("valid case");
    let p = w.plan();
    assert!(
        p.changes.iter().flat_map(|c| &c.actions).any(
            |a| matches!(a, Action::MarkRemoved { user, since } if user == "alice" && *since == NOW)
        ),
        "{p}"
    );
    simulate::apply(&p, &mut w.dir, &mut w.state, &w.passwords);
    assert_eq!(
        w.state
            .lldap
            .users
            .get("alice")
            .and_then(|u| u.removed_since),
        Some(NOW),
        "the removal time of alice was not recorded"
    );
    assert!(w.plan().is_empty(), "{}", w.plan());
}
