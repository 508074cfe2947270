//! Carrying out LLDAP's actions: one GraphQL request each (LDAP for passwords). Creates that may
//! have taken effect before a connection broke are recognised: a duplicate whose object carries
//! paasd's marker is paasd's own create.

use std::collections::HashMap;

use super::graphql::{CallError, GraphqlClient, GraphqlErrorKind, LldapError};
use super::ldap::LdapPasswords;
use super::operations::*;
use super::plan::{marker_is_pending, Action, GroupRef, UserUpdate};
use crate::core::id::TargetId;
use crate::core::spec::MARKER_ATTRIBUTE;
use crate::core::state::Effect;
use crate::engine::target::ExecContext;

/// GraphQL for everything but passwords, LDAP for passwords.
pub struct Clients {
    pub graphql: GraphqlClient,
    pub ldap: LdapPasswords,
}

/// A call whose answer paasd does not read.
async fn call(
    gql: &GraphqlClient,
    op: &str,
    query: &str,
    vars: impl serde::Serialize,
) -> Result<(), CallError> {
    gql.call::<_, Ignored>(op, query, vars).await.map(|_| ())
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
            Action::CreateUserAttribute { name } => {
                let r = call(
                    gql,
                    "PaasdAddUserAttribute",
                    ADD_USER_ATTRIBUTE,
                    NameVars { name },
                )
                .await;
                match r {
                    Err(e) if e.error.is(GraphqlErrorKind::Duplicate) => Ok(Effect::Changed),
                    other => other.map(|_| Effect::Changed).map_err(LldapError::from),
                }
            }
            Action::CreateGroupAttribute { name } => {
                let r = call(
                    gql,
                    "PaasdAddGroupAttribute",
                    ADD_GROUP_ATTRIBUTE,
                    NameVars { name },
                )
                .await;
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
                let answer: CreateGroupAnswer = gql
                    .call(
                        "PaasdCreateGroup",
                        CREATE_GROUP,
                        NameVars { name: display_name },
                    )
                    .await?;
                let id = answer.create_group.id;
                call(
                    gql,
                    "PaasdUpdateGroup",
                    UPDATE_GROUP,
                    GroupVars {
                        group: UpdateGroupInput {
                            id,
                            display_name: None,
                            insert_attributes: attribute_inputs(attributes),
                            remove_attributes: &[],
                        },
                    },
                )
                .await?;
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
                call(
                    gql,
                    "PaasdUpdateGroup",
                    UPDATE_GROUP,
                    GroupVars {
                        group: UpdateGroupInput {
                            id: *id,
                            display_name: display_name.as_deref(),
                            insert_attributes: attribute_inputs(insert_attributes),
                            remove_attributes,
                        },
                    },
                )
                .await?;
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
                let r = call(gql, "PaasdDeleteGroup", DELETE_GROUP, IdVars { id: *id }).await;
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
                let user = CreateUserInput {
                    id,
                    email,
                    display_name: display_name.as_deref(),
                    first_name: first_name.as_deref(),
                    last_name: last_name.as_deref(),
                    attributes: attribute_inputs(attributes),
                };
                match call(gql, "PaasdCreateUser", CREATE_USER, UserVars { user }).await {
                    Ok(()) => {}
                    // The user exists: created by an earlier attempt whose answer was lost
                    // (paasd creates users with its marker), or by someone else (not ours).
                    Err(e) if e.error.is(GraphqlErrorKind::Duplicate) => {
                        let answer: UserAnswer =
                            gql.call("PaasdGetUser", GET_USER, IdVars { id }).await?;
                        let marked = answer
                            .user
                            .is_some_and(|u| u.attributes().contains_key(MARKER_ATTRIBUTE));
                        if !marked {
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
                let user = UpdateUserInput {
                    id,
                    email: email.as_deref(),
                    display_name: display_name.as_deref(),
                    first_name: first_name.as_deref(),
                    last_name: last_name.as_deref(),
                    insert_attributes: attribute_inputs(insert_attributes),
                    remove_attributes,
                };
                call(gql, "PaasdUpdateUser", UPDATE_USER, UserVars { user }).await?;
                Ok(if insert_attributes.contains_key(MARKER_ATTRIBUTE) {
                    Effect::UserAdopted { id: id.clone() }
                } else {
                    Effect::Changed
                })
            }
            Action::AddToGroup { user, group } => {
                let vars = MembershipVars {
                    user,
                    group: resolve(group, created)?,
                };
                let r = call(gql, "PaasdAddUserToGroup", ADD_TO_GROUP, vars).await;
                echo_of_lost_answer(r, GraphqlErrorKind::Duplicate)?;
                Ok(Effect::Changed)
            }
            Action::RemoveFromGroup { user, group } => {
                let vars = MembershipVars {
                    user,
                    group: resolve(group, created)?,
                };
                let r = call(gql, "PaasdRemoveUserFromGroup", REMOVE_FROM_GROUP, vars).await;
                echo_of_lost_answer(r, GraphqlErrorKind::NotFound)?;
                Ok(Effect::Changed)
            }
            Action::DeleteUser { id } => {
                let r = call(gql, "PaasdDeleteUser", DELETE_USER, IdVars { id }).await;
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
