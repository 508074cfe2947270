//! The account adapter: every service with accounts of its own (Nextcloud, GitLab, Jellyfin,
//! Vaultwarden, Mailcow) is one [`Service`] backend — its API and its quirks — and becomes a
//! target of the engine through one [`AccountTarget`]. What a backend supplies: health, read all
//! accounts at once (`observe`), what a user's account should look like (`desired`), carry out
//! one [`AccountAction`] (`execute`). Who gets an account ([`members`]), passwords, removal and
//! the guard are the same for every service, as is the pure diff ([`plan`]).
//!
//! Ownership is tracked per service in paasd's state (`targets.<service>.accounts`, with the
//! service's own id), and — where the service has a place for it (GitLab's custom attributes) —
//! in the service itself. Accounts made by hand in a service are never touched unless a spec user
//! maps to them (then they are adopted, and the plan says so).

pub mod members;
pub mod plan;
pub mod simulate;

use std::collections::{BTreeMap, BTreeSet};

use futures::future::BoxFuture;
use futures::FutureExt as _;
use serde::{Deserialize, Serialize};

use crate::backoff::Transient;
use crate::clock::rfc3339;
use crate::core::id::{ServiceKind, TargetId};
use crate::core::members::MembersView;
use crate::core::plan::{ObjectKind, Plan};
use crate::core::policy::{password_source, Guard, PasswordSource};
use crate::core::spec::{Spec, UserServiceSettings};
use crate::core::state::{Effect, OwnedAccount, State, TargetState};
use crate::engine::target::{Counters, ExecContext, Inputs, PlanContext, Target, TargetAction};
use crate::http::{Http, HttpError, Response};
use crate::secret::Secret;

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

/// One request-sized step in a service. Secrets are never part of an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
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

/// Services recognise a create whose answer was lost by themselves (an existing account with
/// the same key is taken over), so no intent is recorded.
impl TargetAction for AccountAction {}

/// A service's failure, classified for retries and for the status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    /// Not reachable, 5xx, timeout: worth retrying later.
    #[error("{0}")]
    Transient(String),
    /// The service refused (4xx, an error envelope): retrying the same request will not help.
    #[error("{0}")]
    Refused(String),
    /// The service limits how often it may be asked (HTTP 429) and will not answer before
    /// `retry_at` (Unix time): the target waits until then, as a whole — its objects are not
    /// failed one by one, and nothing is retried within the run.
    #[error("{message}")]
    RateLimited { message: String, retry_at: u64 },
}

impl Transient for ServiceError {
    fn is_transient(&self) -> bool {
        matches!(self, ServiceError::Transient(_))
    }

    fn retry_at(&self) -> Option<u64> {
        match self {
            ServiceError::RateLimited { retry_at, .. } => Some(*retry_at),
            _ => None,
        }
    }
}

impl From<HttpError> for ServiceError {
    fn from(e: HttpError) -> Self {
        if e.is_transient() {
            ServiceError::Transient(e.to_string())
        } else {
            ServiceError::Refused(e.to_string())
        }
    }
}

/// What `execute` learned: the id of a created account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Executed {
    pub remote_id: Option<String>,
}

/// One service backend: its API.
pub trait Service: Send + Sync {
    fn kind(&self) -> ServiceKind;
    /// Ready to serve (the service's health endpoint answers; a backend with a login session
    /// also has one then): one probe.
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
    /// HTTP requests sent so far.
    fn requests(&self) -> u64;
}

/// A borrowed backend is a backend (tests drive a backend they keep).
impl<S: Service + ?Sized> Service for &S {
    fn kind(&self) -> ServiceKind {
        (**self).kind()
    }
    fn health(&self) -> BoxFuture<'_, Result<(), ServiceError>> {
        (**self).health()
    }
    fn observe(&self) -> BoxFuture<'_, Result<Vec<Account>, ServiceError>> {
        (**self).observe()
    }
    fn desired(&self, user: &ServiceUser) -> DesiredAccount {
        (**self).desired(user)
    }
    fn execute<'a>(
        &'a self,
        action: &'a AccountAction,
        password: Option<&'a Secret>,
    ) -> BoxFuture<'a, Result<Executed, ServiceError>> {
        (**self).execute(action, password)
    }
    fn requests(&self) -> u64 {
        (**self).requests()
    }
}

/// `"true"`/`"false"`.
pub fn flag(b: bool) -> String {
    if b { "true" } else { "false" }.to_string()
}

/// A JSON scalar of a type the service is loose about: GitLab documents `is_admin` as a string
/// and sends a boolean, Mailcow sends counts and flags as numbers or numeric strings, Nextcloud a
/// quota as bytes or as a size. Arrays and objects are not scalars; `Option<Scalar>` takes `null`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Number(serde_json::Number),
    Text(String),
}

