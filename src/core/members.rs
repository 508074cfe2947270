//! Group-driven provisioning: the LLDAP users who are members of a service's access groups
//! (`<service>.groups`) get an account there, hand-made LLDAP users included.
//!
//! [`Members`] is what the directory says about those groups, read once per run; paasd keeps the
//! last one it read in its state, so that when LLDAP cannot be read the services still know who
//! their members are ([`MembersView::Stale`]) instead of disabling them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The LLDAP users who are in at least one access group, by lower-case user id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members {
    pub users: BTreeMap<String, Member>,
}

/// One LLDAP user in an access group, with what the services need of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The user id as LLDAP spells it.
    pub id: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub first_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_name: String,
    /// Member of paasd's disabled group: its accounts are disabled.
    #[serde(default)]
    pub disabled: bool,
    /// The access groups it is a member of (lower-case names).
    pub groups: Vec<String>,
}

impl Members {
    /// `user` is a member of one of `groups` (names, compared case-insensitively).
    pub fn in_any(&self, user: &str, groups: &[String]) -> bool {
        self.users
            .get(&user.to_ascii_lowercase())
            .is_some_and(|m| m.in_any(groups))
    }
}

impl Member {
    pub fn in_any(&self, groups: &[String]) -> bool {
        groups
            .iter()
            .any(|g| self.groups.iter().any(|m| m.eq_ignore_ascii_case(g)))
    }
}

/// The last members paasd read, with when (Unix time), as kept in its state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembersSnapshot {
    pub observed_at: u64,
    #[serde(flatten)]
    pub members: Members,
}

/// What a run knows of the access groups' members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembersView<'a> {
    /// Read from LLDAP in this run.
    Fresh(&'a Members),
    /// LLDAP could not be read: the members it had when paasd last read it.
    Stale {
        members: &'a Members,
        observed_at: u64,
        reason: &'a str,
    },
    /// LLDAP could not be read, and paasd never read it: nobody is known to be a member, and
    /// accounts of users who might be are not removed.
    Unknown { reason: &'a str },
}

impl<'a> MembersView<'a> {
    /// The members to go by (none when unknown).
    pub fn members(&self) -> Option<&'a Members> {
        match self {
            MembersView::Fresh(m) | MembersView::Stale { members: m, .. } => Some(m),
            MembersView::Unknown { .. } => None,
        }
    }

    /// Removals may rest on these members: they were read in this run.
    pub fn is_fresh(&self) -> bool {
        matches!(self, MembersView::Fresh(_))
    }
}
