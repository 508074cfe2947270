//! The pure diff of one service: desired accounts × observed accounts × paasd's state → changes.
//! Same rules as LLDAP's plan: write only what differs, never touch accounts paasd does not
//! manage, removal per `removal`, the mass-removal guard.

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
    pub service: &'a str,
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

fn show(v: &str) -> String {
    format!("\"{v}\"")
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
        target: svc.to_string(),
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
                        field: k.clone(),
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
                                .join(", "),
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
                            field: k.clone(),
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
                        new: Some(group_diff.join(", ")),
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
