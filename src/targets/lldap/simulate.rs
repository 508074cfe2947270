//! A pure model of what applying a plan does to LLDAP and to paasd's state. Used by the tests,
//! the property tests and the fuzz targets to check the central invariant: after applying a
//! plan, the next plan is empty. It mirrors LLDAP's semantics (ids and names case-insensitive,
//! group ids allocated by the server), not paasd's client code.

use std::collections::BTreeMap;

use super::directory::{AttributeSchema, DirGroup, DirUser, Directory};
use super::plan::{marker_is_pending, Action, LldapPlan, UserUpdate};
use crate::core::id::TargetId;
use crate::core::policy::DesiredPassword;
use crate::core::spec::MARKER_ATTRIBUTE;
use crate::core::state::{Effect, State};

/// Applies every action of `plan` to `dir` and `state`, as a successful apply would.
/// `passwords` gives the fingerprints the password actions record.
pub fn apply(
    plan: &LldapPlan,
    dir: &mut Directory,
    state: &mut State,
    passwords: &BTreeMap<String, DesiredPassword>,
) {
    let mut created: BTreeMap<String, i64> = BTreeMap::new();
    for change in &plan.changes {
        for action in &change.actions {
            let effect = step(dir, action, &mut created, passwords);
            state.record(&effect);
        }
    }
}

fn marker_schema() -> AttributeSchema {
    AttributeSchema {
        attribute_type: "STRING".into(),
        is_list: false,
        is_editable: false,
        is_readonly: false,
        is_hardcoded: false,
    }
}

fn step(
    dir: &mut Directory,
    action: &Action,
    created: &mut BTreeMap<String, i64>,
    passwords: &BTreeMap<String, DesiredPassword>,
) -> Effect {
    match action {
        Action::CreateUserAttribute { name } => {
            dir.user_attributes.insert(name.clone(), marker_schema());
            Effect::Changed
        }
        Action::CreateGroupAttribute { name } => {
            dir.group_attributes.insert(name.clone(), marker_schema());
            Effect::Changed
        }
        Action::CreateGroup {
            key,
            display_name,
            attributes,
        } => {
            let id = dir.groups.keys().next_back().copied().unwrap_or(0) + 1;
            dir.groups.insert(
                id,
                DirGroup {
                    id,
                    display_name: display_name.clone(),
                    attributes: attributes.clone(),
                },
            );
            created.insert(key.clone(), id);
            Effect::GroupCreated {
                key: key.clone(),
                id,
            }
        }
        Action::UpdateGroup {
            key,
            id,
            display_name,
            insert_attributes,
            remove_attributes,
        } => {
            if let Some(g) = dir.groups.get_mut(id) {
                if let Some(n) = display_name {
                    g.display_name = n.clone();
                }
                for r in remove_attributes {
                    g.attributes.remove(r);
                }
                g.attributes.extend(insert_attributes.clone());
            }
            if insert_attributes.contains_key(MARKER_ATTRIBUTE) {
                Effect::GroupAdopted {
                    key: key.clone(),
                    id: *id,
                }
            } else {
                Effect::Changed
            }
        }
        Action::DeleteGroup { key, id } => {
            dir.groups.remove(id);
            for u in dir.users.values_mut() {
                u.leave_group(*id);
            }
            Effect::GroupDeleted { key: key.clone() }
        }
        Action::CreateUser {
            id,
            email,
            display_name,
            first_name,
            last_name,
            attributes,
        } => {
            dir.users.insert(
                id.to_ascii_lowercase(),
                DirUser {
                    id: id.to_ascii_lowercase(),
                    email: email.clone(),
                    display_name: display_name.clone().unwrap_or_default(),
                    first_name: first_name.clone().unwrap_or_default(),
                    last_name: last_name.clone().unwrap_or_default(),
                    attributes: attributes.clone(),
                    groups: Default::default(),
                },
            );
            Effect::UserCreated {
                id: id.clone(),
                initial_password_pending: marker_is_pending(attributes),
            }
        }
        Action::UpdateUser(update) => {
            let UserUpdate {
                id,
                email,
                display_name,
                first_name,
                last_name,
                insert_attributes,
                remove_attributes,
            } = &**update;
            if let Some(u) = dir.users.get_mut(&id.to_ascii_lowercase()) {
                for (slot, v) in [
                    (&mut u.email, email),
                    (&mut u.display_name, display_name),
                    (&mut u.first_name, first_name),
                    (&mut u.last_name, last_name),
                ] {
                    if let Some(v) = v {
                        *slot = v.clone();
                    }
                }
                for r in remove_attributes {
                    u.attributes.remove(r);
                }
                u.attributes.extend(insert_attributes.clone());
            }
            if insert_attributes.contains_key(MARKER_ATTRIBUTE) {
                Effect::UserAdopted { id: id.clone() }
            } else {
                Effect::Changed
            }
        }
        Action::AddToGroup { user, group } | Action::RemoveFromGroup { user, group } => {
            let gid = group
                .id
                .or_else(|| group.key.as_ref().and_then(|k| created.get(k).copied()));
            if let (Some(gid), Some(u)) = (gid, dir.users.get_mut(&user.to_ascii_lowercase())) {
                if matches!(action, Action::AddToGroup { .. }) {
                    u.join_group(gid);
                } else {
                    u.leave_group(gid);
                }
            }
            Effect::Changed
        }
        Action::SetPassword { user, .. } => match passwords.get(user) {
            Some(DesiredPassword::Known { fingerprint, .. }) => Effect::PasswordApplied {
                target: TargetId::Lldap,
                user: user.clone(),
                fingerprint: fingerprint.clone(),
                written: true,
            },
            _ => Effect::Changed,
        },
        Action::DeleteUser { id } => {
            dir.users.remove(&id.to_ascii_lowercase());
            Effect::Deleted {
                target: TargetId::Lldap,
                user: id.clone(),
            }
        }
        Action::MarkRemoved { user, since } => Effect::RemovedSince {
            target: TargetId::Lldap,
            user: user.clone(),
            since: (*since != 0).then_some(*since),
        },
    }
}
