//! Spec v1: the JSON document the NixOS module renders to `/etc/paas/spec.json`.
//!
//! Parsing is strict and reports every problem at once, each with its JSON path
//! (`users.alice.email: …`). The parser walks a `serde_json::Value` by hand instead of using
//! `#[serde(deny_unknown_fields)]`, because serde stops at the first error.
//!
//! The spec holds no secret: only paths of secret files (`…File` keys).
//!
//! This file holds the spec's types; `read` is the parser, on the problem-collecting walker of
//! `walk`, with the rules for single values in `validate`.

mod read;
mod validate;
mod walk;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::attributes::Attributes;
use super::id::ServiceKind;

pub use read::parse_spec;
pub use validate::{
    parse_duration, valid_attribute_name, valid_email, valid_group_name, valid_nextcloud_quota,
    valid_user_id,
};

/// The reserved attribute paasd uses as its ownership marker inside LLDAP.
pub const MARKER_ATTRIBUTE: &str = "paasd-managed";

/// A validated spec.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    pub version: u32,
    pub lldap: LldapSpec,
    pub removal: Removal,
    /// Seconds a removed user stays disabled before `removal = "delete"` deletes it.
    pub removal_grace_period: u64,
    pub removal_guard: RemovalGuard,
    pub passwords: Passwords,
    pub groups: BTreeMap<String, GroupSpec>,
    pub users: BTreeMap<String, UserSpec>,
    pub services: Services,
    /// Non-fatal remarks (e.g. settings for a service that is not configured).
    #[serde(skip)]
    pub warnings: Vec<SpecProblem>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LldapSpec {
    pub url: String,
    pub ldap_url: String,
    pub base_dn: String,
    pub admin_username: String,
    pub admin_password_file: PathBuf,
    pub disabled_group: String,
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Removal {
    Disable,
    Delete,
    Keep,
}

impl Removal {
    /// The spec's word for it.
    pub const fn name(self) -> &'static str {
        match self {
            Removal::Disable => "disable",
            Removal::Delete => "delete",
            Removal::Keep => "keep",
        }
    }
}

