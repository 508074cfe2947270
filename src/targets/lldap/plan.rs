//! LLDAP's plan: a pure function from the desired spec, the observed LLDAP directory and paasd's
//! own state to an ordered list of changes. No I/O happens here: the plan is a value that can be
//! printed (`paasctl plan`), serialised (D-Bus), tested, and then applied.
//!
//! One [`Change`] per object (user, group, schema attribute) groups the [`Action`]s that object
//! needs; changes are ordered so that dependencies come first (schema → groups → users →
//! deletions of users → deletions of groups). Removal, the grace period, the mass-removal guard
//! and passwords follow the shared [`policy`](crate::core::policy).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::directory::{AttributeSchema, DirGroup, DirUser, Directory, ADMIN_GROUP};
use crate::core::attributes::Attributes;
use crate::core::id::TargetId;
use crate::core::plan::{quote, Change, FieldDiff, ObjectKind, Op, Plan, PlanProblem};
use crate::core::policy::{
    self, password_step, removal_reason, removal_step, DesiredPassword, Guard, PasswordStep,
    RemovalStep,
};
use crate::core::spec::{PasswordMode, Removal, Spec, UserSpec, MARKER_ATTRIBUTE};
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

/// Indexes over the directory, built once per plan (the plan must stay O(N log N) at 100k users).
struct Index<'a> {
    group_by_marker: HashMap<&'a str, &'a DirGroup>,
    group_by_name: HashMap<String, &'a DirGroup>,
    user_by_email: HashMap<String, &'a str>,
}

impl<'a> Index<'a> {
    fn new(dir: &'a Directory) -> Self {
        let mut group_by_marker = HashMap::new();
        let mut group_by_name = HashMap::new();
        for g in dir.groups.values() {
            if let Some(m) = g.marker() {
                group_by_marker.insert(m, g);
            }
            group_by_name.insert(g.display_name.to_ascii_lowercase(), g);
        }
        let user_by_email = dir
            .users
            .values()
            .map(|u| (u.email.to_ascii_lowercase(), u.id.as_str()))
            .collect();
        Index {
            group_by_marker,
            group_by_name,
            user_by_email,
        }
    }
}

/// How a spec group (or the disabled group) maps onto LLDAP.
#[derive(Debug, Clone)]
enum Resolved {
    /// Exists; `adopt` = not marked by paasd yet.
    Existing { id: i64, adopt: bool },
    /// Will be created by this apply.
    Create,
    /// Cannot be used.
    Conflict(String),
}

fn resolve_group<'a>(
    key: &str,
    display_name: &str,
    input: &PlanInput<'a>,
    ix: &Index<'a>,
) -> Resolved {
    if let Some(g) = ix.group_by_marker.get(key) {
        return Resolved::Existing {
            id: g.id,
            adopt: false,
        };
    }
    if let Some(id) = input.state.lldap.groups.get(key).and_then(|g| g.id) {
        if let Some(g) = input.dir.groups.get(&id) {
            if g.marker().is_none() {
                return Resolved::Existing { id, adopt: true };
            }
        }
    }
    match ix.group_by_name.get(&display_name.to_ascii_lowercase()) {
        Some(g) => match g.marker() {
            Some(other) if other != key => Resolved::Conflict(format!(
                "LLDAP group \"{}\" is managed by paasd as groups.{other}",
                g.display_name
            )),
            _ => Resolved::Existing {
                id: g.id,
                adopt: g.marker().is_none(),
            },
        },
        None => Resolved::Create,
    }
}

fn group_ref(name: &str, key: &str, resolved: &Resolved) -> GroupRef {
    match resolved {
        Resolved::Existing { id, .. } => GroupRef {
            name: name.to_string(),
            id: Some(*id),
            key: None,
        },
        _ => GroupRef {
            name: name.to_string(),
            id: None,
            key: Some(key.to_string()),
        },
    }
}

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

/// How the spec's groups map onto LLDAP, and the groups paasd managed that left the spec.
struct Groups<'a> {
    /// By spec key (the disabled group too): the LLDAP name, and how it resolves.
    resolved: BTreeMap<&'a str, (String, Resolved)>,
    /// Spec key (from the marker or the state) and the group.
    orphans: Vec<(String, &'a DirGroup)>,
}

