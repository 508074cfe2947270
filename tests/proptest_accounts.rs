//! Property tests of the account plan (`targets::accounts::plan::plan_accounts`), the one pure
//! diff of every service: random desired accounts against random observed accounts and paasd's
//! state, applied with the pure model `targets::accounts::simulate`. Each run is the engine's: paasd's
//! record is first settled with what was observed (`accounts::settle`), then planned.
//!
//! Properties, for every generated (service, desired, observed, state, passwords, removal,
//! guard, hold_removals):
//! 1. convergence: after `simulate::apply` of the plan, the next plan (same inputs, same `now`)
//!    has no change — when the guard held removals back, the next plan has only those removals,
//!    and with `--force` the run after converges; problems (unusable passwords) stand;
//! 2. ownership: every action names an account paasd owns (marked, or recorded by its id) or one
//!    a desired user maps to; accounts made by hand are deleted never, disabled only when a
//!    desired disabled user adopts them; taking over an account is shown as `adopt`; a create
//!    names a key that does not exist (case-insensitively); after the apply, every desired
//!    user's account is recorded under its own id, with no removal time;
//! 3. determinism: the same input gives the same plan, also after a JSON round trip of the
//!    observed accounts and the state, and with the accounts observed in another order;
//! 4. the guard: when it holds back, no disable or delete is left, `blocked` says how many
//!    (what `--force` plans), and it holds back whenever more than `maxPercent` of the accounts
//!    paasd owns would go;
//! 5. `hold_removals`: no account of a user who is not desired is changed;
//! 6. capabilities: no password is sent to a service that takes none (Vaultwarden), and none
//!    at all unless paasd has one.

use std::collections::{BTreeMap, BTreeSet};

use paasd::core::id::ServiceKind;
use paasd::core::plan::Op;
use paasd::core::policy::{DesiredPassword, Guard};
use paasd::core::spec::{PasswordMode, Removal};
use paasd::core::state::{OwnedAccount, TargetState};
use paasd::targets::accounts::plan::{plan_accounts, AccountPlan, AccountPlanInput};
use paasd::targets::accounts::{self, simulate, Account, AccountAction, DesiredAccount};
use proptest::prelude::*;
use proptest::test_runner::Config;

const NOW: u64 = 1_800_000_000;
const GRACE: u64 = 3600;
/// Users the spec may declare; the service may also hold accounts of `zoe` and `yann`.
const USERS: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "zoe", "yann",
];
const DECLARABLE: usize = 6;
const FIELDS: [&str; 3] = ["quota", "name", "admin"];
const GROUPS: [&str; 3] = ["admin", "media", "staff"];

// ---------------------------------------------------------------------------------------------
// Generated inputs.

#[derive(Debug, Clone)]
struct GenDesired {
    user: usize,
    enabled: bool,
    fields: Vec<(usize, u8)>,
    groups: Vec<usize>,
    /// 0 none, 1 known enforced, 2 known initial, 3 unusable, 4 to generate.
    password: u8,
    fingerprint: u8,
}

#[derive(Debug, Clone)]
struct GenAccount {
    user: usize,
    /// 0 as paasd spells the key, 1 capitalised, 2 upper case.
    case: u8,
    enabled: bool,
    fields: Vec<(usize, u8)>,
    groups: Vec<usize>,
    /// Carries paasd's marker (only where the service keeps one).
    marked: bool,
    /// 0 not in the state, 1 recorded, 2 recorded with a password fingerprint.
    record: u8,
    created: bool,
    fingerprint: u8,
    /// 0 none, 1 left the service within the grace period, 2 long ago.
    removed: u8,
}

/// A state record of an account deleted by hand.
#[derive(Debug, Clone)]
struct GenStale {
    user: usize,
    fingerprint: Option<u8>,
    removed: u8,
}

#[derive(Debug, Clone)]
struct Case {
    service: usize,
    desired: Vec<GenDesired>,
    observed: Vec<GenAccount>,
    stale: Vec<GenStale>,
    extra_managed: Vec<usize>,
    removal: u8,
    grace: bool,
    max_percent: u8,
    force: bool,
    hold_removals: bool,
    /// Most users left the spec at once (what the mass-removal guard is for): only the first
    /// desired user is kept.
    emptied: bool,
}

