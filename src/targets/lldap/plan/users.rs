//! The users of LLDAP's plan: each declared user (created, updated attribute by attribute,
//! adopted, disabled or enabled, its memberships and password), and the users paasd manages that
//! left the spec (disabled, deleted after the grace period, or kept).

use std::collections::BTreeSet;

use super::groups::{group_ref, Groups, Index, Resolved};
use super::{
    diff_attributes, marker_is_pending, marker_update, problem, Action, AttributeDiff, Change,
    DirUser, FieldDiff, GroupRef, ObjectKind, Op, PlanInput, PlanProblem, Removal, UserSpec,
    UserUpdate, ADMIN_GROUP, MARKER_ATTRIBUTE, TARGET, USER_MARKER_PENDING, USER_MARKER_VALUE,
};
use crate::core::policy::{
    self, password_step, removal_reason, removal_step, DesiredPassword, PasswordStep, RemovalStep,
};
use crate::core::spec::PasswordMode;

/// Plans users: the declared ones (step 3), and the managed ones that left the spec (step 4).
pub(super) struct Planner<'a, 'b> {
    input: &'b PlanInput<'a>,
    ix: &'b Index<'a>,
    /// The groups whose memberships paasd decides, and how to refer to them.
    scope: Vec<(Managed<'b>, GroupRef)>,
    disabled_key: &'a str,
    /// paasd's disabled group, when it exists already.
    disabled_id: Option<i64>,
}

impl<'a, 'b> Planner<'a, 'b> {
    pub(super) fn new(input: &'b PlanInput<'a>, ix: &'b Index<'a>, groups: &'b Groups<'a>) -> Self {
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
    pub(super) fn managed_total(&self) -> usize {
        self.input
            .dir
            .users
            .values()
            .filter(|u| self.managed(u) && !self.is_admin_account(u))
            .count()
    }

    /// Step 3, one declared user: its change, or `None` when it needs nothing (problems go to
    /// `problems`).
    pub(super) fn declared_user(
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
    pub(super) fn removed_users(&self) -> Vec<Change<Action>> {
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
