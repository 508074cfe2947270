//! The LLDAP target: observe the whole directory with one GraphQL query, and carry out the
//! actions of a [`Change`](crate::plan::Change) one request each.

pub mod client;
pub mod ldap;

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use crate::directory::{AttributeSchema, DirGroup, DirUser, Directory};
use crate::plan::{Action, Effect, GroupRef};
use crate::secret::{FingerprintKey, Secret};
use client::{CallError, GraphqlClient, LldapError};
use ldap::LdapPasswords;

/// The one query that reads everything the plan needs.
pub const OBSERVE_QUERY: &str = "query PaasdObserve {
  users { id email displayName firstName lastName attributes { name value } groups { id } }
  groups { id displayName attributes { name value } }
  schema {
    userSchema { attributes { name attributeType isList isEditable isReadonly isHardcoded } }
    groupSchema { attributes { name attributeType isList isEditable isReadonly isHardcoded } }
  }
}";

const ADD_USER_ATTRIBUTE: &str = "mutation PaasdAddUserAttribute($name: String!) {
  addUserAttribute(name: $name, attributeType: STRING, isList: false, isVisible: false, isEditable: false) { ok }
}";
const ADD_GROUP_ATTRIBUTE: &str = "mutation PaasdAddGroupAttribute($name: String!) {
  addGroupAttribute(name: $name, attributeType: STRING, isList: false, isVisible: false, isEditable: false) { ok }
}";
const CREATE_GROUP: &str =
    "mutation PaasdCreateGroup($name: String!) { createGroup(name: $name) { id displayName } }";
const UPDATE_GROUP: &str =
    "mutation PaasdUpdateGroup($group: UpdateGroupInput!) { updateGroup(group: $group) { ok } }";
const DELETE_GROUP: &str =
    "mutation PaasdDeleteGroup($id: Int!) { deleteGroup(groupId: $id) { ok } }";
const CREATE_USER: &str =
    "mutation PaasdCreateUser($user: CreateUserInput!) { createUser(user: $user) { id } }";
const UPDATE_USER: &str =
    "mutation PaasdUpdateUser($user: UpdateUserInput!) { updateUser(user: $user) { ok } }";
const ADD_TO_GROUP: &str = "mutation PaasdAddUserToGroup($user: String!, $group: Int!) {
  addUserToGroup(userId: $user, groupId: $group) { ok }
}";
const REMOVE_FROM_GROUP: &str = "mutation PaasdRemoveUserFromGroup($user: String!, $group: Int!) {
  removeUserFromGroup(userId: $user, groupId: $group) { ok }
}";
const DELETE_USER: &str =
    "mutation PaasdDeleteUser($id: String!) { deleteUser(userId: $id) { ok } }";