fn gen_fields() -> impl Strategy<Value = Vec<(usize, u8)>> {
    prop::collection::vec((0..FIELDS.len(), 0u8..3), 0..3)
}

fn gen_desired() -> impl Strategy<Value = GenDesired> {
    (
        0..DECLARABLE,
        prop::bool::weighted(0.8),
        gen_fields(),
        prop::collection::vec(0..GROUPS.len(), 0..3),
        0u8..5,
        0u8..3,
    )
        .prop_map(
            |(user, enabled, fields, groups, password, fingerprint)| GenDesired {
                user,
                enabled,
                fields,
                groups,
                password,
                fingerprint,
            },
        )
}

fn gen_account() -> impl Strategy<Value = GenAccount> {
    (
        (
            0..USERS.len(),
            prop::sample::select(vec![0u8, 0, 1, 2]),
            prop::bool::weighted(0.75),
            gen_fields(),
            prop::collection::vec(0..GROUPS.len(), 0..3),
        ),
        (
            prop::bool::weighted(0.5),
            0u8..3,
            any::<bool>(),
            0u8..3,
            prop::sample::select(vec![0u8, 0, 1, 2]),
        ),
    )
        .prop_map(
            |(
                (user, case, enabled, fields, groups),
                (marked, record, created, fingerprint, removed),
            )| GenAccount {
                user,
                case,
                enabled,
                fields,
                groups,
                marked,
                record,
                created,
                fingerprint,
                removed,
            },
        )
}

fn gen_stale() -> impl Strategy<Value = GenStale> {
    (
        0..USERS.len(),
        prop::option::of(0u8..3),
        prop::sample::select(vec![0u8, 0, 1, 2]),
    )
        .prop_map(|(user, fingerprint, removed)| GenStale {
            user,
            fingerprint,
            removed,
        })
}

fn gen_case() -> impl Strategy<Value = Case> {
    (
        (
            0..ServiceKind::ALL.len(),
            prop::collection::vec(gen_desired(), 0..7),
            prop::collection::vec(gen_account(), 0..9),
            prop::collection::vec(gen_stale(), 0..3),
            prop::collection::vec(0..GROUPS.len(), 0..2),
        ),
        (
            0u8..3,
            any::<bool>(),
            prop::sample::select(vec![0u8, 25, 25, 50, 100]),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.15),
        ),
    )
        .prop_map(
            |(
                (service, desired, observed, stale, extra_managed),
                (removal, grace, max_percent, force, hold_removals, emptied),
            )| Case {
                service,
                desired,
                observed,
                stale,
                extra_managed,
                removal,
                grace,
                max_percent,
                force,
                hold_removals,
                emptied,
            },
        )
}

// ---------------------------------------------------------------------------------------------
// The world of a case: what the engine would hand the plan.

#[derive(Debug, Clone)]
struct World {
    service: ServiceKind,
    desired: BTreeMap<String, DesiredAccount>,
    observed: Vec<Account>,
    state: TargetState,
    passwords: BTreeMap<String, DesiredPassword>,
    removal: Removal,
    grace: u64,
    guard: Guard,
    hold_removals: bool,
}

/// The key a service matches `user` on, as paasd spells it (its backends' `desired`).
fn key_of(service: ServiceKind, user: &str) -> String {
    match service {
        ServiceKind::Vaultwarden => format!("{user}@example.com"),
        ServiceKind::Mailcow => format!("{user}@example.org"),
        _ => user.to_string(),
    }
}

fn spelled(key: &str, case: u8) -> String {
    match case {
        1 => {
            let mut c = key.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        }
        2 => key.to_ascii_uppercase(),
        _ => key.to_string(),
    }
}

fn removed_since(removed: u8) -> Option<u64> {
    match removed {
        1 => Some(NOW - 10),
        2 => Some(NOW - 10 * GRACE),
        _ => None,
    }
}

fn fields_of(service: ServiceKind, gen: &[(usize, u8)]) -> BTreeMap<String, String> {
    if service == ServiceKind::Vaultwarden {
        // Vaultwarden manages no field.
        return BTreeMap::new();
    }
    gen.iter()
        .map(|(f, v)| (FIELDS[*f].to_string(), format!("v{v}")))
        .collect()
}

