//! Arbitrary service + desired accounts + observed accounts + paasd's state + passwords →
//! account plan → simulated apply → the next plan is empty (when the guard held removals back:
//! only those are left, and with `--force` the run after converges).
//! Also: the plan is deterministic, names only accounts paasd owns or a desired user maps to,
//! deletes only what paasd owns, sends no password to a service without passwords, and leaves
//! the accounts of users who are not desired alone under `hold_removals`.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use paasd::core::id::ServiceKind;
use paasd::core::policy::{DesiredPassword, Guard};
use paasd::core::spec::{PasswordMode, Removal};
use paasd::core::state::{OwnedAccount, TargetState};
use paasd::targets::accounts::plan::{plan_accounts, AccountPlan, AccountPlanInput};
use paasd::targets::accounts::{self, simulate, Account, AccountAction, DesiredAccount};

const NOW: u64 = 1_800_000_000;
const GRACE: u64 = 3600;
const USERS: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "zoe", "yann",
];
const FIELDS: [&str; 3] = ["quota", "name", "admin"];
const GROUPS: [&str; 3] = ["admin", "media", "staff"];

#[derive(Debug, Arbitrary)]
struct Desired {
    user: u8,
    disabled: bool,
    fields: Vec<(u8, u8)>,
    groups: Vec<u8>,
    password: u8,
    fingerprint: u8,
}

#[derive(Debug, Arbitrary)]
struct Observed {
    user: u8,
    case: u8,
    disabled: bool,
    fields: Vec<(u8, u8)>,
    groups: Vec<u8>,
    marked: bool,
    record: u8,
    created: bool,
    fingerprint: u8,
    removed: u8,
}

#[derive(Debug, Arbitrary)]
struct Input {
    service: u8,
    desired: Vec<Desired>,
    observed: Vec<Observed>,
    /// State records of accounts deleted by hand: (user, fingerprint, removed).
    stale: Vec<(u8, Option<u8>, u8)>,
    removal: u8,
    grace: bool,
    max_percent: u8,
    force: bool,
    hold_removals: bool,
}

fn pick<'a>(pool: &[&'a str], i: u8) -> &'a str {
    pool[i as usize % pool.len()]
}

fn key_of(service: ServiceKind, user: &str) -> String {
    match service {
        ServiceKind::Vaultwarden => format!("{user}@example.com"),
        ServiceKind::Mailcow => format!("{user}@example.org"),
        _ => user.to_string(),
    }
}

fn removed_since(r: u8) -> Option<u64> {
    match r % 3 {
        1 => Some(NOW - 10),
        2 => Some(NOW - 10 * GRACE),
        _ => None,
    }
}

fn fields(service: ServiceKind, f: &[(u8, u8)]) -> BTreeMap<String, String> {
    if service == ServiceKind::Vaultwarden {
        return BTreeMap::new();
    }
    f.iter()
        .take(4)
        .map(|(k, v)| (pick(&FIELDS, *k).to_string(), format!("v{}", v % 3)))
        .collect()
}

fn groups(service: ServiceKind, g: &[u8]) -> BTreeSet<String> {
    if service != ServiceKind::Nextcloud {
        return BTreeSet::new();
    }
    g.iter()
        .take(4)
        .map(|x| pick(&GROUPS, *x).to_string())
        .collect()
}

struct World {
    service: ServiceKind,
    desired: BTreeMap<String, DesiredAccount>,
    observed: Vec<Account>,
    state: TargetState,
    passwords: BTreeMap<String, DesiredPassword>,
    removal: Removal,
    grace: u64,
    max_percent: u32,
    hold_removals: bool,
}

