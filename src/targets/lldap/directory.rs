//! The observed state of LLDAP: every user (with attributes and groups), every group, and the
//! attribute schemas — what one GraphQL query returns, in a shape the plan can diff.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::attributes::Attributes;
use crate::core::members::{Member, Members};
use crate::core::spec::MARKER_ATTRIBUTE;

/// LLDAP's built-in admin group: the only built-in group paasd changes memberships of.
pub const ADMIN_GROUP: &str = "lldap_admin";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Directory {
    /// By lower-case user id.
    pub users: BTreeMap<String, DirUser>,
    /// By group id.
    pub groups: BTreeMap<i64, DirGroup>,
    /// Attribute names in the user schema (lower-case).
    pub user_attributes: BTreeMap<String, AttributeSchema>,
    /// Attribute names in the group schema (lower-case).
    pub group_attributes: BTreeMap<String, AttributeSchema>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DirUser {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub first_name: String,
    pub last_name: String,
    /// Custom attributes by lower-case name.
    pub attributes: Attributes,
    /// Ids of the groups the user is a member of, sorted, each once (a vector: a user is in a
    /// handful of groups, and a B-tree would cost ~100 bytes per user more).
    pub groups: Vec<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DirGroup {
    pub id: i64,
    pub display_name: String,
    /// Custom attributes by lower-case name.
    pub attributes: Attributes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeSchema {
    pub attribute_type: String,
    pub is_list: bool,
    pub is_editable: bool,
    pub is_readonly: bool,
    pub is_hardcoded: bool,
}

impl DirUser {
    /// Adds the user to group `id` (keeps `groups` sorted and unique).
    pub fn join_group(&mut self, id: i64) {
        if let Err(at) = self.groups.binary_search(&id) {
            self.groups.insert(at, id);
        }
    }

    /// Removes the user from group `id`.
    pub fn leave_group(&mut self, id: i64) {
        self.groups.retain(|g| *g != id);
    }

    /// Carries paasd's ownership marker.
    pub fn is_marked(&self) -> bool {
        self.attributes.contains_key(MARKER_ATTRIBUTE)
    }
}

impl DirGroup {
    /// The spec name recorded in paasd's marker, if the group carries one.
    pub fn marker(&self) -> Option<&str> {
        self.attributes
            .get(MARKER_ATTRIBUTE)
            .and_then(|v| v.first())
            .map(String::as_str)
    }
}

impl Directory {
    pub fn user(&self, id: &str) -> Option<&DirUser> {
        self.users.get(&id.to_ascii_lowercase())
    }

    /// The group with this name (LLDAP group names are case-insensitive).
    pub fn group_by_name(&self, name: &str) -> Option<&DirGroup> {
        self.groups
            .values()
            .find(|g| g.display_name.eq_ignore_ascii_case(name))
    }

    /// The group paasd marked as the spec group `key`.
    pub fn group_by_marker(&self, key: &str) -> Option<&DirGroup> {
        self.groups.values().find(|g| g.marker() == Some(key))
    }

    /// The members of the access groups named `groups` (case-insensitively): every user in one
    /// of them, marked disabled when it is in `disabled_group` too.
    pub fn members<'a>(
        &self,
        groups: impl IntoIterator<Item = &'a str>,
        disabled_group: &str,
    ) -> Members {
        let access: BTreeMap<i64, String> = groups
            .into_iter()
            .filter_map(|name| {
                self.group_by_name(name)
                    .map(|g| (g.id, g.display_name.to_ascii_lowercase()))
            })
            .collect();
        if access.is_empty() {
            return Members::default();
        }
        let disabled = self.group_by_name(disabled_group).map(|g| g.id);
        let users = self
            .users
            .iter()
            .filter_map(|(key, u)| {
                let groups: Vec<String> = u
                    .groups
                    .iter()
                    .filter_map(|g| access.get(g).cloned())
                    .collect();
                (!groups.is_empty()).then(|| {
                    let member = Member {
                        id: u.id.clone(),
                        email: u.email.clone(),
                        display_name: u.display_name.clone(),
                        first_name: u.first_name.clone(),
                        last_name: u.last_name.clone(),
                        disabled: disabled.is_some_and(|d| u.groups.contains(&d)),
                        groups,
                    };
                    (key.clone(), member)
                })
            })
            .collect();
        Members { users }
    }

    /// The user (other than `except`) whose e-mail is `email`, compared case-insensitively.
    pub fn user_with_email(&self, email: &str, except: &str) -> Option<&DirUser> {
        self.users
            .values()
            .find(|u| u.email.eq_ignore_ascii_case(email) && !u.id.eq_ignore_ascii_case(except))
    }
}
