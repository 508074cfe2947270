//! `paasd`, the long-running service: it keeps the targets reconciled with the spec.
//!
//! The loop is glue: it decides *when* to run the engine (start, spec change, SIGHUP, D-Bus
//! request, periodic resync) and reports *what happened* (sd_notify `STATUS=`, D-Bus, logs).
//! Observing, planning and applying are the engine's ([`reconciler::Reconciler`]).
//!
//! Triggers that arrive while a run is in progress coalesce into one follow-up run. An invalid
//! spec never stops the daemon: the last good spec stays in force and the problems are shown.

pub mod dbus;
pub mod logging;
pub mod notify;
pub mod reconciler;
pub mod status;
pub mod watch;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rand::Rng as _;
use sha2::Digest as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::dbus::{Bus, Reply, Request, RequestError};
use self::notify::Notifier;
use self::reconciler::Reconciler;
use self::status::Status;
use crate::backoff::Backoff;
use crate::clock::unix_now;
use crate::engine::{Options, Report};
use crate::session::Sessions;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub spec_path: PathBuf,
    pub state_dir: PathBuf,
    /// Periodic resync (drift repair); each wait is this ±10 %.
    pub resync: Duration,
    /// Quiet time after a change of the spec path before it is read.
    pub debounce: Duration,
    pub bus: Bus,
    /// Verify enforced passwords with an LDAP bind on the periodic resync (drift repair: a
    /// password changed in LLDAP by hand). Other runs rely on the recorded fingerprints.
    pub verify_passwords: bool,
}

/// The process signals the loop reacts to, as channels (the binary forwards the real signals;
/// tests may drive them directly).
pub struct Signals {
    pub hup: mpsc::Receiver<()>,
    pub term: mpsc::Receiver<()>,
}

impl Signals {
    /// SIGHUP → reload; SIGTERM and SIGINT → stop.
    pub fn from_os() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (hup_tx, hup_rx) = mpsc::channel(1);
        let (term_tx, term_rx) = mpsc::channel(1);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if hup_tx.send(()).await.is_err() {
                    return;
                }
            }
        });
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let _ = term_tx.send(()).await;
        });
        Ok(Signals {
            hup: hup_rx,
            term: term_rx,
        })
    }
}

/// The reason of a periodic run.
const RESYNC: &str = "periodic resync";

enum Reload {
    Unchanged,
    Changed,
    Invalid,
}

struct Running {
    handle: JoinHandle<Report>,
    cancel: CancellationToken,
    waiters: Vec<Reply>,
    generation: u64,
    started: Instant,
}

struct Daemon<E: Reconciler> {
    engine: Arc<E>,
    cfg: Config,
    notifier: Notifier,
    status: Arc<Mutex<Status>>,
    conn: Option<zbus::Connection>,
    spec: Option<E::Spec>,
    generation: u64,
    spec_error: Option<String>,
    /// Why the next run should happen (None: no run pending).
    pending: Option<&'static str>,
    pending_waiters: Vec<Reply>,
    running: Option<Running>,
    ready_sent: bool,
    next_resync: Instant,
    /// Runs in a row that ended with failures: the next run comes sooner, with backoff.
    failed_runs: u32,
    /// The targets' login sessions, kept in memory across runs (Vaultwarden limits logins).
    sessions: Sessions,
}

fn lock(status: &Mutex<Status>) -> MutexGuard<'_, Status> {
    match status.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Run the daemon until SIGTERM. Returns after the running reconcile (if any) stopped cleanly.
