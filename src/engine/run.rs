//! The one loop, for every target: wait until it is ready → observe → desired → passwords → pure
//! plan → create intents → phases of changes (bounded concurrency, cancellation between objects)
//! → effects recorded into the state, saved after every phase → the report.
//!
//! A target that cannot be used fails alone, with its reason; the others go on.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use futures::stream::{self, StreamExt};
use tracing::{info, warn};

use super::passwords::{self, Passwords};
use super::plan::{ActionJson, Plan as SpecPlan, TargetPlan};
use super::report::{Outcome, Report, TargetReport, TargetState};
use super::target::{ExecContext, Inputs, PlanContext, Target, TargetAction};
use super::Options;
use crate::backoff::{retry, Transient};
use crate::core::members::{Members, MembersSnapshot, MembersView};
use crate::core::plan::{Change, ObjectKind, Op, Plan, PlanProblem};
use crate::core::state::{Effect, State};
use crate::secret::FingerprintKey;

/// One reconcile of every target: what they share.
pub struct Run {
    pub(crate) opts: Options,
    pub(crate) state: State,
    pub(crate) key: FingerprintKey,
    /// Apply (write) or plan (write nothing, not even paasd's state).
    pub(crate) write: bool,
    pub(crate) now: u64,
    /// The access groups' members, read from the directory in this run.
    members: Option<Members>,
    /// Why the directory could not be read in this run.
    members_error: Option<String>,
    pub(crate) report: Report,
    pub(crate) plan: SpecPlan,
}

impl Run {
    pub(crate) fn new(opts: Options, state: State, key: FingerprintKey, write: bool) -> Run {
        let report = Report::new(opts.generation);
        Run {
            opts,
            state,
            key,
            write,
            now: unix_now(),
            members: None,
            members_error: None,
            report,
            plan: SpecPlan::new(),
        }
    }

