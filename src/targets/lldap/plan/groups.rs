//! The groups of LLDAP's plan: how each spec group (and paasd's disabled group) maps onto LLDAP
//! — by paasd's marker, by the id in paasd's state, else by name — and what it needs; the groups
//! paasd managed that left the spec.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{
    diff_attributes, problem, quote, Action, Change, DirGroup, Directory, FieldDiff, GroupRef,
    LldapPlan, ObjectKind, Op, PlanInput, Removal, Spec, MARKER_ATTRIBUTE, TARGET,
};
use crate::core::attributes::Attributes;

/// Indexes over the directory, built once per plan (the plan must stay O(N log N) at 100k users).
pub(super) struct Index<'a> {
    pub(super) group_by_marker: HashMap<&'a str, &'a DirGroup>,
    pub(super) group_by_name: HashMap<String, &'a DirGroup>,
    pub(super) user_by_email: HashMap<String, &'a str>,
}

impl<'a> Index<'a> {
    pub(super) fn new(dir: &'a Directory) -> Self {
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
pub(super) enum Resolved {
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

pub(super) fn group_ref(name: &str, key: &str, resolved: &Resolved) -> GroupRef {
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

/// How the spec's groups map onto LLDAP, and the groups paasd managed that left the spec.
pub(super) struct Groups<'a> {
    /// By spec key (the disabled group too): the LLDAP name, and how it resolves.
    pub(super) resolved: BTreeMap<&'a str, (String, Resolved)>,
    /// Spec key (from the marker or the state) and the group.
    pub(super) orphans: Vec<(String, &'a DirGroup)>,
}

/// Step 2: groups — declared ones, and paasd's disabled group.
pub(super) fn group_changes<'a>(
    input: &PlanInput<'a>,
    ix: &Index<'a>,
    out: &mut LldapPlan,
) -> Groups<'a> {
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
pub(super) fn group_deletions(spec: &Spec, groups: &Groups<'_>) -> Vec<Change<Action>> {
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
