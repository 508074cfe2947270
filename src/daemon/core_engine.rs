//! The production [`Engine`]: the core's spec loader and reconciler.

use std::path::Path;

use super::engine::{
    Engine, ObjectKind, ObjectResult, Outcome, PlanResult, Problem, RunOptions, RunReport,
    TargetResult,
};
use crate::reconcile::{self, Options};
use crate::spec::{self, Spec};

#[derive(Debug, Default, Clone)]
pub struct CoreEngine;

fn options(o: RunOptions) -> Options {
    let mut opts = Options::new(o.state_dir);
    opts.verify_passwords = o.verify_passwords;
    opts.force = o.force;
    opts.generation = o.generation;
    opts.cancel = o.cancel;
    opts
}

impl Engine for CoreEngine {
    type Spec = Spec;

    fn load(&self, path: &Path) -> Result<Spec, Vec<Problem>> {
        match spec::load_spec(path) {
            Ok(s) => {
                for w in &s.warnings {
                    tracing::warn!(json_path = %w.path, "spec: {w}");
                }
                Ok(s)
            }
            Err(e) => Err(e
                .problems()
                .into_iter()
                .map(|p| Problem {
                    path: p.path,
                    message: p.message,
                })
                .collect()),
        }
    }

    fn fingerprint(&self, spec: &Spec) -> String {
        // Spec serialises deterministically (maps are BTreeMaps); secrets are file paths only.
        match serde_json::to_vec(spec) {
            Ok(bytes) => super::fingerprint_bytes(&bytes),
            Err(_) => super::fingerprint_bytes(format!("{spec:?}").as_bytes()),
        }
    }

    fn users(&self, spec: &Spec) -> Vec<String> {
        spec.users.keys().cloned().collect()
    }

    fn targets(&self, _spec: &Spec) -> Vec<String> {
        // Only LLDAP has a reconciler so far; services appear here once they do.
        vec!["lldap".to_string()]
    }

    async fn plan(&self, spec: Spec, opts: RunOptions) -> Result<PlanResult, String> {
        let opts = options(opts);
        match reconcile::plan(&spec, &opts).await {
            Ok(p) => Ok(PlanResult {
                text: p.to_string(),
                empty: p.is_empty(),
                plan: serde_json::to_value(&p).map_err(|e| format!("serialising the plan: {e}"))?,
            }),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn apply(&self, spec: Spec, opts: RunOptions) -> RunReport {
        let opts = options(opts);
        let report = reconcile::apply(&spec, &opts).await;
        let objects = report
            .objects
            .iter()
            .filter_map(|o| {
                let kind = match o.kind {
                    crate::plan::ObjectKind::User => ObjectKind::User,
                    crate::plan::ObjectKind::Group => ObjectKind::Group,
                    _ => return None,
                };
                let outcome = match o.outcome {
                    reconcile::Outcome::Created => Outcome::Created,
                    reconcile::Outcome::Updated => Outcome::Updated,
                    reconcile::Outcome::Deleted => Outcome::Deleted,
                    reconcile::Outcome::Unchanged => Outcome::Unchanged,
                    reconcile::Outcome::Failed => Outcome::Failed,
                    reconcile::Outcome::Skipped | reconcile::Outcome::Pending => Outcome::Skipped,
                };
                Some(ObjectResult {
                    target: o.target.clone(),
                    kind,
                    name: o.name.clone(),
                    outcome,
                    error: o.error.clone(),
                })
            })
            .collect();
        let targets = report
            .targets
            .iter()
            .map(|t| TargetResult {
                target: t.target.clone(),
                ok: t.ok,
                error: t.error.clone(),
            })
            .collect();
        let mut summary = report.summary_line();
        if report.cancelled {
            summary.push_str(" (cancelled)");
        }
        RunReport {
            summary,
            failed: report.failed,
            objects,
            targets,
            detail: serde_json::to_value(&report).unwrap_or(serde_json::Value::Null),
        }
    }
}