    /// What this run knows of the access groups' members.
    pub(crate) fn members_view(&self) -> MembersView<'_> {
        if let Some(m) = &self.members {
            return MembersView::Fresh(m);
        }
        let reason = self
            .members_error
            .as_deref()
            .unwrap_or("LLDAP was not read in this run");
        match &self.state.members {
            Some(s) => MembersView::Stale {
                members: &s.members,
                observed_at: s.observed_at,
                reason,
            },
            None => MembersView::Unknown { reason },
        }
    }

    fn save(&self) -> Option<String> {
        if !self.write {
            return None;
        }
        self.state
            .save(&self.opts.state_dir)
            .err()
            .map(|e| e.to_string())
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why a target could not be planned.
struct NotReady {
    /// Transient: it may come up ("waiting for …"); else it failed.
    waiting: bool,
    message: String,
    declared: Vec<(ObjectKind, String)>,
    /// Rate limited: not to be asked again before this Unix time.
    retry_at: Option<u64>,
}

/// Why `ready` or `observe` failed: waiting (transient, or rate limited) or failed.
fn failure<E: Transient + ToString>(e: &E, transient_waits: bool) -> (bool, String, Option<u64>) {
    let retry_at = e.retry_at();
    (
        (transient_waits && e.is_transient()) || retry_at.is_some(),
        e.to_string(),
        retry_at,
    )
}

/// Everything known before applying to one target.
struct Prepared<T: Target> {
    passwords: Passwords,
    plan: Plan<T::Action>,
    declared: Vec<(ObjectKind, String)>,
    notes: Vec<String>,
}

async fn prepare<T: Target>(t: &T, run: &mut Run) -> Result<Prepared<T>, NotReady> {
    let id = t.id();
    let desired = t.desired(&Inputs {
        state: &run.state,
        members: run.members_view(),
    });
    let declared = t.declared(&desired);
    let (ready, _) = retry(run.opts.ready_wait, |_| t.ready()).await;
    // A rate limit makes the target wait, whether the login of `ready` or the read met it.
    let failed = match ready {
        Err(e) => Some(failure(&e, true)),
        Ok(()) => None,
    };
    let observed = match failed {
        Some(f) => Err(f),
        None => t.observe().await.map_err(|e| failure(&e, false)),
    };
    let observed = match observed {
        Ok(o) => o,
        Err((waiting, message, retry_at)) => {
            if t.publishes_members() {
                run.members_error = Some(format!("{id}: {message}"));
            }
            let message = if waiting {
                format!("waiting for {id}: {message}")
            } else {
                message
            };
            return Err(NotReady {
                waiting,
                message,
                declared,
                retry_at,
            });
        }
    };
    if let Some(members) = t.members(&observed) {
        run.state.members = Some(MembersSnapshot {
            observed_at: run.now,
            members: members.clone(),
        });
        run.members = Some(members);
    }
    t.settle(&observed, &mut run.state);
    let passwords = passwords::resolve(
        id,
        t.password_sources(&desired),
        &run.key,
        &run.opts.state_dir,
        run.write,
        &run.state,
    );
    let plan = t.plan(
        &desired,
        &observed,
        &PlanContext {
            state: &run.state,
            passwords: &passwords.desired,
            verify_passwords: run.opts.verify_passwords,
            force: run.opts.force,
            now: run.now,
            members: run.members_view(),
        },
    );
    Ok(Prepared {
        passwords,
        plan,
        declared,
        notes: t.notes(&desired),
    })
}

/// Plans one target into `run.plan`; writes nothing.
pub(crate) async fn plan<T: Target>(t: &T, run: &mut Run) {
    let id = t.id();
    match prepare(t, run).await {
        Ok(p) => {
            let mut status = TargetPlan {
                target: id,
                ok: true,
                error: None,
                notes: p.notes,
                unchanged_users: p.plan.unchanged_users,
                unchanged_groups: p.plan.unchanged_groups,
            };
            let plan = p.plan.map_actions(|a| {
                serde_json::value::to_raw_value(&a).unwrap_or_else(|e| {
                    status.ok = false;
                    status.error = Some(format!("cannot show an action: {e}"));
                    ActionJson::default()
                })
            });
            run.plan.plan.extend(plan);
            run.plan.targets.push(status);
        }
        Err(nr) => run.plan.targets.push(TargetPlan {
            target: id,
            ok: false,
            error: Some(nr.message),
            notes: Vec::new(),
            unchanged_users: 0,
            unchanged_groups: 0,
        }),
    }
}

/// The result of one change.
struct Done<E> {
    effects: Vec<Effect>,
    error: Option<E>,
}

async fn run_change<T: Target>(
    t: &T,
    change: &Change<T::Action>,
    cx: &ExecContext<'_>,
) -> Done<T::Error> {
    let mut effects = Vec::new();
    for action in &change.actions {
        match t.execute(action, cx).await {
            Ok(e) => effects.extend(e),
            Err(error) => {
                return Done {
                    effects,
                    error: Some(error),
                }
            }
        }
    }
    Done {
        effects,
        error: None,
    }
}

/// The order changes run in: schema (the marker attributes), groups, users (concurrently),
/// then deletions of groups (once their members are gone).
fn phase_of<A>(c: &Change<A>) -> u8 {
    match (c.kind, c.op) {
        (ObjectKind::Schema, _) => 0,
        (ObjectKind::Group, Op::Delete) => 3,
        (ObjectKind::Group, _) => 1,
        (ObjectKind::User, _) => 2,
    }
}

const USERS: u8 = 2;

fn log_change<A>(c: &Change<A>, generation: u64, error: Option<&str>) {
    let action = c.op.verb();
    let fields: Vec<&str> = c.fields.iter().map(|f| f.field.as_ref()).collect();
    let fields = fields.join(",");
    let target = c.target.name();
    match (c.kind, error) {
        (ObjectKind::User, None) => {
            info!(paas_target = target, paas_user = %c.name, paas_action = action, paas_result = "ok", paas_generation = generation, paas_fields = %fields, "{action} {target} user {}: ok", c.name)
        }
        (ObjectKind::User, Some(e)) => {
            warn!(paas_target = target, paas_user = %c.name, paas_action = action, paas_result = "failed", paas_generation = generation, paas_error = %e, "{action} {target} user {}: {e}", c.name)
        }
        (_, None) => {
            info!(paas_target = target, paas_group = %c.name, paas_action = action, paas_result = "ok", paas_generation = generation, paas_fields = %fields, "{action} {target} {} {}: ok", c.kind, c.name)
        }
        (_, Some(e)) => {
            warn!(paas_target = target, paas_group = %c.name, paas_action = action, paas_result = "failed", paas_generation = generation, paas_error = %e, "{action} {target} {} {}: {e}", c.kind, c.name)
        }
    }
}

fn log_problem(p: &PlanProblem, generation: u64) {
    let target = p.target.name();
    match p.kind {
        ObjectKind::User => {
            warn!(paas_target = target, paas_user = %p.name, paas_action = "plan", paas_result = "failed", paas_generation = generation, paas_error = %p.message, "{target} {} {}: {}", p.kind, p.name, p.message)
        }
        _ => {
            warn!(paas_target = target, paas_group = %p.name, paas_action = "plan", paas_result = "failed", paas_generation = generation, paas_error = %p.message, "{target} {} {}: {}", p.kind, p.name, p.message)
        }
    }
}

/// Observes, plans and applies one target; adds its results to `run.report`.
pub(crate) async fn apply<T: Target>(t: &T, run: &mut Run) {
    let started = Instant::now();
    let id = t.id();
    let generation = run.opts.generation;
    let failed_before = run.report.failed;
    let mut tr = TargetReport::new(id, TargetState::Applied);
    let p = match prepare(t, run).await {
        Ok(p) => p,
        Err(nr) => {
            warn!(paas_target = id.name(), paas_result = "failed", paas_generation = generation, paas_error = %nr.message, "{id}: {}", nr.message);
            let outcome = if nr.waiting {
                Outcome::Pending
            } else {
                Outcome::Failed
            };
            for (kind, name) in nr.declared {
                run.report
                    .push(id, kind, name, outcome, None, Some(nr.message.clone()));
            }
            let c = t.counters();
            tr.requests = c.requests;
            tr.ldap_binds = c.ldap_binds;
            tr.state = if nr.waiting {
                TargetState::Waiting
            } else {
                TargetState::Failed
            };
            tr.retry_at = nr.retry_at;
            tr.error = Some(nr.message);
            tr.duration_ms = started.elapsed().as_millis() as u64;
            run.report.targets.push(tr);
            return;
        }
    };
    tr.notes = p.notes;
    for n in &tr.notes {
        info!(
            paas_target = id.name(),
            paas_generation = generation,
            "{id}: {n}"
        );
    }
    for b in &p.plan.blocked {
        warn!(
            paas_target = id.name(),
            paas_action = "guard",
            paas_result = "blocked",
            paas_generation = generation,
            "{b}"
        );
    }
    run.report.blocked.extend(p.plan.blocked.iter().cloned());
    for pr in &p.plan.problems {
        log_problem(pr, generation);
    }

    // Intents before remote creates: a crash between a create and its record is then
    // recognised on the next run (the created object also carries paasd's marker).
    let mut intents = false;
    for a in p.plan.changes.iter().flat_map(|c| &c.actions) {
        if let Some(e) = a.intent() {
            run.state.record(&e);
            intents = true;
        }
    }
    let mut state_error = if intents { run.save() } else { None };

    let changes = &p.plan.changes;
    let cx = ExecContext::new(&p.passwords.secrets, &p.passwords.desired);
    let mut results: Vec<Option<Done<T::Error>>> = changes.iter().map(|_| None).collect();
    let opts = run.opts.clone();
    let mut cancelled = false;
    // A change that met the target's rate limit halts the target: nothing more is sent to it in
    // this run, and what is left waits — one message for the target, not one error per object.
    let halted: std::sync::Mutex<Option<(String, u64)>> = std::sync::Mutex::new(None);
    let is_halted = || halted.lock().map(|h| h.is_some()).unwrap_or(true);
    for phase in 0..=3u8 {
        let indices: Vec<usize> = (0..changes.len())
            .filter(|&i| phase_of(&changes[i]) == phase)
            .collect();
        if indices.is_empty() {
            continue;
        }
        let concurrency = if phase == USERS {
            t.concurrency(opts.concurrency).max(1)
        } else {
            1
        };
        let cx = &cx;
        let cancel = &opts.cancel;
        let (halted, is_halted) = (&halted, &is_halted);
        let done: Vec<(usize, Done<T::Error>)> = stream::iter(indices)
            .map(|i| async move {
                if cancel.is_cancelled() || is_halted() {
                    return None;
                }
                let d = run_change(t, &changes[i], cx).await;
                if let Some((e, at)) = d.error.as_ref().and_then(|e| Some((e, e.retry_at()?))) {
                    if let Ok(mut h) = halted.lock() {
                        h.get_or_insert((e.to_string(), at));
                    }
                }
                Some((i, d))
            })
            .buffer_unordered(concurrency)
            .filter_map(std::future::ready)
            .collect()
            .await;
        for (i, d) in done {
            let c = &changes[i];
            for e in &d.effects {
                if let Effect::PasswordApplied { written: true, .. } = e {
                    tr.passwords_written += 1;
                }
                run.state.record(e);
            }
            let verified_only = d.error.is_none()
                && !d.effects.is_empty()
                && d.effects.iter().all(Effect::is_verification);
            let rate_limited = d.error.as_ref().is_some_and(|e| e.retry_at().is_some());
            if verified_only {
                info!(paas_target = id.name(), paas_user = %c.name, paas_action = "verify-password", paas_result = "unchanged", paas_generation = generation, "password of {} in {id} verified: unchanged", c.name);
            } else if rate_limited {
                // Said once for the target, below.
            } else {
                let error = d.error.as_ref().map(|e| e.to_string());
                log_change(c, generation, error.as_deref());
            }
            results[i] = Some(d);
        }
        if let Some(e) = run.save() {
            state_error = Some(e);
        }
        if opts.cancel.is_cancelled() {
            cancelled = true;
            break;
        }
        if is_halted() {
            break;
        }
    }
    t.finish().await;
    let halt = halted.into_inner().unwrap_or_else(|p| p.into_inner());
    let waiting = halt.as_ref().map(|(m, _)| format!("waiting for {id}: {m}"));
    if let Some(w) = &waiting {
        warn!(paas_target = id.name(), paas_result = "waiting", paas_generation = generation, paas_error = %w, "{w}");
    }

    // The report: a problem or a failed change makes the object failed; a change that only
    // verified a password leaves it unchanged; a change not attempted is skipped; declared
    // objects the plan did not touch are unchanged. Schema changes are setup, not objects.
    let mut failed: BTreeMap<(ObjectKind, String), (Option<Op>, String)> = BTreeMap::new();
    for pr in &p.plan.problems {
        failed
            .entry((pr.kind, pr.name.clone()))
            .or_insert((None, pr.message.clone()));
    }
    for (c, d) in changes.iter().zip(&results) {
        if let Some(Done { error: Some(e), .. }) = d {
            if e.retry_at().is_some() {
                // Waits with the target (below).
                continue;
            }
            let slot = failed
                .entry((c.kind, c.name.clone()))
                .or_insert((None, e.to_string()));
            slot.0 = Some(c.op);
        }
    }
    let mut reported: HashSet<(ObjectKind, String)> = HashSet::new();
    for (c, d) in changes.iter().zip(&results) {
        let key = (c.kind, c.name.clone());
        if failed.contains_key(&key) || reported.contains(&key) {
            continue;
        }
        let (outcome, error) = match d {
            None | Some(Done { error: Some(_), .. }) if waiting.is_some() => {
                (Outcome::Pending, waiting.clone())
            }
            None => (
                Outcome::Skipped,
                cancelled.then(|| "not attempted: paasd was stopping".to_string()),
            ),
            Some(d) if !d.effects.is_empty() && d.effects.iter().all(Effect::is_verification) => {
                (Outcome::Unchanged, None)
            }
            Some(_) if c.kind == ObjectKind::Schema => continue,
            Some(_) => (Outcome::of(c.op), None),
        };
        reported.insert(key);
        run.report
            .push(id, c.kind, c.name.clone(), outcome, Some(c.op), error);
    }
    for ((kind, name), (op, error)) in failed {
        reported.insert((kind, name.clone()));
        run.report
            .push(id, kind, name, Outcome::Failed, op, Some(error));
    }
    for (kind, name) in p.declared {
        if !reported.contains(&(kind, name.clone())) {
            run.report
                .push(id, kind, name, Outcome::Unchanged, None, None);
        }
    }
    if let (Some(w), Some((_, at))) = (waiting, &halt) {
        tr.state = TargetState::Waiting;
        tr.retry_at = Some(*at);
        tr.error = Some(w);
    }
    if let Some(e) = state_error {
        tr.error = Some(format!("state not saved: {e}"));
        run.report.failed += 1;
    }
    let c = t.counters();
    tr.requests = c.requests;
    tr.ldap_binds = c.ldap_binds;
    tr.ok = tr.error.is_none() && run.report.failed == failed_before;
    tr.duration_ms = started.elapsed().as_millis() as u64;
    run.report.cancelled |= cancelled;
    run.report.targets.push(tr);
}

/// Reports every object of `t` failed with `message` (the run could not start at all).
pub(crate) fn fail<T: Target>(t: &T, run: &mut Run, message: &str) {
    let id = t.id();
    let desired = t.desired(&Inputs {
        state: &run.state,
        members: run.members_view(),
    });
    for (kind, name) in t.declared(&desired) {
        run.report.push(
            id,
            kind,
            name,
            Outcome::Failed,
            None,
            Some(message.to_string()),
        );
    }
    let mut tr = TargetReport::new(id, TargetState::Failed);
    tr.error = Some(message.to_string());
    run.report.targets.push(tr);
}
