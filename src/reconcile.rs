//! One reconcile of a spec: its targets — LLDAP, then every configured service — through the
//! engine. What `paasctl plan|apply` and the daemon run.

use crate::core::spec::Spec;
use crate::engine;
pub use crate::engine::{ObjectReport, Options, Outcome, Plan, Report, TargetReport};
use crate::targets;

/// Observes every target, plans and applies; never panics, never returns without a report.
pub async fn apply(spec: &Spec, opts: &Options) -> Report {
    let targets = targets::build(spec, opts.backoff, &opts.sessions);
    let warnings = spec.warnings.iter().map(|w| w.to_string()).collect();
    engine::apply(&targets, warnings, opts).await
}

/// Observes every target and computes the plan; writes nothing (not even paasd's state).
pub async fn plan(spec: &Spec, opts: &Options) -> Plan {
    let targets = targets::build(spec, opts.backoff, &opts.sessions);
    engine::plan(&targets, opts).await
}