fn groups_of(service: ServiceKind, gen: &[usize]) -> BTreeSet<String> {
    if service != ServiceKind::Nextcloud {
        // Only Nextcloud has groups.
        return BTreeSet::new();
    }
    gen.iter().map(|g| GROUPS[*g].to_string()).collect()
}

fn build(case: &Case) -> World {
    let service = ServiceKind::ALL[case.service];
    let caps = service.capabilities();
    let mut desired = BTreeMap::new();
    let mut passwords = BTreeMap::new();
    // Nextcloud decides the memberships of every group of the spec, and of `admin`.
    let mut managed: BTreeSet<String> = groups_of(service, &case.extra_managed);
    for d in &case.desired {
        managed.extend(groups_of(service, &d.groups));
    }
    if service == ServiceKind::Nextcloud {
        managed.insert("admin".into());
    }
    let kept = if case.emptied { 1 } else { case.desired.len() };
    for d in case.desired.iter().take(kept) {
        let user = USERS[d.user];
        if desired.contains_key(user) {
            continue;
        }
        desired.insert(
            user.to_string(),
            DesiredAccount {
                user: user.to_string(),
                key: key_of(service, user),
                enabled: d.enabled,
                fields: fields_of(service, &d.fields),
                groups: groups_of(service, &d.groups),
                managed_groups: managed.clone(),
            },
        );
        let fingerprint = format!("fp{}", d.fingerprint);
        let pw = match d.password {
            1 => Some(DesiredPassword::Known {
                fingerprint,
                mode: PasswordMode::Enforce,
            }),
            2 => Some(DesiredPassword::Known {
                fingerprint,
                mode: PasswordMode::Initial,
            }),
            3 => Some(DesiredPassword::Unusable("mode 0644".into())),
            4 => Some(DesiredPassword::ToGenerate),
            _ => None,
        };
        // Passwords are given even to Vaultwarden: the plan must not send them.
        if let Some(pw) = pw {
            passwords.insert(user.to_string(), pw);
        }
    }

    let mut observed: Vec<Account> = Vec::new();
    let mut state = TargetState::default();
    for (i, a) in case.observed.iter().enumerate() {
        let user = USERS[a.user];
        let key = key_of(service, user);
        // Keys are unique in a service, compared case-insensitively.
        if observed.iter().any(|o| o.key.eq_ignore_ascii_case(&key)) {
            continue;
        }
        let key = if service == ServiceKind::Vaultwarden {
            // Vaultwarden's e-mail addresses are read in lower case.
            key
        } else {
            spelled(&key, a.case)
        };
        let remote_id = match service {
            ServiceKind::Nextcloud | ServiceKind::Mailcow => key.clone(),
            _ => format!("r{i}"),
        };
        observed.push(Account {
            remote_id: remote_id.clone(),
            key,
            enabled: a.enabled,
            fields: fields_of(service, &a.fields),
            groups: groups_of(service, &a.groups),
            marked: a.marked && caps.marker,
        });
        if a.record > 0 {
            state.accounts.insert(
                user.to_string(),
                OwnedAccount {
                    remote_id,
                    created: a.created,
                    password_fingerprint: (a.record == 2).then(|| format!("fp{}", a.fingerprint)),
                    removed_since: removed_since(a.removed),
                },
            );
        }
    }
    for s in &case.stale {
        let user = USERS[s.user];
        state
            .accounts
            .entry(user.to_string())
            .or_insert_with(|| OwnedAccount {
                remote_id: format!("deleted-{user}"),
                created: true,
                password_fingerprint: s.fingerprint.map(|f| format!("fp{f}")),
                removed_since: removed_since(s.removed),
            });
    }
    World {
        service,
        desired,
        observed,
        state,
        passwords,
        removal: [Removal::Disable, Removal::Delete, Removal::Keep][case.removal as usize],
        grace: if case.grace { GRACE } else { 0 },
        guard: Guard {
            max_percent: u32::from(case.max_percent),
            force: case.force,
        },
        hold_removals: case.hold_removals,
    }
}

