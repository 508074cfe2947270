//! Shared helpers of the daemon tests: a NixOS-like spec layout, a private dbus-daemon with the
//! shipped policy, and a scripted engine for the loop tests.
#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::{symlink, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use paasd::core::id::TargetId;
use paasd::core::plan::{Change, ObjectKind, Op};
use paasd::core::spec::SpecProblem as Problem;
use paasd::daemon::reconciler::{Expected, Reconciler};
use paasd::engine::report::TargetState;
use paasd::engine::{Options, Outcome, Plan, Report, TargetReport};
use tokio::sync::watch;
use tokio::time::Instant;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The NixOS layout, under `root`:
/// `etc/paas/spec.json → etc/static/paas/spec.json`, `etc/static → store/<g>-etc`,
/// `store/<g>-etc/paas/spec.json → store/<g>-spec.json`.
pub struct NixLayout {
    pub root: PathBuf,
    pub dir: tempfile::TempDir,
}

impl NixLayout {
    pub fn new(first: &str) -> NixLayout {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("etc/paas")).unwrap();
        std::fs::create_dir_all(root.join("store")).unwrap();
        let l = NixLayout { root, dir };
        l.switch("g0", first);
        symlink(
            l.root.join("etc/static/paas/spec.json"),
            l.root.join("etc/paas/spec.json"),
        )
        .unwrap();
        l
    }

    pub fn spec_path(&self) -> PathBuf {
        self.root.join("etc/paas/spec.json")
    }

    /// Activate a new generation as NixOS does: build it in the store, then atomically rename a
    /// new `etc/static` link over the old one.
    pub fn switch(&self, gen: &str, content: &str) {
        let store = self.root.join("store");
        let file = store.join(format!("{gen}-spec.json"));
        std::fs::write(&file, content).unwrap();
        let etc = store.join(format!("{gen}-etc"));
        std::fs::create_dir_all(etc.join("paas")).unwrap();
        symlink(&file, etc.join("paas/spec.json")).unwrap();
        let tmp = self.root.join("etc/.static.tmp");
        let _ = std::fs::remove_file(&tmp);
        symlink(&etc, &tmp).unwrap();
        std::fs::rename(&tmp, self.root.join("etc/static")).unwrap();
    }
}