const GET_USER: &str = "query PaasdGetUser($id: String!) {
  user(userId: $id) { id attributes { name value } groups { id } }
}";

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn attributes(v: &Value) -> BTreeMap<String, Vec<String>> {
    v.get("attributes")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|a| {
                    let values = a
                        .get("value")
                        .and_then(Value::as_array)
                        .map(|vs| {
                            vs.iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    (str_field(a, "name").to_ascii_lowercase(), values)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn schema(v: Option<&Value>) -> BTreeMap<String, AttributeSchema> {
    v.and_then(|s| s.get("attributes"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|a| {
                    let b = |k| a.get(k).and_then(Value::as_bool).unwrap_or(false);
                    (
                        str_field(a, "name").to_ascii_lowercase(),
                        AttributeSchema {
                            attribute_type: str_field(a, "attributeType"),
                            is_list: b("isList"),
                            is_editable: b("isEditable"),
                            is_readonly: b("isReadonly"),
                            is_hardcoded: b("isHardcoded"),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Turns the answer of [`OBSERVE_QUERY`] into a [`Directory`].
pub fn parse_directory(data: &Value) -> Result<Directory, LldapError> {
    let users = data
        .get("users")
        .and_then(Value::as_array)
        .ok_or_else(|| LldapError::Decode("the answer has no users list".into()))?;
    let groups = data
        .get("groups")
        .and_then(Value::as_array)
        .ok_or_else(|| LldapError::Decode("the answer has no groups list".into()))?;
    let mut dir = Directory::default();
    for u in users {
        let id = str_field(u, "id");
        let user = DirUser {
            email: str_field(u, "email"),
            display_name: str_field(u, "displayName"),
            first_name: str_field(u, "firstName"),
            last_name: str_field(u, "lastName"),
            attributes: attributes(u),
            groups: u
                .get("groups")
                .and_then(Value::as_array)
                .map(|gs| {
                    gs.iter()
                        .filter_map(|g| g.get("id").and_then(Value::as_i64))
                        .collect()
                })
                .unwrap_or_default(),
            id: id.clone(),
        };
        dir.users.insert(id.to_ascii_lowercase(), user);
    }
    for g in groups {
        let Some(id) = g.get("id").and_then(Value::as_i64) else {
            return Err(LldapError::Decode("a group without an id".into()));
        };
        dir.groups.insert(
            id,
            DirGroup {
                id,
                display_name: str_field(g, "displayName"),
                attributes: attributes(g),
            },
        );
    }
    let s = data.get("schema");
    dir.user_attributes = schema(s.and_then(|s| s.get("userSchema")));
    dir.group_attributes = schema(s.and_then(|s| s.get("groupSchema")));
    Ok(dir)
}

/// The LLDAP target: GraphQL for everything but passwords, LDAP for passwords.
pub struct Lldap {
    pub graphql: GraphqlClient,
    pub ldap: LdapPasswords,
}

fn attribute_inputs(attrs: &BTreeMap<String, Vec<String>>) -> Value {
    Value::Array(
        attrs
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect(),
    )
}

fn is_duplicate(e: &LldapError) -> bool {
    matches!(e, LldapError::Graphql(m) if m.contains("UNIQUE") || m.to_ascii_lowercase().contains("already"))
}

fn is_not_found(e: &LldapError) -> bool {
    matches!(e, LldapError::Graphql(m) if m.contains("not found") || m.contains("Entity not found"))
}

impl Lldap {
    /// Reads every user, group and attribute schema with one GraphQL request.
    pub async fn observe(&self) -> Result<Directory, LldapError> {
        let data = self
            .graphql
            .call("PaasdObserve", OBSERVE_QUERY, json!({}))
            .await
            .map_err(|e| e.error)?;
        parse_directory(&data)
    }

    async fn call(&self, op: &str, q: &str, vars: Value) -> Result<Value, CallError> {
        self.graphql.call(op, q, vars).await
    }

    /// Carries out one action. `groups` maps spec names of groups created earlier in this apply
    /// to their ids. `secret`/`key` are the user's desired password and the fingerprint key.
    pub async fn execute(
        &self,
        action: &Action,
        groups: &HashMap<String, i64>,
        secret: Option<&Secret>,
        key: &FingerprintKey,
    ) -> Result<Effect, String> {
        let err = |e: CallError| e.to_string();
        match action {
            Action::CreateUserAttribute { name } => {
                match self
                    .call(
                        "PaasdAddUserAttribute",
                        ADD_USER_ATTRIBUTE,
                        json!({ "name": name }),
                    )
                    .await
                {
                    Ok(_) => Ok(Effect::None),
                    Err(e) if is_duplicate(&e.error) => Ok(Effect::None),
                    Err(e) => Err(err(e)),
                }
            }
            Action::CreateGroupAttribute { name } => {
                match self
                    .call(
                        "PaasdAddGroupAttribute",
                        ADD_GROUP_ATTRIBUTE,
                        json!({ "name": name }),
                    )
                    .await
                {
                    Ok(_) => Ok(Effect::None),
                    Err(e) if is_duplicate(&e.error) => Ok(Effect::None),
                    Err(e) => Err(err(e)),
                }
            }
            Action::CreateGroup {
                key: gkey,
                display_name,
                attributes,
            } => {
                // createGroup + updateGroup (marker and attributes) works on every LLDAP 0.6
                // release; a crash in between leaves an unmarked group that the next plan adopts.
                let created = self
                    .call(
                        "PaasdCreateGroup",
                        CREATE_GROUP,
                        json!({ "name": display_name }),
                    )
                    .await;
                let id = match created {
                    Ok(v) => v
                        .pointer("/createGroup/id")
                        .and_then(Value::as_i64)
                        .ok_or("LLDAP's createGroup answer has no id")?,
                    Err(e) => return Err(err(e)),
                };
                self.call(
                    "PaasdUpdateGroup",
                    UPDATE_GROUP,
                    json!({ "group": { "id": id, "insertAttributes": attribute_inputs(attributes) } }),
                )
                .await
                .map_err(err)?;
                Ok(Effect::GroupCreated {
                    key: gkey.clone(),
                    id,
                })
            }
            Action::UpdateGroup {
                key: gkey,
                id,
                display_name,
                insert_attributes,
                remove_attributes,
            } => {
                let mut group = json!({ "id": id });
                if let Some(n) = display_name {
                    group["displayName"] = json!(n);
                }
                if !insert_attributes.is_empty() {
                    group["insertAttributes"] = attribute_inputs(insert_attributes);
                }
                if !remove_attributes.is_empty() {
                    group["removeAttributes"] = json!(remove_attributes);
                }
                self.call("PaasdUpdateGroup", UPDATE_GROUP, json!({ "group": group }))
                    .await
                    .map_err(err)?;
                Ok(
                    if insert_attributes.contains_key(crate::spec::MARKER_ATTRIBUTE) {
                        Effect::GroupAdopted {
                            key: gkey.clone(),
                            id: *id,
                        }
                    } else {
                        Effect::None
                    },
                )
            }
            Action::DeleteGroup { key: gkey, id } => {
                match self
                    .call("PaasdDeleteGroup", DELETE_GROUP, json!({ "id": id }))
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.after_transient && is_not_found(&e.error) => {}
                    Err(e) => return Err(err(e)),
                }
                Ok(Effect::GroupDeleted { key: gkey.clone() })
            }
            Action::CreateUser {
                id,
                email,
                display_name,
                first_name,
                last_name,
                attributes,
            } => {
                let mut user =
                    json!({ "id": id, "email": email, "attributes": attribute_inputs(attributes) });
                for (k, v) in [
                    ("displayName", display_name),
                    ("firstName", first_name),
                    ("lastName", last_name),
                ] {
                    if let Some(v) = v {
                        user[k] = json!(v);
                    }
                }
                match self
                    .call("PaasdCreateUser", CREATE_USER, json!({ "user": user }))
                    .await
                {
                    Ok(_) => {}
                    // The user exists: created by an earlier attempt whose answer was lost
                    // (paasd creates users with its marker), or by someone else (not ours).
                    Err(e) if is_duplicate(&e.error) => {
                        let v = self
                            .call("PaasdGetUser", GET_USER, json!({ "id": id }))
                            .await
                            .map_err(err)?;
                        let marked = v
                            .get("user")
                            .map(attributes_of)
                            .is_some_and(|a| a.contains_key(crate::spec::MARKER_ATTRIBUTE));
                        if !marked {
                            return Err(err(e));
                        }
                    }
                    Err(e) => return Err(err(e)),
                }
                Ok(Effect::UserCreated { id: id.clone() })
            }
            Action::UpdateUser {
                id,
                email,
                display_name,
                first_name,
                last_name,
                insert_attributes,
                remove_attributes,
            } => {
                let mut user = json!({ "id": id });
                for (k, v) in [
                    ("email", email),
                    ("displayName", display_name),
                    ("firstName", first_name),
                    ("lastName", last_name),
                ] {
                    if let Some(v) = v {
                        user[k] = json!(v);
                    }
                }
                if !insert_attributes.is_empty() {
                    user["insertAttributes"] = attribute_inputs(insert_attributes);
                }
                if !remove_attributes.is_empty() {
                    user["removeAttributes"] = json!(remove_attributes);
                }
                self.call("PaasdUpdateUser", UPDATE_USER, json!({ "user": user }))
                    .await
                    .map_err(err)?;
                Ok(
                    if insert_attributes.contains_key(crate::spec::MARKER_ATTRIBUTE) {
                        Effect::UserAdopted { id: id.clone() }
                    } else {
                        Effect::None
                    },
                )
            }
            Action::AddToGroup { user, group } => {
                let gid = resolve(group, groups)?;
                match self
                    .call(
                        "PaasdAddUserToGroup",
                        ADD_TO_GROUP,
                        json!({ "user": user, "group": gid }),
                    )
                    .await
                {
                    Ok(_) => Ok(Effect::None),
                    Err(e) if e.after_transient && is_duplicate(&e.error) => Ok(Effect::None),
                    Err(e) => Err(err(e)),
                }
            }
            Action::RemoveFromGroup { user, group } => {
                let gid = resolve(group, groups)?;
                match self
                    .call(
                        "PaasdRemoveUserFromGroup",
                        REMOVE_FROM_GROUP,
                        json!({ "user": user, "group": gid }),
                    )
                    .await
                {
                    Ok(_) => Ok(Effect::None),
                    Err(e) if e.after_transient && is_not_found(&e.error) => Ok(Effect::None),
                    Err(e) => Err(err(e)),
                }
            }
            Action::DeleteUser { id } => {
                match self
                    .call("PaasdDeleteUser", DELETE_USER, json!({ "id": id }))
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.after_transient && is_not_found(&e.error) => {}
                    Err(e) => return Err(err(e)),
                }
                Ok(Effect::UserDeleted { id: id.clone() })
            }
            Action::SetPassword { user, verify_first } => {
                let secret = secret.ok_or("the password file could not be read")?;
                let fingerprint = key.fingerprint(&format!("lldap/{user}"), secret);
                if *verify_first
                    && self
                        .ldap
                        .check_password(user, secret)
                        .await
                        .map_err(|e| e.to_string())?
                {
                    return Ok(Effect::PasswordApplied {
                        user: user.clone(),
                        fingerprint,
                        written: false,
                    });
                }
                self.ldap
                    .set_password(user, secret)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Effect::PasswordApplied {
                    user: user.clone(),
                    fingerprint,
                    written: true,
                })
            }
            Action::MarkRemoved { user, since } => Ok(Effect::MarkRemoved {
                user: user.clone(),
                since: (*since != 0).then_some(*since),
            }),
        }
    }
}

fn attributes_of(v: &Value) -> BTreeMap<String, Vec<String>> {
    attributes(v)
}

fn resolve(group: &GroupRef, created: &HashMap<String, i64>) -> Result<i64, String> {
    if let Some(id) = group.id {
        return Ok(id);
    }
    group
        .key
        .as_ref()
        .and_then(|k| created.get(k))
        .copied()
        .ok_or_else(|| format!("group \"{}\" could not be created", group.name))
}
