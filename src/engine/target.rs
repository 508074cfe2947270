//! What a target supplies to the engine: observe, the pure plan, execute one action. Everything
//! else — readiness waits, phases and concurrency, cancellation, create intents, passwords,
//! recording effects, saving the state, the report — is the engine's, once for every target.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use futures::future::BoxFuture;
use serde::Serialize;

use crate::backoff::Transient;
use crate::core::id::TargetId;
use crate::core::members::{Members, MembersView};
use crate::core::plan::{ObjectKind, Plan};
use crate::core::policy::{DesiredPassword, PasswordSource};
use crate::core::state::{Effect, State};
use crate::secret::Secret;

/// One request-sized step of a target's plan.
pub trait TargetAction: Serialize + Debug + Send + Sync {
    /// What to record in the state *before* the action is sent (a create's intent), so that a
    /// crash between the request and its record is recognised on the next run.
    fn intent(&self) -> Option<Effect> {
        None
    }
}

/// What the run knows when the desired state is computed.
pub struct Inputs<'a> {
    pub state: &'a State,
    /// The access groups' members, as read from the directory in this run or earlier.
    pub members: MembersView<'a>,
}

/// What the pure plan is given besides desired and observed state.
pub struct PlanContext<'a> {
    pub state: &'a State,
    /// By user: the desired password (fingerprints only; a missing entry is "none").
    pub passwords: &'a BTreeMap<String, DesiredPassword>,
    /// Verify every enforced password (where the target can), even when unchanged.
    pub verify_passwords: bool,
    /// Override the mass-removal guard.
    pub force: bool,
    /// Unix time, for the removal grace period.
    pub now: u64,
    pub members: MembersView<'a>,
}

/// What `execute` is given: the desired passwords, for the actions that send one.
pub struct ExecContext<'a> {
    pub(crate) secrets: &'a HashMap<String, Secret>,
    pub(crate) passwords: &'a BTreeMap<String, DesiredPassword>,
}

impl<'a> ExecContext<'a> {
    pub fn new(
        secrets: &'a HashMap<String, Secret>,
        passwords: &'a BTreeMap<String, DesiredPassword>,
    ) -> Self {
        ExecContext { secrets, passwords }
    }

    /// `user`'s desired password and its fingerprint, when paasd has one.
    pub fn password(&self, user: &str) -> Option<(&'a Secret, &'a str)> {
        let secret = self.secrets.get(user)?;
        match self.passwords.get(user) {
            Some(DesiredPassword::Known { fingerprint, .. }) => Some((secret, fingerprint)),
            _ => None,
        }
    }
}

/// Requests a target sent in one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub requests: u64,
    pub ldap_binds: u64,
}

/// A target: LLDAP, or one service through the account adapter.
pub trait Target: Send + Sync {
    /// What one read of the target returns.
    type Observed: Send + Sync;
    /// What should exist there, from the spec (and the members of access groups).
    type Desired: Send + Sync;
    type Action: TargetAction;
    type Error: std::error::Error + Transient + Send + Sync + 'static;

    fn id(&self) -> TargetId;

    /// Whether the target is ready to serve (a health endpoint, a login): one probe; the engine
    /// waits with backoff while it answers with transient errors ("waiting for nextcloud").
    fn ready(&self) -> BoxFuture<'_, Result<(), Self::Error>>;

    /// Everything the plan needs, read once.
    fn observe(&self) -> BoxFuture<'_, Result<Self::Observed, Self::Error>>;

    /// This target is the directory: it publishes the members of the access groups.
    fn publishes_members(&self) -> bool {
        false
    }

    /// The members of the services' access groups, from what was observed.
    fn members(&self, _observed: &Self::Observed) -> Option<Members> {
        None
    }

    /// Brings paasd's state in line with what was observed: records of objects deleted by hand
    /// are dropped, create intents that took effect are confirmed, ownership recorded only in
    /// the target is recorded again. Pure.
    fn settle(&self, _observed: &Self::Observed, _state: &mut State) {}

    /// The desired state (pure).
    fn desired(&self, inputs: &Inputs<'_>) -> Self::Desired;

    /// Where each desired user's password comes from (policy; the engine reads them).
    fn password_sources<'a>(
        &'a self,
        desired: &'a Self::Desired,
    ) -> Vec<(String, PasswordSource<'a>)>;

    /// The objects the spec declares here, reported as unchanged when the plan leaves them be.
    fn declared(&self, desired: &Self::Desired) -> Vec<(ObjectKind, String)>;

    /// What the report should say about the desired state besides the changes (e.g. that the
    /// group members it went by are not fresh).
    fn notes(&self, _desired: &Self::Desired) -> Vec<String> {
        Vec::new()
    }

    /// The diff: desired × observed × state → changes (pure).
    fn plan(
        &self,
        desired: &Self::Desired,
        observed: &Self::Observed,
        cx: &PlanContext<'_>,
    ) -> Plan<Self::Action>;

    /// Carries out one action and says what it did.
    fn execute<'a>(
        &'a self,
        action: &'a Self::Action,
        cx: &'a ExecContext<'a>,
    ) -> BoxFuture<'a, Result<Vec<Effect>, Self::Error>>;

    /// After the last action of a run (close connections).
    fn finish(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    fn counters(&self) -> Counters;

    /// How many users' changes may be in flight at once, given what was asked for.
    fn concurrency(&self, requested: usize) -> usize {
        requested
    }
}
