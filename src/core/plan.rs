//! The shape of a plan, shared by every target: one [`Change`] per object (user, group, schema
//! attribute), each a list of the target's own actions — one request-sized step each — with the
//! fields it changes as the plan shows them; the objects that cannot be reconciled
//! ([`PlanProblem`]); the changes the mass-removal guard holds back ([`Held`]).
//!
//! A plan is a value: `Display` prints it like `terraform plan`, `Serialize` gives the JSON of
//! `paasctl plan --json` and of the D-Bus API. No secret is ever part of a plan.

use std::borrow::Cow;
use std::fmt;

use serde::{Serialize, Serializer};

use super::id::TargetId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase")]
pub enum ObjectKind {
    Schema,
    Group,
    User,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Schema => "attribute",
            ObjectKind::Group => "group",
            ObjectKind::User => "user",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Op {
    Create,
    Update,
    Adopt,
    Disable,
    Enable,
    Delete,
}

impl Op {
    /// The verb shown in plans and logged as `PAAS_ACTION`.
    pub fn verb(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Adopt => "adopt",
            Op::Disable => "disable",
            Op::Enable => "enable",
            Op::Delete => "delete",
        }
    }

    /// The plan's sign: `+` create, `-` delete, `±` adopt, `~` any other change.
    pub fn sign(self) -> &'static str {
        match self {
            Op::Create => "+",
            Op::Delete => "-",
            Op::Adopt => "±",
            _ => "~",
        }
    }

    /// Takes an account away from its user (what the mass-removal guard counts).
    pub fn removes(self) -> bool {
        matches!(self, Op::Disable | Op::Delete)
    }
}

/// One field of an object as the plan shows it: `old → new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDiff {
    pub field: Cow<'static, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Cow<'static, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Cow<'static, str>>,
}

impl FieldDiff {
    /// A field set on a new object: `+ field = "value"`.
    pub fn new_value(field: impl Into<Cow<'static, str>>, v: &str) -> FieldDiff {
        FieldDiff {
            field: field.into(),
            old: None,
            new: Some(quote(v)),
        }
    }

    /// A changed field: `~ field = "old" -> "new"`.
    pub fn changed(field: impl Into<Cow<'static, str>>, old: Option<&str>, new: &str) -> FieldDiff {
        FieldDiff {
            field: field.into(),
            old: old.map(quote),
            new: Some(quote(new)),
        }
    }

    /// A note without values: `~ field = note`.
    pub fn note(field: impl Into<Cow<'static, str>>, note: impl Into<Cow<'static, str>>) -> Self {
        FieldDiff {
            field: field.into(),
            old: None,
            new: Some(note.into()),
        }
    }

    /// Memberships: `groups = +a, +b, -c`; `None` when nothing changes.
    pub fn groups(added: &[String], removed: &[String]) -> Option<FieldDiff> {
        if added.is_empty() && removed.is_empty() {
            return None;
        }
        let text = added
            .iter()
            .map(|g| format!("+{g}"))
            .chain(removed.iter().map(|g| format!("-{g}")))
            .collect::<Vec<_>>()
            .join(", ");
        Some(FieldDiff::note("groups", text))
    }
}

/// `"value"`, as the plan shows values.
pub fn quote(s: &str) -> Cow<'static, str> {
    format!("\"{s}\"").into()
}

/// Everything the plan does to one object of one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change<A> {
    pub target: TargetId,
    pub kind: ObjectKind,
    pub name: String,
    pub op: Op,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub fields: Vec<FieldDiff>,
    pub actions: Vec<A>,
}

impl<A> Change<A> {
    /// The same change with its actions turned into `B`s.
    pub fn map_actions<B>(self, f: impl FnMut(A) -> B) -> Change<B> {
        Change {
            target: self.target,
            kind: self.kind,
            name: self.name,
            op: self.op,
            reason: self.reason,
            fields: self.fields,
            actions: self.actions.into_iter().map(f).collect(),
        }
    }
}

/// An object the plan cannot bring to the desired state; it is reported as failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanProblem {
    pub target: TargetId,
    pub kind: ObjectKind,
    pub name: String,
    pub message: String,
}

