//! What the daemon knows about each user in each target, for `Status()`, `paasctl status` and the
//! one-line `STATUS=` of `systemctl status`. Folded from the engine's reports.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use serde::Serialize;

use super::reconciler::Expected;
use crate::clock::{local_hhmm, rfc3339};
use crate::core::id::TargetId;
use crate::core::plan::ObjectKind;
use crate::engine::report::{Outcome, Report, TargetState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum State {
    /// Reconciled: the target matches the spec.
    Ok,
    /// Not reconciled yet with this spec (new user, skipped, or the target is not ready).
    Pending,
    /// The last attempt failed.
    Failed,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub state: State,
    /// When paasd last changed the object (created, updated, deleted) or its state changed.
    pub last_change: Option<String>,
    /// When the object was last reconciled.
    pub last_run: Option<String>,
    pub last_error: Option<String>,
}

impl Entry {
    fn pending() -> Entry {
        Entry {
            state: State::Pending,
            last_change: None,
            last_run: None,
            last_error: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    /// The last run applied it and every object succeeded (`None`: no run yet).
    pub ok: Option<bool>,
    pub state: Option<TargetState>,
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The daemon's status, serialised as the JSON of `Status()`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub spec_path: String,
    pub generation: u64,
    /// Problems of the newest spec file when it is invalid (the last good spec stays in force).
    pub spec_error: Option<String>,
    pub running: bool,
    pub last_run: Option<String>,
    pub last_result: String,
    pub next_resync: Option<String>,
    /// Every configured target, in the order they run.
    pub targets: BTreeMap<TargetId, TargetStatus>,
    /// user id → target → entry (only the targets the user is provisioned in).
    pub users: BTreeMap<String, BTreeMap<TargetId, Entry>>,
    #[serde(skip)]
    next_resync_at: Option<SystemTime>,
}

impl Status {
    pub fn new(spec_path: String) -> Self {
        Status {
            spec_path,
            generation: 0,
            spec_error: None,
            running: false,
            last_run: None,
            last_result: String::new(),
            next_resync: None,
            targets: BTreeMap::new(),
            users: BTreeMap::new(),
            next_resync_at: None,
        }
    }

    pub fn set_next_resync(&mut self, at: SystemTime) {
        self.next_resync_at = Some(at);
        self.next_resync = Some(rfc3339(at));
    }

    /// A new spec generation: users and targets that left disappear, new ones are pending.
    pub fn set_spec(&mut self, generation: u64, expected: &Expected) {
        self.generation = generation;
        self.targets.retain(|t, _| expected.targets.contains(t));
        for t in &expected.targets {
            self.targets.entry(*t).or_insert(TargetStatus {
                ok: None,
                state: None,
                error: None,
                notes: Vec::new(),
            });
        }
        self.users.retain(|u, _| expected.users.contains_key(u));
        for (u, targets) in &expected.users {
            let row = self.users.entry(u.clone()).or_default();
            row.retain(|t, _| targets.contains(t));
            for t in targets {
                row.entry(*t).or_insert_with(Entry::pending);
            }
        }
    }

    /// Fold the result of a run in.
    pub fn apply_report(&mut self, report: &Report, now: SystemTime) {
        let ts = rfc3339(now);
        self.last_run = Some(ts.clone());
        self.last_result = report.summary_line();
        if report.cancelled {
            self.last_result.push_str(" (cancelled)");
        }
        for t in &report.targets {
            self.targets.insert(
                t.target,
                TargetStatus {
                    ok: Some(t.ok),
                    state: Some(t.state),
                    error: t.error.clone(),
                    notes: t.notes.clone(),
                },
            );
        }
        let mut mentioned: BTreeSet<(TargetId, &str)> = BTreeSet::new();
        for o in report.objects.iter().filter(|o| o.kind == ObjectKind::User) {
            mentioned.insert((o.target, &o.name));
            let entry = self
                .users
                .entry(o.name.clone())
                .or_default()
                .entry(o.target)
                .or_insert_with(Entry::pending);
            let (state, changed) = match o.outcome {
                Outcome::Created | Outcome::Updated | Outcome::Deleted => (State::Ok, true),
                Outcome::Unchanged => (State::Ok, false),
                Outcome::Failed => (State::Failed, false),
                Outcome::Skipped | Outcome::Pending => (State::Pending, false),
            };
            if changed || entry.state != state {
                entry.last_change = Some(ts.clone());
            }
            entry.state = state;
            entry.last_run = Some(ts.clone());
            entry.last_error = match o.outcome {
                Outcome::Failed => Some(o.error.clone().unwrap_or_else(|| "failed".into())),
                Outcome::Skipped | Outcome::Pending => o.error.clone(),
                _ => None,
            };
        }
        // A target that ran reported every user it provisions: a user it did not mention is
        // not provisioned there (any more), and a user left without any target leaves.
        let ran: BTreeSet<TargetId> = report.targets.iter().map(|t| t.target).collect();
        for (user, row) in self.users.iter_mut() {
            row.retain(|t, _| !ran.contains(t) || mentioned.contains(&(*t, user.as_str())));
        }
        self.users.retain(|_, row| !row.is_empty());
    }

    /// One line for `STATUS=`: "3/4 users in sync · nextcloud: waiting for nextcloud: … ·
    /// lldap: 1 failed (alice: …) · next resync 12:40".
    pub fn line(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.generation == 0 {
            parts.push("no valid spec loaded".into());
        } else {
            let in_sync = self
                .users
                .values()
                .filter(|row| row.values().all(|e| e.state == State::Ok))
                .count();
            let total = self.users.len();
            if in_sync == total {
                parts.push(format!("{total} users in sync"));
            } else {
                parts.push(format!("{in_sync}/{total} users in sync"));
            }
            let mut whole_target_problem = false;
            for (target, ts) in &self.targets {
                if matches!(ts.state, Some(TargetState::Waiting | TargetState::Failed)) {
                    whole_target_problem = true;
                    // Room for "waiting for vaultwarden: rate limited by Vaultwarden
                    // (ADMIN_RATELIMIT_*), next try at HH:MM:SS" in full.
                    parts.push(format!(
                        "{target}: {}",
                        shorten(ts.error.as_deref().unwrap_or("failed"), 100)
                    ));
                    continue;
                }
                let failed: Vec<(&String, &Entry)> = self
                    .users
                    .iter()
                    .filter_map(|(u, row)| row.get(target).map(|e| (u, e)))
                    .filter(|(_, e)| e.state == State::Failed)
                    .collect();
                if let Some((user, e)) = failed.first() {
                    parts.push(format!(
                        "{target}: {} failed ({user}: {})",
                        failed.len(),
                        shorten(e.last_error.as_deref().unwrap_or("failed"), 60)
                    ));
                } else if let (Some(false), Some(err)) = (ts.ok, &ts.error) {
                    parts.push(format!("{target}: {}", shorten(err, 80)));
                }
            }
            let pending = self
                .users
                .values()
                .filter(|row| row.values().any(|e| e.state == State::Pending))
                .count();
            if pending > 0 && !self.running && !whole_target_problem {
                parts.push(format!("{pending} pending"));
            }
        }
        if let Some(err) = &self.spec_error {
            let first = err.lines().next().unwrap_or("");
            let more = err.lines().count().saturating_sub(1);
            let more = if more > 0 {
                format!(" (+{more} more)")
            } else {
                String::new()
            };
            parts.push(format!("spec invalid: {}{more}", shorten(first, 80)));
        }
        if self.running {
            parts.push("reconciling".into());
        } else if let Some(at) = self.next_resync_at {
            parts.push(format!("next resync {}", local_hhmm(at)));
        }
        parts.join(" · ")
    }
}

fn shorten(s: &str, max: usize) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() <= max {
        s
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::id::ServiceKind;
    use crate::engine::report::TargetReport;

    const NC: TargetId = TargetId::Service(ServiceKind::Nextcloud);

    fn target(t: TargetId, state: TargetState, error: Option<&str>) -> TargetReport {
        let mut r = TargetReport::new(t, state);
        r.ok = state == TargetState::Applied && error.is_none();
        r.error = error.map(Into::into);
        r
    }

    fn report(
        objects: &[(TargetId, &str, Outcome, Option<&str>)],
        targets: Vec<TargetReport>,
    ) -> Report {
        let mut r = Report::new(1);
        for (t, name, outcome, error) in objects {
            r.push(
                *t,
                ObjectKind::User,
                name.to_string(),
                *outcome,
                None,
                error.map(Into::into),
            );
        }
        r.targets = targets;
        r
    }

    fn expected(users: &[(&str, &[TargetId])], targets: &[TargetId]) -> Expected {
        Expected {
            targets: targets.to_vec(),
            users: users
                .iter()
                .map(|(u, t)| (u.to_string(), t.to_vec()))
                .collect(),
        }
    }

    #[test]
    fn line_counts_users_and_names_a_failure() {
        let mut s = Status::new("/etc/paas/spec.json".into());
        let l = TargetId::Lldap;
        s.set_spec(1, &expected(&[("alice", &[l]), ("bob", &[l])], &[l]));
        assert!(
            s.line().starts_with("0/2 users in sync · 2 pending"),
            "{}",
            s.line()
        );
        s.apply_report(
            &report(
                &[
                    (l, "alice", Outcome::Failed, Some("503 Service Unavailable")),
                    (l, "bob", Outcome::Created, None),
                ],
                vec![target(l, TargetState::Applied, None)],
            ),
            SystemTime::now(),
        );
        let line = s.line();
        assert!(
            line.starts_with(
                "1/2 users in sync · lldap: 1 failed (alice: 503 Service Unavailable)"
            ),
            "{line}"
        );
        assert_eq!(s.users["bob"][&l].state, State::Ok);
        assert!(s.users["bob"][&l].last_change.is_some());
    }

    #[test]
    fn a_service_that_is_down_shows_in_the_line_and_per_user() {
        let mut s = Status::new("p".into());
        let l = TargetId::Lldap;
        s.set_spec(
            3,
            &expected(&[("alice", &[l, NC]), ("bob", &[l])], &[l, NC]),
        );
        let waiting =
            "waiting for nextcloud: cannot reach nextcloud at http://n: connection refused";
        s.apply_report(
            &report(
                &[
                    (l, "alice", Outcome::Unchanged, None),
                    (l, "bob", Outcome::Unchanged, None),
                    (NC, "alice", Outcome::Pending, Some(waiting)),
                ],
                vec![
                    target(l, TargetState::Applied, None),
                    target(NC, TargetState::Waiting, Some(waiting)),
                ],
            ),
            SystemTime::now(),
        );
        let line = s.line();
        assert!(
            line.starts_with("1/2 users in sync · nextcloud: waiting for nextcloud"),
            "{line}"
        );
        assert_eq!(s.users["alice"][&NC].state, State::Pending);
        assert_eq!(s.users["alice"][&NC].last_error.as_deref(), Some(waiting));
        assert!(
            !s.users["bob"].contains_key(&NC),
            "bob is not provisioned in nextcloud"
        );
        s.spec_error = Some("users.alice.email: not an e-mail address\nusers.bob: x".into());
        assert!(
            s.line()
                .contains("spec invalid: users.alice.email: not an e-mail address (+1 more)"),
            "{}",
            s.line()
        );
    }

    #[test]
    fn a_rate_limited_service_says_when_it_is_tried_again() {
        let vw = TargetId::Service(crate::core::id::ServiceKind::Vaultwarden);
        let l = TargetId::Lldap;
        let mut s = Status::new("p".into());
        s.set_spec(1, &expected(&[("alice", &[l, vw])], &[l, vw]));
        let waiting = "waiting for vaultwarden: rate limited by Vaultwarden (ADMIN_RATELIMIT_*), next try at 12:39:07";
        let mut t = target(vw, TargetState::Waiting, Some(waiting));
        t.retry_at = Some(1_800_000_000);
        s.apply_report(
            &report(
                &[
                    (l, "alice", Outcome::Unchanged, None),
                    (vw, "alice", Outcome::Pending, Some(waiting)),
                ],
                vec![target(l, TargetState::Applied, None), t],
            ),
            SystemTime::now(),
        );
        let line = s.line();
        assert!(
            line.starts_with(&format!("0/1 users in sync · vaultwarden: {waiting}")),
            "the whole message, its time included: {line}"
        );
        assert_eq!(s.users["alice"][&vw].state, State::Pending, "not failed");
    }

    #[test]
    fn group_members_appear_and_users_leaving_the_spec_leave_the_status() {
        let mut s = Status::new("p".into());
        let l = TargetId::Lldap;
        s.set_spec(1, &expected(&[("alice", &[l]), ("bob", &[l])], &[l, NC]));
        s.apply_report(
            &report(
                &[
                    (l, "alice", Outcome::Unchanged, None),
                    (l, "bob", Outcome::Unchanged, None),
                    (NC, "zoe", Outcome::Created, None),
                ],
                vec![
                    target(l, TargetState::Applied, None),
                    target(NC, TargetState::Applied, None),
                ],
            ),
            SystemTime::now(),
        );
        assert_eq!(
            s.users["zoe"][&NC].state,
            State::Ok,
            "a member of an access group"
        );
        s.set_spec(2, &expected(&[("alice", &[l])], &[l, NC]));
        assert_eq!(s.users.keys().collect::<Vec<_>>(), vec!["alice"]);
        assert_eq!(s.generation, 2);
    }
}
