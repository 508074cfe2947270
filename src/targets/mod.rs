//! Services with their own accounts (Nextcloud, GitLab, Jellyfin, Vaultwarden, Mailcow).
//!
//! Every service is one backend behind the [`Service`] trait: it reads all its accounts at once
//! (`observe`), says what an account of a paasd user should look like there (`desired`), and
//! carries out one [`AccountAction`] at a time (`execute`). The diff between desired and
//! observed accounts is the same for every service and pure: [`plan::plan_service`].
//!
//! Ownership is tracked per service in paasd's state (`targets.<service>.accounts`, with the
//! service's own id), and — where the service has a place for it (GitLab's custom attributes) —
//! in the service itself. Accounts made by hand in a service are never touched unless a spec user
//! maps to them (then they are adopted, and the plan says so).

pub mod desired;
pub mod gitlab;
pub mod http;
pub mod jellyfin;
pub mod mailcow;
pub mod nextcloud;
pub mod plan;
pub mod registry;
pub mod run;
pub mod vaultwarden;

use std::collections::{BTreeMap, BTreeSet};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::spec::UserServiceSettings;

/// An account as a service has it, normalised for the diff.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// The service's own id (Nextcloud uid, GitLab numeric id, Jellyfin GUID, Vaultwarden uuid,
    /// Mailcow address).
    pub remote_id: String,
    /// What paasd matches on: the paasd user id, or the e-mail where the service has no user
    /// name (Vaultwarden), or the address (Mailcow). Compared case-insensitively.
    pub key: String,
    pub enabled: bool,
    /// Managed fields, as strings (`"true"`/`"false"` for flags), by field name.
    pub fields: BTreeMap<String, String>,
    /// Group memberships in the service (Nextcloud).
    pub groups: BTreeSet<String>,
    /// Carries paasd's marker inside the service (GitLab custom attribute).
    pub marked: bool,
}

/// What a paasd user should look like in one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredAccount {
    /// The paasd user id.
    pub user: String,
    pub key: String,
    pub enabled: bool,
    pub fields: BTreeMap<String, String>,
    /// The groups paasd manages for this account; memberships in other groups are left alone
    /// unless they are listed in `managed_groups`.
    pub groups: BTreeSet<String>,
    /// Groups whose membership paasd decides for this account (e.g. `admin` in Nextcloud).
    pub managed_groups: BTreeSet<String>,
}

impl DesiredAccount {
    /// `user`'s account keyed by its id, enabled as the user is, with `fields` and no group
    /// memberships: the common shape, which backends adjust with struct update syntax.
    pub fn of(user: &ServiceUser, fields: BTreeMap<String, String>) -> Self {
        DesiredAccount {
            user: user.id.clone(),
            key: user.id.clone(),
            enabled: user.enabled,
            fields,
            ..DesiredAccount::default()
        }
    }
}

/// A paasd user as the services see it: from the spec, or (for members of a service's LLDAP
/// access groups) from LLDAP.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceUser {
    pub id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub enabled: bool,
    pub settings: UserServiceSettings,
}

/// What a service can do; the generic plan respects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Passwords can be set by paasd.
    pub passwords: bool,
    /// Accounts can be disabled (else removal = disable deletes nothing and is reported).
    pub disable: bool,
}

/// One request-sized step in a service. Secrets are never part of an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "accountAction", rename_all = "camelCase")]
pub enum AccountAction {
    #[serde(rename_all = "camelCase")]
    Create {
        user: String,
        key: String,
        enabled: bool,
        fields: BTreeMap<String, String>,
        groups: BTreeSet<String>,
        /// A password is sent with the create.
        with_password: bool,
    },
    #[serde(rename_all = "camelCase")]
    Update {
        user: String,
        remote_id: String,
        fields: BTreeMap<String, String>,
    },
    #[serde(rename_all = "camelCase")]
    AddToGroup {
        user: String,
        remote_id: String,
        group: String,
    },
    #[serde(rename_all = "camelCase")]
    RemoveFromGroup {
        user: String,
        remote_id: String,
        group: String,
    },
    #[serde(rename_all = "camelCase")]
    SetPassword { user: String, remote_id: String },
    #[serde(rename_all = "camelCase")]
    Disable { user: String, remote_id: String },
    #[serde(rename_all = "camelCase")]
    Enable { user: String, remote_id: String },
    /// Put paasd's marker on an existing account (where the service has a place for it).
    #[serde(rename_all = "camelCase")]
    Mark { user: String, remote_id: String },
    #[serde(rename_all = "camelCase")]
    Delete { user: String, remote_id: String },
    /// State only: remember when the user left this service (removal grace period); 0 clears.
    #[serde(rename_all = "camelCase")]
    MarkRemoved { user: String, since: u64 },
}

impl AccountAction {
    pub fn user(&self) -> &str {
        match self {
            AccountAction::Create { user, .. }
            | AccountAction::Update { user, .. }
            | AccountAction::AddToGroup { user, .. }
            | AccountAction::RemoveFromGroup { user, .. }
            | AccountAction::SetPassword { user, .. }
            | AccountAction::Disable { user, .. }
            | AccountAction::Enable { user, .. }
            | AccountAction::Mark { user, .. }
            | AccountAction::Delete { user, .. }
            | AccountAction::MarkRemoved { user, .. } => user,
        }
    }
}

/// A service's failure, classified for retries and for the status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    /// Not reachable, 5xx, timeout: worth retrying later.
    #[error("{0}")]
    Transient(String),
    /// The service refused (4xx, an error envelope): retrying the same request will not help.
    #[error("{0}")]
    Refused(String),
}

impl crate::retry::Transient for ServiceError {
    fn is_transient(&self) -> bool {
        matches!(self, ServiceError::Transient(_))
    }
}

/// What `execute` learned: the id of a created account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Executed {
    pub remote_id: Option<String>,
}

/// One service backend.
pub trait Service: Send + Sync {
    /// `nextcloud`, `gitlab`, … (the spec key).
    fn name(&self) -> &'static str;
    fn capabilities(&self) -> Capabilities;
    /// Ready to serve (the service's health endpoint answers).
    fn health(&self) -> BoxFuture<'_, Result<(), ServiceError>>;
    /// Every account, read once.
    fn observe(&self) -> BoxFuture<'_, Result<Vec<Account>, ServiceError>>;
    /// The account this user should have.
    fn desired(&self, user: &ServiceUser) -> DesiredAccount;
    /// Carries out one action; `password` is the account's desired password for actions that
    /// send one.
    fn execute<'a>(
        &'a self,
        action: &'a AccountAction,
        password: Option<&'a Secret>,
    ) -> BoxFuture<'a, Result<Executed, ServiceError>>;
}