impl World {
    fn plan_with(&self, observed: &[Account], state: &TargetState, force: bool) -> AccountPlan {
        plan_accounts(&AccountPlanInput {
            service: self.service,
            desired: &self.desired,
            observed,
            state,
            passwords: &self.passwords,
            removal: self.removal,
            removal_grace_period: self.grace,
            guard: Guard {
                force,
                ..self.guard
            },
            hold_removals: self.hold_removals,
            now: NOW,
        })
    }

    fn plan(&self) -> AccountPlan {
        self.plan_with(&self.observed, &self.state, self.guard.force)
    }

    /// What the engine does before it plans: settle paasd's record with what was observed.
    fn settle(&mut self) {
        accounts::settle(&self.observed, &mut self.state);
    }

    /// Applies `plan` to the model; the service refuses nothing a plan asks for.
    fn apply(&mut self, plan: &AccountPlan) -> Result<(), TestCaseError> {
        let done = simulate::apply(
            self.service,
            plan,
            &mut self.observed,
            &mut self.state,
            &self.passwords,
        );
        prop_assert!(
            done.refused.is_empty(),
            "the service refused {:?}\n{}",
            done.refused,
            plan
        );
        Ok(())
    }

    /// The account `remote_id` names, as observed.
    fn account(&self, remote_id: &str) -> Option<&Account> {
        self.observed.iter().find(|a| a.remote_id == remote_id)
    }

    /// paasd owns the account: it carries the marker, or the state records its id.
    fn owns(&self, a: &Account) -> bool {
        a.marked
            || self
                .state
                .accounts
                .values()
                .any(|o| o.remote_id == a.remote_id)
    }

    /// The desired user whose account `a` is: by the id recorded for the user, else by key.
    fn desired_user_of(&self, a: &Account) -> Option<&DesiredAccount> {
        self.desired
            .values()
            .find(|d| {
                self.state
                    .accounts
                    .get(&d.user)
                    .is_some_and(|o| o.remote_id == a.remote_id)
            })
            .or_else(|| {
                self.desired
                    .values()
                    .find(|d| d.key.eq_ignore_ascii_case(&a.key))
            })
    }

    /// `a` is `user`'s account: the state records it for the user, or its key is the user's.
    fn belongs_to(&self, a: &Account, user: &str) -> bool {
        let key = self
            .desired
            .get(user)
            .map_or_else(|| key_of(self.service, user), |d| d.key.clone());
        self.state
            .accounts
            .get(user)
            .is_some_and(|o| o.remote_id == a.remote_id)
            || a.key.eq_ignore_ascii_case(&key)
    }

    /// The accounts paasd owns, as observed (what the guard's share is of).
    fn owned_count(&self) -> usize {
        self.observed.iter().filter(|a| self.owns(a)).count()
    }
}

fn remote_id_of(a: &AccountAction) -> Option<&str> {
    match a {
        AccountAction::Update { remote_id, .. }
        | AccountAction::AddToGroup { remote_id, .. }
        | AccountAction::RemoveFromGroup { remote_id, .. }
        | AccountAction::SetPassword { remote_id, .. }
        | AccountAction::Disable { remote_id, .. }
        | AccountAction::Enable { remote_id, .. }
        | AccountAction::Mark { remote_id, .. }
        | AccountAction::Delete { remote_id, .. } => Some(remote_id),
        AccountAction::Create { .. } | AccountAction::MarkRemoved { .. } => None,
    }
}

fn removals(p: &AccountPlan) -> usize {
    p.changes.iter().filter(|c| c.op.removes()).count()
}

// ---------------------------------------------------------------------------------------------
// The properties.

