//! One reconcile: observe → plan → apply → record. The glue between the pure plan and the
//! LLDAP target; used by `paasctl plan|apply` and by the daemon.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::stream::{self, StreamExt};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::lldap::client::{GraphqlClient, LldapError};
use crate::lldap::ldap::LdapPasswords;
use crate::lldap::Lldap;
use crate::plan::{self, Action, Change, Effect, ObjectKind, Op, PasswordInput, Plan, PlanInput};
use crate::retry::Backoff;
use crate::secret::{read_secret_file, FingerprintKey, Secret};
use crate::spec::{PasswordStrategy, Spec};
use crate::state::{OwnedGroup, OwnedUser, State, StateError};
use crate::targets;

/// How to run a reconcile.
#[derive(Debug, Clone)]
pub struct Options {
    pub state_dir: PathBuf,
    /// Verify every enforced password with an LDAP bind, even when unchanged.
    pub verify_passwords: bool,
    /// Override the mass-removal guard.
    pub force: bool,
    /// Which spec this run applies (shown in logs as PAAS_GENERATION).
    pub generation: u64,
    /// Cancelled: finish the object being written, save state, return.
    pub cancel: CancellationToken,
    /// Objects written at the same time.
    pub concurrency: usize,
    pub backoff: Backoff,
    /// How long to wait for a service's health endpoint before reporting "waiting for …".
    pub service_wait: Backoff,
}

impl Options {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Options {
            state_dir: state_dir.into(),
            verify_passwords: false,
            force: false,
            generation: 0,
            cancel: CancellationToken::new(),
            concurrency: 8,
            backoff: Backoff::default(),
            service_wait: Backoff {
                attempts: 6,
                base: Duration::from_secs(1),
                cap: Duration::from_secs(15),
            },
        }
    }
}

