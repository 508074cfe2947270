//! The GraphQL operations paasd sends to LLDAP, typed and checked at build time.
//!
//! Each operation is a document of its own in `graphql/` (`graphql/observe.graphql` holds
//! `query PaasdObserve`, …; the operation names are what LLDAP's logs and the test double count).
//! [`graphql_client`]'s derive reads it together with `schema.graphql` beside this file and
//! generates, in a module named after the operation (`paasd_observe`, `paasd_create_user`, …),
//! the operation's `Variables` and its `ResponseData`: a document that names a field, an argument
//! or a variable type the schema lacks does not compile, and neither does Rust code that builds
//! the variables or reads the answer in a shape the document does not have.
//! [`GraphqlClient::call`](super::graphql::GraphqlClient::call) sends the document text, the
//! operation name and the variables as the generated `QueryBody` has them, and decodes `data`
//! straight from the response bytes into `ResponseData` (no `serde_json::Value` tree, no copy of
//! `data`).
//!
//! # The schema subset
//!
//! `schema.graphql` is not LLDAP's schema but paasd's own description of the part of it paasd
//! relies on: only the types, fields, arguments, input fields and enum values the documents use.
//! Output fields are nullable except where paasd cannot do without them (ids, names, the lists
//! of users, groups and schema attributes), so that an answer without, say, a user's display
//! name or a mutation's `ok` still decodes, as it always did; input fields that paasd always
//! sends are non-null.
//!
//! The subset is checked against LLDAP's published schema (the shared contracts'
//! `lldap/schema.graphql`, or `$PAAS_CONTRACTS/lldap/schema.graphql`) by
//! `tests/graphql_contract.rs`:
//!
//! - every document in `graphql/` validates against LLDAP's schema itself;
//! - every type of the subset exists in LLDAP's schema with the same kind; every field exists
//!   with a compatible type (an output may be declared nullable where LLDAP's is non-null, never
//!   the reverse; an input or argument may be declared non-null where LLDAP's is nullable, never
//!   the reverse; named types and list levels are the same); every argument, input field and
//!   enum value exists; and every argument and input field LLDAP requires is in the subset.
//!
//! The build itself reads only files of this repository.

use std::collections::BTreeMap;

use graphql_client::GraphQLQuery;

use super::directory::{AttributeSchema, DirGroup, DirUser, Directory};
use super::graphql::{decode_answer, LldapError};
use crate::core::attributes::Attributes;

/// One operation: `$file` under this directory, typed against `schema.graphql`. Input fields
/// and variables left `None` are not sent (as the hand-written structs did before).
macro_rules! operation {
    ($(#[$doc:meta])* $name:ident, $file:tt) => {
        $(#[$doc])*
        #[derive(GraphQLQuery)]
        #[graphql(
            schema_path = "src/targets/lldap/schema.graphql",
            query_path = $file,
            skip_serializing_none
        )]
        pub struct $name;
    };
}

operation!(
    /// The one query that reads everything the plan needs: every user (attributes, groups),
    /// every group and both attribute schemas.
    PaasdObserve,
    "src/targets/lldap/graphql/observe.graphql"
);
operation!(
    /// One user's attributes, read back after a create whose answer may have been lost.
    PaasdGetUser,
    "src/targets/lldap/graphql/get_user.graphql"
);
operation!(
    /// Adds a single-string, hidden, read-only attribute to the user schema.
    PaasdAddUserAttribute,
    "src/targets/lldap/graphql/add_user_attribute.graphql"
);
operation!(
    /// Adds a single-string, hidden, read-only attribute to the group schema.
    PaasdAddGroupAttribute,
    "src/targets/lldap/graphql/add_group_attribute.graphql"
);
operation!(
    /// Creates a group by name; answers its id.
    PaasdCreateGroup,
    "src/targets/lldap/graphql/create_group.graphql"
);
operation!(
    /// Changes a group's display name and attributes.
    PaasdUpdateGroup,
    "src/targets/lldap/graphql/update_group.graphql"
);
operation!(
    PaasdDeleteGroup,
    "src/targets/lldap/graphql/delete_group.graphql"
);
operation!(
    PaasdCreateUser,
    "src/targets/lldap/graphql/create_user.graphql"
);
operation!(
    /// Changes a user's fields and attributes.
    PaasdUpdateUser,
    "src/targets/lldap/graphql/update_user.graphql"
);
operation!(
    PaasdAddUserToGroup,
    "src/targets/lldap/graphql/add_user_to_group.graphql"
);
operation!(
    PaasdRemoveUserFromGroup,
    "src/targets/lldap/graphql/remove_user_from_group.graphql"
);
operation!(
    PaasdDeleteUser,
    "src/targets/lldap/graphql/delete_user.graphql"
);

