//! The plan of a whole spec across its targets: what `paasctl plan` prints and the D-Bus API
//! returns. Each target's plan keeps its own typed actions inside the engine; here they are
//! carried as the JSON they serialise to, so one value holds every target's changes.

use std::fmt;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::core::id::TargetId;
use crate::core::plan;

/// One action of some target, as JSON.
pub type ActionJson = Box<RawValue>;

/// Whether a target could be planned.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetPlan {
    pub target: TargetId,
    /// Observed and planned.
    pub ok: bool,
    /// Why not ("waiting for nextcloud: …").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub unchanged_users: usize,
    pub unchanged_groups: usize,
}

/// Every target's changes, in the order they are applied.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    #[serde(flatten)]
    pub plan: plan::Plan<ActionJson>,
    pub targets: Vec<TargetPlan>,
}

impl Plan {
    pub fn new() -> Plan {
        Plan {
            plan: plan::Plan::default(),
            targets: Vec::new(),
        }
    }

    /// Nothing to change (problems, held-back removals and unready targets aside).
    pub fn is_empty(&self) -> bool {
        self.plan.is_empty()
    }

    /// Every target was planned and nothing needs to change, nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.plan.is_empty()
            && self.plan.problems.is_empty()
            && self.plan.blocked.is_empty()
            && self.targets.iter().all(|t| t.ok)
    }
}

impl Plan {
    fn notes(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.targets {
            for n in &t.notes {
                writeln!(f, "  · {}: {n}", t.target)?;
            }
        }
        Ok(())
    }
}

impl Default for Plan {
    fn default() -> Self {
        Plan::new()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            let each: Vec<String> = self
                .targets
                .iter()
                .map(|t| {
                    if t.target == TargetId::Lldap {
                        format!(
                            "{} ({} users, {} groups)",
                            t.target, t.unchanged_users, t.unchanged_groups
                        )
                    } else {
                        format!("{} ({} users)", t.target, t.unchanged_users)
                    }
                })
                .collect();
            writeln!(
                f,
                "No changes. Every target matches the spec: {}.",
                each.join(", ")
            )?;
            return self.notes(f);
        }
        write!(f, "{}", self.plan)?;
        for t in &self.targets {
            if let Some(e) = &t.error {
                writeln!(f, "  ! {}: {e}", t.target)?;
            }
        }
        self.notes(f)?;
        writeln!(f, "\n{}", self.plan.summary())
    }
}