pub async fn run<E: Reconciler>(
    engine: Arc<E>,
    cfg: Config,
    mut signals: Signals,
) -> anyhow::Result<()> {
    let status = Arc::new(Mutex::new(Status::new(cfg.spec_path.display().to_string())));
    let (req_tx, mut req_rx) = mpsc::channel::<Request>(16);
    // The D-Bus API: if the bus (or the policy that lets paasd own its name) is not there yet —
    // e.g. the first activation, before dbus has reloaded the new policy — retry with backoff
    // (1 s doubling, up to a minute); reconciling does not wait for it.
    let api_status = status.clone();
    let api = move || dbus::Api::new(req_tx.clone(), api_status.clone());
    let mut dbus_retry: Option<DbusRetry> = None;
    let conn = match dbus::serve(&cfg.bus, api()).await {
        Ok(Some(c)) => {
            tracing::info!(bus = %cfg.bus, name = dbus::NAME, "D-Bus API ready");
            Some(c)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::error!(bus = %cfg.bus, name = dbus::NAME, error = %e,
                "D-Bus API unavailable (is the bus up, is the policy installed?); retrying in 1 s, reconciling continues without it");
            dbus_retry = Some(DbusRetry::first());
            None
        }
    };
    let mut spec_changes = match watch::spawn(cfg.spec_path.clone(), cfg.debounce) {
        Ok(rx) => Some(rx),
        Err(e) => {
            tracing::error!(spec = %cfg.spec_path.display(), error = %e,
                "cannot watch the spec; changes are picked up on SIGHUP and resync only");
            None
        }
    };
    let mut watchdog = Notifier.watchdog_interval().map(|every| {
        let mut i = tokio::time::interval(every);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let mut d = Daemon {
        engine,
        notifier: Notifier,
        status,
        conn,
        spec: None,
        generation: 0,
        spec_error: None,
        pending: Some("start"),
        pending_waiters: Vec::new(),
        running: None,
        ready_sent: false,
        next_resync: Instant::now() + jittered(cfg.resync),
        failed_runs: 0,
        sessions: Sessions::in_memory(),
        cfg,
    };
    d.reload();
    d.set_next_resync(d.next_resync);

    loop {
        d.maybe_start();
        tokio::select! {
            Some(()) = signals.term.recv() => {
                d.stop().await;
                return Ok(());
            }
            Some(()) = signals.hup.recv() => {
                tracing::info!("SIGHUP: reloading the spec");
                d.notifier.reloading();
                let r = d.reload();
                // nixos-rebuild both swaps the spec (seen by the watcher) and reloads the unit: a
                // run of this very spec already in progress covers the reload.
                let covered = matches!(r, Reload::Unchanged)
                    && d.running.as_ref().is_some_and(|run| run.generation == d.generation);
                if !covered {
                    d.pending = Some("reload");
                }
                // The reload itself is done: the spec is read (or rejected). The reconcile follows.
                let line = d.line();
                d.notifier.ready(&line);
                d.announce(None).await;
            }
            Some(()) = async { spec_changes.as_mut()?.recv().await }, if spec_changes.is_some() => {
                tracing::info!(spec = %d.cfg.spec_path.display(), "spec file changed");
                if let Reload::Changed = d.reload() {
                    d.pending = Some("spec changed");
                } else {
                    let line = d.line();
                    d.notifier.status(&line);
                }
                d.announce(None).await;
            }
            Some(req) = req_rx.recv() => d.request(req).await,
            _ = tokio::time::sleep_until(d.next_resync) => {
                d.pending = Some(RESYNC);
                let next = Instant::now() + jittered(d.cfg.resync);
                d.set_next_resync(next);
            }
            report = async { (&mut d.running.as_mut()?.handle).await.ok() }, if d.running.is_some() => {
                d.finish(report).await;
            }
            _ = async { watchdog.as_mut()?.tick().await; Some(()) }, if watchdog.is_some() => {
                d.notifier.watchdog();
            }
            _ = async { tokio::time::sleep_until(dbus_retry.as_ref()?.at).await; Some(()) }, if dbus_retry.is_some() => {
                match dbus::serve(&d.cfg.bus, api()).await {
                    Ok(conn) => {
                        let attempts = dbus_retry.take().map_or(0, |r| r.attempts) + 1;
                        tracing::info!(bus = %d.cfg.bus, name = dbus::NAME, attempts, "D-Bus API ready");
                        d.conn = conn;
                        d.announce(None).await;
                    }
                    Err(e) => {
                        if let Some(r) = dbus_retry.as_mut() {
                            r.failed();
                            tracing::warn!(bus = %d.cfg.bus, name = dbus::NAME, error = %e,
                                attempts = r.attempts, "D-Bus API still unavailable; retrying in {} s", r.delay.as_secs());
                        }
                    }
                }
            }
        }
    }
}

/// When to try to serve the D-Bus API again: 1 s, doubling, up to a minute.
struct DbusRetry {
    at: Instant,
    delay: Duration,
    attempts: u32,
}

impl DbusRetry {
    const SCHEDULE: Backoff = Backoff::schedule(Duration::from_secs(1), Duration::from_secs(60));

    fn first() -> Self {
        let delay = Self::SCHEDULE.delay(1);
        DbusRetry {
            at: Instant::now() + delay,
            delay,
            attempts: 1,
        }
    }

    fn failed(&mut self) {
        self.attempts += 1;
        self.delay = Self::SCHEDULE.delay(self.attempts);
        self.at = Instant::now() + self.delay;
    }
}

/// When to run again after `failed_runs` runs in a row ended with failures (0: the resync):
/// 30 s, doubling, up to the resync interval.
fn retry_delay(failed_runs: u32, resync: Duration) -> Duration {
    if failed_runs == 0 {
        return resync;
    }
    Backoff::schedule(Duration::from_secs(30), resync).delay(failed_runs)
}

/// When to run again after `report` (at Unix time `now`): when every target that did not
/// succeed is waiting out a rate limit, as soon as the first of them may be asked again (a
/// second after its `retry_at`, at most the resync interval); otherwise the backoff of
/// [`retry_delay`] (± 10 %).
fn next_run_delay(report: &Report, failed_runs: u32, resync: Duration, now: u64) -> Duration {
    let not_ok: Vec<Option<u64>> = report
        .targets
        .iter()
        .filter(|t| !t.ok)
        .map(|t| t.retry_at)
        .collect();
    let earliest = not_ok.iter().copied().collect::<Option<Vec<u64>>>();
    match earliest.and_then(|at| at.into_iter().min()) {
        Some(at) => Duration::from_secs(at.saturating_sub(now) + 1).min(resync),
        None => jittered(retry_delay(failed_runs, resync)),
    }
}

/// `base` ± 10 %.
fn jittered(base: Duration) -> Duration {
    base.mul_f64(rand::thread_rng().gen_range(0.9..=1.1))
}

impl<E: Reconciler> Daemon<E> {
    fn line(&self) -> String {
        lock(&self.status).line()
    }

    fn set_next_resync(&mut self, at: Instant) {
        self.next_resync = at;
        let wall = SystemTime::now() + at.saturating_duration_since(Instant::now());
        lock(&self.status).set_next_resync(wall);
    }

    /// Read the spec file; a valid, different spec becomes the next generation.
    fn reload(&mut self) -> Reload {
        let path = &self.cfg.spec_path;
        match self.engine.load(path) {
            Ok(spec) => {
                let had_error = self.spec_error.take().is_some();
                lock(&self.status).spec_error = None;
                let fingerprint = self.engine.fingerprint(&spec);
                let same = self
                    .spec
                    .as_ref()
                    .is_some_and(|old| self.engine.fingerprint(old) == fingerprint);
                if same {
                    if had_error {
                        tracing::info!(
                            paas_generation = self.generation,
                            "the spec is valid again (unchanged)"
                        );
                    }
                    return Reload::Unchanged;
                }
                self.generation =
                    next_generation(&self.cfg.state_dir, &fingerprint, self.generation);
                let expected = self.engine.expected(&spec);
                let targets: Vec<&str> = expected.targets.iter().map(|t| t.name()).collect();
                tracing::info!(
                    paas_generation = self.generation,
                    spec = %path.display(),
                    users = expected.users.len(),
                    targets = %targets.join(","),
                    "loaded spec"
                );
                lock(&self.status).set_spec(self.generation, &expected);
                self.spec = Some(spec);
                Reload::Changed
            }
            Err(problems) => {
                for p in &problems {
                    tracing::error!(spec = %path.display(), json_path = %p.path, "spec problem: {p}");
                }
                let text = problems
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("\n");
                if self.spec.is_some() {
                    tracing::warn!(
                        paas_generation = self.generation,
                        problems = problems.len(),
                        "the new spec is invalid; keeping the last good spec"
                    );
                } else {
                    tracing::error!(problems = problems.len(), "the spec is invalid and no earlier spec is loaded; nothing is reconciled until it is fixed");
                }
                lock(&self.status).spec_error = Some(text.clone());
                self.spec_error = Some(text);
                Reload::Invalid
            }
        }
    }

    fn options(&self, cancel: CancellationToken, verify_passwords: bool) -> Options {
        let mut o = Options::new(self.cfg.state_dir.clone());
        o.sessions = self.sessions.clone();
        o.generation = self.generation;
        o.verify_passwords = verify_passwords;
        o.cancel = cancel;
        o
    }

    /// Start the pending run if nothing is running.
    fn maybe_start(&mut self) {
        if self.running.is_some() {
            return;
        }
        let Some(reason) = self.pending.take() else {
            return;
        };
        let waiters = std::mem::take(&mut self.pending_waiters);
        let Some(spec) = self.spec.clone() else {
            let msg = format!(
                "no valid spec is loaded from {}: {}",
                self.cfg.spec_path.display(),
                self.spec_error.as_deref().unwrap_or("unknown error")
            );
            for w in waiters {
                let _ = w.send(Err(RequestError::NoSpec(msg.clone())));
            }
            let line = self.line();
            if self.ready_sent {
                self.notifier.status(&line);
            } else {
                self.notifier.ready(&line);
                self.ready_sent = true;
            }
            return;
        };
        let cancel = CancellationToken::new();
        let verify = self.cfg.verify_passwords && reason == RESYNC;
        let opts = self.options(cancel.clone(), verify);
        let generation = self.generation;
        tracing::info!(
            paas_generation = generation,
            reason,
            verify_passwords = verify,
            "reconcile started"
        );
        let engine = self.engine.clone();
        let handle = tokio::spawn(async move { engine.apply(spec, opts).await });
        self.running = Some(Running {
            handle,
            cancel,
            waiters,
            generation,
            started: Instant::now(),
        });
        lock(&self.status).running = true;
        let line = self.line();
        self.notifier.status(&line);
    }

    async fn finish(&mut self, report: Option<Report>) {
        let Some(run) = self.running.take() else {
            return;
        };
        let report = report.unwrap_or_else(|| failed_report(run.generation));
        let elapsed = run.started.elapsed();
        {
            let mut s = lock(&self.status);
            s.running = false;
            s.apply_report(&report, SystemTime::now());
        }
        let mut summary = report.summary_line();
        if report.cancelled {
            summary.push_str(" (cancelled)");
        }
        if report.has_failures() {
            tracing::warn!(
                paas_generation = run.generation,
                elapsed_ms = elapsed.as_millis() as u64,
                "reconcile finished with failures: {summary}"
            );
        } else {
            tracing::info!(
                paas_generation = run.generation,
                elapsed_ms = elapsed.as_millis() as u64,
                "reconcile finished: {summary}"
            );
        }
        let answer = serde_json::json!({
            "generation": run.generation,
            "summary": summary,
            "failed": report.has_failures(),
            "specError": self.spec_error,
            "report": report,
        })
        .to_string();
        for w in run.waiters {
            let _ = w.send(Ok(answer.clone()));
        }
        // Drift repair restarts its clock after every run; after a run with failures (a service
        // down, a transient error) the next run comes with backoff: 30 s, 1 min, 2 min, … up to
        // the resync interval, so recovery needs no admin action.
        self.failed_runs = if report.has_failures() {
            self.failed_runs.saturating_add(1)
        } else {
            0
        };
        let delay = next_run_delay(&report, self.failed_runs, self.cfg.resync, unix_now());
        self.set_next_resync(Instant::now() + delay);
        let line = self.line();
        if self.ready_sent {
            self.notifier.status(&line);
        } else {
            self.notifier.ready(&line);
            self.ready_sent = true;
        }
        self.announce(Some(&summary)).await;
    }

    async fn request(&mut self, req: Request) {
        match req {
            Request::Reconcile(reply) => {
                self.pending_waiters.push(reply);
                self.pending = self.pending.or(Some("D-Bus request"));
            }
            Request::Reload(reply) => {
                let r = self.reload();
                let answer = match r {
                    Reload::Invalid => Err(RequestError::SpecInvalid(
                        self.spec_error.clone().unwrap_or_default(),
                    )),
                    _ => Ok(serde_json::json!({
                        "generation": self.generation,
                        "changed": matches!(r, Reload::Changed),
                    })
                    .to_string()),
                };
                if let Reload::Changed = r {
                    self.pending = Some("reload");
                }
                let _ = reply.send(answer);
                self.announce(None).await;
            }
            Request::Plan(reply) => {
                let Some(spec) = self.spec.clone() else {
                    let _ = reply.send(Err(RequestError::NoSpec(format!(
                        "no valid spec is loaded: {}",
                        self.spec_error.as_deref().unwrap_or("unknown error")
                    ))));
                    return;
                };
                let opts = self.options(CancellationToken::new(), false);
                let engine = self.engine.clone();
                let generation = self.generation;
                let spec_error = self.spec_error.clone();
                tokio::spawn(async move {
                    let p = engine.plan(spec, opts).await;
                    let answer = serde_json::json!({
                        "generation": generation,
                        "specError": spec_error,
                        "empty": p.is_empty(),
                        "text": p.to_string(),
                        "plan": p,
                    })
                    .to_string();
                    let _ = reply.send(Ok(answer));
                });
            }
        }
    }

    async fn announce(&self, finished: Option<&str>) {
        if let Some(conn) = &self.conn {
            if let Err(e) = dbus::announce(conn, finished).await {
                tracing::warn!(error = %e, "emitting D-Bus signals failed");
            }
        }
    }

    async fn stop(&mut self) {
        tracing::info!("stopping");
        self.notifier.stopping();
        if let Some(run) = self.running.as_mut() {
            tracing::info!("cancelling the running reconcile: the object being written is finished and the state saved");
            run.cancel.cancel();
            let report = (&mut run.handle).await.ok();
            self.finish(report).await;
        }
        for w in self.pending_waiters.drain(..) {
            let _ = w.send(Err(RequestError::Failed("paasd is stopping".into())));
        }
    }
}

/// The report of a run whose task did not come back (it panicked).
fn failed_report(generation: u64) -> Report {
    let mut r = Report::new(generation);
    r.failed = 1;
    r.warnings
        .push("the reconcile task panicked; see the journal".into());
    r
}

/// Spec generations are numbered across restarts: `<state_dir>/generation` holds the number and
/// the fingerprint of the spec it names. The same spec keeps its number; a new one gets the next.
fn next_generation(state_dir: &std::path::Path, fingerprint: &str, current: u64) -> u64 {
    let file = state_dir.join("generation");
    let (stored_n, stored_fp) = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace();
            let n = it.next()?.parse::<u64>().ok()?;
            Some((n, it.next().unwrap_or("").to_string()))
        })
        .unwrap_or((0, String::new()));
    if stored_fp == fingerprint && stored_n > current {
        return stored_n;
    }
    let n = stored_n.max(current) + 1;
    if let Err(e) = crate::atomic_file::write(&file, format!("{n} {fingerprint}\n").as_bytes()) {
        tracing::warn!(file = %file.display(), error = %e, "cannot record the spec generation");
    }
    n
}

