//! The seam between the daemon loop and the engine: the loop only decides when to run and
//! reports what happened; loading, observing, planning and applying are the engine's. The loop
//! is written against [`Reconciler`], so the tests can drive it with a scripted one; in
//! production it is [`Engine`], which runs a spec's targets through [`crate::engine`].
//!
//! Reports and plans are the engine's own types: the daemon's status, `STATUS=`, the D-Bus API
//! and `paasctl status` read them directly.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;

use crate::core::id::TargetId;
use crate::core::spec::{self, Spec, SpecProblem};
use crate::engine::{Options, Plan, Report};
use crate::reconcile;
use crate::targets::accounts::members::service_users;

/// Which users the spec provisions in which targets, before anything is observed (members of
/// access groups who are not in the spec appear once a run has read them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// Every configured target, in the order they run.
    pub targets: Vec<TargetId>,
    /// By user id: the targets it gets an object in.
    pub users: BTreeMap<String, Vec<TargetId>>,
}

/// What the daemon loop needs from the reconciler.
pub trait Reconciler: Send + Sync + 'static {
    type Spec: Clone + Send + Sync + 'static;

    /// Load and strictly validate the spec at `path` (symlinks followed).
    fn load(&self, path: &Path) -> Result<Self::Spec, Vec<SpecProblem>>;
    /// A fingerprint of what the spec declares (a new generation starts only when it changes).
    fn fingerprint(&self, spec: &Self::Spec) -> String;
    /// The targets and users the spec declares.
    fn expected(&self, spec: &Self::Spec) -> Expected;
    /// Observe and diff, write nothing.
    fn plan(&self, spec: Self::Spec, opts: Options) -> impl Future<Output = Plan> + Send;
    /// Apply the spec; per-object and per-target errors are inside the report. Honours
    /// `opts.cancel` between objects (the object being written is finished and the state saved).
    fn apply(&self, spec: Self::Spec, opts: Options) -> impl Future<Output = Report> + Send;
}

/// The production reconciler: the spec loader and the engine.
#[derive(Debug, Default, Clone)]
pub struct Engine;

impl Reconciler for Engine {
    type Spec = Spec;

    fn load(&self, path: &Path) -> Result<Spec, Vec<SpecProblem>> {
        match spec::load_spec(path) {
            Ok(s) => {
                for w in &s.warnings {
                    tracing::warn!(json_path = %w.path, "spec: {w}");
                }
                Ok(s)
            }
            Err(e) => Err(e.problems()),
        }
    }

    fn fingerprint(&self, spec: &Spec) -> String {
        // Spec serialises deterministically (maps are BTreeMaps); secrets are file paths only.
        match serde_json::to_vec(spec) {
            Ok(bytes) => super::fingerprint_bytes(&bytes),
            Err(_) => super::fingerprint_bytes(format!("{spec:?}").as_bytes()),
        }
    }

    fn expected(&self, spec: &Spec) -> Expected {
        let mut users: BTreeMap<String, Vec<TargetId>> = spec
            .users
            .keys()
            .map(|u| (u.clone(), vec![TargetId::Lldap]))
            .collect();
        let mut targets = vec![TargetId::Lldap];
        for kind in spec.services.configured() {
            targets.push(TargetId::Service(kind));
            for id in service_users(spec, None, kind).into_keys() {
                users.entry(id).or_default().push(TargetId::Service(kind));
            }
        }
        Expected { targets, users }
    }

    async fn plan(&self, spec: Spec, opts: Options) -> Plan {
        reconcile::plan(&spec, &opts).await
    }

    async fn apply(&self, spec: Spec, opts: Options) -> Report {
        reconcile::apply(&spec, &opts).await
    }
}