/// A private dbus-daemon configured like Debian's system bus plus the shipped policy file
/// (with the admin group replaced by `admin_group`).
pub struct PrivateBus {
    pub address: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl PrivateBus {
    pub fn start(admin_group: &str) -> PrivateBus {
        PrivateBus::start_in(admin_group, PrivateBus::dir())
    }

    /// A directory for a bus socket that unprivileged test clients can reach.
    pub fn dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    /// The address the bus of [`PrivateBus::start_in`]`(_, dir)` will listen on.
    pub fn address_in(dir: &tempfile::TempDir) -> String {
        format!("unix:path={}", dir.path().join("bus").display())
    }

    /// Starts the bus with its socket in `dir` (from [`PrivateBus::dir`]).
    pub fn start_in(admin_group: &str, dir: tempfile::TempDir) -> PrivateBus {
        let policy = std::fs::read_to_string(repo_root().join("dist/org.paasd.Paasd1.conf"))
            .unwrap()
            .replace("group=\"paas-admin\"", &format!("group=\"{admin_group}\""))
            // The daemon under test runs as root: root takes the place of the paasd user.
            .replace("<policy user=\"paasd\">", "<policy user=\"root\">");
        let policy_path = dir.path().join("org.paasd.Paasd1.conf");
        std::fs::write(&policy_path, policy).unwrap();
        let socket = dir.path().join("bus");
        let conf = format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Peer"/>
  </policy>
  <include>{policy}</include>
</busconfig>
"#,
            socket = socket.display(),
            policy = policy_path.display()
        );
        let conf_path = dir.path().join("bus.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf_path.display()))
            .args(["--nofork", "--nopidfile", "--print-address"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("dbus-daemon (package dbus) must be installed");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line.trim().to_string();
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon printed {address:?}"
        );
        PrivateBus {
            address,
            child,
            _dir: dir,
        }
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One apply the scripted engine saw. Times are tokio's (paused in the loop and D-Bus tests).
#[derive(Debug, Clone)]
pub struct SeenRun {
    pub generation: u64,
    pub users: Vec<String>,
    pub started: Instant,
    pub finished: Option<Instant>,
    pub cancelled: bool,
    pub verify_passwords: bool,
}

/// An engine scripted by the spec itself: `{"users": {...}, "applyMs": 0, "fail": ["alice"],
/// "invalid": "message"}`. `applyMs` is tokio time: one "object" every 10 ms.
pub struct ScriptedEngine {
    runs: watch::Sender<Vec<SeenRun>>,
}

impl ScriptedEngine {
    pub fn new() -> Arc<ScriptedEngine> {
        Arc::new(ScriptedEngine {
            runs: watch::Sender::new(Vec::new()),
        })
    }

    pub fn runs(&self) -> Vec<SeenRun> {
        self.runs.borrow().clone()
    }

    /// Wait until the runs satisfy `done`. `within` is tokio time: with a paused clock it bounds
    /// what may happen first (e.g. "before a resync could come"), it is no wall-clock limit.
    async fn wait(
        &self,
        what: &str,
        within: Duration,
        done: impl FnMut(&Vec<SeenRun>) -> bool,
    ) -> Vec<SeenRun> {
        let mut rx = self.runs.subscribe();
        let seen = tokio::time::timeout(within, async {
            rx.wait_for(done)
                .await
                .map(|runs| runs.clone())
                .expect("the engine holds the sender")
        })
        .await;
        seen.unwrap_or_else(|_| {
            panic!(
                "expected {what} within {within:?} of tokio time, saw {:#?}",
                self.runs()
            )
        })
    }

    /// Wait until `n` applies have finished.
    pub async fn wait_finished(&self, n: usize, within: Duration) -> Vec<SeenRun> {
        self.wait(&format!("{n} finished runs"), within, |runs| {
            runs.iter().filter(|r| r.finished.is_some()).count() >= n
        })
        .await
    }

    /// Wait until `n` applies have started.
    pub async fn wait_started(&self, n: usize, within: Duration) -> Vec<SeenRun> {
        self.wait(&format!("{n} started runs"), within, |runs| runs.len() >= n)
            .await
    }
}

/// The longest a test may hold tokio's paused clock while it waits for real I/O: a hang guard,
/// not an assertion about speed.
pub const HANG_GUARD: Duration = Duration::from_secs(120);

/// Run `f` with tokio's paused clock held still: while a blocking task runs, tokio does not
/// auto-advance a paused clock (see `tokio::time::pause`). For waits on I/O that another process
/// answers (the dbus-daemon, a child process): without the hold, the clock would jump to the next
/// timer (the resync, a hang guard) whenever the runtime is idle before the answer is there.
/// Timers still fire when the test calls `tokio::time::advance`.
///
/// Panics when `f` takes longer than [`HANG_GUARD`] of real time (a hang, not a slow machine).
pub async fn held<F: Future>(what: &str, f: F) -> F::Output {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let guard = tokio::task::spawn_blocking(move || {
        matches!(
            released.recv_timeout(HANG_GUARD),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        )
    });
    tokio::pin!(guard);
    tokio::select! {
        biased;
        out = f => {
            drop(release);
            let _ = guard.await;
            out
        }
        _ = &mut guard => panic!("hang guard: {what} did not finish within {HANG_GUARD:?} of real time"),
    }
}

fn users_of(spec: &serde_json::Value) -> Vec<String> {
    spec["users"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

impl Reconciler for ScriptedEngine {
    type Spec = serde_json::Value;

    fn load(&self, path: &Path) -> Result<serde_json::Value, Vec<Problem>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![Problem {
                path: String::new(),
                message: e.to_string(),
            }]
        })?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            vec![Problem {
                path: String::new(),
                message: e.to_string(),
            }]
        })?;
        if let Some(m) = v["invalid"].as_str() {
            return Err(vec![
                Problem {
                    path: "users.alice.email".into(),
                    message: m.into(),
                },
                Problem {
                    path: "users.bob.groups[0]".into(),
                    message: "group \"x\" is not declared under groups".into(),
                },
            ]);
        }
        Ok(v)
    }

    fn fingerprint(&self, spec: &serde_json::Value) -> String {
        paasd::daemon::fingerprint_bytes(spec.to_string().as_bytes())
    }

    fn expected(&self, spec: &serde_json::Value) -> Expected {
        Expected {
            targets: vec![TargetId::Lldap],
            users: users_of(spec)
                .into_iter()
                .map(|u| (u, vec![TargetId::Lldap]))
                .collect(),
        }
    }

    async fn plan(&self, spec: serde_json::Value, _opts: Options) -> Plan {
        let mut p = Plan::new();
        for u in users_of(&spec) {
            p.plan.changes.push(Change {
                target: TargetId::Lldap,
                kind: ObjectKind::User,
                name: u,
                op: Op::Create,
                reason: None,
                fields: Vec::new(),
                actions: Vec::new(),
            });
        }
        p
    }

    async fn apply(&self, spec: serde_json::Value, opts: Options) -> Report {
        let users = users_of(&spec);
        let mut idx = 0;
        self.runs.send_modify(|runs| {
            runs.push(SeenRun {
                generation: opts.generation,
                users: users.clone(),
                started: Instant::now(),
                finished: None,
                cancelled: false,
                verify_passwords: opts.verify_passwords,
            });
            idx = runs.len() - 1;
        });
        let ms = spec["applyMs"].as_u64().unwrap_or(0);
        let deadline = Instant::now() + Duration::from_millis(ms);
        let mut cancelled = false;
        // One "object" every 10 ms; cancellation is honoured between objects.
        while Instant::now() < deadline {
            if opts.cancel.is_cancelled() {
                cancelled = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let fail: Vec<String> = spec["fail"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let mut report = Report::new(opts.generation);
        for u in &users {
            let failed = fail.contains(u);
            report.objects.push(paasd::engine::ObjectReport {
                target: TargetId::Lldap,
                kind: ObjectKind::User,
                name: u.clone(),
                outcome: if failed {
                    Outcome::Failed
                } else {
                    Outcome::Unchanged
                },
                op: None,
                error: failed.then(|| "503 Service Unavailable".to_string()),
            });
            if failed {
                report.failed += 1;
            } else {
                report.unchanged += 1;
            }
        }
        report.cancelled = cancelled;
        let mut lldap = TargetReport::new(TargetId::Lldap, TargetState::Applied);
        lldap.ok = report.failed == 0;
        report.targets.push(lldap);
        self.runs.send_modify(|runs| {
            runs[idx].finished = Some(Instant::now());
            runs[idx].cancelled = cancelled;
        });
        report
    }
}