fn check_ownership(w: &World, p: &AccountPlan) -> Result<(), TestCaseError> {
    // Each account is in the changes of one user at most.
    let mut users_of: BTreeMap<&str, &str> = BTreeMap::new();
    for c in &p.changes {
        let desired = w.desired.get(&c.name);
        for a in &c.actions {
            prop_assert_eq!(a.user(), c.name.as_str(), "an action of another user");
            if let AccountAction::Create { key, enabled, .. } = a {
                prop_assert!(desired.is_some(), "create of an undeclared user: {:?}", a);
                prop_assert!(*enabled, "a disabled user gets no account: {:?}", a);
                prop_assert!(
                    !w.observed.iter().any(|o| o.key.eq_ignore_ascii_case(key)),
                    "create of a key that exists: {:?}",
                    a
                );
                continue;
            }
            let Some(rid) = remote_id_of(a) else { continue };
            let Some(acc) = w.account(rid) else {
                return Err(TestCaseError::fail(format!(
                    "an action names no account: {a:?}\n{p}"
                )));
            };
            let owned = w.owns(acc);
            prop_assert!(
                owned || desired.is_some(),
                "account {:?}, neither paasd's nor a desired user's, is in an action: {:?}\n{}",
                acc,
                a,
                p
            );
            prop_assert!(
                w.belongs_to(acc, &c.name),
                "account {:?} is not {}'s: {:?}\n{}",
                acc,
                c.name,
                a,
                p
            );
            let first = *users_of.entry(rid).or_insert(c.name.as_str());
            prop_assert_eq!(
                first,
                c.name.as_str(),
                "two users change one account:\n{}",
                p
            );
            match a {
                AccountAction::Delete { .. } => prop_assert!(
                    owned && desired.is_none(),
                    "deletes an account paasd does not own, or a desired user's: {:?}",
                    acc
                ),
                AccountAction::Disable { .. } if !owned => prop_assert!(
                    desired.is_some_and(|d| !d.enabled),
                    "disables a hand-made account: {:?}",
                    acc
                ),
                _ => {}
            }
            // Taking an account over is shown as such.
            if !owned {
                prop_assert_eq!(c.op, Op::Adopt, "a take-over not shown as adopt:\n{}", p);
            }
        }
    }
    Ok(())
}

fn check_determinism(w: &World, p: &AccountPlan) -> Result<(), TestCaseError> {
    prop_assert_eq!(p, &w.plan());
    let observed: Vec<Account> =
        serde_json::from_str(&serde_json::to_string(&w.observed).expect("ser")).expect("de");
    let state: TargetState =
        serde_json::from_str(&serde_json::to_string(&w.state).expect("ser")).expect("de");
    prop_assert_eq!(p, &w.plan_with(&observed, &state, w.guard.force));
    let reversed: Vec<Account> = w.observed.iter().rev().cloned().collect();
    prop_assert_eq!(
        p,
        &w.plan_with(&reversed, &w.state, w.guard.force),
        "the order accounts are observed in matters"
    );
    Ok(())
}

fn check_guard(w: &World, p: &AccountPlan) -> Result<(), TestCaseError> {
    let forced = w.plan_with(&w.observed, &w.state, true);
    prop_assert!(forced.blocked.is_empty(), "--force holds nothing back");
    if let Some(held) = p.blocked.first() {
        prop_assert_eq!(p.blocked.len(), 1);
        prop_assert!(!w.guard.force);
        prop_assert_eq!(removals(p), 0, "held back, yet removals are left:\n{}", p);
        for c in &p.changes {
            for a in &c.actions {
                match a {
                    AccountAction::Delete { .. } => {
                        prop_assert!(false, "held back, yet a delete is left:\n{}", p)
                    }
                    AccountAction::Disable { .. } => {
                        prop_assert_eq!(c.op, Op::Adopt, "held back, yet a disable is left:\n{}", p)
                    }
                    _ => {}
                }
            }
        }
        prop_assert_eq!(
            held.removing,
            removals(&forced),
            "blocked does not count what --force removes"
        );
        prop_assert!(held.removing > 3);
        // Everything else is planned as with --force.
        let kept: Vec<_> = forced.changes.iter().filter(|c| !c.op.removes()).collect();
        prop_assert_eq!(kept, p.changes.iter().collect::<Vec<_>>());
    } else {
        prop_assert_eq!(p, &forced);
        let r = removals(p);
        let managed = w.owned_count();
        prop_assert!(
            w.guard.force || r <= 3 || r * 100 <= w.guard.max_percent as usize * managed.max(1),
            "{} of {} owned accounts removed, over {}%, and not held back:\n{}",
            r,
            managed,
            w.guard.max_percent,
            p
        );
    }
    Ok(())
}

fn check_hold_removals(w: &World, p: &AccountPlan) -> Result<(), TestCaseError> {
    if w.hold_removals {
        for c in &p.changes {
            prop_assert!(
                w.desired.contains_key(&c.name),
                "removals are held, yet a user who is not desired is changed:\n{}",
                p
            );
        }
    }
    Ok(())
}

