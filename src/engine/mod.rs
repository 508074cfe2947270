//! The engine: one loop for every target (observe → pure plan → apply → record), in the manner of
//! a controller runtime. Targets supply observe, plan and execute ([`target::Target`]); the
//! engine owns the rest once: readiness waits, phases and bounded concurrency, cancellation,
//! create intents, password reading, recording effects and saving the state, and the report.
//!
//! Targets run one after the other in the order given (LLDAP first: it publishes the access
//! groups' members the services go by). Each one is independent: a target that cannot be used
//! fails alone, with its reason, and the others go on.

pub mod passwords;
pub mod plan;
pub mod report;
pub mod run;
pub mod target;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::backoff::Backoff;
use crate::core::id::TargetId;
use crate::core::state::State;
use crate::secret::FingerprintKey;
use crate::session::Sessions;

pub use plan::Plan;
pub use report::{ObjectReport, Outcome, Report, TargetReport};
use run::Run;
pub use target::Target;

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
    /// Users' changes in flight at once, per target.
    pub concurrency: usize,
    /// Retries of one request.
    pub backoff: Backoff,
    /// How long to wait for a target to become ready before reporting "waiting for …".
    pub ready_wait: Backoff,
    /// The login sessions targets keep across runs (in memory: the daemon's; in the state
    /// directory: `paasctl`'s, [`Sessions::persistent`]).
    pub sessions: Sessions,
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
            // Up to ~7 s: a target that is starting (after a reboot, an upgrade) is waited
            // for; one that stays down fails this run, and the daemon's next run comes
            // with backoff.
            ready_wait: Backoff {
                attempts: 5,
                base: Duration::from_millis(500),
                cap: Duration::from_secs(5),
                jitter: true,
            },
            sessions: Sessions::in_memory(),
        }
    }
}

/// A target the engine can run, whatever its actions and observations (every [`Target`] is
/// one).
pub trait AnyTarget: Send + Sync {
    fn id(&self) -> TargetId;
    fn apply<'a>(&'a self, run: &'a mut Run) -> BoxFuture<'a, ()>;
    fn plan<'a>(&'a self, run: &'a mut Run) -> BoxFuture<'a, ()>;
    fn fail(&self, run: &mut Run, message: &str);
}

impl<T: Target> AnyTarget for T {
    fn id(&self) -> TargetId {
        Target::id(self)
    }
    fn apply<'a>(&'a self, run: &'a mut Run) -> BoxFuture<'a, ()> {
        Box::pin(run::apply(self, run))
    }
    fn plan<'a>(&'a self, run: &'a mut Run) -> BoxFuture<'a, ()> {
        Box::pin(run::plan(self, run))
    }
    fn fail(&self, run: &mut Run, message: &str) {
        run::fail(self, run, message)
    }
}

/// Applies `targets`, in order. Never panics, never returns without a report.
pub async fn apply(
    targets: &[Box<dyn AnyTarget + '_>],
    warnings: Vec<String>,
    opts: &Options,
) -> Report {
    let started = Instant::now();
    let setup = (|| {
        let state = State::load(&opts.state_dir)?;
        crate::atomic_file::create_dir(&opts.state_dir).map_err(|source| SetupError::StateDir {
            path: opts.state_dir.clone(),
            source,
        })?;
        let key = FingerprintKey::load_or_create(&opts.state_dir)?;
        Ok::<_, SetupError>((state, key))
    })();
    let mut run = match setup {
        Ok((state, key)) => Run::new(opts.clone(), state, key, true),
        Err(e) => {
            let mut run = Run::new(
                opts.clone(),
                State::default(),
                FingerprintKey::from_bytes([0; 32]),
                false,
            );
            let msg = e.to_string();
            for t in targets {
                t.fail(&mut run, &msg);
            }
            run.report.warnings = warnings;
            run.report.duration_ms = started.elapsed().as_millis() as u64;
            return run.report;
        }
    };
    run.report.warnings = warnings;
    for t in targets {
        if opts.cancel.is_cancelled() {
            break;
        }
        t.apply(&mut run).await;
    }
    let mut report = run.report;
    report.cancelled |= opts.cancel.is_cancelled();
    report.duration_ms = started.elapsed().as_millis() as u64;
    info!(
        paas_action = "reconcile",
        paas_result = if report.has_failures() {
            "failed"
        } else {
            "ok"
        },
        paas_generation = opts.generation,
        "{}",
        report.summary_line()
    );
    report
}

/// Observes `targets` and computes their plans; writes nothing (not even paasd's state).
pub async fn plan(targets: &[Box<dyn AnyTarget + '_>], opts: &Options) -> Plan {
    let state = State::load(&opts.state_dir);
    let key = FingerprintKey::load_or_ephemeral(&opts.state_dir);
    let mut run = match state {
        Ok(state) => Run::new(opts.clone(), state, key, false),
        Err(e) => {
            let mut p = Plan::new();
            for t in targets {
                p.targets.push(plan::TargetPlan {
                    target: t.id(),
                    ok: false,
                    error: Some(e.to_string()),
                    notes: Vec::new(),
                    unchanged_users: 0,
                    unchanged_groups: 0,
                });
            }
            return p;
        }
    };
    for t in targets {
        t.plan(&mut run).await;
    }
    run.plan
}

/// Why a run could not start at all (per-object and per-target failures are in the report).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    State(#[from] crate::core::state::StateError),
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the fingerprint key: {0}")]
    Key(#[from] crate::secret::SecretError),
}
