//! Carrying out LLDAP's actions: one GraphQL request each (LDAP for passwords). Creates that may
//! have taken effect before a connection broke are recognised: a duplicate whose object carries
//! paasd's marker is paasd's own create.

use std::collections::HashMap;

use super::graphql::{CallError, GraphqlClient, GraphqlErrorKind, LldapError};
use super::ldap::LdapPasswords;
use super::operations::*;
use super::plan::{marker_is_pending, Action, GroupRef, UserUpdate};
use crate::core::attributes::Attributes;
use crate::core::id::TargetId;
use crate::core::spec::MARKER_ATTRIBUTE;
use crate::core::state::Effect;
use crate::engine::target::ExecContext;
use graphql_client::GraphQLQuery;

/// GraphQL for everything but passwords, LDAP for passwords.
pub struct Clients {
    pub graphql: GraphqlClient,
    pub ldap: LdapPasswords,
}

/// A call whose answer paasd does not read.
async fn call<Q: GraphQLQuery>(gql: &GraphqlClient, vars: Q::Variables) -> Result<(), CallError> {
    gql.call::<Q>(vars).await.map(|_| ())
}

/// Tolerates `kind` when an earlier attempt of the same request failed transiently: the request
/// took effect before its answer was lost (a second add is a duplicate, a second removal finds
/// nothing).
fn echo_of_lost_answer(r: Result<(), CallError>, kind: GraphqlErrorKind) -> Result<(), LldapError> {
    match r {
        Err(e) if e.after_transient && e.error.is(kind) => Ok(()),
        other => other.map_err(LldapError::from),
    }
}

/// `None` for an empty list: an update leaves out what it does not change.
fn non_empty<T>(list: Vec<T>) -> Option<Vec<T>> {
    (!list.is_empty()).then_some(list)
}

fn update_group_input(
    id: i64,
    display_name: Option<String>,
    insert_attributes: &Attributes,
    remove_attributes: &[String],
) -> paasd_update_group::UpdateGroupInput {
    paasd_update_group::UpdateGroupInput {
        id,
        display_name,
        insert_attributes: non_empty(attribute_inputs(insert_attributes, |name, value| {
            paasd_update_group::AttributeValueInput { name, value }
        })),
        remove_attributes: non_empty(remove_attributes.to_vec()),
    }
}

fn resolve(group: &GroupRef, created: &HashMap<String, i64>) -> Result<i64, LldapError> {
    if let Some(id) = group.id {
        return Ok(id);
    }
    group
        .key
        .as_ref()
        .and_then(|k| created.get(k))
        .copied()
        .ok_or_else(|| LldapError::UnresolvedGroup(group.name.clone()))
}

