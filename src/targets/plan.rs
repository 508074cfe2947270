//! The pure diff of one service: desired accounts × observed accounts × paasd's state → changes.
//! Same rules as LLDAP's plan: write only what differs, never touch accounts paasd does not
//! manage, removal per `removal`, the mass-removal guard.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use super::{Account, AccountAction, Capabilities, DesiredAccount};
use crate::plan::{Action, Change, FieldDiff, ObjectKind, Op, PlanProblem};
use crate::spec::Removal;
use crate::state::TargetState;

/// The desired password of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServicePassword {
    /// paasd sets no password here (LDAP/SSO login, or no source).
    None,
    /// Fingerprint of the desired password; `enforce`: keep it equal (else set at creation only).
    Set { fingerprint: String, enforce: bool },
    /// The source exists but cannot be used.
    Unusable(String),
}

pub struct ServicePlanInput<'a> {
    pub service: &'static str,
    pub caps: Capabilities,
    /// By paasd user id.
    pub desired: &'a BTreeMap<String, DesiredAccount>,
    pub observed: &'a [Account],
    pub state: &'a TargetState,
    pub passwords: &'a BTreeMap<String, ServicePassword>,
    pub removal: Removal,
    pub removal_grace_period: u64,
    pub max_percent: u32,
    pub force: bool,
    pub now: u64,
}

/// The changes for one service, and the objects it cannot reconcile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServicePlan {
    pub changes: Vec<Change>,
    pub problems: Vec<PlanProblem>,
    pub blocked: Vec<String>,
    pub unchanged: usize,
}

fn show(v: &str) -> Cow<'static, str> {
    format!("\"{v}\"").into()
}