/// Custom attributes by lower-case name, from the `{ name value }` items of an answer (each
/// operation has its own generated item type; `parts` takes one apart).
fn attributes_from<A>(
    list: Option<Vec<A>>,
    parts: impl Fn(A) -> (String, Option<Vec<String>>),
) -> Attributes {
    list.unwrap_or_default()
        .into_iter()
        .map(|a| {
            let (name, value) = parts(a);
            let mut value = value.unwrap_or_default();
            // Deserialised lists start at capacity 4: the marker's one value would keep 3 spare.
            value.shrink_to_fit();
            (name.to_ascii_lowercase(), value)
        })
        .collect()
}

/// `AttributeType` as LLDAP spells it.
fn attribute_type_name(t: paasd_observe::AttributeType) -> String {
    use paasd_observe::AttributeType as T;
    match t {
        T::STRING => "STRING".to_string(),
        T::INTEGER => "INTEGER".to_string(),
        T::JPEG_PHOTO => "JPEG_PHOTO".to_string(),
        T::DATE_TIME => "DATE_TIME".to_string(),
        T::Other(other) => other,
    }
}

/// The fields of one item of an attribute schema, in the order `schema_from` takes them.
type SchemaParts = (
    String,
    Option<paasd_observe::AttributeType>,
    Option<bool>,
    Option<bool>,
    Option<bool>,
    Option<bool>,
);

/// An attribute schema by lower-case attribute name (user and group schemas have their own
/// generated item types; `parts` takes one apart).
fn schema_from<A>(
    list: Option<Vec<A>>,
    parts: impl Fn(A) -> SchemaParts,
) -> BTreeMap<String, AttributeSchema> {
    list.unwrap_or_default()
        .into_iter()
        .map(|a| {
            let (name, attribute_type, is_list, is_editable, is_readonly, is_hardcoded) = parts(a);
            (
                name.to_ascii_lowercase(),
                AttributeSchema {
                    attribute_type: attribute_type.map(attribute_type_name).unwrap_or_default(),
                    is_list: is_list.unwrap_or(false),
                    is_editable: is_editable.unwrap_or(false),
                    is_readonly: is_readonly.unwrap_or(false),
                    is_hardcoded: is_hardcoded.unwrap_or(false),
                },
            )
        })
        .collect()
}