/// As a field string: strings as they are, booleans as `true`/`false`, numbers as decimal.
impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Bool(b) => f.write_str(if *b { "true" } else { "false" }),
            Scalar::Number(n) => write!(f, "{n}"),
            Scalar::Text(s) => f.write_str(s),
        }
    }
}

/// The body of a request that has none (the type the backends' `call` needs for `None`).
pub const NO_BODY: Option<&()> = None;

/// The error for an unexpected answer: the service refused `what` (with the server's words).
pub fn refused(http: &Http, what: &str, resp: &Response, secret: Option<&Secret>) -> ServiceError {
    ServiceError::Refused(format!(
        "{} refused {what} (HTTP {}): {}",
        http.target(),
        resp.status,
        resp.describe(secret)
    ))
}

/// What one service should have: its users, their accounts, and what is known of the group
/// members behind them.
pub struct DesiredAccounts {
    pub users: BTreeMap<String, ServiceUser>,
    pub accounts: BTreeMap<String, DesiredAccount>,
    /// The service has access groups and their members were not read in this run: why, and
    /// what paasd goes by instead.
    pub members_note: Option<String>,
    /// Nobody is known to be a member: removals of accounts that may be members' are held.
    pub hold_removals: bool,
}

/// What carrying out `action` in `service` did, for paasd's state, once the service answered
/// `done`: ownership of a created, marked or re-enabled account (with the service's id), the
/// fingerprint of the password sent with it (`password`: the fingerprint of the desired password,
/// when one was sent), a deletion, a removal time. Pure, so that [`AccountTarget`] and the model
/// in [`simulate`] record exactly the same effects.
pub fn effects(
    service: ServiceKind,
    action: &AccountAction,
    done: Executed,
    password: Option<&str>,
) -> Vec<Effect> {
    let target = TargetId::Service(service);
    let user = action.user().to_string();
    let password_set = |fingerprint: &str| Effect::PasswordApplied {
        target,
        user: user.clone(),
        fingerprint: fingerprint.to_string(),
        written: true,
    };
    let owned = |remote_id: String, created: bool| Effect::AccountOwned {
        service,
        user: user.clone(),
        remote_id,
        created,
    };
    match action {
        AccountAction::Create {
            key, with_password, ..
        } => {
            let mut e = vec![owned(done.remote_id.unwrap_or_else(|| key.clone()), true)];
            if let (true, Some(fp)) = (*with_password, password) {
                e.push(password_set(fp));
            }
            e
        }
        AccountAction::Mark { remote_id, .. } | AccountAction::Enable { remote_id, .. } => {
            vec![owned(remote_id.clone(), false)]
        }
        AccountAction::SetPassword { .. } => match password {
            Some(fp) => vec![password_set(fp)],
            None => vec![Effect::Changed],
        },
        AccountAction::Delete { .. } => vec![Effect::Deleted {
            target,
            user: user.clone(),
        }],
        AccountAction::MarkRemoved { since, .. } => vec![Effect::RemovedSince {
            target,
            user: user.clone(),
            since: (*since != 0).then_some(*since),
        }],
        _ => vec![Effect::Changed],
    }
}

/// Brings paasd's record of one service in line with what was observed (the engine does this
/// before every plan): records of accounts that are gone from the service (deleted by hand)
/// are dropped, and accounts that carry paasd's marker but are not recorded (the state file was
/// lost) are recorded again, under the user their key names. Without it, what paasd records
/// about such an account (a password's fingerprint, a removal time) had nowhere to go, and a
/// stale record made a hand-made account with the same key look owned. Pure.
pub fn settle(observed: &[Account], state: &mut TargetState) {
    state
        .accounts
        .retain(|_, o| observed.iter().any(|a| a.remote_id == o.remote_id));
    for a in observed.iter().filter(|a| a.marked) {
        if state.accounts.values().any(|o| o.remote_id == a.remote_id) {
            continue;
        }
        state
            .accounts
            .entry(a.key.to_ascii_lowercase())
            .or_insert_with(|| OwnedAccount {
                remote_id: a.remote_id.clone(),
                ..OwnedAccount::default()
            });
    }
}

/// A service as a target of the engine.
pub struct AccountTarget<'a> {
    kind: ServiceKind,
    spec: &'a Spec,
    /// `Err`: it could not be set up (its secret file, its URL); every run reports why.
    backend: Result<Box<dyn Service + 'a>, String>,
}

impl<'a> AccountTarget<'a> {
    pub fn new(
        kind: ServiceKind,
        spec: &'a Spec,
        backend: Result<Box<dyn Service + 'a>, String>,
    ) -> Self {
        AccountTarget {
            kind,
            spec,
            backend,
        }
    }

    fn backend(&self) -> Result<&(dyn Service + 'a), ServiceError> {
        self.backend
            .as_deref()
            .map_err(|e| ServiceError::Refused(e.clone()))
    }