impl fmt::Display for Removal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovalGuard {
    pub max_percent: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PasswordStrategy {
    PerUser,
    Universal,
    Generated,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Passwords {
    pub strategy: PasswordStrategy,
    pub universal_password_file: Option<PathBuf>,
}

/// Values of a custom attribute: always a list (a single string becomes a one-element list).
pub type AttributeValues = Vec<String>;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSpec {
    /// The LLDAP group name; defaults to the map key.
    pub display_name: String,
    pub attributes: Attributes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PasswordMode {
    Enforce,
    Initial,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSpec {
    pub email: String,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub groups: Vec<String>,
    pub admin: bool,
    pub password_file: Option<PathBuf>,
    pub password_mode: PasswordMode,
    pub enable: bool,
    pub attributes: Attributes,
    pub password_strategy: Option<PasswordStrategy>,
    /// Services this user gets an account in; `None` = every configured service.
    pub services: Option<Vec<ServiceKind>>,
    /// Per-service settings; `None` when the user sets none, as most do (boxed: a user without
    /// them costs ~100 bytes less). Read them with [`UserSpec::settings`].
    pub service_settings: Option<Box<UserServiceSettings>>,
}

/// The settings of a user who sets none.
static NO_SETTINGS: UserServiceSettings = UserServiceSettings {
    nextcloud: NextcloudUser {
        quota: None,
        groups: Vec::new(),
        admin: false,
    },
    gitlab: GitlabUser {
        admin: false,
        external: false,
        can_create_group: None,
        projects_limit: None,
    },
    jellyfin: JellyfinUser {
        admin: false,
        enable_all_folders: None,
    },
    mailcow: MailcowUser {
        quota: None,
        active: None,
    },
};

impl UserSpec {
    /// The user's per-service settings (the defaults when it sets none).
    pub fn settings(&self) -> &UserServiceSettings {
        self.service_settings.as_deref().unwrap_or(&NO_SETTINGS)
    }

    /// The user's per-service settings, to change them (made explicit when it set none).
    pub fn settings_mut(&mut self) -> &mut UserServiceSettings {
        self.service_settings.get_or_insert_with(Default::default)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserServiceSettings {
    pub nextcloud: NextcloudUser,
    pub gitlab: GitlabUser,
    pub jellyfin: JellyfinUser,
    pub mailcow: MailcowUser,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NextcloudUser {
    pub quota: Option<String>,
    pub groups: Vec<String>,
    pub admin: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GitlabUser {
    pub admin: bool,
    pub external: bool,
    pub can_create_group: Option<bool>,
    pub projects_limit: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JellyfinUser {
    pub admin: bool,
    pub enable_all_folders: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MailcowUser {
    /// MiB.
    pub quota: Option<u64>,
    pub active: Option<bool>,
}

/// Connections to the services besides LLDAP, by kind; present = configured.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Services(BTreeMap<ServiceKind, ServiceConnection>);

impl Services {
    pub fn get(&self, kind: ServiceKind) -> Option<&ServiceConnection> {
        self.0.get(&kind)
    }

    pub fn get_mut(&mut self, kind: ServiceKind) -> Option<&mut ServiceConnection> {
        self.0.get_mut(&kind)
    }

    pub fn insert(&mut self, kind: ServiceKind, conn: ServiceConnection) {
        self.0.insert(kind, conn);
    }

    pub fn remove(&mut self, kind: ServiceKind) -> Option<ServiceConnection> {
        self.0.remove(&kind)
    }

    /// The configured services, in the order paasd reconciles them.
    pub fn configured(&self) -> impl Iterator<Item = ServiceKind> + '_ {
        self.0.keys().copied()
    }

    /// The configured services with their connections, in order.
    pub fn iter(&self) -> impl Iterator<Item = (ServiceKind, &ServiceConnection)> {
        self.0.iter().map(|(k, c)| (*k, c))
    }

    /// The LLDAP groups that give access to some service (`<service>.groups`).
    pub fn access_groups(&self) -> impl Iterator<Item = &str> {
        self.0
            .values()
            .flat_map(|c| c.groups.iter().map(String::as_str))
    }
}

/// Where a service's passwords come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ServicePasswords {
    /// The user's `passwordStrategy`, else the deployment's `passwords.strategy`.
    Inherit,
    /// `"none"`: the service logs in through LDAP/SSO; paasd sets no password there.
    None,
    /// This strategy, for every user of the service.
    Strategy(PasswordStrategy),
}

/// One service connection. Which of the optional fields are required depends on the service.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConnection {
    pub url: String,
    /// Nextcloud's admin user.
    pub admin_user: Option<String>,
    /// The secret file, under the key [`ServiceKind::secret_key`] names.
    pub secret_file: PathBuf,
    pub ldap_provider: Option<String>,
    pub domain: Option<String>,
    /// LLDAP access groups: their members get an account (hand-made LLDAP users too).
    pub groups: Vec<String>,
    pub password_strategy: ServicePasswords,
}

/// One problem found in a spec, with the JSON path it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecProblem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a spec could not be loaded: it could not be read, or it has problems (all of them).
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_problems(.0))]
    Invalid(Vec<SpecProblem>),
}

fn render_problems(problems: &[SpecProblem]) -> String {
    let mut s = format!(
        "the spec has {} error{}:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        s.push_str("\n  ");
        s.push_str(&p.to_string());
    }
    s
}

impl SpecError {
    /// Every problem (for a read error: one problem with an empty path).
    pub fn problems(&self) -> Vec<SpecProblem> {
        match self {
            SpecError::Read { .. } => vec![SpecProblem {
                path: String::new(),
                message: self.to_string(),
            }],
            SpecError::Invalid(p) => p.clone(),
        }
    }
}

/// Reads and validates a spec file (symlinks are followed).
pub fn load_spec(path: &Path) -> Result<Spec, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_spec(&text)
}

#[cfg(test)]
mod tests;