impl From<paasd_observe::ResponseData> for Directory {
    fn from(answer: paasd_observe::ResponseData) -> Directory {
        // Moved, not copied; the users map is collected in one go (a B-tree with full nodes).
        let users = answer
            .users
            .into_iter()
            .map(|u| {
                let mut groups: Vec<i64> = u
                    .groups
                    .unwrap_or_default()
                    .into_iter()
                    .map(|g| g.id)
                    .collect();
                groups.sort_unstable();
                groups.dedup();
                let user = DirUser {
                    email: u.email.unwrap_or_default(),
                    display_name: u.display_name.unwrap_or_default(),
                    first_name: u.first_name.unwrap_or_default(),
                    last_name: u.last_name.unwrap_or_default(),
                    attributes: attributes_from(u.attributes, |a| (a.name, a.value)),
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
                    attributes: attributes_from(g.attributes, |a| (a.name, a.value)),
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
            user_attributes: schema_from(user_schema.map(|l| l.attributes), |a| {
                let (name, ty) = (a.name, a.attribute_type);
                (
                    name,
                    ty,
                    a.is_list,
                    a.is_editable,
                    a.is_readonly,
                    a.is_hardcoded,
                )
            }),
            group_attributes: schema_from(group_schema.map(|l| l.attributes), |a| {
                let (name, ty) = (a.name, a.attribute_type);
                (
                    name,
                    ty,
                    a.is_list,
                    a.is_editable,
                    a.is_readonly,
                    a.is_hardcoded,
                )
            }),
        }
    }
}

/// Turns the body of LLDAP's answer to [`PaasdObserve`] into a [`Directory`] (what the LLDAP
/// target does with it; public for the benchmarks).
pub fn parse_observe_answer(body: &[u8]) -> Result<Directory, LldapError> {
    decode_answer::<paasd_observe::ResponseData>(body).map(Directory::from)
}

/// The custom attributes of the user in an answer to [`PaasdGetUser`] (none if there is no
/// such user).
pub fn user_attributes(answer: paasd_get_user::ResponseData) -> Attributes {
    answer
        .user
        .map(|u| attributes_from(u.attributes, |a| (a.name, a.value)))
        .unwrap_or_default()
}

/// `attrs` as the `AttributeValueInput` list of a mutation (each mutation has its own generated
/// input type; `make` builds one).
pub fn attribute_inputs<T>(attrs: &Attributes, make: impl Fn(String, Vec<String>) -> T) -> Vec<T> {
    attrs
        .iter()
        .map(|(name, value)| make(name.clone(), value.clone()))
        .collect()
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
        assert_eq!(
            dir.user_attributes[MARKER_ATTRIBUTE].attribute_type,
            "STRING"
        );
        assert!(dir.group_attributes.is_empty());
    }

    #[test]
    fn fields_paasd_can_do_without_may_be_missing() {
        // What the hand-written answer structs tolerated, the generated ones do too: no schema,
        // users without attributes or groups, attributes without values, an attribute type
        // paasd does not know.
        let body = br#"{"data":{
          "users":[{"id":"carol"}],
          "groups":[{"id":4}],
          "schema":{"userSchema":{"attributes":[{"name":"Shoe-Size","attributeType":"FLOAT"}]}}}}"#;
        let dir = parse_observe_answer(body).expect("a valid answer");
        let carol = dir.user("carol").expect("carol");
        assert_eq!(carol.email, "");
        assert!(carol.attributes.is_empty() && carol.groups.is_empty());
        assert_eq!(dir.groups[&4].display_name, "");
        let size = &dir.user_attributes["shoe-size"];
        assert_eq!(size.attribute_type, "FLOAT");
        assert!(!size.is_list && !size.is_readonly);
        assert!(dir.group_attributes.is_empty());
        let dir = parse_observe_answer(br#"{"data":{"users":[],"groups":[]}}"#).expect("no schema");
        assert!(dir.user_attributes.is_empty());
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
        let e =
            parse_observe_answer(br#"{"data":{"users":[{"email":"x@example.com"}],"groups":[]}}"#)
                .expect_err("a user without id");
        assert!(e.to_string().contains("missing field `id`"), "{e}");
        let e = parse_observe_answer(br#"{"data":{"users":[],"gro"#).expect_err("truncated");
        assert!(matches!(e, LldapError::Decode(_)), "{e}");
    }

    #[test]
    fn the_variables_are_sent_as_before() {
        // Fields left `None` are not sent; an empty attribute list of a create is.
        let attrs: Attributes = [(MARKER_ATTRIBUTE.to_string(), vec!["true".to_string()])].into();
        let vars = paasd_update_user::Variables {
            user: paasd_update_user::UpdateUserInput {
                id: "bob".into(),
                email: None,
                display_name: Some("Bob".into()),
                first_name: None,
                last_name: None,
                insert_attributes: Some(attribute_inputs(&attrs, |name, value| {
                    paasd_update_user::AttributeValueInput { name, value }
                })),
                remove_attributes: None,
            },
        };
        assert_eq!(
            serde_json::to_string(&vars).ok().as_deref(),
            Some(
                r#"{"user":{"id":"bob","displayName":"Bob","insertAttributes":[{"name":"paasd-managed","value":["true"]}]}}"#
            )
        );
        let vars = paasd_create_user::Variables {
            user: paasd_create_user::CreateUserInput {
                id: "bob".into(),
                email: "bob@example.com".into(),
                display_name: None,
                first_name: None,
                last_name: None,
                attributes: Vec::new(),
            },
        };
        assert_eq!(
            serde_json::to_string(&vars).ok().as_deref(),
            Some(r#"{"user":{"id":"bob","email":"bob@example.com","attributes":[]}}"#)
        );
        let q = PaasdAddUserToGroup::build_query(paasd_add_user_to_group::Variables {
            user: "bob".into(),
            group: 3,
        });
        assert_eq!(q.operation_name, "PaasdAddUserToGroup");
        assert!(
            q.query.starts_with("mutation PaasdAddUserToGroup("),
            "{}",
            q.query
        );
    }
}
