//! The LLDAP target: observe the whole directory with one GraphQL query, and carry out the
//! actions of a [`Change`](crate::plan::Change) one request each.

pub mod client;
pub mod ldap;

use crate::attributes::Attributes;
use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
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

// The answer of [`OBSERVE_QUERY`], deserialised straight from the response body.

#[derive(Deserialize)]
struct ObserveAnswer {
    users: Vec<ObservedUser>,
    groups: Vec<ObservedGroup>,
    schema: Option<ObservedSchema>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObservedUser {
    id: String,
    email: Option<String>,
    display_name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    #[serde(default)]
    attributes: Vec<ObservedAttribute>,
    #[serde(default)]
    groups: Vec<ObservedGroupId>,
}

/// The answer of [`GET_USER`] (its other fields are not needed).
#[derive(Deserialize)]
struct UserAnswer {
    user: Option<UserAttributes>,
}

#[derive(Deserialize)]
struct UserAttributes {
    #[serde(default)]
    attributes: Vec<ObservedAttribute>,
}

#[derive(Deserialize)]
struct ObservedAttribute {
    name: String,
    #[serde(default)]
    value: Vec<String>,
}

#[derive(Deserialize)]
struct ObservedGroupId {
    id: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObservedGroup {
    id: i64,
    display_name: Option<String>,
    #[serde(default)]
    attributes: Vec<ObservedAttribute>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObservedSchema {
    user_schema: Option<ObservedAttributeList>,
    group_schema: Option<ObservedAttributeList>,
}

#[derive(Deserialize)]
struct ObservedAttributeList {
    attributes: Vec<ObservedAttributeSchema>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObservedAttributeSchema {
    name: String,
    attribute_type: Option<String>,
    is_list: Option<bool>,
    is_editable: Option<bool>,
    is_readonly: Option<bool>,
    is_hardcoded: Option<bool>,
}

fn attributes_from(list: Vec<ObservedAttribute>) -> Attributes {
    list.into_iter()
        .map(|mut a| {
            // Deserialised lists start at capacity 4: the marker's one value would keep 3 spare.
            a.value.shrink_to_fit();
            (a.name.to_ascii_lowercase(), a.value)
        })
        .collect()
}

fn schema_from(list: Option<ObservedAttributeList>) -> BTreeMap<String, AttributeSchema> {
    list.map(|l| l.attributes)
        .unwrap_or_default()
        .into_iter()
        .map(|a| {
            (
                a.name.to_ascii_lowercase(),
                AttributeSchema {
                    attribute_type: a.attribute_type.unwrap_or_default(),
                    is_list: a.is_list.unwrap_or(false),
                    is_editable: a.is_editable.unwrap_or(false),
                    is_readonly: a.is_readonly.unwrap_or(false),
                    is_hardcoded: a.is_hardcoded.unwrap_or(false),
                },
            )
        })
        .collect()
}

impl From<ObserveAnswer> for Directory {
    fn from(answer: ObserveAnswer) -> Directory {
        // Moved, not copied; the users map is collected in one go (a B-tree with full nodes).
        let users = answer
            .users
            .into_iter()
            .map(|u| {
                let mut groups: Vec<i64> = u.groups.into_iter().map(|g| g.id).collect();
                groups.sort_unstable();
                groups.dedup();
                let user = DirUser {
                    email: u.email.unwrap_or_default(),
                    display_name: u.display_name.unwrap_or_default(),
                    first_name: u.first_name.unwrap_or_default(),
                    last_name: u.last_name.unwrap_or_default(),
                    attributes: attributes_from(u.attributes),
                    groups,
                    id: u.id,
                };
                (user.id.to_ascii_lowercase(), user)
            })
            .collect();
        let groups = answer
            .groups
            .into_iter()
            .map(|g| {
                let group = DirGroup {
                    id: g.id,
                    display_name: g.display_name.unwrap_or_default(),
                    attributes: attributes_from(g.attributes),
                };
                (g.id, group)
            })
            .collect();
        let (user_schema, group_schema) = answer
            .schema
            .map(|s| (s.user_schema, s.group_schema))
            .unwrap_or_default();
        Directory {
            users,
            groups,
            user_attributes: schema_from(user_schema),
            group_attributes: schema_from(group_schema),
        }
    }
}

/// Turns the body of LLDAP's answer to [`OBSERVE_QUERY`] into a [`Directory`] (what
/// [`Lldap::observe`] does with it; public for the benchmarks).
pub fn parse_observe_answer(body: &[u8]) -> Result<Directory, LldapError> {
    client::decode_answer::<ObserveAnswer>(body).map(Directory::from)
}

/// The LLDAP target: GraphQL for everything but passwords, LDAP for passwords.
pub struct Lldap {
    pub graphql: GraphqlClient,
    pub ldap: LdapPasswords,
}

fn attribute_inputs(attrs: &Attributes) -> Value {
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
        let answer: ObserveAnswer = self
            .graphql
            .call_as("PaasdObserve", OBSERVE_QUERY, json!({}))
            .await
            .map_err(|e| e.error)?;
        Ok(Directory::from(answer))
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
                        let answer: UserAnswer = self
                            .graphql
                            .call_as("PaasdGetUser", GET_USER, json!({ "id": id }))
                            .await
                            .map_err(err)?;
                        let marked = answer.user.is_some_and(|u| {
                            attributes_from(u.attributes)
                                .contains_key(crate::spec::MARKER_ATTRIBUTE)
                        });
                        if !marked {
                            return Err(err(e));
                        }
                    }
                    Err(e) => return Err(err(e)),
                }
                Ok(Effect::UserCreated { id: id.clone() })
            }
            Action::UpdateUser(update) => {
                let crate::plan::UserUpdate {
                    id,
                    email,
                    display_name,
                    first_name,
                    last_name,
                    insert_attributes,
                    remove_attributes,
                } = &**update;
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
            Action::Account(a) => Err(format!(
                "internal error: a service action reached LLDAP: {a:?}"
            )),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_observe_answer_becomes_a_directory() {
        // The shape LLDAP sends (`value` lists, group ids), with names in mixed case, a null
        // display name and users out of order.
        let body = br#"{"data":{
          "users":[
            {"id":"Bob","email":"bob@example.com","displayName":null,"firstName":"","lastName":"",
             "attributes":[{"name":"PAASD-managed","value":["true"]}],"groups":[{"id":7},{"id":3},{"id":7}]},
            {"id":"admin","email":"admin@example.com","displayName":"Administrator","firstName":"","lastName":"",
             "attributes":[],"groups":[{"id":1}]}],
          "groups":[{"id":3,"displayName":"family","attributes":[{"name":"paasd-managed","value":["family"]}]},
                    {"id":1,"displayName":"lldap_admin","attributes":[]}],
          "schema":{"userSchema":{"attributes":[{"name":"paasd-managed","attributeType":"STRING","isList":false,
                                                  "isEditable":false,"isReadonly":false,"isHardcoded":false}]},
                    "groupSchema":{"attributes":[]}}}}"#;
        let dir = parse_observe_answer(body).expect("a valid answer");
        assert_eq!(dir.users.keys().collect::<Vec<_>>(), ["admin", "bob"]);
        let bob = dir.user("BOB").expect("bob, by any case");
        assert_eq!(bob.id, "Bob");
        assert_eq!(bob.display_name, "");
        assert_eq!(bob.groups, [3, 7], "sorted, each once");
        assert!(bob.is_marked(), "attribute names are lower-cased");
        assert_eq!(dir.groups[&3].marker(), Some("family"));
        assert!(dir
            .user_attributes
            .contains_key(crate::spec::MARKER_ATTRIBUTE));
        assert!(dir.group_attributes.is_empty());
    }

    #[test]
    fn graphql_errors_and_missing_data_are_errors() {
        let e = parse_observe_answer(br#"{"data":null,"errors":[{"message":"Unauthorized"},{}]}"#)
            .expect_err("errors");
        assert_eq!(
            e.to_string(),
            LldapError::Graphql("Unauthorized; (no message)".into()).to_string()
        );
        let e = parse_observe_answer(br#"{"data":null}"#).expect_err("no data");
        assert!(e.to_string().contains("no data"), "{e}");
        let e = parse_observe_answer(br#"{"data":{"users":[]}}"#).expect_err("no groups");
        assert!(e.to_string().contains("missing field `groups`"), "{e}");
        let e = parse_observe_answer(br#"{"data":{"users":[],"gro"#).expect_err("truncated");
        assert!(matches!(e, LldapError::Decode(_)), "{e}");
    }
}
