//! The pure diff of one service: desired accounts × observed accounts × paasd's state → changes.
//! The same rules as LLDAP's plan, from the shared [`policy`](crate::core::policy): write only
//! what differs, never touch accounts paasd does not own, removal per `removal` with its grace
//! period, the mass-removal guard, passwords enforced or set once.

use std::collections::{BTreeMap, HashMap};

use super::{Account, AccountAction, DesiredAccount};
use crate::core::id::{ServiceKind, TargetId};
use crate::core::plan::{Change, FieldDiff, ObjectKind, Op, Plan, PlanProblem};
use crate::core::policy::{
    self, password_step, removal_reason, removal_step, DesiredPassword, Guard, PasswordStep,
    RemovalStep,
};
use crate::core::spec::{PasswordMode, Removal};
use crate::core::state::TargetState;

pub struct AccountPlanInput<'a> {
    pub service: ServiceKind,
    /// By paasd user id.
    pub desired: &'a BTreeMap<String, DesiredAccount>,
    pub observed: &'a [Account],
    pub state: &'a TargetState,
    /// By paasd user id; a missing entry is [`DesiredPassword::None`].
    pub passwords: &'a BTreeMap<String, DesiredPassword>,
    pub removal: Removal,
    pub removal_grace_period: u64,
    pub guard: Guard,
    /// Accounts of users who may be group members are not removed (the members are unknown).
    pub hold_removals: bool,
    pub now: u64,
}

/// The changes for one service.
pub type AccountPlan = Plan<AccountAction>;