fn check_capabilities(w: &World, p: &AccountPlan) -> Result<(), TestCaseError> {
    let caps = w.service.capabilities();
    for a in p.changes.iter().flat_map(|c| &c.actions) {
        let sends = matches!(
            a,
            AccountAction::SetPassword { .. }
                | AccountAction::Create {
                    with_password: true,
                    ..
                }
        );
        if sends {
            prop_assert!(caps.passwords, "{} takes no password: {:?}", w.service, a);
            prop_assert!(
                w.passwords.get(a.user()).is_some_and(|pw| pw.is_set()),
                "a password is sent, but paasd has none: {:?}",
                a
            );
        }
    }
    Ok(())
}

/// After the apply: every desired user's account is recorded under its own id, and a user back
/// in the service has no removal time left (a later removal starts its grace period anew).
fn check_records(w: &World) -> Result<(), TestCaseError> {
    for d in w.desired.values() {
        let Some(acc) = w.desired_user_of_key_or_record(d) else {
            continue;
        };
        let rec = w.state.accounts.get(&d.user);
        prop_assert_eq!(
            rec.map(|o| o.remote_id.as_str()),
            Some(acc.remote_id.as_str()),
            "{}'s account {:?} is not recorded under its id: {:?}",
            d.user,
            acc,
            rec
        );
        prop_assert_eq!(
            rec.and_then(|o| o.removed_since),
            None,
            "{} is back, but its removal time is kept",
            d.user
        );
    }
    Ok(())
}

impl World {
    fn desired_user_of_key_or_record(&self, d: &DesiredAccount) -> Option<&Account> {
        self.state
            .accounts
            .get(&d.user)
            .and_then(|o| self.account(&o.remote_id))
            .or_else(|| {
                self.observed
                    .iter()
                    .find(|a| a.key.eq_ignore_ascii_case(&d.key))
            })
    }
}

fn check_convergence(mut w: World, p: &AccountPlan) -> Result<(), TestCaseError> {
    w.apply(p)?;
    w.settle();
    let again = w.plan();
    prop_assert_eq!(
        &again.problems,
        &p.problems,
        "problems (unusable passwords) are standing"
    );
    if p.blocked.is_empty() {
        prop_assert!(
            again.is_empty(),
            "the plan after applying the plan is not empty:\nfirst:\n{}\nsecond:\n{}",
            p,
            again
        );
        check_records(&w)?;
    } else {
        // Only what the guard held back is left; with --force the next run converges.
        prop_assert!(
            again.changes.iter().all(|c| c.op.removes()),
            "more than the held-back removals are left:\nfirst:\n{}\nsecond:\n{}",
            p,
            again
        );
        let forced = w.plan_with(&w.observed, &w.state, true);
        w.apply(&forced)?;
        w.settle();
        let third = w.plan_with(&w.observed, &w.state, true);
        prop_assert!(
            third.is_empty(),
            "no convergence with --force:\nfirst:\n{}\nforced:\n{}\nthen:\n{}",
            p,
            forced,
            third
        );
    }
    Ok(())
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let mut w = build(case);
    w.settle();
    let p = w.plan();
    check_determinism(&w, &p)?;
    check_ownership(&w, &p)?;
    check_guard(&w, &p)?;
    check_hold_removals(&w, &p)?;
    check_capabilities(&w, &p)?;
    check_convergence(w, &p)
}

proptest! {
    #![proptest_config(Config {
        cases: 1000,
        max_shrink_iters: 4000,
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn account_plan_properties(case in gen_case()) {
        check(&case)?;
    }
}