/// SHA-256 of a byte string, hex (fingerprints of specs).
pub fn fingerprint_bytes(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_survive_restarts_and_count_changes() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(next_generation(t.path(), "aaa", 0), 1);
        // restart, same spec: same number
        assert_eq!(next_generation(t.path(), "aaa", 0), 1);
        assert_eq!(next_generation(t.path(), "bbb", 1), 2);
        // restart with a new spec
        assert_eq!(next_generation(t.path(), "ccc", 0), 3);
    }

    #[test]
    fn failed_runs_are_retried_with_backoff_up_to_the_resync() {
        let hour = Duration::from_secs(3600);
        assert_eq!(retry_delay(0, hour), hour);
        assert_eq!(retry_delay(1, hour), Duration::from_secs(30));
        assert_eq!(retry_delay(2, hour), Duration::from_secs(60));
        assert_eq!(retry_delay(4, hour), Duration::from_secs(240));
        assert_eq!(retry_delay(8, hour), hour, "capped at the resync interval");
        assert_eq!(retry_delay(u32::MAX, hour), hour);
        assert_eq!(
            retry_delay(1, Duration::from_secs(10)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn a_rate_limited_target_is_retried_when_it_may_be_asked_again() {
        use crate::core::id::{ServiceKind, TargetId};
        use crate::engine::report::{TargetReport, TargetState};
        let hour = Duration::from_secs(3600);
        let now = 1_000_000;
        let target = |t, ok, retry_at| {
            let mut r = TargetReport::new(t, TargetState::Applied);
            r.ok = ok;
            r.retry_at = retry_at;
            r
        };
        let vw = TargetId::Service(ServiceKind::Vaultwarden);
        let nc = TargetId::Service(ServiceKind::Nextcloud);
        let mut report = Report::new(1);
        report.targets = vec![
            target(TargetId::Lldap, true, None),
            target(vw, false, Some(now + 299)),
        ];
        assert_eq!(
            next_run_delay(&report, 1, hour, now),
            Duration::from_secs(300),
            "when Vaultwarden allows the next login, not after 30 s"
        );
        assert_eq!(
            next_run_delay(&report, 7, hour, now),
            Duration::from_secs(300),
            "not later either: a rate limit is not a failure that grows the backoff"
        );
        assert_eq!(
            next_run_delay(&report, 1, Duration::from_secs(60), now),
            Duration::from_secs(60),
            "at most the resync interval"
        );
        // Another target failing for another reason: the usual backoff.
        report.targets.push(target(nc, false, None));
        let d = next_run_delay(&report, 1, hour, now);
        assert!(
            d >= Duration::from_secs(27) && d <= Duration::from_secs(33),
            "{d:?}"
        );
        // Nothing failed: the resync.
        let mut ok = Report::new(1);
        ok.targets = vec![target(TargetId::Lldap, true, None)];
        let d = next_run_delay(&ok, 0, hour, now);
        assert!(d >= Duration::from_secs(3240), "{d:?}");
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(3600));
            assert!(d >= Duration::from_secs(3240) && d <= Duration::from_secs(3960));
        }
    }
}
