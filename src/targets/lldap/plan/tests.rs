use super::*;
use crate::core::spec::parse_spec;
use crate::core::state::Origin;
use crate::targets::lldap::directory::{AttributeSchema, DirGroup, DirUser};
use crate::targets::lldap::simulate;
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn spec(users: Value, groups: Value, extra: Value) -> Spec {
    let mut v = json!({
        "version": 1,
        "lldap": {
            "url": "http://127.0.0.1:17170",
            "ldapUrl": "ldap://127.0.0.1:3890",
            "baseDn": "dc=example,dc=com",
            "adminPasswordFile": "/run/credentials/paasd.service/lldap-admin-password"
        },
        "groups": groups,
        "users": users,
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            o.insert(k.clone(), x.clone());
        }
    }
    parse_spec(&v.to_string()).expect("test spec must be valid")
}

fn hardcoded() -> AttributeSchema {
    AttributeSchema {
        attribute_type: "STRING".into(),
        is_list: false,
        is_editable: true,
        is_readonly: false,
        is_hardcoded: true,
    }
}

/// A fresh LLDAP: the admin in lldap_admin, the three built-in groups, the hard-coded schema.
fn fresh() -> Directory {
    let mut d = Directory::default();
    for (id, name) in [
        (1, "lldap_admin"),
        (2, "lldap_password_manager"),
        (3, "lldap_strict_readonly"),
    ] {
        d.groups.insert(
            id,
            DirGroup {
                id,
                display_name: name.into(),
                attributes: Attributes::new(),
            },
        );
    }
    d.users.insert(
        "admin".into(),
        DirUser {
            id: "admin".into(),
            email: "admin@example.com".into(),
            groups: [1].into_iter().collect(),
            ..DirUser::default()
        },
    );
    for a in ["first_name", "last_name", "avatar"] {
        d.user_attributes.insert(a.into(), hardcoded());
    }
    d
}

fn hand_made_user(d: &mut Directory, id: &str, groups: &[i64]) {
    let mut user = DirUser {
        id: id.into(),
        email: format!("{id}@example.com"),
        ..DirUser::default()
    };
    for g in groups {
        user.join_group(*g);
    }
    d.users.insert(id.into(), user);
}

/// A known password; LLDAP's plan takes its mode from the spec.
fn known(fingerprint: &str) -> DesiredPassword {
    DesiredPassword::Known {
        fingerprint: fingerprint.into(),
        mode: crate::core::spec::PasswordMode::Enforce,
    }
}

struct World {
    dir: Directory,
    state: State,
    passwords: BTreeMap<String, DesiredPassword>,
    verify: bool,
    force: bool,
    now: u64,
}

impl World {
    fn new() -> Self {
        World {
            dir: fresh(),
            state: State::default(),
            passwords: BTreeMap::new(),
            verify: false,
            force: false,
            now: 1_000_000,
        }
    }

    fn plan(&self, spec: &Spec) -> LldapPlan {
        plan(&PlanInput {
            spec,
            dir: &self.dir,
            state: &self.state,
            passwords: &self.passwords,
            verify_passwords: self.verify,
            force: self.force,
            now: self.now,
        })
    }

    /// Plans, applies the plan to the model, and returns the plan.
    fn apply(&mut self, spec: &Spec) -> LldapPlan {
        let p = self.plan(spec);
        simulate::apply(&p, &mut self.dir, &mut self.state, &self.passwords);
        p
    }

    fn group_id(&self, name: &str) -> i64 {
        self.dir.group_by_name(name).expect("group exists").id
    }

    fn groups_of(&self, user: &str) -> BTreeSet<String> {
        let u = self.dir.user(user).expect("user exists");
        u.groups
            .iter()
            .map(|g| self.dir.groups[g].display_name.clone())
            .collect()
    }
}

fn ops(p: &LldapPlan) -> Vec<(ObjectKind, String, Op)> {
    p.changes
        .iter()
        .map(|c| (c.kind, c.name.clone(), c.op))
        .collect()
}