/// Why a reconcile could not even start (per-object failures are in the [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("lldap.adminPasswordFile: {0}")]
    AdminSecret(#[from] crate::secret::SecretError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Lldap(#[from] LldapError),
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Created,
    Updated,
    Deleted,
    Unchanged,
    Failed,
    /// Not attempted (cancelled, or held back by the removal guard).
    Skipped,
    /// The target is not ready yet ("waiting for nextcloud"); counted as failed.
    Pending,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReport {
    pub target: String,
    pub kind: ObjectKind,
    pub name: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    pub target: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// HTTP requests sent to the target during this run.
    pub requests: u64,
    /// LDAP binds made (LLDAP only).
    pub ldap_binds: u64,
    pub passwords_written: u64,
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
    pub blocked: Vec<String>,
    pub warnings: Vec<String>,
    pub objects: Vec<ObjectReport>,
    pub targets: Vec<TargetReport>,
    pub duration_ms: u64,
}

impl Report {
    /// `N created, N updated, N deleted, N unchanged, N failed`.
    pub fn summary_line(&self) -> String {
        format!(
            "{} created, {} updated, {} deleted, {} unchanged, {} failed",
            self.created, self.updated, self.deleted, self.unchanged, self.failed
        )
    }

    /// Counts a change that succeeded, and says what it was.
    fn count_done(&mut self, op: Op) -> Outcome {
        match op {
            Op::Create => {
                self.created += 1;
                Outcome::Created
            }
            Op::Delete => {
                self.deleted += 1;
                Outcome::Deleted
            }
            _ => {
                self.updated += 1;
                Outcome::Updated
            }
        }
    }

    fn empty(generation: u64) -> Self {
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
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The file LLDAP's password of `user` comes from, under the user's password strategy.
pub fn lldap_password_source<'a>(
    spec: &'a Spec,
    user: &'a crate::spec::UserSpec,
) -> Option<&'a Path> {
    match user.password_strategy.unwrap_or(spec.passwords.strategy) {
        PasswordStrategy::Universal => spec.passwords.universal_password_file.as_deref(),
        PasswordStrategy::PerUser | PasswordStrategy::Generated => user.password_file.as_deref(),
    }
}

/// Everything observed and read before the plan.
struct Prepared {
    lldap: Lldap,
    dir: crate::directory::Directory,
    state: State,
    key: FingerprintKey,
    secrets: HashMap<String, Secret>,
    passwords: BTreeMap<String, PasswordInput>,
}

fn connect(spec: &Spec, opts: &Options) -> Result<Lldap, ReconcileError> {
    let admin = read_secret_file(&spec.lldap.admin_password_file)?;
    let timeout = Duration::from_secs(spec.lldap.timeout_seconds);
    Ok(Lldap {
        graphql: GraphqlClient::new(
            &spec.lldap.url,
            &spec.lldap.admin_username,
            admin.clone(),
            timeout,
            opts.backoff,
        )?,
        ldap: LdapPasswords::new(
            &spec.lldap.ldap_url,
            &spec.lldap.base_dn,
            &spec.lldap.admin_username,
            admin,
            timeout,
            opts.backoff,
        ),
    })
}

/// Drops state entries of objects that are gone from LLDAP (deleted by hand) and settles
/// create intents: a create that took effect shows up marked in the directory.
fn settle_state(state: &mut State, dir: &crate::directory::Directory) {
    state.lldap.users.retain(|id, o| {
        let present = dir.user(id);
        if o.creating {
            match present {
                Some(u) if u.is_marked() => {
                    o.creating = false;
                    o.created = true;
                    true
                }
                _ => false,
            }
        } else {
            present.is_some()
        }
    });
    // Ownership recorded only inside LLDAP (the state file was lost): record it here again.
    for u in dir.users.values().filter(|u| u.is_marked()) {
        state.lldap.users.entry(u.id.clone()).or_default();
    }
    for g in dir.groups.values() {
        if let Some(key) = g.marker() {
            let entry = state.lldap.groups.entry(key.to_string()).or_default();
            entry.id.get_or_insert(g.id);
        }
    }
    state.lldap.groups.retain(|key, g| {
        let by_marker = dir.group_by_marker(key).map(|x| x.id);
        let by_id = g.id.filter(|id| dir.groups.contains_key(id));
        match by_marker.or(by_id) {
            Some(id) => {
                g.id = Some(id);
                g.creating = false;
                true
            }
            None => false,
        }
    });
}

async fn prepare(spec: &Spec, opts: &Options, writable: bool) -> Result<Prepared, ReconcileError> {
    let lldap = connect(spec, opts)?;
    let mut state = State::load(&opts.state_dir)?;
    let key = if writable {
        std::fs::create_dir_all(&opts.state_dir).map_err(|source| ReconcileError::StateDir {
            path: opts.state_dir.clone(),
            source,
        })?;
        FingerprintKey::load_or_create(&opts.state_dir)?
    } else {
        match std::fs::read(opts.state_dir.join("fingerprint.key")) {
            Ok(b) if b.len() == 32 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(&b);
                FingerprintKey::from_bytes(k)
            }
            // No key yet: every enforced password shows as "to verify", which is the truth.
            _ => {
                let mut k = [0u8; 32];
                let _ = getrandom::getrandom(&mut k);
                FingerprintKey::from_bytes(k)
            }
        }
    };
    lldap.graphql.login().await?;
    let dir = lldap.observe().await?;
    settle_state(&mut state, &dir);
    let mut secrets = HashMap::new();
    let mut passwords = BTreeMap::new();
    for (id, u) in &spec.users {
        let Some(path) = lldap_password_source(spec, u) else {
            continue;
        };
        match read_secret_file(path) {
            Ok(s) => {
                passwords.insert(
                    id.clone(),
                    PasswordInput::Fingerprint(key.fingerprint(&format!("lldap/{id}"), &s)),
                );
                secrets.insert(id.clone(), s);
            }
            Err(e) => {
                passwords.insert(id.clone(), PasswordInput::Unusable(e.to_string()));
            }
        }
    }
    Ok(Prepared {
        lldap,
        dir,
        state,
        key,
        secrets,
        passwords,
    })
}

fn compute_plan(spec: &Spec, opts: &Options, p: &Prepared) -> Plan {
    plan::plan(&PlanInput {
        spec,
        dir: &p.dir,
        state: &p.state,
        passwords: &p.passwords,
        verify_passwords: opts.verify_passwords,
        force: opts.force,
        now: now(),
    })
}

