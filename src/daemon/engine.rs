//! The seam between the daemon loop and the reconciler.
//!
//! The daemon only triggers runs and reports on them; loading, observing, planning and applying
//! belong to the core (`crate::spec`, `crate::reconcile`). [`Engine`] is the small surface the
//! loop needs, so the loop can be exercised with a scripted engine in tests and runs the real
//! core in production ([`super::core_engine::CoreEngine`]).

use std::future::Future;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// One problem of a spec, located by its JSON path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Options of one plan or apply run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub state_dir: PathBuf,
    pub generation: u64,
    pub verify_passwords: bool,
    pub force: bool,
    pub cancel: CancellationToken,
}

/// Outcome of one object in a run, as the daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Created,
    Updated,
    Deleted,
    Unchanged,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectKind {
    User,
    Group,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectResult {
    pub target: String,
    pub kind: ObjectKind,
    pub name: String,
    pub outcome: Outcome,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetResult {
    pub target: String,
    pub ok: bool,
    pub error: Option<String>,
}

/// The result of one apply run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// "N created, N updated, N deleted, N unchanged, N failed"
    pub summary: String,
    pub failed: usize,
    pub objects: Vec<ObjectResult>,
    pub targets: Vec<TargetResult>,
    /// The core's own report, serialised, passed through to D-Bus clients.
    pub detail: serde_json::Value,
}

impl RunReport {
    pub fn has_failures(&self) -> bool {
        self.failed > 0 || self.targets.iter().any(|t| !t.ok)
    }
}

/// The result of a plan: its human-readable form and its JSON form.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanResult {
    pub text: String,
    pub empty: bool,
    pub plan: serde_json::Value,
}

/// What the daemon loop needs from the reconciler.
pub trait Engine: Send + Sync + 'static {
    type Spec: Clone + Send + Sync + 'static;

    /// Load and strictly validate the spec at `path` (symlinks followed).
    fn load(&self, path: &Path) -> Result<Self::Spec, Vec<Problem>>;
    /// A fingerprint of what the spec declares (a new generation starts only when it changes).
    fn fingerprint(&self, spec: &Self::Spec) -> String;
    /// The user ids declared in the spec.
    fn users(&self, spec: &Self::Spec) -> Vec<String>;
    /// The targets the spec configures ("lldap", "nextcloud", …).
    fn targets(&self, spec: &Self::Spec) -> Vec<String>;
    /// Observe and diff, write nothing.
    fn plan(
        &self,
        spec: Self::Spec,
        opts: RunOptions,
    ) -> impl Future<Output = Result<PlanResult, String>> + Send;
    /// Apply the spec; per-object errors are inside the report. Honours `opts.cancel` between
    /// objects (the object being written is finished and the state saved).
    fn apply(&self, spec: Self::Spec, opts: RunOptions) -> impl Future<Output = RunReport> + Send;
}
