//! The GraphQL operations paasd sends to LLDAP, and their answers as typed structs (decoded
//! straight from the response bytes: no `serde_json::Value` tree, no copy of `data`). Every
//! document is validated against LLDAP's `schema.graphql` by the test double.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::directory::{AttributeSchema, DirGroup, DirUser, Directory};
use super::graphql::{decode_answer, LldapError};
use crate::core::attributes::Attributes;

/// The one query that reads everything the plan needs.
pub const OBSERVE_QUERY: &str = "query PaasdObserve {
  users { id email displayName firstName lastName attributes { name value } groups { id } }
  groups { id displayName attributes { name value } }
  schema {
    userSchema { attributes { name attributeType isList isEditable isReadonly isHardcoded } }
    groupSchema { attributes { name attributeType isList isEditable isReadonly isHardcoded } }
  }
}";

pub const ADD_USER_ATTRIBUTE: &str = "mutation PaasdAddUserAttribute($name: String!) {
  addUserAttribute(name: $name, attributeType: STRING, isList: false, isVisible: false, isEditable: false) { ok }
}";
pub const ADD_GROUP_ATTRIBUTE: &str = "mutation PaasdAddGroupAttribute($name: String!) {
  addGroupAttribute(name: $name, attributeType: STRING, isList: false, isVisible: false, isEditable: false) { ok }
}";
pub const CREATE_GROUP: &str =
    "mutation PaasdCreateGroup($name: String!) { createGroup(name: $name) { id displayName } }";
pub const UPDATE_GROUP: &str =
    "mutation PaasdUpdateGroup($group: UpdateGroupInput!) { updateGroup(group: $group) { ok } }";
pub const DELETE_GROUP: &str =
    "mutation PaasdDeleteGroup($id: Int!) { deleteGroup(groupId: $id) { ok } }";
pub const CREATE_USER: &str =
    "mutation PaasdCreateUser($user: CreateUserInput!) { createUser(user: $user) { id } }";
pub const UPDATE_USER: &str =
    "mutation PaasdUpdateUser($user: UpdateUserInput!) { updateUser(user: $user) { ok } }";
pub const ADD_TO_GROUP: &str = "mutation PaasdAddUserToGroup($user: String!, $group: Int!) {
  addUserToGroup(userId: $user, groupId: $group) { ok }
}";
pub const REMOVE_FROM_GROUP: &str =
    "mutation PaasdRemoveUserFromGroup($user: String!, $group: Int!) {
  removeUserFromGroup(userId: $user, groupId: $group) { ok }
}";
pub const DELETE_USER: &str =
    "mutation PaasdDeleteUser($id: String!) { deleteUser(userId: $id) { ok } }";
pub const GET_USER: &str = "query PaasdGetUser($id: String!) {
  user(userId: $id) { id attributes { name value } groups { id } }
}";

// The answer of [`OBSERVE_QUERY`], deserialised straight from the response body.

#[derive(Deserialize)]
pub struct ObserveAnswer {
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
pub struct UserAnswer {
    pub user: Option<UserAttributes>,
}

#[derive(Deserialize)]
pub struct UserAttributes {
    #[serde(default)]
    attributes: Vec<ObservedAttribute>,
}

impl UserAttributes {
    pub fn attributes(self) -> Attributes {
        attributes_from(self.attributes)
    }
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

/// Turns the body of LLDAP's answer to [`OBSERVE_QUERY`] into a [`Directory`] (what the LLDAP
/// target does with it; public for the benchmarks).
pub fn parse_observe_answer(body: &[u8]) -> Result<Directory, LldapError> {
    decode_answer::<ObserveAnswer>(body).map(Directory::from)
}

// Variables and answers of the mutations.

/// `{ "name": … }`
#[derive(Serialize)]
pub struct NameVars<'a> {
    pub name: &'a str,
}

/// `{ "id": … }` (a user id, or a group id).
#[derive(Serialize)]
pub struct IdVars<T> {
    pub id: T,
}

/// `{ "user": …, "group": … }`
#[derive(Serialize)]
pub struct MembershipVars<'a> {
    pub user: &'a str,
    pub group: i64,
}

/// `AttributeValueInput`: one custom attribute.
#[derive(Serialize)]
pub struct AttributeInput<'a> {
    pub name: &'a str,
    pub value: &'a [String],
}

pub fn attribute_inputs(attrs: &Attributes) -> Vec<AttributeInput<'_>> {
    attrs
        .iter()
        .map(|(name, value)| AttributeInput { name, value })
        .collect()
}

/// `CreateUserInput`
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateUserInput<'a> {
    pub id: &'a str,
    pub email: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<&'a str>,
    pub attributes: Vec<AttributeInput<'a>>,
}

/// `UpdateUserInput`
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateUserInput<'a> {
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub insert_attributes: Vec<AttributeInput<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub remove_attributes: &'a [String],
}

/// `UpdateGroupInput`
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateGroupInput<'a> {
    pub id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub insert_attributes: Vec<AttributeInput<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub remove_attributes: &'a [String],
}

#[derive(Serialize)]
pub struct UserVars<T> {
    pub user: T,
}

#[derive(Serialize)]
pub struct GroupVars<T> {
    pub group: T,
}

/// An answer whose fields paasd does not read (`{ ok }`).
#[derive(Deserialize)]
pub struct Ignored {}

/// The answer of [`CREATE_GROUP`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateGroupAnswer {
    pub create_group: CreatedGroup,
}

#[derive(Deserialize)]
pub struct CreatedGroup {
    pub id: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec::MARKER_ATTRIBUTE;

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
        assert!(dir.user_attributes.contains_key(MARKER_ATTRIBUTE));
        assert!(dir.group_attributes.is_empty());
    }

    #[test]
    fn graphql_errors_and_missing_data_are_errors() {
        let e = parse_observe_answer(br#"{"data":null,"errors":[{"message":"Unauthorized"},{}]}"#)
            .expect_err("errors");
        assert_eq!(e.to_string(), "LLDAP: Unauthorized; (no message)");
        let e = parse_observe_answer(br#"{"data":null}"#).expect_err("no data");
        assert!(e.to_string().contains("no data"), "{e}");
        let e = parse_observe_answer(br#"{"data":{"users":[]}}"#).expect_err("no groups");
        assert!(e.to_string().contains("missing field `groups`"), "{e}");
        let e = parse_observe_answer(br#"{"data":{"users":[],"gro"#).expect_err("truncated");
        assert!(matches!(e, LldapError::Decode(_)), "{e}");
    }
}
