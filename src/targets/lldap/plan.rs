//! LLDAP's plan: a pure function from the desired spec, the observed LLDAP directory and paasd's
//! own state to an ordered list of changes. No I/O happens here: the plan is a value that can be
//! printed (`paasctl plan`), serialised (D-Bus), tested, and then applied.
//!
//! One [`Change`] per object (user, group, schema attribute) groups the [`Action`]s that object
//! needs; changes are ordered so that dependencies come first (schema → groups → users →
//! deletions of users → deletions of groups). Removal, the grace period, the mass-removal guard
//! and passwords follow the shared [`policy`](crate::core::policy).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;

use super::directory::{AttributeSchema, DirGroup, DirUser, Directory, ADMIN_GROUP};
use crate::core::attributes::Attributes;
use crate::core::id::TargetId;
use crate::core::plan::{quote, Change, FieldDiff, ObjectKind, Op, Plan, PlanProblem};
use crate::core::policy::{DesiredPassword, Guard};
use crate::core::spec::{Removal, Spec, UserSpec, MARKER_ATTRIBUTE};
use crate::core::state::{Effect, State};
use crate::engine::target::TargetAction;

/// The marker value paasd writes on users it manages.
pub const USER_MARKER_VALUE: &str = "true";
/// The marker value of a user paasd created with `passwordMode = "initial"` whose first password
/// is not set yet: survives the loss of the state file, so the password is still owed.
pub const USER_MARKER_PENDING: &str = "initial-password-pending";

fn marker_update(id: &str) -> Action {
    Action::UpdateUser(Box::new(UserUpdate {
        id: id.to_string(),
        email: None,
        display_name: None,
        first_name: None,
        last_name: None,
        insert_attributes: [(
            MARKER_ATTRIBUTE.to_string(),
            vec![USER_MARKER_VALUE.to_string()],
        )]
        .into_iter()
        .collect(),
        remove_attributes: Vec::new(),
    }))
}

/// A reference to a group in an action: by id when it exists, by spec name when paasd creates
/// it earlier in the same apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRef {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// The spec key of a group created by this apply (its id is known only then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// One request-sized step. Secrets are never part of an action: `SetPassword` names the user,
/// and apply reads the password file itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Action {
    #[serde(rename_all = "camelCase")]
    CreateUserAttribute { name: String },
    #[serde(rename_all = "camelCase")]
    CreateGroupAttribute { name: String },
    #[serde(rename_all = "camelCase")]
    CreateGroup {
        key: String,
        display_name: String,
        attributes: Attributes,
    },
    #[serde(rename_all = "camelCase")]
    UpdateGroup {
        key: String,
        id: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        display_name: Option<String>,
        insert_attributes: Attributes,
        remove_attributes: Vec<String>,
    },
    #[serde(rename_all = "camelCase")]
    DeleteGroup { key: String, id: i64 },
    #[serde(rename_all = "camelCase")]
    CreateUser {
        id: String,
        email: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        display_name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        first_name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        last_name: Option<String>,
        attributes: Attributes,
    },
    /// Boxed: the largest variant and a rare one; every action of a plan is as big as the largest.
    UpdateUser(Box<UserUpdate>),
    #[serde(rename_all = "camelCase")]
    AddToGroup { user: String, group: GroupRef },
    #[serde(rename_all = "camelCase")]
    RemoveFromGroup { user: String, group: GroupRef },
    /// Set the user's LLDAP password from its password file. With `verify_first`, an LDAP bind
    /// with the desired password runs first and the write is skipped when it succeeds.
    #[serde(rename_all = "camelCase")]
    SetPassword { user: String, verify_first: bool },
    #[serde(rename_all = "camelCase")]
    DeleteUser { id: String },
    /// State only: remember when a user left the spec (removal grace period); 0 clears it.
    #[serde(rename_all = "camelCase")]
    MarkRemoved { user: String, since: u64 },
}

impl TargetAction for Action {
    fn intent(&self) -> Option<Effect> {
        match self {
            Action::CreateUser { id, attributes, .. } => Some(Effect::UserCreating {
                id: id.clone(),
                initial_password_pending: marker_is_pending(attributes),
            }),
            Action::CreateGroup { key, .. } => Some(Effect::GroupCreating { key: key.clone() }),
            _ => None,
        }
    }
}

/// The user's marker says its initial password is still owed.
pub fn marker_is_pending(attributes: &Attributes) -> bool {
    attributes
        .get(MARKER_ATTRIBUTE)
        .and_then(|v| v.first())
        .is_some_and(|v| v == USER_MARKER_PENDING)
}

/// The fields an `updateUser` sets (`None`: unchanged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserUpdate {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    pub insert_attributes: Attributes,
    pub remove_attributes: Vec<String>,
}

/// LLDAP's plan.
pub type LldapPlan = Plan<Action>;