pub fn plan_accounts(input: &AccountPlanInput<'_>) -> AccountPlan {
    let mut out = AccountPlan::default();
    let svc = input.service;
    let target = TargetId::Service(svc);
    let caps = svc.capabilities();
    let by_key: HashMap<String, &Account> = input
        .observed
        .iter()
        .map(|a| (a.key.to_ascii_lowercase(), a))
        .collect();
    let by_id: HashMap<&str, &Account> = input
        .observed
        .iter()
        .map(|a| (a.remote_id.as_str(), a))
        .collect();
    let change = |user: &str,
                  op: Op,
                  reason: Option<String>,
                  fields: Vec<FieldDiff>,
                  actions: Vec<AccountAction>| Change {
        target,
        kind: ObjectKind::User,
        name: user.to_string(),
        op,
        reason,
        fields,
        actions,
    };
    // The account a managed user has: by the id paasd recorded, else by key.
    let find = |user: &str, key: &str| -> Option<&Account> {
        input
            .state
            .accounts
            .get(user)
            .and_then(|o| by_id.get(o.remote_id.as_str()).copied())
            .or_else(|| by_key.get(&key.to_ascii_lowercase()).copied())
    };

    for (user, d) in input.desired {
        let pw = input.passwords.get(user).unwrap_or(&DesiredPassword::None);
        if let DesiredPassword::Unusable(msg) = pw {
            out.problems.push(PlanProblem {
                target,
                kind: ObjectKind::User,
                name: user.clone(),
                message: msg.clone(),
            });
        }
        let can_set_password = caps.passwords && pw.is_set();
        match find(user, &d.key) {
            None => {
                if !d.enabled {
                    // Nothing to disable: a disabled user gets no account.
                    out.unchanged_users += 1;
                    continue;
                }
                let mut fields: Vec<FieldDiff> = d
                    .fields
                    .iter()
                    .map(|(k, v)| FieldDiff::new_value(k.clone(), v))
                    .collect();
                let groups: Vec<String> = d.groups.iter().cloned().collect();
                fields.extend(FieldDiff::groups(&groups, &[]));
                if can_set_password {
                    fields.push(FieldDiff::note("password", "(set)"));
                }
                out.changes.push(change(
                    user,
                    Op::Create,
                    None,
                    fields,
                    vec![AccountAction::Create {
                        user: user.clone(),
                        key: d.key.clone(),
                        enabled: d.enabled,
                        fields: d.fields.clone(),
                        groups: d.groups.clone(),
                        with_password: can_set_password,
                    }],
                ));
            }
            Some(a) => {
                let owned = input.state.accounts.get(user);
                let managed = policy::is_owned(a.marked, owned.is_some());
                let rid = a.remote_id.clone();
                let mut actions = Vec::new();
                let mut fields = Vec::new();
                if !a.marked && owned.is_none() {
                    actions.push(AccountAction::Mark {
                        user: user.clone(),
                        remote_id: rid.clone(),
                    });
                }
                let mut updates = BTreeMap::new();
                for (k, v) in &d.fields {
                    let cur = a.fields.get(k);
                    if cur != Some(v) {
                        fields.push(FieldDiff::changed(k.clone(), cur.map(String::as_str), v));
                        updates.insert(k.clone(), v.clone());
                    }
                }
                if !updates.is_empty() {
                    actions.push(AccountAction::Update {
                        user: user.clone(),
                        remote_id: rid.clone(),
                        fields: updates,
                    });
                }
                let mut added = Vec::new();
                let mut removed = Vec::new();
                for g in d.managed_groups.iter().chain(d.groups.iter()) {
                    let want = d.groups.contains(g);
                    let have = a.groups.contains(g);
                    if want && !have && !added.contains(g) {
                        added.push(g.clone());
                        actions.push(AccountAction::AddToGroup {
                            user: user.clone(),
                            remote_id: rid.clone(),
                            group: g.clone(),
                        });
                    } else if !want && have && !removed.contains(g) {
                        removed.push(g.clone());
                        actions.push(AccountAction::RemoveFromGroup {
                            user: user.clone(),
                            remote_id: rid.clone(),
                            group: g.clone(),
                        });
                    }
                }
                fields.extend(FieldDiff::groups(&added, &removed));
                let recorded = owned.and_then(|o| o.password_fingerprint.as_deref());
                // Services cannot check a password: a changed enforced one is written.
                let mode = match pw {
                    DesiredPassword::Known { mode, .. } => *mode,
                    _ => PasswordMode::Initial,
                };
                let step = password_step(pw.fingerprint(), mode, recorded, false, false, false);
                if caps.passwords && d.enabled && step == PasswordStep::Set {
                    fields.push(FieldDiff::note("password", "(set)"));
                    actions.push(AccountAction::SetPassword {
                        user: user.clone(),
                        remote_id: rid.clone(),
                    });
                }
                let mut op = if managed { Op::Update } else { Op::Adopt };
                let mut reason =
                    (!managed).then(|| format!("exists in {svc}, not created by paasd"));
                if a.enabled != d.enabled && caps.disable {
                    if d.enabled {
                        actions.push(AccountAction::Enable {
                            user: user.clone(),
                            remote_id: rid.clone(),
                        });
                        if managed {
                            op = Op::Enable;
                        }
                    } else {
                        actions.push(AccountAction::Disable {
                            user: user.clone(),
                            remote_id: rid.clone(),
                        });
                        if managed {
                            op = Op::Disable;
                            reason = Some("enable = false".into());
                        }
                    }
                }
                let enables = actions
                    .iter()
                    .any(|x| matches!(x, AccountAction::Enable { .. }));
                if owned.is_some_and(|o| o.removed_since.is_some()) && !enables {
                    // Back in the service: forget when the user left it, so that a later
                    // removal starts its grace period anew (an `Enable` forgets it too).
                    actions.push(AccountAction::MarkRemoved {
                        user: user.clone(),
                        since: 0,
                    });
                }
                if actions.is_empty() {
                    out.unchanged_users += 1;
                } else {
                    out.changes.push(change(user, op, reason, fields, actions));
                }
            }
        }
    }

    // Managed accounts whose user left this service.
    let managed_total = input
        .state
        .accounts
        .len()
        .max(input.observed.iter().filter(|a| a.marked).count());
    let mut gone: BTreeMap<String, &Account> = BTreeMap::new();
    for (user, o) in &input.state.accounts {
        if input.desired.contains_key(user) {
            continue;
        }
        if let Some(a) = by_id.get(o.remote_id.as_str()) {
            gone.insert(user.clone(), a);
        }
    }
    for a in input.observed.iter().filter(|a| a.marked) {
        let user = a.key.to_ascii_lowercase();
        if !input.desired.contains_key(&user) && !input.state.accounts.contains_key(&user) {
            gone.insert(user, a);
        }
    }
    let mut removals = Vec::new();
    for (user, a) in gone {
        if input.hold_removals {
            continue;
        }
        let removed_since = input
            .state
            .accounts
            .get(&user)
            .and_then(|o| o.removed_since);
        let step = removal_step(
            input.removal,
            input.removal_grace_period,
            removed_since,
            input.now,
        );
        let reason = removal_reason(
            &format!("no longer provisioned in {svc}"),
            input.removal,
            step,
            input.removal_grace_period,
        );
        let rid = a.remote_id.clone();
        match step {
            RemovalStep::Delete => removals.push(change(
                &user,
                Op::Delete,
                Some(reason),
                Vec::new(),
                vec![AccountAction::Delete {
                    user: user.clone(),
                    remote_id: rid,
                }],
            )),
            RemovalStep::Disable { start_grace_period } => {
                let mut actions = Vec::new();
                if a.enabled && caps.disable {
                    actions.push(AccountAction::Disable {
                        user: user.clone(),
                        remote_id: rid,
                    });
                }
                let disables = !actions.is_empty();
                if start_grace_period {
                    actions.push(AccountAction::MarkRemoved {
                        user: user.clone(),
                        since: input.now,
                    });
                }
                if !actions.is_empty() {
                    removals.push(change(
                        &user,
                        if disables { Op::Disable } else { Op::Update },
                        Some(reason),
                        Vec::new(),
                        actions,
                    ));
                }
            }
            RemovalStep::Keep => {}
        }
    }
    out.changes.extend(removals);

    let removing = out.changes.iter().filter(|c| c.op.removes()).count();
    if let Some(held) = input.guard.check(target, removing, managed_total) {
        out.blocked.push(held);
        out.changes.retain(|c| !c.op.removes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::OwnedAccount;
    use crate::targets::accounts::simulate;
    use std::collections::BTreeSet;

    /// Nextcloud's accounts in memory: plans are applied by the pure model of a service.
    #[derive(Default)]
    struct Model {
        accounts: Vec<Account>,
    }

    impl Model {
        fn apply(
            &mut self,
            plan: &AccountPlan,
            state: &mut TargetState,
            passwords: &BTreeMap<String, DesiredPassword>,
        ) {
            let done = simulate::apply(
                ServiceKind::Nextcloud,
                plan,
                &mut self.accounts,
                state,
                passwords,
            );
            assert!(done.refused.is_empty(), "{:?}", done.refused);
        }
    }

    fn desired(users: &[(&str, bool, &str)]) -> BTreeMap<String, DesiredAccount> {
        users
            .iter()
            .map(|(id, enabled, quota)| {
                let mut fields = BTreeMap::new();
                fields.insert("quota".to_string(), quota.to_string());
                let admin: BTreeSet<String> = ["admin".to_string()].into_iter().collect();
                (
                    id.to_string(),
                    DesiredAccount {
                        user: id.to_string(),
                        key: id.to_string(),
                        enabled: *enabled,
                        fields,
                        groups: if *id == "alice" {
                            admin.clone()
                        } else {
                            BTreeSet::new()
                        },
                        managed_groups: admin,
                    },
                )
            })
            .collect()
    }

    fn run(
        model: &Model,
        d: &BTreeMap<String, DesiredAccount>,
        st: &TargetState,
        pw: &BTreeMap<String, DesiredPassword>,
        removal: Removal,
        force: bool,
    ) -> AccountPlan {
        plan_accounts(&AccountPlanInput {
            service: ServiceKind::Nextcloud,
            desired: d,
            observed: &model.accounts,
            state: st,
            passwords: pw,
            removal,
            removal_grace_period: 0,
            guard: Guard {
                max_percent: 25,
                force,
            },
            hold_removals: false,
            now: 1000,
        })
    }

    fn known(fingerprint: &str, mode: PasswordMode) -> DesiredPassword {
        DesiredPassword::Known {
            fingerprint: fingerprint.into(),
            mode,
        }
    }

    fn ops(p: &AccountPlan) -> Vec<(String, Op)> {
        p.changes.iter().map(|c| (c.name.clone(), c.op)).collect()
    }

    #[test]
    fn lifecycle_create_noop_change_disable_enable_delete() {
        let mut m = Model::default();
        let mut st = TargetState::default();
        let mut pw = BTreeMap::new();
        pw.insert("alice".to_string(), known("f1", PasswordMode::Enforce));
        let d = desired(&[("alice", true, "10 GB"), ("bob", true, "1 GB")]);
        let p = run(&m, &d, &st, &pw, Removal::Disable, false);
        assert_eq!(
            ops(&p),
            vec![("alice".into(), Op::Create), ("bob".into(), Op::Create)]
        );
        m.apply(&p, &mut st, &pw);
        assert!(m.accounts[0].groups.contains("admin"));
        assert_eq!(
            st.accounts["alice"].password_fingerprint.as_deref(),
            Some("f1")
        );

        let p = run(&m, &d, &st, &pw, Removal::Disable, false);
        assert!(
            p.changes.is_empty(),
            "second run: zero writes: {:?}",
            ops(&p)
        );
        assert_eq!(p.unchanged_users, 2);

        let d2 = desired(&[("alice", true, "20 GB"), ("bob", false, "1 GB")]);
        pw.insert("alice".to_string(), known("f2", PasswordMode::Enforce));
        let p = run(&m, &d2, &st, &pw, Removal::Disable, false);
        assert_eq!(
            ops(&p),
            vec![("alice".into(), Op::Update), ("bob".into(), Op::Disable)]
        );
        m.apply(&p, &mut st, &pw);
        assert!(run(&m, &d2, &st, &pw, Removal::Disable, false)
            .changes
            .is_empty());

        let p = run(&m, &d, &st, &pw, Removal::Disable, false);
        m.apply(&p, &mut st, &pw);
        assert!(m.accounts.iter().all(|a| a.enabled));

        // bob leaves the service: removal = delete.
        let only_alice = desired(&[("alice", true, "10 GB")]);
        let p = run(&m, &only_alice, &st, &pw, Removal::Delete, false);
        assert_eq!(ops(&p), vec![("bob".into(), Op::Delete)]);
        m.apply(&p, &mut st, &pw);
        assert_eq!(m.accounts.len(), 1);
        assert!(run(&m, &only_alice, &st, &pw, Removal::Delete, false)
            .changes
            .is_empty());
    }

    #[test]
    fn hand_made_accounts_are_untouched_and_declared_ones_adopted() {
        let mut m = Model::default();
        m.accounts.push(Account {
            remote_id: "h1".into(),
            key: "zoe".into(),
            enabled: true,
            ..Account::default()
        });
        m.accounts.push(Account {
            remote_id: "h2".into(),
            key: "Alice".into(),
            enabled: true,
            ..Account::default()
        });
        let mut st = TargetState::default();
        let pw = BTreeMap::new();
        let d = desired(&[("alice", true, "10 GB")]);
        for removal in [Removal::Disable, Removal::Delete] {
            let p = run(&m, &d, &st, &pw, removal, false);
            assert!(p.changes.iter().all(|c| c.name != "zoe"));
        }
        let p = run(&m, &d, &st, &pw, Removal::Disable, false);
        assert_eq!(ops(&p), vec![("alice".into(), Op::Adopt)]);
        assert!(
            matches!(&p.changes[0].actions[0], AccountAction::Mark { remote_id, .. } if remote_id == "h2")
        );
        m.apply(&p, &mut st, &pw);
        assert_eq!(st.accounts["alice"].remote_id, "h2");
        assert!(run(&m, &d, &st, &pw, Removal::Disable, false)
            .changes
            .is_empty());
    }

    #[test]
    fn guard_and_initial_passwords() {
        let mut m = Model::default();
        let mut st = TargetState::default();
        let mut pw = BTreeMap::new();
        let names: Vec<String> = (0..8).map(|i| format!("u{i}")).collect();
        let all: Vec<(&str, bool, &str)> =
            names.iter().map(|n| (n.as_str(), true, "1 GB")).collect();
        for n in &names {
            pw.insert(n.clone(), known("g", PasswordMode::Initial));
        }
        let d = desired(&all);
        let p = run(&m, &d, &st, &pw, Removal::Disable, false);
        m.apply(&p, &mut st, &pw);
        // A changed "initial"/generated password is not re-set.
        for n in &names {
            pw.insert(n.clone(), known("other", PasswordMode::Initial));
        }
        assert!(run(&m, &d, &st, &pw, Removal::Disable, false)
            .changes
            .is_empty());
        let few = desired(&all[..2]);
        let p = run(&m, &few, &st, &pw, Removal::Disable, false);
        assert!(p.changes.is_empty());
        assert_eq!(p.blocked.len(), 1, "6 of 8 held back");
        assert_eq!(
            run(&m, &few, &st, &pw, Removal::Disable, true)
                .changes
                .len(),
            6
        );
    }

    /// Found by `tests/proptest_accounts.rs`: a user who left a service (`removal = "delete"`
    /// with a grace period: the account is disabled and the time recorded) and came back
    /// disabled (`enable = false`, so no `Enable` is planned) kept the recorded removal time; when
    /// the user left again later, the account was deleted at once, without a grace period.
    #[test]
    fn a_user_back_in_the_service_forgets_the_removal_time() {
        let mut m = Model::default();
        let mut st = TargetState::default();
        let pw = BTreeMap::new();
        let input = |m: &Model, d: &BTreeMap<String, DesiredAccount>, st: &TargetState, now| {
            plan_accounts(&AccountPlanInput {
                service: ServiceKind::Nextcloud,
                desired: d,
                observed: &m.accounts,
                state: st,
                passwords: &pw,
                removal: Removal::Delete,
                removal_grace_period: 3600,
                guard: Guard {
                    max_percent: 100,
                    force: false,
                },
                hold_removals: false,
                now,
            })
        };
        let with_bob = desired(&[("alice", true, "1 GB"), ("bob", true, "1 GB")]);
        let p = input(&m, &with_bob, &st, 1000);
        m.apply(&p, &mut st, &pw);
        // bob leaves: disabled, the grace period starts.
        let only_alice = desired(&[("alice", true, "1 GB")]);
        let p = input(&m, &only_alice, &st, 2000);
        assert_eq!(ops(&p), vec![("bob".into(), Op::Disable)]);
        m.apply(&p, &mut st, &pw);
        assert_eq!(st.accounts["bob"].removed_since, Some(2000));
        // bob is back, disabled: the removal time is forgotten.
        let bob_disabled = desired(&[("alice", true, "1 GB"), ("bob", false, "1 GB")]);
        let p = input(&m, &bob_disabled, &st, 3000);
        m.apply(&p, &mut st, &pw);
        assert_eq!(st.accounts["bob"].removed_since, None);
        assert!(input(&m, &bob_disabled, &st, 3000).is_empty());
        // bob leaves again, long after the first time: a new grace period, no delete yet.
        let p = input(&m, &only_alice, &st, 2000 + 10 * 3600);
        assert_eq!(ops(&p), vec![("bob".into(), Op::Update)], "{p}");
        assert!(p.changes[0]
            .actions
            .iter()
            .all(|a| !matches!(a, AccountAction::Delete { .. })));
    }

    /// One run of the engine on GitLab's accounts: settle, plan, apply.
    fn gitlab_run(
        accounts: &mut Vec<Account>,
        st: &mut TargetState,
        d: &BTreeMap<String, DesiredAccount>,
        pw: &BTreeMap<String, DesiredPassword>,
        now: u64,
    ) -> AccountPlan {
        crate::targets::accounts::settle(accounts, st);
        let p = plan_accounts(&AccountPlanInput {
            service: ServiceKind::Gitlab,
            desired: d,
            observed: accounts,
            state: st,
            passwords: pw,
            removal: Removal::Delete,
            removal_grace_period: 3600,
            guard: Guard {
                max_percent: 100,
                force: false,
            },
            hold_removals: false,
            now,
        });
        let done = simulate::apply(ServiceKind::Gitlab, &p, accounts, st, pw);
        assert!(done.refused.is_empty(), "{:?}", done.refused);
        p
    }

    /// Found by `tests/proptest_accounts.rs`: a GitLab account carrying paasd's marker but not
    /// in the state (the state file was lost) is owned, yet what paasd records about it had
    /// nowhere to go (`State::record` updates only recorded accounts): an enforced password was
    /// written again on every run, and when the user left under `removal = "delete"` with a
    /// grace period, the removal time was never kept, so the account was never deleted.
    /// `accounts::settle` (the engine runs it before every plan) records such accounts again.
    #[test]
    fn marked_accounts_missing_from_the_state_are_recorded_again() {
        let mut accounts = vec![Account {
            remote_id: "7".into(),
            key: "alice".into(),
            enabled: true,
            fields: [("quota".to_string(), "1 GB".to_string())].into(),
            marked: true,
            ..Account::default()
        }];
        let mut st = TargetState::default();
        let mut pw = BTreeMap::new();
        pw.insert("alice".to_string(), known("f1", PasswordMode::Enforce));
        let mut d = desired(&[("alice", true, "1 GB")]);
        d.values_mut().for_each(|a| {
            a.groups.clear();
            a.managed_groups.clear();
        });
        let p = gitlab_run(&mut accounts, &mut st, &d, &pw, 1000);
        assert_eq!(ops(&p), vec![("alice".into(), Op::Update)], "{p}");
        assert_eq!(
            st.accounts["alice"].password_fingerprint.as_deref(),
            Some("f1")
        );
        let p = gitlab_run(&mut accounts, &mut st, &d, &pw, 1000);
        assert!(p.is_empty(), "the password is written once: {p}");

        // alice leaves; the state file is lost again.
        let none = BTreeMap::new();
        st = TargetState::default();
        let p = gitlab_run(&mut accounts, &mut st, &none, &pw, 2000);
        assert_eq!(ops(&p), vec![("alice".into(), Op::Disable)], "{p}");
        assert_eq!(st.accounts["alice"].removed_since, Some(2000));
        assert!(gitlab_run(&mut accounts, &mut st, &none, &pw, 3000).is_empty());
        let p = gitlab_run(&mut accounts, &mut st, &none, &pw, 2000 + 3600);
        assert_eq!(ops(&p), vec![("alice".into(), Op::Delete)], "{p}");
        assert!(accounts.is_empty());
    }

    /// Found by `tests/proptest_accounts.rs`: a state record of an account deleted by hand made
    /// a hand-made account with the same key look owned: it was changed as `update` instead of
    /// being adopted, its id was never recorded, the recorded fingerprint of the deleted account
    /// stood for its password (so an enforced password was not set), and the stale record counted
    /// as a managed account for the mass-removal guard. `accounts::settle` drops such records.
    #[test]
    fn records_of_accounts_deleted_by_hand_are_dropped() {
        let mut accounts = vec![Account {
            remote_id: "9".into(),
            key: "Alice".into(),
            enabled: true,
            fields: [("quota".to_string(), "1 GB".to_string())].into(),
            ..Account::default()
        }];
        let mut st = TargetState::default();
        st.accounts.insert(
            "alice".into(),
            OwnedAccount {
                remote_id: "3".into(),
                created: true,
                password_fingerprint: Some("f1".into()),
                removed_since: None,
            },
        );
        let mut pw = BTreeMap::new();
        pw.insert("alice".to_string(), known("f1", PasswordMode::Enforce));
        let mut d = desired(&[("alice", true, "1 GB")]);
        d.values_mut().for_each(|a| {
            a.groups.clear();
            a.managed_groups.clear();
        });
        let p = gitlab_run(&mut accounts, &mut st, &d, &pw, 1000);
        assert_eq!(ops(&p), vec![("alice".into(), Op::Adopt)], "{p}");
        assert!(p.changes[0]
            .actions
            .iter()
            .any(|a| matches!(a, AccountAction::SetPassword { .. })));
        assert_eq!(st.accounts["alice"].remote_id, "9");
        assert!(!st.accounts["alice"].created);
        assert!(gitlab_run(&mut accounts, &mut st, &d, &pw, 1000).is_empty());
    }
}
