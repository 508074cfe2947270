//! A pure model of what applying an account plan does to a service and to paasd's state. Used by
//! the unit tests, the property tests and the fuzz target to check the central invariant: after
//! applying a plan, the next plan is empty. It mirrors a service's semantics (keys unique and
//! compared case-insensitively, ids allocated by the service, the marker where the service keeps
//! one), not a backend's client code. What it records in paasd's state is what the engine records
//! after [`AccountTarget`](super::AccountTarget) carried an action out: the same
//! [`effects`](super::effects), folded in with [`State::record`], so the model cannot drift from
//! the real recording.

use std::collections::BTreeMap;

use super::plan::AccountPlan;
use super::{effects, Account, AccountAction, Executed};
use crate::core::id::ServiceKind;
use crate::core::policy::DesiredPassword;
use crate::core::state::{State, TargetState};

/// What one [`apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Actions that reached the service (all but `MarkRemoved`).
    pub requests: usize,
    /// Actions the service refused, with why (an account that does not exist, a key that is
    /// taken). As in the engine, the rest of a change is skipped after a refusal.
    pub refused: Vec<String>,
}

/// Applies every action of `plan` to `accounts` (the service) and `state` (paasd's record of the
/// service), as a successful apply through the engine would. `passwords` gives the fingerprints
/// recorded for the passwords sent (a [`DesiredPassword::Known`] one; others record none).
pub fn apply(
    service: ServiceKind,
    plan: &AccountPlan,
    accounts: &mut Vec<Account>,
    state: &mut TargetState,
    passwords: &BTreeMap<String, DesiredPassword>,
) -> Applied {
    // `State::record` is the one place that turns effects into state: fold into a `State` that
    // holds only this service.
    let mut whole = State::default();
    whole.targets.insert(service, std::mem::take(state));
    let mut out = Applied::default();
    for change in &plan.changes {
        let mut recorded = Vec::new();
        for action in &change.actions {
            if !matches!(action, AccountAction::MarkRemoved { .. }) {
                out.requests += 1;
            }
            match step(service, accounts, action) {
                Ok(done) => {
                    let fingerprint = passwords.get(action.user()).and_then(|p| p.fingerprint());
                    recorded.extend(effects(service, action, done, fingerprint));
                }
                Err(why) => {
                    out.refused.push(format!("{}: {why}", change.name));
                    break;
                }
            }
        }
        // The engine records a change's effects once the change ran (also after a failure).
        for e in &recorded {
            whole.record(e);
        }
    }
    *state = whole.targets.remove(&service).unwrap_or_default();
    out
}

fn account<'a>(
    accounts: &'a mut [Account],
    remote_id: &str,
) -> Result<&'a mut Account, &'static str> {
    accounts
        .iter_mut()
        .find(|a| a.remote_id == remote_id)
        .ok_or("no such account")
}

/// The id the service gives a new account: Nextcloud's uid and Mailcow's address are the key;
/// the others allocate one (GitLab a number, Jellyfin and Vaultwarden a GUID).
fn new_id(service: ServiceKind, key: &str, accounts: &[Account]) -> String {
    match service {
        ServiceKind::Nextcloud | ServiceKind::Mailcow => key.to_string(),
        _ => (1..)
            .map(|n| format!("{service}-{n}"))
            .find(|id| accounts.iter().all(|a| &a.remote_id != id))
            .unwrap_or_default(),
    }
}