/// Everything the plan depends on.
pub struct PlanInput<'a> {
    pub spec: &'a Spec,
    pub dir: &'a Directory,
    pub state: &'a State,
    /// By user id; a missing entry is [`DesiredPassword::None`].
    pub passwords: &'a BTreeMap<String, DesiredPassword>,
    /// Verify every enforced password by an LDAP bind, even when its fingerprint is unchanged.
    pub verify_passwords: bool,
    /// Override the mass-removal guard.
    pub force: bool,
    /// Unix time, for the removal grace period.
    pub now: u64,
}

const TARGET: TargetId = TargetId::Lldap;

fn show_values(v: &[String]) -> Cow<'static, str> {
    if v.len() == 1 {
        quote(&v[0])
    } else {
        format!(
            "[{}]",
            v.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ")
        )
        .into()
    }
}

/// Attribute values to insert, and how the plan shows them.
type AttributeDiff = (Attributes, Vec<FieldDiff>);

/// Compares desired custom attributes with observed ones; checks them against the schema.
/// Returns (inserts, diffs) or the first problem.
fn diff_attributes(
    desired: &Attributes,
    observed: Option<&Attributes>,
    schema: &BTreeMap<String, AttributeSchema>,
    which: &str,
) -> Result<AttributeDiff, String> {
    let mut inserts = Attributes::new();
    let mut diffs = Vec::new();
    for (name, values) in desired {
        let Some(s) = schema.get(name) else {
            return Err(format!(
                "attribute \"{name}\" is not in LLDAP's {which} attribute schema (add it in LLDAP first)"
            ));
        };
        if s.is_readonly || s.is_hardcoded {
            return Err(format!("attribute \"{name}\" is read-only in LLDAP"));
        }
        if !s.is_list && values.len() != 1 {
            return Err(format!(
                "attribute \"{name}\" takes exactly one value in LLDAP ({} given)",
                values.len()
            ));
        }
        let old = observed.and_then(|o| o.get(name));
        if old != Some(values) {
            inserts.insert(name.clone(), values.clone());
            diffs.push(FieldDiff {
                field: format!("attributes.{name}").into(),
                old: old.map(|v| show_values(v)),
                new: Some(show_values(values)),
            });
        }
    }
    Ok((inserts, diffs))
}

/// Computes the plan. Pure: same input, same plan.
pub fn plan(input: &PlanInput<'_>) -> LldapPlan {
    let ix = Index::new(input.dir);
    let mut out = Plan::default();
    schema_changes(input.dir, &mut out);
    let groups = group_changes(input, &ix, &mut out);
    let planner = Planner::new(input, &ix, &groups);
    let mut user_changes = Vec::new();
    for (id, us) in &input.spec.users {
        match planner.declared_user(id, us, &mut out.problems) {
            Some(c) => user_changes.push(c),
            None => out.unchanged_users += 1,
        }
    }
    let mut removals = planner.removed_users();

    // The mass-removal guard: disabling or deleting many managed users at once is held back.
    let removing = user_changes
        .iter()
        .chain(removals.iter())
        .filter(|c| c.op.removes())
        .count();
    let guard = Guard {
        max_percent: input.spec.removal_guard.max_percent,
        force: input.force,
    };
    if let Some(held) = guard.check(TARGET, removing, planner.managed_total()) {
        out.blocked.push(held);
        user_changes.retain(|c| !c.op.removes());
        removals.retain(|c| !c.op.removes());
    }
    // The user changes become the plan's list, with the few schema and group changes put in
    // front: at 100k users one list of changes exists at a time, not two.
    let head = std::mem::replace(&mut out.changes, user_changes);
    out.changes.splice(0..0, head);
    out.changes.extend(removals);
    out.changes.extend(group_deletions(input.spec, &groups));
    // A plan is held until it is applied (and shown over D-Bus): give back the growth slack.
    out.changes.shrink_to_fit();
    out
}

fn problem(kind: ObjectKind, name: &str, message: String) -> PlanProblem {
    PlanProblem {
        target: TARGET,
        kind,
        name: name.to_string(),
        message,
    }
}

/// Step 1: the marker attributes in both schemas.
fn schema_changes(dir: &Directory, out: &mut LldapPlan) {
    if !dir.user_attributes.contains_key(MARKER_ATTRIBUTE) {
        out.changes.push(schema_change(
            "user",
            Action::CreateUserAttribute {
                name: MARKER_ATTRIBUTE.into(),
            },
        ));
    }
    if !dir.group_attributes.contains_key(MARKER_ATTRIBUTE) {
        out.changes.push(schema_change(
            "group",
            Action::CreateGroupAttribute {
                name: MARKER_ATTRIBUTE.into(),
            },
        ));
    }
}

/// paasd's marker attribute in the `schema` ("user" or "group") attribute schema.
fn schema_change(schema: &str, action: Action) -> Change<Action> {
    Change {
        target: TARGET,
        kind: ObjectKind::Schema,
        name: format!("{schema}.{MARKER_ATTRIBUTE}"),
        op: Op::Create,
        reason: Some("paasd's ownership marker (hidden, not user-editable)".into()),
        fields: Vec::new(),
        actions: vec![action],
    }
}

mod groups;
mod users;

use groups::{group_changes, group_deletions, Index};
use users::Planner;

#[cfg(test)]
mod tests;