/// Observes LLDAP and computes the plan; writes nothing (not even paasd's state).
pub async fn plan(spec: &Spec, opts: &Options) -> Result<Plan, ReconcileError> {
    let p = prepare(spec, opts, false).await?;
    let mut plan = compute_plan(spec, opts, &p);
    let timeout = Duration::from_secs(spec.lldap.timeout_seconds);
    let names = spec.services.configured();
    for (name, built) in names.iter().zip(targets::registry::build(spec, timeout)) {
        let prepared = match built {
            Ok(svc) => {
                targets::run::prepare(
                    svc.as_ref(),
                    spec,
                    &p.dir,
                    &p.state,
                    &p.key,
                    &opts.state_dir,
                    opts.service_wait,
                    false,
                    opts.force,
                    now(),
                )
                .await
            }
            Err(e) => Err(targets::run::NotReady::Failed(e)),
        };
        match prepared {
            Ok(sp) => {
                plan.changes.extend(sp.plan.changes);
                plan.problems.extend(sp.plan.problems);
                plan.blocked.extend(sp.plan.blocked);
            }
            Err(e) => plan.problems.push(crate::plan::PlanProblem {
                target: name.to_string(),
                kind: ObjectKind::User,
                name: "*".into(),
                message: e.to_string(),
            }),
        }
    }
    Ok(plan)
}

/// Applies every configured service after LLDAP and adds their results to the report.
async fn apply_services(spec: &Spec, opts: &Options, p: &mut Prepared, report: &mut Report) {
    let timeout = Duration::from_secs(spec.lldap.timeout_seconds);
    let names = spec.services.configured();
    for (name, built) in names.iter().zip(targets::registry::build(spec, timeout)) {
        if opts.cancel.is_cancelled() {
            break;
        }
        let not_ready = |report: &mut Report, e: targets::run::NotReady| {
            let users = targets::desired::service_users(spec, &p.dir, name);
            let (outcome, msg) = match &e {
                targets::run::NotReady::Waiting(m) => (Outcome::Pending, m.clone()),
                targets::run::NotReady::Failed(m) => (Outcome::Failed, m.clone()),
            };
            warn!(paas_target = %name, paas_result = "failed", paas_generation = opts.generation, paas_error = %msg, "{msg}");
            for id in users.keys() {
                report.objects.push(ObjectReport {
                    target: name.to_string(),
                    kind: ObjectKind::User,
                    name: id.clone(),
                    outcome,
                    error: Some(msg.clone()),
                });
            }
            report.failed += users.len().max(1);
            report.targets.push(TargetReport {
                target: name.to_string(),
                ok: false,
                error: Some(msg),
                requests: 0,
                ldap_binds: 0,
                passwords_written: 0,
            });
        };
        let svc = match built {
            Ok(svc) => svc,
            Err(e) => {
                not_ready(report, targets::run::NotReady::Failed(e));
                continue;
            }
        };
        let prepared = targets::run::prepare(
            svc.as_ref(),
            spec,
            &p.dir,
            &p.state,
            &p.key,
            &opts.state_dir,
            opts.service_wait,
            true,
            opts.force,
            now(),
        )
        .await;
        let prep = match prepared {
            Ok(x) => x,
            Err(e) => {
                not_ready(report, e);
                continue;
            }
        };
        let failed_before = report.failed;
        report.blocked.extend(prep.plan.blocked.iter().cloned());
        let done = targets::run::apply(
            svc.as_ref(),
            &prep,
            spec,
            &mut p.state,
            opts.concurrency,
            &opts.cancel,
            opts.generation,
        )
        .await;
        let mut target_error = None;
        if let Err(e) = p.state.save(&opts.state_dir) {
            target_error = Some(format!("state not saved: {e}"));
            report.failed += 1;
        }
        let mut seen = std::collections::HashSet::new();
        for pr in &prep.plan.problems {
            if seen.insert(pr.name.clone()) {
                report.failed += 1;
                report.objects.push(ObjectReport {
                    target: name.to_string(),
                    kind: ObjectKind::User,
                    name: pr.name.clone(),
                    outcome: Outcome::Failed,
                    error: Some(pr.message.clone()),
                });
            }
        }
        for d in &done {
            let c = &prep.plan.changes[d.index];
            if !seen.insert(c.name.clone()) {
                continue;
            }
            let outcome = match &d.error {
                Some(_) => {
                    report.failed += 1;
                    Outcome::Failed
                }
                None => report.count_done(c.op),
            };
            report.objects.push(ObjectReport {
                target: name.to_string(),
                kind: ObjectKind::User,
                name: c.name.clone(),
                outcome,
                error: d.error.clone(),
            });
        }
        for c in &prep.plan.changes {
            if seen.insert(c.name.clone()) {
                report.objects.push(ObjectReport {
                    target: name.to_string(),
                    kind: ObjectKind::User,
                    name: c.name.clone(),
                    outcome: Outcome::Skipped,
                    error: opts
                        .cancel
                        .is_cancelled()
                        .then(|| "not attempted: paasd was stopping".to_string()),
                });
            }
        }
        for id in &prep.users {
            if seen.insert(id.clone()) {
                report.unchanged += 1;
                report.objects.push(ObjectReport {
                    target: name.to_string(),
                    kind: ObjectKind::User,
                    name: id.clone(),
                    outcome: Outcome::Unchanged,
                    error: None,
                });
            }
        }
        report.targets.push(TargetReport {
            target: name.to_string(),
            ok: target_error.is_none() && report.failed == failed_before,
            error: target_error,
            requests: 0,
            ldap_binds: 0,
            passwords_written: 0,
        });
    }
}

