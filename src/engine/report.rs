//! The result of one apply, per object and per target: what `paasctl apply` prints, what the
//! daemon's status, `STATUS=` and D-Bus API show.

use serde::Serialize;

use crate::core::id::TargetId;
use crate::core::plan::{Held, ObjectKind, Op};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Created,
    Updated,
    Deleted,
    Unchanged,
    Failed,
    /// Not attempted (paasd was stopping).
    Skipped,
    /// The target is not ready yet ("waiting for nextcloud"); counted as failed.
    Pending,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReport {
    pub target: TargetId,
    pub kind: ObjectKind,
    pub name: String,
    pub outcome: Outcome,
    /// What the plan did to it (absent when it needed nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<Op>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How a target fared as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TargetState {
    /// Observed, planned and applied (its objects may still have failed one by one).
    Applied,
    /// Not ready in time (starting, unreachable), or rate limited: "waiting for …".
    Waiting,
    /// Could not be used at all (its secret, its login, its answer).
    Failed,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    pub target: TargetId,
    /// Applied, and every object of it succeeded.
    pub ok: bool,
    pub state: TargetState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the report should say besides (e.g. the group members it went by).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Waiting because the target limits how often it may be asked: not before this Unix time
    /// (the daemon's next run comes then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<u64>,
    /// HTTP requests sent to the target during this run.
    pub requests: u64,
    /// LDAP binds made (LLDAP only).
    pub ldap_binds: u64,
    pub passwords_written: u64,
    pub duration_ms: u64,
}

impl TargetReport {
    /// A target's report before anything is counted.
    pub fn new(target: TargetId, state: TargetState) -> Self {
        TargetReport {
            target,
            ok: false,
            state,
            error: None,
            notes: Vec::new(),
            retry_at: None,
            requests: 0,
            ldap_binds: 0,
            passwords_written: 0,
            duration_ms: 0,
        }
    }
}

/// The result of one apply.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub generation: u64,
    pub cancelled: bool,
    pub blocked: Vec<Held>,
    pub warnings: Vec<String>,
    pub objects: Vec<ObjectReport>,
    pub targets: Vec<TargetReport>,
    pub duration_ms: u64,
}

impl Report {
    pub fn new(generation: u64) -> Self {
        Report {
            created: 0,
            updated: 0,
            deleted: 0,
            unchanged: 0,
            failed: 0,
            generation,
            cancelled: false,
            blocked: Vec::new(),
            warnings: Vec::new(),
            objects: Vec::new(),
            targets: Vec::new(),
            duration_ms: 0,
        }
    }

    /// `N created, N updated, N deleted, N unchanged, N failed`.
    pub fn summary_line(&self) -> String {
        format!(
            "{} created, {} updated, {} deleted, {} unchanged, {} failed",
            self.created, self.updated, self.deleted, self.unchanged, self.failed
        )
    }

    /// Something failed: an object, or a target as a whole.
    pub fn has_failures(&self) -> bool {
        self.failed > 0 || self.targets.iter().any(|t| !t.ok)
    }

    /// The report of `target`.
    pub fn target(&self, target: TargetId) -> Option<&TargetReport> {
        self.targets.iter().find(|t| t.target == target)
    }

    /// Adds one object's result and counts it.
    pub(crate) fn push(
        &mut self,
        target: TargetId,
        kind: ObjectKind,
        name: String,
        outcome: Outcome,
        op: Option<Op>,
        error: Option<String>,
    ) {
        match outcome {
            Outcome::Created => self.created += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Deleted => self.deleted += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Failed | Outcome::Pending => self.failed += 1,
            Outcome::Skipped => {}
        }
        self.objects.push(ObjectReport {
            target,
            kind,
            name,
            outcome,
            op,
            error,
        });
    }
}

impl Outcome {
    /// What a change that succeeded did to its object.
    pub fn of(op: Op) -> Outcome {
        match op {
            Op::Create => Outcome::Created,
            Op::Delete => Outcome::Deleted,
            _ => Outcome::Updated,
        }
    }
}