fn alice_bob() -> Spec {
    spec(
        json!({
            "alice": { "email": "alice@example.com", "displayName": "Alice", "groups": ["family", "media"], "admin": true },
            "bob": { "email": "bob@example.com", "groups": ["family"] }
        }),
        json!({ "family": {}, "media": { "displayName": "Media" } }),
        json!({}),
    )
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn first_plan_creates_everything_in_dependency_order_and_the_second_is_empty() {
    let mut w = World::new();
    let s = alice_bob();
    let p = w.apply(&s);
    let kinds: Vec<ObjectKind> = p.changes.iter().map(|c| c.kind).collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(kinds, sorted, "schema, then groups, then users");
    assert_eq!(p.count(Op::Create), 2 + 3 + 2, "{:#?}", ops(&p));
    assert!(p.problems.is_empty());
    assert_eq!(
        w.groups_of("alice"),
        set(&["family", "Media", "lldap_admin"])
    );
    assert_eq!(w.groups_of("bob"), set(&["family"]));
    assert!(w.dir.user("alice").expect("alice").is_marked());
    assert_eq!(w.state.lldap.users["alice"].origin, Origin::Created);
    assert_eq!(w.state.lldap.groups["media"].id, Some(w.group_id("Media")));

    let again = w.plan(&s);
    assert!(again.is_empty(), "second plan must be empty: {again}");
    assert_eq!(again.unchanged_users, 2);
    assert_eq!(again.unchanged_groups, 2);
    assert_eq!(again.to_string(), "", "nothing to show");
    assert_eq!(
        again.summary(),
        "Plan: 0 to create, 0 to change, 0 to delete."
    );
}

#[test]
fn updates_are_attribute_by_attribute_and_omitted_fields_stay() {
    let mut w = World::new();
    w.apply(&alice_bob());
    // Someone sets bob's display name by hand: the spec does not manage it, so it stays.
    w.dir.users.get_mut("bob").expect("bob").display_name = "Bobby".into();
    let s = spec(
        json!({
            "alice": { "email": "alice@new.example.com", "displayName": "Alice", "groups": ["family"], "admin": true },
            "bob": { "email": "bob@example.com", "groups": ["family"] }
        }),
        json!({ "family": {}, "media": { "displayName": "Media" } }),
        json!({}),
    );
    let p = w.apply(&s);
    assert_eq!(
        ops(&p),
        vec![(ObjectKind::User, "alice".into(), Op::Update)]
    );
    let c = &p.changes[0];
    assert_eq!(
        c.actions,
        vec![
            Action::UpdateUser(Box::new(UserUpdate {
                id: "alice".into(),
                email: Some("alice@new.example.com".into()),
                display_name: None,
                first_name: None,
                last_name: None,
                insert_attributes: Attributes::new(),
                remove_attributes: Vec::new(),
            })),
            Action::RemoveFromGroup {
                user: "alice".into(),
                group: GroupRef {
                    name: "Media".into(),
                    id: Some(w.group_id("Media")),
                    key: None
                }
            }
        ]
    );
    let shown = p.to_string();
    assert!(shown.contains("~ email"), "{shown}");
    assert!(
        shown.contains("\"alice@example.com\" -> \"alice@new.example.com\""),
        "{shown}"
    );
    assert!(shown.contains("-Media"), "{shown}");
    assert_eq!(w.dir.user("bob").expect("bob").display_name, "Bobby");
    assert!(w.plan(&s).is_empty());
}

#[test]
fn hand_made_users_and_memberships_are_never_touched() {
    let mut w = World::new();
    w.apply(&alice_bob());
    let family = w.group_id("family");
    hand_made_user(&mut w.dir, "zoe", &[family, 1]);
    for removal in ["disable", "delete", "keep"] {
        let s = spec(
            json!({}),
            json!({}),
            json!({ "removal": removal, "removalGuard": { "maxPercent": 100 } }),
        );
        let p = w.plan(&s);
        assert!(
            p.changes.iter().all(|c| c.name != "zoe"),
            "removal={removal}: {p}"
        );
    }
    // Declared groups keep their hand-made members when managed members change.
    let p = w.plan(&alice_bob());
    assert!(p.is_empty(), "{p}");
    assert!(w.dir.user("zoe").expect("zoe").groups.contains(&family));
}

#[test]
fn removal_disable_strips_managed_memberships_and_is_reversible() {
    let mut w = World::new();
    w.apply(&alice_bob());
    let only_alice = spec(
        json!({ "alice": { "email": "alice@example.com", "displayName": "Alice", "groups": ["family", "media"], "admin": true } }),
        json!({ "family": {}, "media": { "displayName": "Media" } }),
        json!({}),
    );
    let p = w.apply(&only_alice);
    assert_eq!(ops(&p), vec![(ObjectKind::User, "bob".into(), Op::Disable)]);
    assert_eq!(w.groups_of("bob"), set(&["paas_disabled"]));
    assert!(w.plan(&only_alice).is_empty());
    // Back in the spec: enabled again, memberships restored.
    let p = w.apply(&alice_bob());
    assert_eq!(ops(&p), vec![(ObjectKind::User, "bob".into(), Op::Enable)]);
    assert_eq!(w.groups_of("bob"), set(&["family"]));
    assert!(w.plan(&alice_bob()).is_empty());
}

#[test]
fn enable_false_disables_and_removes_admin() {
    let mut w = World::new();
    w.apply(&alice_bob());
    let s = spec(
        json!({
            "alice": { "email": "alice@example.com", "displayName": "Alice", "groups": ["family", "media"], "admin": true, "enable": false },
            "bob": { "email": "bob@example.com", "groups": ["family"] }
        }),
        json!({ "family": {}, "media": { "displayName": "Media" } }),
        json!({}),
    );
    let p = w.apply(&s);
    assert_eq!(
        ops(&p),
        vec![(ObjectKind::User, "alice".into(), Op::Disable)]
    );
    assert_eq!(w.groups_of("alice"), set(&["paas_disabled"]));
    assert!(w.plan(&s).is_empty());
}

#[test]
fn removal_delete_and_keep() {
    let mut w = World::new();
    w.apply(&alice_bob());
    let keep = spec(
        json!({ "alice": { "email": "alice@example.com", "displayName": "Alice", "groups": ["family", "media"], "admin": true } }),
        json!({ "family": {}, "media": { "displayName": "Media" } }),
        json!({ "removal": "keep" }),
    );
    assert!(w.plan(&keep).is_empty(), "keep leaves bob alone");

    let delete = spec(
        json!({ "alice": { "email": "alice@example.com", "displayName": "Alice", "groups": ["family"], "admin": true } }),
        json!({ "family": {} }),
        json!({ "removal": "delete" }),
    );
    let p = w.apply(&delete);
    assert_eq!(
        ops(&p),
        vec![
            (ObjectKind::User, "bob".into(), Op::Delete),
            (ObjectKind::Group, "media".into(), Op::Delete),
        ]
    );
    assert!(w.dir.user("bob").is_none());
    assert!(w.dir.group_by_name("Media").is_none());
    assert!(!w.state.lldap.users.contains_key("bob"));
    assert!(w.plan(&delete).is_empty());
}

#[test]
fn removal_delete_waits_for_the_grace_period() {
    let mut w = World::new();
    w.apply(&alice_bob());
    let s = spec(
        json!({ "alice": { "email": "alice@example.com", "displayName": "Alice", "groups": ["family", "media"], "admin": true } }),
        json!({ "family": {}, "media": { "displayName": "Media" } }),
        json!({ "removal": "delete", "removalGracePeriod": "1d" }),
    );
    let p = w.apply(&s);
    assert_eq!(ops(&p), vec![(ObjectKind::User, "bob".into(), Op::Disable)]);
    assert_eq!(w.state.lldap.users["bob"].removed_since, Some(w.now));
    assert!(
        w.plan(&s).is_empty(),
        "nothing to do inside the grace period"
    );
    w.now += 86_400;
    let p = w.apply(&s);
    assert_eq!(ops(&p), vec![(ObjectKind::User, "bob".into(), Op::Delete)]);
    assert!(w.dir.user("bob").is_none());
}

#[test]
fn declared_existing_objects_are_adopted_and_the_plan_says_so() {
    let mut w = World::new();
    w.dir.groups.insert(
        10,
        DirGroup {
            id: 10,
            display_name: "family".into(),
            attributes: Attributes::new(),
        },
    );
    hand_made_user(&mut w.dir, "bob", &[10]);
    let p = w.apply(&alice_bob());
    let adopted: Vec<_> = p
        .changes
        .iter()
        .filter(|c| c.op == Op::Adopt)
        .map(|c| (c.kind, c.name.as_str()))
        .collect();
    assert_eq!(
        adopted,
        vec![(ObjectKind::Group, "family"), (ObjectKind::User, "bob")]
    );
    assert!(
        p.to_string()
            .contains("± lldap user \"bob\" (adopt: exists in LLDAP, not created by paasd)"),
        "{p}"
    );
    assert_eq!(
        w.state.lldap.users["bob"].origin,
        Origin::Adopted,
        "adopted, not created"
    );
    assert!(w.dir.user("bob").expect("bob").is_marked());
    assert!(w.plan(&alice_bob()).is_empty());
    // Once adopted, a removal applies to it like to any managed user.
    let only_alice = spec(
        json!({ "alice": { "email": "alice@example.com", "displayName": "Alice", "groups": ["family", "media"], "admin": true } }),
        json!({ "family": {}, "media": { "displayName": "Media" } }),
        json!({}),
    );
    assert_eq!(
        ops(&w.plan(&only_alice)),
        vec![(ObjectKind::User, "bob".into(), Op::Disable)]
    );
}

#[test]
fn ownership_survives_the_loss_of_the_state_file() {
    let mut w = World::new();
    w.apply(&alice_bob());
    w.state = State::default();
    let only_alice = spec(
        json!({ "alice": { "email": "alice@example.com", "displayName": "Alice", "groups": ["family", "media"], "admin": true } }),
        json!({ "family": {}, "media": { "displayName": "Media" } }),
        json!({}),
    );
    let p = w.plan(&only_alice);
    assert_eq!(
        ops(&p),
        vec![(ObjectKind::User, "bob".into(), Op::Disable)],
        "bob is known as managed through the marker"
    );
}

#[test]
fn passwords_initial_vs_enforce() {
    let mut w = World::new();
    let s = spec(
        json!({
            "alice": { "email": "alice@example.com", "passwordFile": "/p/alice" },
            "bob": { "email": "bob@example.com", "passwordFile": "/p/bob", "passwordMode": "initial" }
        }),
        json!({}),
        json!({}),
    );
    w.passwords.insert("alice".into(), known("a1"));
    w.passwords.insert("bob".into(), known("b1"));
    let p = w.apply(&s);
    let sets: Vec<_> = p
        .changes
        .iter()
        .flat_map(|c| c.actions.iter())
        .filter(|a| matches!(a, Action::SetPassword { .. }))
        .cloned()
        .collect();
    assert_eq!(
        sets,
        vec![
            Action::SetPassword {
                user: "alice".into(),
                verify_first: false
            },
            Action::SetPassword {
                user: "bob".into(),
                verify_first: false
            },
        ]
    );
    assert!(w.plan(&s).is_empty());
    // Both files change: enforce verifies and sets alice's; initial leaves bob's alone.
    w.passwords.insert("alice".into(), known("a2"));
    w.passwords.insert("bob".into(), known("b2"));
    let p = w.apply(&s);
    assert_eq!(
        ops(&p),
        vec![(ObjectKind::User, "alice".into(), Op::Update)]
    );
    assert_eq!(
        p.changes[0].actions,
        vec![Action::SetPassword {
            user: "alice".into(),
            verify_first: true
        }]
    );
    assert!(w.plan(&s).is_empty());
    // --verify-passwords checks every enforced password, still never the initial ones.
    w.verify = true;
    assert_eq!(
        ops(&w.plan(&s)),
        vec![(ObjectKind::User, "alice".into(), Op::Update)]
    );
}

#[test]
fn unusable_password_is_a_problem_for_that_user_only() {
    let mut w = World::new();
    let s = alice_bob();
    w.passwords.insert(
        "alice".into(),
        DesiredPassword::Unusable("secret file /p/alice is empty".into()),
    );
    let p = w.apply(&s);
    assert_eq!(p.problems.len(), 1);
    assert_eq!(p.problems[0].name, "alice");
    assert!(
        w.dir.user("alice").is_some(),
        "the rest of alice's change still applies"
    );
    assert!(w.dir.user("bob").is_some());
}

#[test]
fn conflicts_are_problems_not_writes() {
    let mut w = World::new();
    hand_made_user(&mut w.dir, "zoe", &[]);
    w.dir.users.get_mut("zoe").expect("zoe").email = "bob@example.com".into();
    let p = w.plan(&alice_bob());
    assert!(p.changes.iter().all(|c| c.name != "bob"));
    assert!(
        p.problems
            .iter()
            .any(|x| x.name == "bob" && x.message.contains("already used by LLDAP user \"zoe\"")),
        "{:?}",
        p.problems
    );

    let mut w = World::new();
    w.dir
        .user_attributes
        .insert(MARKER_ATTRIBUTE.into(), hardcoded());
    let s = spec(
        json!({ "alice": { "email": "alice@example.com", "attributes": { "shell": "/bin/sh" } } }),
        json!({}),
        json!({}),
    );
    let p = w.plan(&s);
    assert!(
        p.problems.iter().any(|x| x
            .message
            .contains("attribute \"shell\" is not in LLDAP's user attribute schema")),
        "{:?}",
        p.problems
    );
}

#[test]
fn custom_attributes_are_written_when_they_differ() {
    let mut w = World::new();
    let list = AttributeSchema {
        is_list: true,
        is_hardcoded: false,
        ..hardcoded()
    };
    w.dir.user_attributes.insert("sshkeys".into(), list);
    let s = spec(
        json!({ "alice": { "email": "alice@example.com", "attributes": { "sshkeys": ["k1", "k2"] } } }),
        json!({}),
        json!({}),
    );
    w.apply(&s);
    assert_eq!(
        w.dir.user("alice").expect("alice").attributes["sshkeys"],
        vec!["k1", "k2"]
    );
    assert!(w.plan(&s).is_empty());
    w.dir
        .users
        .get_mut("alice")
        .expect("alice")
        .attributes
        .insert("sshkeys".into(), vec!["k1".into()]);
    let p = w.plan(&s);
    assert!(
        p.to_string()
            .contains("attributes.sshkeys = \"k1\" -> [\"k1\", \"k2\"]"),
        "{p}"
    );
}

#[test]
fn group_rename_keeps_identity_through_the_marker() {
    let mut w = World::new();
    w.apply(&alice_bob());
    let id = w.group_id("Media");
    let s = spec(
        json!({
            "alice": { "email": "alice@example.com", "displayName": "Alice", "groups": ["family", "media"], "admin": true },
            "bob": { "email": "bob@example.com", "groups": ["family"] }
        }),
        json!({ "family": {}, "media": { "displayName": "Movies" } }),
        json!({}),
    );
    let p = w.apply(&s);
    assert_eq!(
        ops(&p),
        vec![(ObjectKind::Group, "media".into(), Op::Update)]
    );
    assert_eq!(w.dir.groups[&id].display_name, "Movies");
    assert!(w.plan(&s).is_empty());
}

#[test]
fn orphan_groups_follow_removal() {
    let mut w = World::new();
    w.apply(&alice_bob());
    let media = w.group_id("Media");
    let without_media = |removal: &str| {
        spec(
            json!({
                "alice": { "email": "alice@example.com", "displayName": "Alice", "groups": ["family"], "admin": true },
                "bob": { "email": "bob@example.com", "groups": ["family"] }
            }),
            json!({ "family": {} }),
            json!({ "removal": removal }),
        )
    };
    // disable: the group stays, managed members leave it (alice's change removes it).
    let p = w.plan(&without_media("disable"));
    assert!(p.changes.iter().all(|c| c.kind != ObjectKind::Group));
    assert!(p.changes[0]
        .actions
        .iter()
        .any(|a| matches!(a, Action::RemoveFromGroup { group, .. } if group.id == Some(media))));
    // keep: nothing at all.
    assert!(w.plan(&without_media("keep")).is_empty());
}

#[test]
fn mass_removal_guard_holds_back_unless_forced() {
    let mut w = World::new();
    let mut users = serde_json::Map::new();
    for i in 0..10 {
        users.insert(
            format!("u{i}"),
            json!({ "email": format!("u{i}@example.com") }),
        );
    }
    w.apply(&spec(Value::Object(users.clone()), json!({}), json!({})));
    let mut five = users.clone();
    for i in 0..5 {
        five.remove(&format!("u{i}"));
    }
    let s = spec(Value::Object(five), json!({}), json!({}));
    let p = w.plan(&s);
    assert!(p.changes.is_empty());
    assert_eq!(p.blocked.len(), 1);
    assert!(
        p.blocked[0].to_string().contains("5 of 10 managed users"),
        "{}",
        p.blocked[0]
    );
    assert!(p.to_string().contains("--force"));
    w.force = true;
    assert_eq!(w.plan(&s).count(Op::Disable), 5);
    // Small removals are never held back.
    w.force = false;
    let mut nine = users;
    nine.remove("u0");
    assert_eq!(
        w.plan(&spec(Value::Object(nine), json!({}), json!({})))
            .count(Op::Disable),
        1
    );
}

#[test]
fn the_login_admin_and_builtin_groups_are_never_touched() {
    let mut w = World::new();
    w.apply(&alice_bob());
    // Even if the admin carried paasd's marker, it is not removed.
    w.dir
        .users
        .get_mut("admin")
        .expect("admin")
        .attributes
        .insert(MARKER_ATTRIBUTE.into(), vec!["true".into()]);
    let p = w.plan(&spec(
        json!({}),
        json!({}),
        json!({ "removal": "delete", "removalGuard": { "maxPercent": 100 } }),
    ));
    assert!(p.changes.iter().all(|c| c.name != "admin"), "{p}");
    for c in &p.changes {
        for a in &c.actions {
            if let Action::DeleteGroup { id, .. } = a {
                assert!(*id > 3, "built-in group {id} deleted");
            }
        }
    }
}

#[test]
fn pending_initial_password_is_retried() {
    let mut w = World::new();
    let s = spec(
        json!({ "bob": { "email": "bob@example.com", "passwordFile": "/p/bob", "passwordMode": "initial" } }),
        json!({}),
        json!({}),
    );
    w.passwords.insert("bob".into(), known("b1"));
    let p = w.plan(&s);
    // Apply everything but the password (as if the LDAP write failed).
    let mut partial = p.clone();
    for c in &mut partial.changes {
        c.actions
            .retain(|a| !matches!(a, Action::SetPassword { .. }));
    }
    simulate::apply(&partial, &mut w.dir, &mut w.state, &w.passwords);
    assert!(w.state.lldap.users["bob"].initial_password_pending);
    let p = w.plan(&s);
    assert_eq!(
        p.changes[0].actions,
        vec![Action::SetPassword {
            user: "bob".into(),
            verify_first: false
        }]
    );
}

#[test]
fn plan_serialises_without_secrets() {
    let mut w = World::new();
    w.passwords.insert("alice".into(), known("fp-alice"));
    let s = alice_bob();
    let p = w.plan(&s);
    let json = serde_json::to_string(&p).expect("serialise");
    assert!(json.contains("\"action\":\"setPassword\""));
    assert!(!json.contains("fp-alice"), "fingerprints stay out of plans");
    assert!(!p.to_string().contains("fp-alice"));
}