/// The result of one change.
struct Done {
    index: usize,
    effects: Vec<Effect>,
    error: Option<String>,
}

fn log_change(c: &Change, generation: u64, error: Option<&str>) {
    let action = c.op.verb();
    let result = if error.is_some() { "failed" } else { "ok" };
    let fields: Vec<&str> = c.fields.iter().map(|f| f.field.as_ref()).collect();
    let fields = fields.join(",");
    match (c.kind, error) {
        (ObjectKind::User, None) => {
            info!(paas_target = %c.target, paas_user = %c.name, paas_action = action, paas_result = result, paas_generation = generation, paas_fields = %fields, "{action} user {}: ok", c.name)
        }
        (ObjectKind::User, Some(e)) => {
            warn!(paas_target = %c.target, paas_user = %c.name, paas_action = action, paas_result = result, paas_generation = generation, paas_error = %e, "{action} user {}: {e}", c.name)
        }
        (_, None) => {
            info!(paas_target = %c.target, paas_group = %c.name, paas_action = action, paas_result = result, paas_generation = generation, paas_fields = %fields, "{action} {} {}: ok", c.kind, c.name)
        }
        (_, Some(e)) => {
            warn!(paas_target = %c.target, paas_group = %c.name, paas_action = action, paas_result = result, paas_generation = generation, paas_error = %e, "{action} {} {}: {e}", c.kind, c.name)
        }
    }
}

async fn run_change(
    lldap: &Lldap,
    change: &Change,
    index: usize,
    groups: &HashMap<String, i64>,
    secrets: &HashMap<String, Secret>,
    key: &FingerprintKey,
) -> Done {
    let mut effects = Vec::new();
    for action in &change.actions {
        let secret = match action {
            Action::SetPassword { user, .. } => secrets.get(user),
            _ => None,
        };
        match lldap.execute(action, groups, secret, key).await {
            Ok(e) => effects.push(e),
            Err(error) => {
                return Done {
                    index,
                    effects,
                    error: Some(error),
                }
            }
        }
    }
    Done {
        index,
        effects,
        error: None,
    }
}