fn build(inp: &Input) -> World {
    let service = ServiceKind::ALL[inp.service as usize % ServiceKind::ALL.len()];
    let mut managed: BTreeSet<String> = BTreeSet::new();
    for d in inp.desired.iter().take(8) {
        managed.extend(groups(service, &d.groups));
    }
    if service == ServiceKind::Nextcloud {
        managed.insert("admin".into());
    }
    let (mut desired, mut passwords) = (BTreeMap::new(), BTreeMap::new());
    for d in inp.desired.iter().take(8) {
        let user = pick(&USERS[..6], d.user);
        if desired.contains_key(user) {
            continue;
        }
        desired.insert(
            user.to_string(),
            DesiredAccount {
                user: user.to_string(),
                key: key_of(service, user),
                enabled: !d.disabled,
                fields: fields(service, &d.fields),
                groups: groups(service, &d.groups),
                managed_groups: managed.clone(),
            },
        );
        let fingerprint = format!("fp{}", d.fingerprint % 3);
        let pw = match d.password % 5 {
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
        if let Some(pw) = pw {
            passwords.insert(user.to_string(), pw);
        }
    }
    let (mut observed, mut state) = (Vec::<Account>::new(), TargetState::default());
    for (i, a) in inp.observed.iter().take(10).enumerate() {
        let user = pick(&USERS, a.user);
        let key = key_of(service, user);
        if observed.iter().any(|o| o.key.eq_ignore_ascii_case(&key)) {
            continue;
        }
        let key = match (service, a.case % 3) {
            (ServiceKind::Vaultwarden, _) | (_, 0) => key,
            (_, 1) => key[..1].to_ascii_uppercase() + &key[1..],
            _ => key.to_ascii_uppercase(),
        };
        let remote_id = match service {
            ServiceKind::Nextcloud | ServiceKind::Mailcow => key.clone(),
            _ => format!("r{i}"),
        };
        observed.push(Account {
            remote_id: remote_id.clone(),
            key,
            enabled: !a.disabled,
            fields: fields(service, &a.fields),
            groups: groups(service, &a.groups),
            marked: a.marked && service.capabilities().marker,
        });
        if a.record % 3 > 0 {
            state.accounts.insert(
                user.to_string(),
                OwnedAccount {
                    remote_id,
                    created: a.created,
                    password_fingerprint: (a.record % 3 == 2)
                        .then(|| format!("fp{}", a.fingerprint % 3)),
                    removed_since: removed_since(a.removed),
                },
            );
        }
    }
    for (u, fp, removed) in inp.stale.iter().take(3) {
        let user = pick(&USERS, *u);
        state
            .accounts
            .entry(user.to_string())
            .or_insert_with(|| OwnedAccount {
                remote_id: format!("deleted-{user}"),
                created: true,
                password_fingerprint: fp.map(|f| format!("fp{}", f % 3)),
                removed_since: removed_since(*removed),
            });
    }
    World {
        service,
        desired,
        observed,
        state,
        passwords,
        removal: [Removal::Disable, Removal::Delete, Removal::Keep][inp.removal as usize % 3],
        grace: if inp.grace { GRACE } else { 0 },
        max_percent: [0, 25, 50, 100][inp.max_percent as usize % 4],
        hold_removals: inp.hold_removals,
    }
}

impl World {
    /// One run of the engine: settle the state with what was observed, then plan.
    fn plan(&mut self, force: bool) -> AccountPlan {
        accounts::settle(&self.observed, &mut self.state);
        plan_accounts(&AccountPlanInput {
            service: self.service,
            desired: &self.desired,
            observed: &self.observed,
            state: &self.state,
            passwords: &self.passwords,
            removal: self.removal,
            removal_grace_period: self.grace,
            guard: Guard {
                max_percent: self.max_percent,
                force,
            },
            hold_removals: self.hold_removals,
            now: NOW,
        })
    }

    fn apply(&mut self, p: &AccountPlan) {
        let done = simulate::apply(
            self.service,
            p,
            &mut self.observed,
            &mut self.state,
            &self.passwords,
        );
        assert!(done.refused.is_empty(), "refused: {:?}\n{p}", done.refused);
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

fuzz_target!(|inp: Input| {
    let mut w = build(&inp);
    let p = w.plan(inp.force);
    assert_eq!(p, w.plan(inp.force), "plan is not deterministic");
    let caps = w.service.capabilities();
    for c in &p.changes {
        let desired = w.desired.get(&c.name);
        if w.hold_removals {
            assert!(desired.is_some(), "removals are held: {}\n{p}", c.name);
        }
        if !p.blocked.is_empty() {
            assert!(!c.op.removes(), "held back, yet planned:\n{p}");
        }
        for a in &c.actions {
            if matches!(
                a,
                AccountAction::SetPassword { .. }
                    | AccountAction::Create {
                        with_password: true,
                        ..
                    }
            ) {
                assert!(caps.passwords, "{} takes no password: {a:?}", w.service);
            }
            let Some(rid) = remote_id_of(a) else { continue };
            let acc = w.observed.iter().find(|o| o.remote_id == rid);
            let acc = acc.unwrap_or_else(|| panic!("names no account: {a:?}\n{p}"));
            let owned = acc.marked || w.state.accounts.values().any(|o| o.remote_id == rid);
            let maps = desired.is_some_and(|d| d.key.eq_ignore_ascii_case(&acc.key));
            assert!(owned || maps, "hand-made account touched: {a:?}\n{p}");
            if let AccountAction::Delete { .. } = a {
                assert!(owned && desired.is_none(), "deletes {acc:?}\n{p}");
            }
        }
    }
    w.apply(&p);
    let again = w.plan(inp.force);
    assert_eq!(again.problems, p.problems, "problems stand");
    if p.blocked.is_empty() {
        assert!(again.is_empty(), "not converged:\n{p}\nthen:\n{again}");
    } else {
        assert!(
            again.changes.iter().all(|c| c.op.removes()),
            "more than the held-back removals left:\n{p}\nthen:\n{again}"
        );
        let forced = w.plan(true);
        w.apply(&forced);
        let third = w.plan(true);
        assert!(
            third.is_empty(),
            "not converged with --force:\n{p}\nthen:\n{forced}\nthen:\n{third}"
        );
    }
});