pub fn plan_service(input: &ServicePlanInput<'_>) -> ServicePlan {
    let mut out = ServicePlan::default();
    let svc = input.service;
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
        target: svc.into(),
        kind: ObjectKind::User,
        name: user.to_string(),
        op,
        reason,
        fields,
        actions: actions.into_iter().map(Action::Account).collect(),
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

    let mut removing = Vec::new();
    for (user, d) in input.desired {
        let pw = input
            .passwords
            .get(user)
            .cloned()
            .unwrap_or(ServicePassword::None);
        if let ServicePassword::Unusable(msg) = &pw {
            out.problems.push(PlanProblem {
                target: svc.into(),
                kind: ObjectKind::User,
                name: user.clone(),
                message: msg.clone(),
            });
        }
        let can_set_password = input.caps.passwords && matches!(pw, ServicePassword::Set { .. });
        match find(user, &d.key) {
            None => {
                if !d.enabled {
                    // Nothing to disable: a disabled user gets no account.
                    out.unchanged += 1;
                    continue;
                }
                let mut fields: Vec<FieldDiff> = d
                    .fields
                    .iter()
                    .map(|(k, v)| FieldDiff {
                        field: k.clone().into(),
                        old: None,
                        new: Some(show(v)),
                    })
                    .collect();
                if !d.groups.is_empty() {
                    fields.push(FieldDiff {
                        field: "groups".into(),
                        old: None,
                        new: Some(
                            d.groups
                                .iter()
                                .map(|g| format!("+{g}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                                .into(),
                        ),
                    });
                }
                if can_set_password {
                    fields.push(FieldDiff {
                        field: "password".into(),
                        old: None,
                        new: Some("(set)".into()),
                    });
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
                let managed = owned.is_some() || a.marked;
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
                        fields.push(FieldDiff {
                            field: k.clone().into(),
                            old: cur.map(|c| show(c)),
                            new: Some(show(v)),
                        });
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
                let mut group_diff = Vec::new();
                for g in d.managed_groups.iter().chain(d.groups.iter()) {
                    let want = d.groups.contains(g);
                    let have = a.groups.contains(g);
                    if want && !have && !actions.iter().any(|x| matches!(x, AccountAction::AddToGroup { group, .. } if group == g)) {
                        group_diff.push(format!("+{g}"));
                        actions.push(AccountAction::AddToGroup {
                            user: user.clone(),
                            remote_id: rid.clone(),
                            group: g.clone(),
                        });
                    } else if !want && have && !actions.iter().any(|x| matches!(x, AccountAction::RemoveFromGroup { group, .. } if group == g)) {
                        group_diff.push(format!("-{g}"));
                        actions.push(AccountAction::RemoveFromGroup {
                            user: user.clone(),
                            remote_id: rid.clone(),
                            group: g.clone(),
                        });
                    }
                }
                if !group_diff.is_empty() {
                    fields.push(FieldDiff {
                        field: "groups".into(),
                        old: None,
                        new: Some(group_diff.join(", ").into()),
                    });
                }
                if let ServicePassword::Set {
                    fingerprint,
                    enforce,
                } = &pw
                {
                    let recorded = owned.and_then(|o| o.password_fingerprint.as_ref());
                    if input.caps.passwords
                        && d.enabled
                        && *enforce
                        && recorded != Some(fingerprint)
                    {
                        fields.push(FieldDiff {
                            field: "password".into(),
                            old: None,
                            new: Some("(set)".into()),
                        });
                        actions.push(AccountAction::SetPassword {
                            user: user.clone(),
                            remote_id: rid.clone(),
                        });
                    }
                }
                let mut op = if managed { Op::Update } else { Op::Adopt };
                let mut reason =
                    (!managed).then(|| format!("exists in {svc}, not created by paasd"));
                if a.enabled != d.enabled && input.caps.disable {
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
                if actions.is_empty() {
                    out.unchanged += 1;
                } else {
                    let c = change(user, op, reason, fields, actions);
                    if c.op == Op::Disable {
                        removing.push(out.changes.len());
                    }
                    out.changes.push(c);
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
    for (user, a) in gone {
        let o = input.state.accounts.get(&user);
        let reason = format!(
            "no longer provisioned in {svc}; removal = \"{}\"",
            match input.removal {
                Removal::Disable => "disable",
                Removal::Delete => "delete",
                Removal::Keep => "keep",
            }
        );
        let removed_since = o.and_then(|o| o.removed_since);
        let delete_now = input.removal == Removal::Delete
            && (input.removal_grace_period == 0
                || removed_since
                    .is_some_and(|t| input.now.saturating_sub(t) >= input.removal_grace_period));
        let rid = a.remote_id.clone();
        if delete_now {
            removing.push(out.changes.len());
            out.changes.push(change(
                &user,
                Op::Delete,
                Some(reason),
                Vec::new(),
                vec![AccountAction::Delete {
                    user: user.clone(),
                    remote_id: rid,
                }],
            ));
        } else if input.removal != Removal::Keep {
            let mut actions = Vec::new();
            if a.enabled && input.caps.disable {
                actions.push(AccountAction::Disable {
                    user: user.clone(),
                    remote_id: rid,
                });
            }
            let mut reason = reason;
            let disables = !actions.is_empty();
            if input.removal == Removal::Delete && removed_since.is_none() {
                reason = format!(
                    "{reason}; deleted after removalGracePeriod ({} s)",
                    input.removal_grace_period
                );
                actions.push(AccountAction::MarkRemoved {
                    user: user.clone(),
                    since: input.now,
                });
            }
            if !actions.is_empty() {
                if disables {
                    removing.push(out.changes.len());
                }
                out.changes.push(change(
                    &user,
                    if disables { Op::Disable } else { Op::Update },
                    Some(reason),
                    Vec::new(),
                    actions,
                ));
            }
        }
    }

    let n = removing.len();
    let max = input.max_percent as usize;
    if !input.force && n > 3 && n * 100 > max * managed_total.max(1) {
        out.blocked.push(format!(
            "removal guard ({svc}): {n} of {managed_total} managed accounts would be disabled or deleted, \
             more than removalGuard.maxPercent = {max}%; held back (run `paasctl apply --force` if intended)"
        ));
        let mut i = 0;
        out.changes.retain(|_| {
            let keep = !removing.contains(&i);
            i += 1;
            keep
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::OwnedAccount;
    use std::collections::BTreeSet;

    /// A service with accounts in memory: applies account actions like a real one would.
    #[derive(Default)]
    struct Model {
        accounts: Vec<Account>,
        next: u32,
        writes: usize,
    }

    impl Model {
        fn apply(
            &mut self,
            plan: &ServicePlan,
            state: &mut TargetState,
            passwords: &BTreeMap<String, ServicePassword>,
        ) {
            for c in &plan.changes {
                for a in &c.actions {
                    let Action::Account(a) = a else { continue };
                    if !matches!(a, AccountAction::MarkRemoved { .. }) {
                        self.writes += 1;
                    }
                    let fp = match passwords.get(a.user()) {
                        Some(ServicePassword::Set { fingerprint, .. }) => Some(fingerprint.clone()),
                        _ => None,
                    };
                    match a {
                        AccountAction::Create {
                            user,
                            key,
                            enabled,
                            fields,
                            groups,
                            with_password,
                        } => {
                            self.next += 1;
                            let rid = format!("id{}", self.next);
                            self.accounts.push(Account {
                                remote_id: rid.clone(),
                                key: key.clone(),
                                enabled: *enabled,
                                fields: fields.clone(),
                                groups: groups.clone(),
                                marked: false,
                            });
                            state.accounts.insert(
                                user.clone(),
                                OwnedAccount {
                                    remote_id: rid,
                                    created: true,
                                    password_fingerprint: if *with_password { fp } else { None },
                                    removed_since: None,
                                },
                            );
                        }
                        AccountAction::Update {
                            remote_id, fields, ..
                        } => {
                            let acc = self
                                .accounts
                                .iter_mut()
                                .find(|x| &x.remote_id == remote_id)
                                .expect("exists");
                            acc.fields.extend(fields.clone());
                        }
                        AccountAction::AddToGroup {
                            remote_id, group, ..
                        } => {
                            self.accounts
                                .iter_mut()
                                .find(|x| &x.remote_id == remote_id)
                                .expect("exists")
                                .groups
                                .insert(group.clone());
                        }
                        AccountAction::RemoveFromGroup {
                            remote_id, group, ..
                        } => {
                            self.accounts
                                .iter_mut()
                                .find(|x| &x.remote_id == remote_id)
                                .expect("exists")
                                .groups
                                .remove(group);
                        }
                        AccountAction::SetPassword { user, .. } => {
                            state
                                .accounts
                                .get_mut(user)
                                .expect("owned")
                                .password_fingerprint = fp;
                        }
                        AccountAction::Disable { remote_id, .. }
                        | AccountAction::Enable { remote_id, .. } => {
                            let on = matches!(a, AccountAction::Enable { .. });
                            self.accounts
                                .iter_mut()
                                .find(|x| &x.remote_id == remote_id)
                                .expect("exists")
                                .enabled = on;
                        }
                        AccountAction::Mark { user, remote_id } => {
                            state.accounts.entry(user.clone()).or_default().remote_id =
                                remote_id.clone();
                        }
                        AccountAction::Delete { user, remote_id } => {
                            self.accounts.retain(|x| &x.remote_id != remote_id);
                            state.accounts.remove(user);
                        }
                        AccountAction::MarkRemoved { user, since } => {
                            if let Some(o) = state.accounts.get_mut(user) {
                                o.removed_since = (*since != 0).then_some(*since);
                            }
                        }
                    }
                }
            }
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
        pw: &BTreeMap<String, ServicePassword>,
        removal: Removal,
        force: bool,
    ) -> ServicePlan {
        plan_service(&ServicePlanInput {
            service: "nextcloud",
            caps: Capabilities {
                passwords: true,
                disable: true,
            },
            desired: d,
            observed: &model.accounts,
            state: st,
            passwords: pw,
            removal,
            removal_grace_period: 0,
            max_percent: 25,
            force,
            now: 1000,
        })
    }

    fn ops(p: &ServicePlan) -> Vec<(String, Op)> {
        p.changes.iter().map(|c| (c.name.clone(), c.op)).collect()
    }

    #[test]
    fn lifecycle_create_noop_change_disable_enable_delete() {
        let mut m = Model::default();
        let mut st = TargetState::default();
        let mut pw = BTreeMap::new();
        pw.insert(
            "alice".to_string(),
            ServicePassword::Set {
                fingerprint: "f1".into(),
                enforce: true,
            },
        );
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

        m.writes = 0;
        let p = run(&m, &d, &st, &pw, Removal::Disable, false);
        assert!(
            p.changes.is_empty(),
            "second run: zero writes: {:?}",
            ops(&p)
        );
        assert_eq!(p.unchanged, 2);

        let d2 = desired(&[("alice", true, "20 GB"), ("bob", false, "1 GB")]);
        pw.insert(
            "alice".to_string(),
            ServicePassword::Set {
                fingerprint: "f2".into(),
                enforce: true,
            },
        );
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
            matches!(&p.changes[0].actions[0], Action::Account(AccountAction::Mark { remote_id, .. }) if remote_id == "h2")
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
            pw.insert(
                n.clone(),
                ServicePassword::Set {
                    fingerprint: "g".into(),
                    enforce: false,
                },
            );
        }
        let d = desired(&all);
        let p = run(&m, &d, &st, &pw, Removal::Disable, false);
        m.apply(&p, &mut st, &pw);
        // A changed "initial"/generated password is not re-set.
        for n in &names {
            pw.insert(
                n.clone(),
                ServicePassword::Set {
                    fingerprint: "other".into(),
                    enforce: false,
                },
            );
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
}