/// The generator produces the interesting cases, not only trivial ones: counted over a fixed
/// sample, each kind of situation the properties are about occurs many times.
#[test]
fn generator_covers_interesting_cases() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut n: BTreeMap<&str, usize> = BTreeMap::new();
    let mut services = BTreeSet::new();
    for _ in 0..1000 {
        let case = gen_case()
            .new_tree(&mut runner)
            .expect("generate")
            .current();
        // What the generator made, and what the engine plans with (settled).
        let raw = build(&case);
        let mut w = raw.clone();
        w.settle();
        let p = w.plan();
        services.insert(w.service);
        let mut count =
            |what: &'static str, yes: bool| *n.entry(what).or_default() += usize::from(yes);
        let actions: Vec<&AccountAction> = p.changes.iter().flat_map(|c| &c.actions).collect();
        count("non-empty plans", !p.is_empty());
        count("creates", p.count(Op::Create) > 0);
        count("adoptions", p.count(Op::Adopt) > 0);
        count("updates", p.count(Op::Update) > 0);
        count("enables", p.count(Op::Enable) > 0);
        count(
            "disables of desired users",
            p.changes
                .iter()
                .any(|c| c.op == Op::Disable && w.desired.contains_key(&c.name)),
        );
        count(
            "removals",
            p.changes
                .iter()
                .any(|c| c.op.removes() && !w.desired.contains_key(&c.name)),
        );
        count("deletes", p.count(Op::Delete) > 0);
        count(
            "grace periods started",
            actions
                .iter()
                .any(|a| matches!(a, AccountAction::MarkRemoved { since, .. } if *since != 0)),
        );
        count(
            "removal times forgotten",
            actions
                .iter()
                .any(|a| matches!(a, AccountAction::MarkRemoved { since: 0, .. })),
        );
        count(
            "removals held by hold_removals",
            w.hold_removals
                && w.plan_with_hold(false)
                    .changes
                    .iter()
                    .any(|c| !w.desired.contains_key(&c.name)),
        );
        count("guard hits", !p.blocked.is_empty());
        count("problems", !p.problems.is_empty());
        count(
            "passwords set",
            actions
                .iter()
                .any(|a| matches!(a, AccountAction::SetPassword { .. })),
        );
        count(
            "creates with a password",
            actions.iter().any(|a| {
                matches!(
                    a,
                    AccountAction::Create {
                        with_password: true,
                        ..
                    }
                )
            }),
        );
        count(
            "group changes",
            actions.iter().any(|a| {
                matches!(
                    a,
                    AccountAction::AddToGroup { .. } | AccountAction::RemoveFromGroup { .. }
                )
            }),
        );
        count(
            "case variants of keys",
            w.observed
                .iter()
                .any(|a| a.key != a.key.to_ascii_lowercase()),
        );
        count(
            "marked accounts not in the state",
            raw.observed.iter().any(|a| {
                a.marked
                    && !raw
                        .state
                        .accounts
                        .values()
                        .any(|o| o.remote_id == a.remote_id)
            }),
        );
        count(
            "stale records",
            raw.state
                .accounts
                .values()
                .any(|o| raw.account(&o.remote_id).is_none()),
        );
        count(
            "hand-made accounts left alone",
            w.observed
                .iter()
                .any(|a| !w.owns(a) && w.desired_user_of(a).is_none()),
        );
        count(
            "passwords to a service without passwords",
            !w.service.capabilities().passwords && w.passwords.values().any(|p| p.is_set()),
        );
    }
    assert_eq!(services.len(), ServiceKind::ALL.len(), "every service");
    let floor = |what: &str| n.get(what).copied().unwrap_or(0);
    for (what, min) in [
        ("non-empty plans", 700),
        ("creates", 400),
        ("adoptions", 120),
        ("updates", 150),
        ("enables", 50),
        ("disables of desired users", 30),
        ("removals", 200),
        ("deletes", 60),
        ("grace periods started", 40),
        ("removal times forgotten", 20),
        ("removals held by hold_removals", 50),
        ("guard hits", 12),
        ("problems", 200),
        ("passwords set", 50),
        ("creates with a password", 200),
        ("group changes", 50),
        ("case variants of keys", 350),
        ("marked accounts not in the state", 40),
        ("stale records", 300),
        ("hand-made accounts left alone", 250),
        ("passwords to a service without passwords", 80),
    ] {
        assert!(
            floor(what) >= min,
            "{what}: {} < {min} ({n:?})",
            floor(what)
        );
    }
    eprintln!("generator coverage over 1000 cases: {n:?}");
}

impl World {
    fn plan_with_hold(&self, hold_removals: bool) -> AccountPlan {
        World {
            hold_removals,
            ..self.clone()
        }
        .plan()
    }
}