fn step(
    service: ServiceKind,
    accounts: &mut Vec<Account>,
    action: &AccountAction,
) -> Result<Executed, &'static str> {
    let marker = service.capabilities().marker;
    match action {
        AccountAction::Create {
            key,
            enabled,
            fields,
            groups,
            ..
        } => {
            if accounts.iter().any(|a| a.key.eq_ignore_ascii_case(key)) {
                return Err("the key is taken");
            }
            let remote_id = new_id(service, key, accounts);
            if accounts.iter().any(|a| a.remote_id == remote_id) {
                return Err("the id is taken");
            }
            accounts.push(Account {
                remote_id: remote_id.clone(),
                key: key.clone(),
                enabled: *enabled,
                fields: fields.clone(),
                groups: groups.clone(),
                marked: marker,
            });
            return Ok(Executed {
                remote_id: Some(remote_id),
            });
        }
        AccountAction::Update {
            remote_id, fields, ..
        } => account(accounts, remote_id)?.fields.extend(fields.clone()),
        AccountAction::AddToGroup {
            remote_id, group, ..
        } => {
            account(accounts, remote_id)?.groups.insert(group.clone());
        }
        AccountAction::RemoveFromGroup {
            remote_id, group, ..
        } => {
            account(accounts, remote_id)?.groups.remove(group);
        }
        // A password is not visible in what the service shows.
        AccountAction::SetPassword { remote_id, .. } => {
            account(accounts, remote_id)?;
        }
        AccountAction::Disable { remote_id, .. } => account(accounts, remote_id)?.enabled = false,
        AccountAction::Enable { remote_id, .. } => account(accounts, remote_id)?.enabled = true,
        AccountAction::Mark { remote_id, .. } => {
            let a = account(accounts, remote_id)?;
            a.marked |= marker;
        }
        AccountAction::Delete { remote_id, .. } => {
            account(accounts, remote_id)?;
            accounts.retain(|a| &a.remote_id != remote_id);
        }
        AccountAction::MarkRemoved { .. } => {}
    }
    Ok(Executed::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::id::TargetId;
    use crate::core::plan::{Change, ObjectKind, Op, Plan};
    use crate::core::spec::PasswordMode;

    fn plan_of(actions: Vec<AccountAction>) -> AccountPlan {
        Plan {
            changes: vec![Change {
                target: TargetId::Service(ServiceKind::Gitlab),
                kind: ObjectKind::User,
                name: "alice".into(),
                op: Op::Create,
                reason: None,
                fields: Vec::new(),
                actions,
            }],
            ..Plan::default()
        }
    }

    #[test]
    fn records_what_the_engine_records() {
        let mut accounts = Vec::new();
        let mut state = TargetState::default();
        let mut pw = BTreeMap::new();
        pw.insert(
            "alice".to_string(),
            DesiredPassword::Known {
                fingerprint: "f1".into(),
                mode: PasswordMode::Enforce,
            },
        );
        let create = AccountAction::Create {
            user: "alice".into(),
            key: "alice".into(),
            enabled: true,
            fields: BTreeMap::new(),
            groups: Default::default(),
            with_password: true,
        };
        let done = apply(
            ServiceKind::Gitlab,
            &plan_of(vec![create]),
            &mut accounts,
            &mut state,
            &pw,
        );
        assert_eq!(
            done,
            Applied {
                requests: 1,
                refused: vec![]
            }
        );
        assert_eq!(accounts.len(), 1);
        assert!(accounts[0].marked, "GitLab keeps paasd's marker");
        let owned = &state.accounts["alice"];
        assert_eq!(owned.remote_id, accounts[0].remote_id);
        assert!(owned.created);
        assert_eq!(owned.password_fingerprint.as_deref(), Some("f1"));

        // A second create of the same key (another case) is refused; so is an unknown id.
        let again = AccountAction::Create {
            user: "alice".into(),
            key: "ALICE".into(),
            enabled: true,
            fields: BTreeMap::new(),
            groups: Default::default(),
            with_password: false,
        };
        let gone = AccountAction::Disable {
            user: "alice".into(),
            remote_id: "nope".into(),
        };
        let done = apply(
            ServiceKind::Gitlab,
            &plan_of(vec![gone, again]),
            &mut accounts,
            &mut state,
            &pw,
        );
        assert_eq!(
            done.refused.len(),
            1,
            "the change stops at its first refusal"
        );
        assert_eq!(accounts.len(), 1);

        let rid = accounts[0].remote_id.clone();
        let done = apply(
            ServiceKind::Gitlab,
            &plan_of(vec![
                AccountAction::MarkRemoved {
                    user: "alice".into(),
                    since: 7,
                },
                AccountAction::Delete {
                    user: "alice".into(),
                    remote_id: rid,
                },
            ]),
            &mut accounts,
            &mut state,
            &pw,
        );
        assert_eq!(done.requests, 1, "MarkRemoved is state only");
        assert!(accounts.is_empty());
        assert!(state.accounts.is_empty());
    }
}