    fn target(&self) -> TargetId {
        TargetId::Service(self.kind)
    }
}

impl<'a> Target for AccountTarget<'a> {
    type Observed = Vec<Account>;
    type Desired = DesiredAccounts;
    type Action = AccountAction;
    type Error = ServiceError;

    fn id(&self) -> TargetId {
        self.target()
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), ServiceError>> {
        async move { self.backend()?.health().await }.boxed()
    }

    fn observe(&self) -> BoxFuture<'_, Result<Vec<Account>, ServiceError>> {
        async move { self.backend()?.observe().await }.boxed()
    }

    fn settle(&self, observed: &Vec<Account>, state: &mut State) {
        let t = state.targets.entry(self.kind).or_default();
        settle(observed, t);
        if t.accounts.is_empty() {
            state.targets.remove(&self.kind);
        }
    }

    fn desired(&self, inputs: &Inputs<'_>) -> DesiredAccounts {
        let view = &inputs.members;
        let users = members::service_users(self.spec, view.members(), self.kind);
        let accounts = match &self.backend {
            Ok(b) => users
                .values()
                .map(|u| (u.id.clone(), b.desired(u)))
                .collect(),
            Err(_) => BTreeMap::new(),
        };
        let has_groups = self
            .spec
            .services
            .get(self.kind)
            .is_some_and(|c| !c.groups.is_empty());
        let members_note = match view {
            _ if !has_groups => None,
            MembersView::Fresh(_) => None,
            MembersView::Stale {
                observed_at,
                reason,
                ..
            } => Some(format!(
                "LLDAP could not be read ({reason}): the access groups' members are those it had when last read, at {}",
                rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(*observed_at))
            )),
            MembersView::Unknown { reason } => Some(format!(
                "LLDAP could not be read ({reason}) and never was: only users the spec gives access \
                 are provisioned, and no account is disabled or removed"
            )),
        };
        DesiredAccounts {
            users,
            accounts,
            hold_removals: has_groups && view.members().is_none(),
            members_note,
        }
    }

    fn password_sources<'b>(
        &'b self,
        desired: &'b DesiredAccounts,
    ) -> Vec<(String, PasswordSource<'b>)> {
        desired
            .users
            .keys()
            .map(|id| (id.clone(), password_source(self.spec, self.target(), id)))
            .filter(|(_, s)| *s != PasswordSource::None)
            .collect()
    }

    fn declared(&self, desired: &DesiredAccounts) -> Vec<(ObjectKind, String)> {
        desired
            .users
            .keys()
            .map(|u| (ObjectKind::User, u.clone()))
            .collect()
    }

    fn notes(&self, desired: &DesiredAccounts) -> Vec<String> {
        desired.members_note.iter().cloned().collect()
    }

    fn plan(
        &self,
        desired: &DesiredAccounts,
        observed: &Vec<Account>,
        cx: &PlanContext<'_>,
    ) -> Plan<AccountAction> {
        plan::plan_accounts(&plan::AccountPlanInput {
            service: self.kind,
            desired: &desired.accounts,
            observed,
            state: cx.state.service(self.kind),
            passwords: cx.passwords,
            removal: self.spec.removal,
            removal_grace_period: self.spec.removal_grace_period,
            guard: Guard {
                max_percent: self.spec.removal_guard.max_percent,
                force: cx.force,
            },
            hold_removals: desired.hold_removals,
            now: cx.now,
        })
    }

    fn execute<'b>(
        &'b self,
        action: &'b AccountAction,
        cx: &'b ExecContext<'b>,
    ) -> BoxFuture<'b, Result<Vec<Effect>, ServiceError>> {
        async move {
            if let AccountAction::MarkRemoved { .. } = action {
                // State only: nothing is sent.
                return Ok(effects(self.kind, action, Executed::default(), None));
            }
            let password = cx.password(action.user());
            let done = self
                .backend()?
                .execute(action, password.map(|(s, _)| s))
                .await?;
            Ok(effects(self.kind, action, done, password.map(|(_, fp)| fp)))
        }
        .boxed()
    }

    fn counters(&self) -> Counters {
        Counters {
            requests: self.backend.as_ref().map_or(0, |b| b.requests()),
            ldap_binds: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_read_as_field_strings() {
        let read =
            |s: &str| serde_json::from_str::<Option<Scalar>>(s).map(|v| v.map(|v| v.to_string()));
        assert_eq!(read("true").ok().flatten().as_deref(), Some("true"));
        assert_eq!(read("100").ok().flatten().as_deref(), Some("100"));
        assert_eq!(read("1.5").ok().flatten().as_deref(), Some("1.5"));
        assert_eq!(read("\"10 GB\"").ok().flatten().as_deref(), Some("10 GB"));
        assert_eq!(read("null").ok().flatten(), None);
        assert!(read("[1]").is_err() && read("{}").is_err());
    }
}
