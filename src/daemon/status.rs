//! What the daemon knows about each user in each target, for `Status()`, `paasctl status` and the
//! one-line `STATUS=` of `systemctl status`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::clock::{local_hhmm, rfc3339};
use super::engine::{ObjectKind, Outcome, RunReport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum State {
    /// Reconciled: the target matches the spec.
    Ok,
    /// Not reconciled yet with this spec (new user, or skipped).
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

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    pub ok: Option<bool>,
    pub error: Option<String>,
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
    pub targets: BTreeMap<String, TargetStatus>,
    /// user id → target → entry
    pub users: BTreeMap<String, BTreeMap<String, Entry>>,
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

    /// A new spec generation: users that left disappear, new users are pending.
    pub fn set_spec(&mut self, generation: u64, users: &[String], targets: &[String]) {
        self.generation = generation;
        self.users.retain(|u, _| users.contains(u));
        self.targets.retain(|t, _| targets.contains(t));
        for t in targets {
            self.targets.entry(t.clone()).or_insert(TargetStatus {
                ok: None,
                error: None,
            });
        }
        for u in users {
            let row = self.users.entry(u.clone()).or_default();
            row.retain(|t, _| targets.contains(t));
            for t in targets {
                row.entry(t.clone()).or_insert(Entry {
                    state: State::Pending,
                    last_change: None,
                    last_run: None,
                    last_error: None,
                });
            }
        }
    }

    /// Fold the result of a run in.
    pub fn apply_report(&mut self, report: &RunReport, now: SystemTime) {
        let ts = rfc3339(now);
        self.last_run = Some(ts.clone());
        self.last_result = report.summary.clone();
        for t in &report.targets {
            self.targets.insert(
                t.target.clone(),
                TargetStatus {
                    ok: Some(t.ok),
                    error: t.error.clone(),
                },
            );
        }
        let mut seen: BTreeMap<(String, String), ()> = BTreeMap::new();
        for o in report.objects.iter().filter(|o| o.kind == ObjectKind::User) {
            let Some(entry) = self
                .users
                .get_mut(&o.name)
                .and_then(|row| row.get_mut(&o.target))
            else {
                continue; // a removed user: it is no longer shown
            };
            seen.insert((o.name.clone(), o.target.clone()), ());
            let (state, changed) = match o.outcome {
                Outcome::Created | Outcome::Updated | Outcome::Deleted => (State::Ok, true),
                Outcome::Unchanged => (State::Ok, false),
                Outcome::Failed => (State::Failed, false),
                Outcome::Skipped => (State::Pending, false),
            };
            if changed || entry.state != state {
                entry.last_change = Some(ts.clone());
            }
            entry.state = state;
            entry.last_run = Some(ts.clone());
            entry.last_error = match o.outcome {
                Outcome::Failed => Some(o.error.clone().unwrap_or_else(|| "failed".into())),
                Outcome::Skipped => o.error.clone(),
                _ => None,
            };
        }
        // A target that failed as a whole (unreachable, login refused) fails its users that the
        // report did not mention.
        for t in report.targets.iter().filter(|t| !t.ok) {
            for (user, row) in self.users.iter_mut() {
                if seen.contains_key(&(user.clone(), t.target.clone())) {
                    continue;
                }
                if let Some(entry) = row.get_mut(&t.target) {
                    if entry.state != State::Failed {
                        entry.last_change = Some(ts.clone());
                    }
                    entry.state = State::Failed;
                    entry.last_run = Some(ts.clone());
                    entry.last_error = Some(
                        t.error
                            .clone()
                            .unwrap_or_else(|| format!("{} failed", t.target)),
                    );
                }
            }
        }
    }

    /// One line for `STATUS=`: "42 users in sync · lldap: 1 failed (alice: …) · next resync 12:40".
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
            for (target, ts) in &self.targets {
                let failed: Vec<(&String, &Entry)> = self
                    .users
                    .iter()
                    .filter_map(|(u, row)| row.get(target).map(|e| (u, e)))
                    .filter(|(_, e)| e.state == State::Failed)
                    .collect();
                if ts.ok == Some(false) && failed.len() == self.users.len() {
                    parts.push(format!(
                        "{target}: {}",
                        shorten(ts.error.as_deref().unwrap_or("failed"), 80)
                    ));
                } else if let Some((user, e)) = failed.first() {
                    parts.push(format!(
                        "{target}: {} failed ({user}: {})",
                        failed.len(),
                        shorten(e.last_error.as_deref().unwrap_or("failed"), 60)
                    ));
                }
            }
            let pending = self
                .users
                .values()
                .filter(|row| row.values().any(|e| e.state == State::Pending))
                .count();
            if pending > 0 && !self.running {
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
    use crate::daemon::engine::{ObjectResult, TargetResult};

    fn report(objects: Vec<ObjectResult>, targets: Vec<TargetResult>) -> RunReport {
        RunReport {
            summary: "s".into(),
            failed: objects
                .iter()
                .filter(|o| o.outcome == Outcome::Failed)
                .count(),
            objects,
            targets,
            detail: serde_json::Value::Null,
        }
    }

    fn obj(name: &str, outcome: Outcome, error: Option<&str>) -> ObjectResult {
        ObjectResult {
            target: "lldap".into(),
            kind: ObjectKind::User,
            name: name.into(),
            outcome,
            error: error.map(Into::into),
        }
    }

    #[test]
    fn line_counts_users_and_names_a_failure() {
        let mut s = Status::new("/etc/paas/spec.json".into());
        s.set_spec(1, &["alice".into(), "bob".into()], &["lldap".into()]);
        assert!(s.line().starts_with("0/2 users in sync · 2 pending"));
        s.apply_report(
            &report(
                vec![
                    obj("alice", Outcome::Failed, Some("503 Service Unavailable")),
                    obj("bob", Outcome::Created, None),
                ],
                vec![TargetResult {
                    target: "lldap".into(),
                    ok: true,
                    error: None,
                }],
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
        assert_eq!(s.users["bob"]["lldap"].state, State::Ok);
        assert!(s.users["bob"]["lldap"].last_change.is_some());
    }

    #[test]
    fn an_unreachable_target_fails_everyone_and_a_spec_error_shows() {
        let mut s = Status::new("p".into());
        s.set_spec(3, &["alice".into()], &["lldap".into()]);
        s.apply_report(
            &report(
                vec![],
                vec![TargetResult {
                    target: "lldap".into(),
                    ok: false,
                    error: Some("connection refused".into()),
                }],
            ),
            SystemTime::now(),
        );
        s.spec_error = Some("users.alice.email: not an e-mail address\nusers.bob: x".into());
        let line = s.line();
        assert!(line.contains("lldap: connection refused"), "{line}");
        assert!(
            line.contains("spec invalid: users.alice.email: not an e-mail address (+1 more)"),
            "{line}"
        );
        assert_eq!(s.users["alice"]["lldap"].state, State::Failed);
    }

    #[test]
    fn users_leaving_the_spec_leave_the_status() {
        let mut s = Status::new("p".into());
        s.set_spec(1, &["alice".into(), "bob".into()], &["lldap".into()]);
        s.set_spec(2, &["alice".into()], &["lldap".into()]);
        assert_eq!(s.users.keys().collect::<Vec<_>>(), vec!["alice"]);
        assert_eq!(s.generation, 2);
    }
}