/// Removals the mass-removal guard holds back: more than `removalGuard.maxPercent` of what paasd
/// manages in one target would be disabled or deleted at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub target: TargetId,
    /// Disables and deletions the plan would make.
    pub removing: usize,
    /// What paasd manages in the target.
    pub managed: usize,
    pub max_percent: u32,
}

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.target == TargetId::Lldap {
            "users"
        } else {
            "accounts"
        };
        write!(
            f,
            "removal guard ({}): {} of {} managed {what} would be disabled or deleted ({}%), \
             more than removalGuard.maxPercent = {}%; these changes are held back \
             (run `paasctl apply --force` if this is intended)",
            self.target,
            self.removing,
            self.managed,
            self.removing * 100 / self.managed.max(1),
            self.max_percent
        )
    }
}

impl Serialize for Held {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan<A> {
    pub changes: Vec<Change<A>>,
    pub problems: Vec<PlanProblem>,
    /// Changes held back by the mass-removal guard.
    pub blocked: Vec<Held>,
    /// Declared users (or accounts) and groups that need nothing.
    pub unchanged_users: usize,
    pub unchanged_groups: usize,
}

impl<A> Default for Plan<A> {
    fn default() -> Self {
        Plan {
            changes: Vec::new(),
            problems: Vec::new(),
            blocked: Vec::new(),
            unchanged_users: 0,
            unchanged_groups: 0,
        }
    }
}

impl<A> Plan<A> {
    /// Nothing to do (problems and blocked changes aside).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn count(&self, op: Op) -> usize {
        self.changes.iter().filter(|c| c.op == op).count()
    }

    /// The same plan with every action turned into a `B`.
    pub fn map_actions<B>(self, mut f: impl FnMut(A) -> B) -> Plan<B> {
        Plan {
            changes: self
                .changes
                .into_iter()
                .map(|c| c.map_actions(&mut f))
                .collect(),
            problems: self.problems,
            blocked: self.blocked,
            unchanged_users: self.unchanged_users,
            unchanged_groups: self.unchanged_groups,
        }
    }

    /// Appends another target's plan.
    pub fn extend(&mut self, other: Plan<A>) {
        self.changes.extend(other.changes);
        self.problems.extend(other.problems);
        self.blocked.extend(other.blocked);
        self.unchanged_users += other.unchanged_users;
        self.unchanged_groups += other.unchanged_groups;
    }

    /// `Plan: N to create, N to change, N to delete[, N with problems].`
    pub fn summary(&self) -> String {
        let changed = self
            .changes
            .iter()
            .filter(|c| !matches!(c.op, Op::Create | Op::Delete))
            .count();
        format!(
            "Plan: {} to create, {changed} to change, {} to delete{}.",
            self.count(Op::Create),
            self.count(Op::Delete),
            if self.problems.is_empty() {
                String::new()
            } else {
                format!(", {} with problems", self.problems.len())
            }
        )
    }
}

impl<A> fmt::Display for Plan<A> {
    /// Terraform-like: `+` create, `~` update, `-` delete, `±` adopt, `!` problem or held back.
    /// Changes, problems and held-back removals only; the caller adds the summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.changes {
            write!(
                f,
                "  {} {} {} {} ({}",
                c.op.sign(),
                c.target,
                c.kind,
                quote(&c.name),
                c.op.verb()
            )?;
            if let Some(r) = &c.reason {
                write!(f, ": {r}")?;
            }
            writeln!(f, ")")?;
            let width = c.fields.iter().map(|d| d.field.len()).max().unwrap_or(0);
            for d in &c.fields {
                match (&d.old, &d.new) {
                    (Some(o), Some(n)) => writeln!(f, "      ~ {:width$} = {o} -> {n}", d.field)?,
                    (None, Some(n)) => writeln!(
                        f,
                        "      {} {:width$} = {n}",
                        if c.op == Op::Create { "+" } else { "~" },
                        d.field
                    )?,
                    (Some(o), None) => writeln!(f, "      - {:width$} = {o}", d.field)?,
                    (None, None) => writeln!(f, "      ~ {}", d.field)?,
                }
            }
        }
        for p in &self.problems {
            writeln!(
                f,
                "  ! {} {} {}: {}",
                p.target,
                p.kind,
                quote(&p.name),
                p.message
            )?;
        }
        for b in &self.blocked {
            writeln!(f, "  ! {b}")?;
        }
        Ok(())
    }
}