/// Step 2: groups — declared ones, and paasd's disabled group.
fn group_changes<'a>(input: &PlanInput<'a>, ix: &Index<'a>, out: &mut LldapPlan) -> Groups<'a> {
    let spec = input.spec;
    let dir = input.dir;
    let disabled_key = spec.lldap.disabled_group.as_str();
    let mut resolved: BTreeMap<&str, (String, Resolved)> = BTreeMap::new();
    let declared_groups = spec
        .groups
        .iter()
        .map(|(k, g)| (k.as_str(), g.display_name.as_str(), Some(&g.attributes)))
        .chain(std::iter::once((disabled_key, disabled_key, None)));
    for (key, display_name, attributes) in declared_groups {
        let r = resolve_group(key, display_name, input, ix);
        let empty = Attributes::new();
        let attributes = attributes.unwrap_or(&empty);
        match &r {
            Resolved::Conflict(msg) => {
                out.problems
                    .push(problem(ObjectKind::Group, key, msg.clone()))
            }
            Resolved::Create => {
                match diff_attributes(attributes, None, &dir.group_attributes, "group") {
                    Ok((mut attrs, mut fields)) => {
                        fields.insert(
                            0,
                            FieldDiff {
                                field: "name".into(),
                                old: None,
                                new: Some(quote(display_name)),
                            },
                        );
                        attrs.insert(MARKER_ATTRIBUTE.into(), vec![key.to_string()]);
                        out.changes.push(Change {
                            target: TARGET,
                            kind: ObjectKind::Group,
                            name: key.to_string(),
                            op: Op::Create,
                            reason: None,
                            fields,
                            actions: vec![Action::CreateGroup {
                                key: key.to_string(),
                                display_name: display_name.to_string(),
                                attributes: attrs,
                            }],
                        });
                    }
                    Err(msg) => out.problems.push(problem(ObjectKind::Group, key, msg)),
                }
            }
            Resolved::Existing { id, adopt } => {
                let Some(g) = dir.groups.get(id) else {
                    continue;
                };
                match diff_attributes(
                    attributes,
                    Some(&g.attributes),
                    &dir.group_attributes,
                    "group",
                ) {
                    Ok((mut inserts, mut fields)) => {
                        let rename =
                            (g.display_name != display_name).then(|| display_name.to_string());
                        if let Some(n) = &rename {
                            fields.insert(
                                0,
                                FieldDiff {
                                    field: "name".into(),
                                    old: Some(quote(&g.display_name)),
                                    new: Some(quote(n)),
                                },
                            );
                        }
                        if *adopt {
                            inserts.insert(MARKER_ATTRIBUTE.into(), vec![key.to_string()]);
                        }
                        if rename.is_some() || !inserts.is_empty() {
                            out.changes.push(Change {
                                target: TARGET,
                                kind: ObjectKind::Group,
                                name: key.to_string(),
                                op: if *adopt { Op::Adopt } else { Op::Update },
                                reason: adopt
                                    .then(|| "exists in LLDAP, not created by paasd".to_string()),
                                fields,
                                actions: vec![Action::UpdateGroup {
                                    key: key.to_string(),
                                    id: *id,
                                    display_name: rename,
                                    insert_attributes: inserts,
                                    remove_attributes: Vec::new(),
                                }],
                            });
                        } else if key != disabled_key {
                            out.unchanged_groups += 1;
                        }
                    }
                    Err(msg) => out.problems.push(problem(ObjectKind::Group, key, msg)),
                }
            }
        }
        resolved.insert(key, (display_name.to_string(), r));
    }

    let mut orphan_groups: Vec<(String, &DirGroup)> = Vec::new();
    let resolved_ids: BTreeSet<i64> = resolved
        .values()
        .filter_map(|(_, r)| match r {
            Resolved::Existing { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    for g in dir.groups.values() {
        if resolved_ids.contains(&g.id) {
            continue;
        }
        let key = g.marker().map(str::to_string).or_else(|| {
            input
                .state
                .lldap
                .groups
                .iter()
                .find(|(_, og)| og.id == Some(g.id))
                .map(|(k, _)| k.clone())
        });
        if let Some(key) = key {
            orphan_groups.push((key, g));
        }
    }

    Groups {
        resolved,
        orphans: orphan_groups,
    }
}

/// Step 5: managed groups that left the spec (deleted with `removal = "delete"`, once their members
/// are gone: they run last).
fn group_deletions(spec: &Spec, groups: &Groups<'_>) -> Vec<Change<Action>> {
    if spec.removal != Removal::Delete {
        return Vec::new();
    }
    groups
        .orphans
        .iter()
        .map(|(key, g)| Change {
            target: TARGET,
            kind: ObjectKind::Group,
            name: key.clone(),
            op: Op::Delete,
            reason: Some("removed from the spec; removal = \"delete\"".into()),
            fields: Vec::new(),
            actions: vec![Action::DeleteGroup {
                key: key.clone(),
                id: g.id,
            }],
        })
        .collect()
}

/// Plans users: the declared ones (step 3), and the managed ones that left the spec (step 4).
struct Planner<'a, 'b> {
    input: &'b PlanInput<'a>,
    ix: &'b Index<'a>,
    /// The groups whose memberships paasd decides, and how to refer to them.
    scope: Vec<(Managed<'b>, GroupRef)>,
    disabled_key: &'a str,
    /// paasd's disabled group, when it exists already.
    disabled_id: Option<i64>,
}

impl<'a, 'b> Planner<'a, 'b> {
    fn new(input: &'b PlanInput<'a>, ix: &'b Index<'a>, groups: &'b Groups<'a>) -> Self {
        let spec = input.spec;
        let disabled_key = spec.lldap.disabled_group.as_str();
        let mut scope: Vec<(Managed, GroupRef)> = Vec::new();
        for (key, (name, r)) in &groups.resolved {
            if !matches!(r, Resolved::Conflict(_)) {
                scope.push((Managed::Declared(key), group_ref(name, key, r)));
            }
        }
        if let Some(g) = ix.group_by_name.get(ADMIN_GROUP) {
            scope.push((
                Managed::Admin,
                GroupRef {
                    name: ADMIN_GROUP.into(),
                    id: Some(g.id),
                    key: None,
                },
            ));
        }
        if spec.removal == Removal::Disable {
            for (_, g) in &groups.orphans {
                scope.push((
                    Managed::LeftTheSpec,
                    GroupRef {
                        name: g.display_name.clone(),
                        id: Some(g.id),
                        key: None,
                    },
                ));
            }
        }
        let disabled_id = groups
            .resolved
            .get(disabled_key)
            .filter(|(_, r)| !matches!(r, Resolved::Conflict(_)))
            .and_then(|(name, r)| group_ref(name, disabled_key, r).id);
        Planner {
            input,
            ix,
            scope,
            disabled_key,
            disabled_id,
        }
    }

    /// Memberships to add and remove so that `u` (or a user about to be created) is in exactly
    /// the managed groups it should be in; memberships in other groups are not paasd's.
    fn membership_diff(
        &self,
        u: Option<&DirUser>,
        id: &str,
        want: &Wanted,
    ) -> (Vec<Action>, Option<FieldDiff>) {
        let mut actions = Vec::new();
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for (key, gref) in &self.scope {
            let is_member = match (u, gref.id) {
                (Some(u), Some(gid)) => u.groups.contains(&gid),
                _ => false,
            };
            let wanted = match key {
                Managed::Declared(k) => want.keys.contains(k),
                Managed::Admin => want.admin,
                Managed::LeftTheSpec => false,
            };
            if wanted && !is_member {
                added.push(gref.name.clone());
                actions.push(Action::AddToGroup {
                    user: id.to_string(),
                    group: gref.clone(),
                });
            } else if !wanted && is_member {
                removed.push(gref.name.clone());
                actions.push(Action::RemoveFromGroup {
                    user: id.to_string(),
                    group: gref.clone(),
                });
            }
        }
        (actions, FieldDiff::groups(&added, &removed))
    }

    fn is_disabled(&self, u: &DirUser) -> bool {
        self.disabled_id.is_some_and(|gid| u.groups.contains(&gid))
    }

    fn managed(&self, u: &DirUser) -> bool {
        policy::is_owned(
            u.is_marked(),
            self.input.state.lldap.users.contains_key(&u.id),
        )
    }

    fn is_admin_account(&self, u: &DirUser) -> bool {
        u.id.eq_ignore_ascii_case(&self.input.spec.lldap.admin_username)
    }

    /// What paasd manages in LLDAP, for the mass-removal guard.
    fn managed_total(&self) -> usize {
        self.input
            .dir
            .users
            .values()
            .filter(|u| self.managed(u) && !self.is_admin_account(u))
            .count()
    }

    /// Step 3, one declared user: its change, or `None` when it needs nothing (problems go to
    /// `problems`).
    fn declared_user(
        &self,
        id: &String,
        us: &UserSpec,
        problems: &mut Vec<PlanProblem>,
    ) -> Option<Change<Action>> {
        let input = self.input;
        let dir = input.dir;
        let disabled_key = self.disabled_key;
        let observed = dir.user(id);
        let email_owner = self
            .ix
            .user_by_email
            .get(&us.email.to_ascii_lowercase())
            .copied();
        if let Some(owner) = email_owner.filter(|o| !o.eq_ignore_ascii_case(id)) {
            problems.push(problem(
                ObjectKind::User,
                id,
                format!(
                    "e-mail \"{}\" is already used by LLDAP user \"{owner}\"",
                    us.email
                ),
            ));
            return None;
        }
        let attrs = match diff_attributes(
            &us.attributes,
            observed.map(|u| &u.attributes),
            &dir.user_attributes,
            "user",
        ) {
            Ok(a) => a,
            Err(msg) => {
                problems.push(problem(ObjectKind::User, id, msg));
                return None;
            }
        };
        // The user's unusable password is a problem, but the rest of its change still applies.
        let pw = input.passwords.get(id).unwrap_or(&DesiredPassword::None);
        if let DesiredPassword::Unusable(msg) = pw {
            problems.push(problem(ObjectKind::User, id, msg.clone()));
        }
        let want = desired_groups(us, disabled_key);
        let mut fields = Vec::new();
        let mut actions = Vec::new();
        let (op, reason) = match observed {
            None => self.new_user(id, us, attrs, pw, &want, &mut fields, &mut actions),
            Some(u) => self.existing_user(u, us, attrs, pw, &want, &mut fields, &mut actions),
        };
        if actions.is_empty() {
            return None;
        }
        Some(Change {
            target: TARGET,
            kind: ObjectKind::User,
            name: id.clone(),
            op,
            reason,
            fields,
            actions,
        })
    }

    /// A declared user that is not in LLDAP: created with paasd's marker, in its groups, with
    /// its password.
    #[allow(clippy::too_many_arguments)]
    fn new_user(
        &self,
        id: &str,
        us: &UserSpec,
        attrs: AttributeDiff,
        pw: &DesiredPassword,
        want: &Wanted,
        fields: &mut Vec<FieldDiff>,
        actions: &mut Vec<Action>,
    ) -> (Op, Option<String>) {
        let mut reason = None;
        let (mut attributes, attr_fields) = attrs;
        // An initial password is owed from the start: if it cannot be set now, the
        // marker keeps saying so, even if the state file is lost.
        let initial_pending =
            us.enable && us.password_mode == PasswordMode::Initial && *pw != DesiredPassword::None;
        let marker = if initial_pending {
            USER_MARKER_PENDING
        } else {
            USER_MARKER_VALUE
        };
        attributes.insert(MARKER_ATTRIBUTE.into(), vec![marker.into()]);
        fields.push(FieldDiff::new_value("email", &us.email));
        for (f, v) in [
            ("displayName", &us.display_name),
            ("firstName", &us.first_name),
            ("lastName", &us.last_name),
        ] {
            if let Some(v) = v {
                fields.push(FieldDiff::new_value(f, v));
            }
        }
        fields.extend(attr_fields);
        actions.push(Action::CreateUser {
            id: id.to_string(),
            email: us.email.clone(),
            display_name: us.display_name.clone(),
            first_name: us.first_name.clone(),
            last_name: us.last_name.clone(),
            attributes,
        });
        let (ma, mf) = self.membership_diff(None, id, want);
        actions.extend(ma);
        fields.extend(mf);
        if let DesiredPassword::Known { .. } = pw {
            if us.enable {
                fields.push(FieldDiff {
                    field: "password".into(),
                    old: None,
                    new: Some("(set from the password file)".into()),
                });
                actions.push(Action::SetPassword {
                    user: id.to_string(),
                    verify_first: false,
                });
                if initial_pending {
                    actions.push(marker_update(id));
                }
            }
        }
        if !us.enable {
            reason = Some("enable = false".into());
        }
        (Op::Create, reason)
    }

    /// A declared user LLDAP has: the fields, attributes, memberships and password that differ;
    /// adopted when paasd did not own it.
    #[allow(clippy::too_many_arguments)]
    fn existing_user(
        &self,
        u: &DirUser,
        us: &UserSpec,
        attrs: AttributeDiff,
        pw: &DesiredPassword,
        want: &Wanted,
        fields: &mut Vec<FieldDiff>,
        actions: &mut Vec<Action>,
    ) -> (Op, Option<String>) {
        let input = self.input;
        let mut reason = None;
        let is_managed = self.managed(u);
        let (mut inserts, attr_fields) = attrs;
        let mut update_email = None;
        let mut update_dn = None;
        let mut update_first = None;
        let mut update_last = None;
        if !u.email.eq_ignore_ascii_case(&us.email) {
            fields.push(FieldDiff::changed("email", Some(&u.email), &us.email));
            update_email = Some(us.email.clone());
        }
        for (f, cur, want, slot) in [
            (
                "displayName",
                &u.display_name,
                &us.display_name,
                &mut update_dn,
            ),
            (
                "firstName",
                &u.first_name,
                &us.first_name,
                &mut update_first,
            ),
            ("lastName", &u.last_name, &us.last_name, &mut update_last),
        ] {
            if let Some(w) = want {
                if w != cur {
                    fields.push(FieldDiff::changed(f, Some(cur), w));
                    *slot = Some(w.clone());
                }
            }
        }
        fields.extend(attr_fields);
        if !u.is_marked() {
            inserts.insert(MARKER_ATTRIBUTE.into(), vec![USER_MARKER_VALUE.into()]);
            if is_managed {
                fields.push(FieldDiff {
                    field: "ownership marker".into(),
                    old: None,
                    new: Some("restored".into()),
                });
            }
        }
        if update_email.is_some()
            || update_dn.is_some()
            || update_first.is_some()
            || update_last.is_some()
            || !inserts.is_empty()
        {
            actions.push(Action::UpdateUser(Box::new(UserUpdate {
                id: u.id.clone(),
                email: update_email,
                display_name: update_dn,
                first_name: update_first,
                last_name: update_last,
                insert_attributes: inserts,
                remove_attributes: Vec::new(),
            })));
        }
        let (ma, mf) = self.membership_diff(Some(u), &u.id, want);
        actions.extend(ma);
        fields.extend(mf);
        let owned = input.state.lldap.users.get(&u.id);
        let marker_pending = marker_is_pending(&u.attributes);
        let pending_initial = marker_pending || owned.is_some_and(|o| o.initial_password_pending);
        let step = if us.enable {
            password_step(
                pw.fingerprint(),
                us.password_mode,
                owned.and_then(|o| o.password_fingerprint.as_deref()),
                pending_initial,
                input.verify_passwords,
                true,
            )
        } else {
            PasswordStep::Keep
        };
        if step != PasswordStep::Keep {
            let verify_first = step == PasswordStep::VerifyThenSet;
            fields.push(FieldDiff::note(
                "password",
                if verify_first {
                    "(verify by LDAP bind, set from the password file if different)"
                } else {
                    "(set from the password file)"
                },
            ));
            actions.push(Action::SetPassword {
                user: u.id.clone(),
                verify_first,
            });
            if marker_pending {
                actions.push(marker_update(&u.id));
            }
        }
        let was_disabled = self.is_disabled(u);
        let op = if !is_managed {
            reason = Some("exists in LLDAP, not created by paasd".into());
            Op::Adopt
        } else if !us.enable && !was_disabled {
            reason = Some("enable = false".into());
            Op::Disable
        } else if us.enable && was_disabled {
            Op::Enable
        } else {
            Op::Update
        };
        if input
            .state
            .lldap
            .users
            .get(&u.id)
            .is_some_and(|o| o.removed_since.is_some())
        {
            // Back in the spec: forget the removal timestamp.
            actions.push(Action::MarkRemoved {
                user: u.id.clone(),
                since: 0,
            });
        }
        (op, reason)
    }

    /// Step 4: managed users that left the spec, disabled, deleted (after the grace period) or kept,
    /// as `removal` says.
    fn removed_users(&self) -> Vec<Change<Action>> {
        let input = self.input;
        let spec = input.spec;
        let dir = input.dir;
        let disabled_key = self.disabled_key;
        let mut removals = Vec::new();
        for u in dir.users.values() {
            if spec.users.contains_key(&u.id) || !self.managed(u) || self.is_admin_account(u) {
                continue;
            }
            let removed_since = input
                .state
                .lldap
                .users
                .get(&u.id)
                .and_then(|o| o.removed_since);
            let step = removal_step(
                spec.removal,
                spec.removal_grace_period,
                removed_since,
                input.now,
            );
            let reason = removal_reason(
                "removed from the spec",
                spec.removal,
                step,
                spec.removal_grace_period,
            );
            match step {
                RemovalStep::Delete => removals.push(Change {
                    target: TARGET,
                    kind: ObjectKind::User,
                    name: u.id.clone(),
                    op: Op::Delete,
                    reason: Some(reason),
                    fields: Vec::new(),
                    actions: vec![Action::DeleteUser { id: u.id.clone() }],
                }),
                RemovalStep::Disable { start_grace_period } => {
                    let want = Wanted {
                        keys: [disabled_key].into_iter().collect(),
                        admin: false,
                    };
                    let (mut actions, field) = self.membership_diff(Some(u), &u.id, &want);
                    let mut fields: Vec<FieldDiff> = field.into_iter().collect();
                    if start_grace_period {
                        actions.push(Action::MarkRemoved {
                            user: u.id.clone(),
                            since: input.now,
                        });
                        fields.push(FieldDiff::note(
                            "delete after",
                            format!("{} s", spec.removal_grace_period),
                        ));
                    }
                    if !actions.is_empty() {
                        removals.push(Change {
                            target: TARGET,
                            kind: ObjectKind::User,
                            name: u.id.clone(),
                            op: if self.is_disabled(u) {
                                Op::Update
                            } else {
                                Op::Disable
                            },
                            reason: Some(reason),
                            fields,
                            actions,
                        });
                    }
                }
                RemovalStep::Keep => {}
            }
        }
        removals
    }
}

/// A group whose memberships paasd manages.
enum Managed<'a> {
    /// A spec group (by key), or paasd's disabled group.
    Declared(&'a str),
    /// LLDAP's `lldap_admin`: for declared admins.
    Admin,
    /// A group paasd managed that left the spec (`removal = "disable"` strips its members).
    LeftTheSpec,
}

/// The managed groups a user should be in.
struct Wanted<'a> {
    keys: BTreeSet<&'a str>,
    admin: bool,
}

fn desired_groups<'a>(us: &'a UserSpec, disabled_key: &'a str) -> Wanted<'a> {
    if !us.enable {
        return Wanted {
            keys: [disabled_key].into_iter().collect(),
            admin: false,
        };
    }
    Wanted {
        keys: us.groups.iter().map(String::as_str).collect(),
        admin: us.admin,
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

#[cfg(test)]
mod tests;