impl Clients {
    /// Carries out one action. `created` maps spec names of groups created earlier in this
    /// apply to their ids.
    pub async fn execute(
        &self,
        action: &Action,
        created: &HashMap<String, i64>,
        cx: &ExecContext<'_>,
    ) -> Result<Effect, LldapError> {
        let gql = &self.graphql;
        match action {
            Action::CreateUserAttribute { name } | Action::CreateGroupAttribute { name } => {
                let r = if matches!(action, Action::CreateUserAttribute { .. }) {
                    let vars = paasd_add_user_attribute::Variables { name: name.clone() };
                    call::<PaasdAddUserAttribute>(gql, vars).await
                } else {
                    let vars = paasd_add_group_attribute::Variables { name: name.clone() };
                    call::<PaasdAddGroupAttribute>(gql, vars).await
                };
                // An attribute that exists already (made by an earlier run) is what was wanted.
                match r {
                    Err(e) if e.error.is(GraphqlErrorKind::Duplicate) => Ok(Effect::Changed),
                    other => other.map(|_| Effect::Changed).map_err(LldapError::from),
                }
            }
            Action::CreateGroup {
                key,
                display_name,
                attributes,
            } => {
                // createGroup + updateGroup (marker and attributes) works on every LLDAP 0.6
                // release; a crash in between leaves an unmarked group that the next plan adopts.
                let answer = gql
                    .call::<PaasdCreateGroup>(paasd_create_group::Variables {
                        name: display_name.clone(),
                    })
                    .await?;
                let id = answer.create_group.id;
                let group = update_group_input(id, None, attributes, &[]);
                call::<PaasdUpdateGroup>(gql, paasd_update_group::Variables { group }).await?;
                Ok(Effect::GroupCreated {
                    key: key.clone(),
                    id,
                })
            }
            Action::UpdateGroup {
                key,
                id,
                display_name,
                insert_attributes,
                remove_attributes,
            } => {
                let group = update_group_input(
                    *id,
                    display_name.clone(),
                    insert_attributes,
                    remove_attributes,
                );
                call::<PaasdUpdateGroup>(gql, paasd_update_group::Variables { group }).await?;
                Ok(if insert_attributes.contains_key(MARKER_ATTRIBUTE) {
                    Effect::GroupAdopted {
                        key: key.clone(),
                        id: *id,
                    }
                } else {
                    Effect::Changed
                })
            }
            Action::DeleteGroup { key, id } => {
                let r =
                    call::<PaasdDeleteGroup>(gql, paasd_delete_group::Variables { id: *id }).await;
                echo_of_lost_answer(r, GraphqlErrorKind::NotFound)?;
                Ok(Effect::GroupDeleted { key: key.clone() })
            }
            Action::CreateUser {
                id,
                email,
                display_name,
                first_name,
                last_name,
                attributes,
            } => {
                let user = paasd_create_user::CreateUserInput {
                    id: id.clone(),
                    email: email.clone(),
                    display_name: display_name.clone(),
                    first_name: first_name.clone(),
                    last_name: last_name.clone(),
                    attributes: attribute_inputs(attributes, |name, value| {
                        paasd_create_user::AttributeValueInput { name, value }
                    }),
                };
                match call::<PaasdCreateUser>(gql, paasd_create_user::Variables { user }).await {
                    Ok(()) => {}
                    // The user exists: created by an earlier attempt whose answer was lost
                    // (paasd creates users with its marker), or by someone else (not ours).
                    Err(e) if e.error.is(GraphqlErrorKind::Duplicate) => {
                        let answer = gql
                            .call::<PaasdGetUser>(paasd_get_user::Variables { id: id.clone() })
                            .await?;
                        if !user_attributes(answer).contains_key(MARKER_ATTRIBUTE) {
                            return Err(e.error);
                        }
                    }
                    Err(e) => return Err(e.error),
                }
                Ok(Effect::UserCreated {
                    id: id.clone(),
                    initial_password_pending: marker_is_pending(attributes),
                })
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
                let user = paasd_update_user::UpdateUserInput {
                    id: id.clone(),
                    email: email.clone(),
                    display_name: display_name.clone(),
                    first_name: first_name.clone(),
                    last_name: last_name.clone(),
                    insert_attributes: non_empty(attribute_inputs(
                        insert_attributes,
                        |name, value| paasd_update_user::AttributeValueInput { name, value },
                    )),
                    remove_attributes: non_empty(remove_attributes.clone()),
                };
                call::<PaasdUpdateUser>(gql, paasd_update_user::Variables { user }).await?;
                Ok(if insert_attributes.contains_key(MARKER_ATTRIBUTE) {
                    Effect::UserAdopted { id: id.clone() }
                } else {
                    Effect::Changed
                })
            }
            Action::AddToGroup { user, group } => {
                let vars = paasd_add_user_to_group::Variables {
                    user: user.clone(),
                    group: resolve(group, created)?,
                };
                let r = call::<PaasdAddUserToGroup>(gql, vars).await;
                echo_of_lost_answer(r, GraphqlErrorKind::Duplicate)?;
                Ok(Effect::Changed)
            }
            Action::RemoveFromGroup { user, group } => {
                let vars = paasd_remove_user_from_group::Variables {
                    user: user.clone(),
                    group: resolve(group, created)?,
                };
                let r = call::<PaasdRemoveUserFromGroup>(gql, vars).await;
                echo_of_lost_answer(r, GraphqlErrorKind::NotFound)?;
                Ok(Effect::Changed)
            }
            Action::DeleteUser { id } => {
                let r =
                    call::<PaasdDeleteUser>(gql, paasd_delete_user::Variables { id: id.clone() })
                        .await;
                echo_of_lost_answer(r, GraphqlErrorKind::NotFound)?;
                Ok(Effect::Deleted {
                    target: TargetId::Lldap,
                    user: id.clone(),
                })
            }
            Action::SetPassword { user, verify_first } => {
                let (secret, fingerprint) = cx.password(user).ok_or(LldapError::NoPassword)?;
                let applied = |written| Effect::PasswordApplied {
                    target: TargetId::Lldap,
                    user: user.clone(),
                    fingerprint: fingerprint.to_string(),
                    written,
                };
                if *verify_first && self.ldap.check_password(user, secret).await? {
                    return Ok(applied(false));
                }
                self.ldap.set_password(user, secret).await?;
                Ok(applied(true))
            }
            Action::MarkRemoved { user, since } => Ok(Effect::RemovedSince {
                target: TargetId::Lldap,
                user: user.clone(),
                since: (*since != 0).then_some(*since),
            }),
        }
    }
}