/// Observes, plans and applies; never panics, never returns early without a report.
pub async fn apply(spec: &Spec, opts: &Options) -> Report {
    let started = std::time::Instant::now();
    let mut report = Report::empty(opts.generation);
    report.warnings = spec.warnings.iter().map(|w| w.to_string()).collect();
    let mut p = match prepare(spec, opts, true).await {
        Ok(p) => p,
        Err(e) => {
            let msg = e.to_string();
            warn!(paas_target = "lldap", paas_result = "failed", paas_generation = opts.generation, paas_error = %msg, "lldap: {msg}");
            for id in spec.users.keys() {
                report.objects.push(ObjectReport {
                    target: "lldap".into(),
                    kind: ObjectKind::User,
                    name: id.clone(),
                    outcome: Outcome::Failed,
                    error: Some(msg.clone()),
                });
            }
            report.failed = spec.users.len() + spec.groups.len();
            report.targets.push(TargetReport {
                target: "lldap".into(),
                ok: false,
                error: Some(msg),
                requests: 0,
                ldap_binds: 0,
                passwords_written: 0,
            });
            report.duration_ms = started.elapsed().as_millis() as u64;
            return report;
        }
    };
    let plan = compute_plan(spec, opts, &p);
    report.blocked = plan.blocked.clone();
    for b in &plan.blocked {
        warn!(
            paas_target = "lldap",
            paas_action = "guard",
            paas_result = "blocked",
            paas_generation = opts.generation,
            "{b}"
        );
    }

    // Intent before remote creates: a crash between a create and the record below is then
    // recognised on the next run (the created object also carries paasd's marker).
    let mut intent = false;
    for c in &plan.changes {
        for a in &c.actions {
            match a {
                Action::CreateUser { id, attributes, .. } => {
                    let pending = attributes
                        .get(crate::spec::MARKER_ATTRIBUTE)
                        .is_some_and(|v| {
                            v.first().map(String::as_str) == Some(plan::USER_MARKER_PENDING)
                        });
                    p.state.lldap.users.entry(id.clone()).or_insert(OwnedUser {
                        creating: true,
                        initial_password_pending: pending,
                        ..OwnedUser::default()
                    });
                    intent = true;
                }
                Action::CreateGroup { key, .. } => {
                    p.state
                        .lldap
                        .groups
                        .entry(key.clone())
                        .or_insert(OwnedGroup {
                            id: None,
                            created: true,
                            creating: true,
                        });
                    intent = true;
                }
                _ => {}
            }
        }
    }
    let mut state_error = None;
    if intent {
        if let Err(e) = p.state.save(&opts.state_dir) {
            state_error = Some(e.to_string());
        }
    }

    let mut created_groups: HashMap<String, i64> = HashMap::new();
    let mut failed_objects: Vec<(usize, String)> = Vec::new();
    let mut done_ok: Vec<usize> = Vec::new();
    let mut verified: std::collections::HashSet<usize> = std::collections::HashSet::new();
    // Phases: schema and groups (sequentially: few, and users depend on them), then users
    // (concurrently), then group deletions.
    let phase_of = |c: &Change| match (c.kind, c.op) {
        (ObjectKind::Schema, _) => 0,
        (ObjectKind::Group, Op::Delete) => 3,
        (ObjectKind::Group, _) => 1,
        (ObjectKind::User, _) => 2,
    };
    let mut cancelled = false;
    for phase in 0..4 {
        let indices: Vec<usize> = (0..plan.changes.len())
            .filter(|&i| phase_of(&plan.changes[i]) == phase)
            .collect();
        if indices.is_empty() {
            continue;
        }
        let concurrency = if phase == 2 {
            opts.concurrency.max(1)
        } else {
            1
        };
        let groups_snapshot = created_groups.clone();
        let lldap = &p.lldap;
        let secrets = &p.secrets;
        let key = &p.key;
        let cancel = &opts.cancel;
        let changes = &plan.changes;
        let results: Vec<Option<Done>> = stream::iter(indices.iter().copied())
            .map(|i| {
                let groups = &groups_snapshot;
                async move {
                    if cancel.is_cancelled() {
                        return None;
                    }
                    Some(run_change(lldap, &changes[i], i, groups, secrets, key).await)
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for d in results.into_iter().flatten() {
            let c = &plan.changes[d.index];
            for e in &d.effects {
                if let Effect::GroupCreated { key, id } = e {
                    created_groups.insert(key.clone(), *id);
                }
                p.state.record(e, spec);
            }
            // A password that an LDAP bind showed to be right already changed nothing.
            let verified_only = d.error.is_none()
                && c.actions
                    .iter()
                    .all(|a| matches!(a, Action::SetPassword { .. }))
                && d.effects.iter().all(|e| {
                    matches!(
                        e,
                        Effect::PasswordApplied { written: false, .. } | Effect::None
                    )
                });
            if verified_only {
                info!(paas_target = %c.target, paas_user = %c.name, paas_action = "verify-password", paas_result = "unchanged", paas_generation = opts.generation, "password of {} verified: unchanged", c.name);
                verified.insert(d.index);
                continue;
            }
            log_change(c, opts.generation, d.error.as_deref());
            match d.error {
                Some(e) => failed_objects.push((d.index, e)),
                None => done_ok.push(d.index),
            }
        }
        if let Err(e) = p.state.save(&opts.state_dir) {
            state_error = Some(e.to_string());
        }
        if opts.cancel.is_cancelled() {
            cancelled = true;
            break;
        }
    }
    p.lldap.ldap.close().await;

    // The report.
    let mut failed_names: BTreeMap<(ObjectKind, String), String> = BTreeMap::new();
    for (i, e) in &failed_objects {
        let c = &plan.changes[*i];
        failed_names.insert((c.kind, c.name.clone()), e.clone());
    }
    for pr in &plan.problems {
        failed_names
            .entry((pr.kind, pr.name.clone()))
            .or_insert_with(|| pr.message.clone());
        warn!(paas_target = "lldap", paas_user = %pr.name, paas_action = "plan", paas_result = "failed", paas_generation = opts.generation, paas_error = %pr.message, "{} {}: {}", pr.kind, pr.name, pr.message);
    }
    let mut reported = std::collections::HashSet::new();
    for &i in &done_ok {
        let c = &plan.changes[i];
        if c.kind == ObjectKind::Schema || failed_names.contains_key(&(c.kind, c.name.clone())) {
            continue;
        }
        let outcome = report.count_done(c.op);
        reported.insert((c.kind, c.name.clone()));
        report.objects.push(ObjectReport {
            target: "lldap".into(),
            kind: c.kind,
            name: c.name.clone(),
            outcome,
            error: None,
        });
    }
    for ((kind, name), e) in &failed_names {
        reported.insert((*kind, name.clone()));
        report.failed += 1;
        report.objects.push(ObjectReport {
            target: "lldap".into(),
            kind: *kind,
            name: name.clone(),
            outcome: Outcome::Failed,
            error: Some(e.clone()),
        });
    }
    for (i, c) in plan.changes.iter().enumerate() {
        if verified.contains(&i) {
            continue;
        }
        if c.kind != ObjectKind::Schema && !reported.contains(&(c.kind, c.name.clone())) {
            reported.insert((c.kind, c.name.clone()));
            report.objects.push(ObjectReport {
                target: "lldap".into(),
                kind: c.kind,
                name: c.name.clone(),
                outcome: Outcome::Skipped,
                error: cancelled.then(|| "not attempted: paasd was stopping".to_string()),
            });
        }
    }
    for id in spec.users.keys() {
        if !reported.contains(&(ObjectKind::User, id.clone())) {
            report.unchanged += 1;
            report.objects.push(ObjectReport {
                target: "lldap".into(),
                kind: ObjectKind::User,
                name: id.clone(),
                outcome: Outcome::Unchanged,
                error: None,
            });
        }
    }
    for key in spec.groups.keys() {
        if !reported.contains(&(ObjectKind::Group, key.clone())) {
            report.unchanged += 1;
        }
    }
    let target_error = state_error.map(|e| format!("state not saved: {e}"));
    if target_error.is_some() {
        report.failed += 1;
    }
    report.targets.push(TargetReport {
        target: "lldap".into(),
        ok: target_error.is_none() && report.failed == 0,
        error: target_error,
        requests: p.lldap.graphql.requests(),
        ldap_binds: p.lldap.ldap.binds(),
        passwords_written: p.lldap.ldap.password_sets(),
    });
    apply_services(spec, opts, &mut p, &mut report).await;
    report.cancelled = cancelled || opts.cancel.is_cancelled();
    report.duration_ms = started.elapsed().as_millis() as u64;
    info!(
        paas_target = "lldap",
        paas_action = "reconcile",
        paas_result = if report.failed == 0 { "ok" } else { "failed" },
        paas_generation = opts.generation,
        "{}",
        report.summary_line()
    );
    report
}
