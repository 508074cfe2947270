//! The D-Bus API and its policy on a private dbus-daemon (configured like the system bus, with
//! the shipped policy file), with the scripted engine behind the daemon loop.
//!
//! Time is tokio's, paused. A D-Bus call is answered through another process (the dbus-daemon),
//! and while the runtime waits for that answer tokio would advance a paused clock to the next
//! timer (the hourly resync, say). So the tests hold the clock still ([`held`]) while they talk
//! to the bus, and move it on purpose: `tokio::time::advance` for timers with a known deadline
//! (a scripted run's duration, the D-Bus retry), or a stretch without the hold where only the
//! daemon's own timers and inotify are at work (the debounce of a spec change).

mod daemon_support;

use std::fmt::Debug;
use std::future::Future;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use daemon_support::{held, NixLayout, PrivateBus, ScriptedEngine};
use futures::StreamExt as _;
use paasd::cli::client::{self as ctl, Paasd1Proxy};
use paasd::daemon::dbus::Bus;
use paasd::daemon::dbus::NAME;
use paasd::daemon::{self, Config, Signals};
use tokio::sync::mpsc;

const HELPER_ENV: &str = "PAASD_TEST_CLIENT_BUS";
const DEBOUNCE: Duration = Duration::from_millis(100);
/// A run that a trigger starts comes within this much tokio time: long before the resync.
const SOON: Duration = Duration::from_secs(60);

/// Not a test on its own: the body of the client that `as_user` runs in a child process under
/// another uid. It calls Status() and prints `OK <json>` or `ERR <message>`.
#[tokio::test]
async fn client_helper() {
    let Ok(addr) = std::env::var(HELPER_ENV) else {
        return;
    };
    let bus = Bus::Address(addr);
    let r = async {
        let conn = zbus::connection::Builder::address(match &bus {
            Bus::Address(a) => a.as_str(),
            _ => unreachable!(),
        })?
        .build()
        .await?;
        let proxy = Paasd1Proxy::new(&conn).await?;
        proxy.status().await
    }
    .await;
    match r {
        Ok(json) => println!("\nVERDICT: OK {json}"),
        Err(e) => println!("\nVERDICT: ERR {:#}", ctl::explain(e, &bus)),
    }
}

/// A copy of this test binary that any uid may execute (the build tree may sit in a directory
/// other users cannot enter).
fn shared_exe() -> &'static std::path::Path {
    static EXE: OnceLock<(tempfile::TempDir, std::path::PathBuf)> = OnceLock::new();
    &EXE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let exe = dir.path().join("daemon_dbus");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, exe)
    })
    .1
}

/// Run `client_helper` as `uid:gid` and return its verdict line.
fn as_user(address: &str, uid: u32, gid: u32) -> String {
    let out = Command::new(shared_exe())
        .current_dir("/")
        .args([
            "--exact",
            "client_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, address)
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    stdout
        .lines()
        .find_map(|l| l.split_once("VERDICT: ").map(|(_, v)| v.to_string()))
        .unwrap_or_else(|| {
            panic!(
                "the client printed no verdict: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

fn start(
    engine: Arc<ScriptedEngine>,
    layout: &NixLayout,
    bus: &PrivateBus,
) -> (
    mpsc::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    start_on(engine, layout, bus.address.clone())
}

fn start_on(
    engine: Arc<ScriptedEngine>,
    layout: &NixLayout,
    address: String,
) -> (
    mpsc::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (_hup, hup_rx) = mpsc::channel(1);
    let (term, term_rx) = mpsc::channel(1);
    let cfg = Config {
        spec_path: layout.spec_path(),
        state_dir: layout.root.join("state"),
        resync: Duration::from_secs(3600),
        debounce: DEBOUNCE,
        bus: Bus::Address(address),
        verify_passwords: false,
    };
    let task = tokio::spawn(daemon::run(
        engine,
        cfg,
        Signals {
            hup: hup_rx,
            term: term_rx,
        },
    ));
    (term, task)
}

async fn connect(bus: &PrivateBus) -> zbus::Connection {
    zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .build()
        .await
        .unwrap()
}

/// Wait until the daemon owns its name: on NameOwnerChanged, not by polling.
async fn wait_for_name(conn: &zbus::Connection) {
    let dbus = zbus::fdo::DBusProxy::new(conn).await.unwrap();
    let mut changes = dbus
        .receive_name_owner_changed_with_args(&[(0, NAME)])
        .await
        .unwrap();
    if dbus.name_has_owner(NAME.try_into().unwrap()).await.unwrap() {
        return;
    }
    while let Some(change) = changes.next().await {
        if change.args().unwrap().new_owner().is_some() {
            return;
        }
    }
    panic!("the NameOwnerChanged stream ended");
}

async fn client(bus: &PrivateBus) -> Paasd1Proxy<'static> {
    let conn = connect(bus).await;
    wait_for_name(&conn).await;
    // No property cache: every read asks the daemon.
    Paasd1Proxy::builder(&conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap()
}

/// Ask until `ok` holds, for what the daemon's loop records right after an event the test saw
/// (the engine returned, a change was debounced). Every ask is a round trip through the
/// dbus-daemon, during which the loop runs; the number of asks is a hang guard.
async fn until<T: Debug, F: Future<Output = T>>(
    what: &str,
    mut ask: impl FnMut() -> F,
    ok: impl Fn(&T) -> bool,
) -> T {
    let mut last = None;
    for _ in 0..100 {
        let v = ask().await;
        if ok(&v) {
            return v;
        }
        last = Some(v);
        tokio::task::yield_now().await;
    }
    panic!("{what}: still {last:?} after 100 round trips");
}

#[tokio::test(start_paused = true)]
async fn the_api_reports_runs_plans_status_and_spec_errors() {
    let bus = PrivateBus::start("staff");
    let layout = NixLayout::new(r#"{"users": {"alice": {}, "bob": {}}, "fail": ["alice"]}"#);
    let engine = ScriptedEngine::new();
    let (term, task) = start(engine.clone(), &layout, &bus);
    let (p, mut finished) = held("the first run and the API", async {
        let p = client(&bus).await;
        engine.wait_finished(1, SOON).await;

        // Properties (the engine returned; the loop records the result right after).
        let last = until(
            "LastResult",
            || async { p.last_result().await.unwrap() },
            |s| !s.is_empty(),
        )
        .await;
        assert_eq!(p.generation().await.unwrap(), 1);
        assert_eq!(
            last,
            "0 created, 0 updated, 0 deleted, 1 unchanged, 1 failed"
        );
        assert_eq!(p.spec_error().await.unwrap(), "");

        // Status: per user × target.
        let status: serde_json::Value = serde_json::from_str(&p.status().await.unwrap()).unwrap();
        assert_eq!(status["users"]["alice"]["lldap"]["state"], "failed");
        assert_eq!(
            status["users"]["alice"]["lldap"]["lastError"],
            "503 Service Unavailable"
        );
        assert_eq!(status["users"]["bob"]["lldap"]["state"], "ok");
        assert!(status["nextResync"].is_string());
        let table = ctl::render_status(&status);
        assert!(table.contains("alice  ✗"), "{table}");

        // Reconcile waits for a fresh run and returns its report; the signal follows.
        let mut finished = p.receive_reconcile_finished().await.unwrap();
        let r: serde_json::Value = serde_json::from_str(&p.reconcile().await.unwrap()).unwrap();
        assert_eq!(r["generation"], 1);
        assert_eq!(r["failed"], true);
        assert_eq!(
            r["summary"],
            "0 created, 0 updated, 0 deleted, 1 unchanged, 1 failed"
        );
        assert_eq!(engine.runs().len(), 2);
        let sig = finished.next().await.unwrap();
        assert_eq!(
            sig.args().unwrap().summary,
            "0 created, 0 updated, 0 deleted, 1 unchanged, 1 failed"
        );

        // Plan.
        let plan: serde_json::Value = serde_json::from_str(&p.plan().await.unwrap()).unwrap();
        assert_eq!(
            plan["text"],
            "  + lldap user \"alice\" (create)\n  + lldap user \"bob\" (create)\n\nPlan: 2 to create, 0 to change, 0 to delete.\n"
        );
        assert_eq!(plan["empty"], false);
        (p, finished)
    })
    .await;

    // An invalid new spec: kept out, reported, the last good spec stays in force. The clock
    // runs (the debounce); nothing but the daemon's own timers and inotify is awaited.
    layout.switch(
        "bad",
        r#"{"invalid": "\"alice-at-example.com\" is not an e-mail address"}"#,
    );
    tokio::time::sleep(DEBOUNCE * 2).await;
    assert_eq!(engine.runs().len(), 2, "an invalid spec starts no run");

    held("the spec error over D-Bus", async {
        let spec_error = until(
            "SpecError",
            || async { p.spec_error().await.unwrap() },
            |s| !s.is_empty(),
        )
        .await;
        assert_eq!(
            spec_error,
            "users.alice.email: \"alice-at-example.com\" is not an e-mail address\n\
             users.bob.groups[0]: group \"x\" is not declared under groups"
        );
        assert_eq!(p.generation().await.unwrap(), 1);
        let reload = p.reload().await.unwrap_err();
        match reload {
            zbus::Error::MethodError(name, Some(msg), _) => {
                assert_eq!(name.as_str(), "org.paasd.Paasd1.Error.SpecInvalid");
                assert!(msg.contains("users.alice.email"), "{msg}");
            }
            other => panic!("unexpected {other:?}"),
        }
        let r: serde_json::Value = serde_json::from_str(&p.reconcile().await.unwrap()).unwrap();
        assert_eq!(r["generation"], 1, "the last good spec is applied");
        assert!(r["specError"]
            .as_str()
            .unwrap()
            .contains("users.alice.email"));
        assert_eq!(engine.runs().len(), 3);
        assert_eq!(engine.runs().last().unwrap().users, vec!["alice", "bob"]);
        // The signal of that run, before the clock runs again.
        finished.next().await.unwrap();
    })
    .await;

    // Fixed: a new generation, the error clears.
    layout.switch("good", r#"{"users": {"carol": {}}}"#);
    let runs = engine.wait_finished(4, SOON).await;
    assert_eq!(runs[3].users, vec!["carol"]);
    held("the fixed spec over D-Bus", async {
        assert_eq!(p.spec_error().await.unwrap(), "");
        assert_eq!(p.generation().await.unwrap(), 2);
        term.send(()).await.unwrap();
        task.await.unwrap().unwrap();
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn the_policy_admits_root_and_the_admin_group_and_denies_everyone_else() {
    let layout = NixLayout::new(r#"{"users": {"alice": {}}}"#);
    held("the policy checks", async {
        // nobody (uid 65534, group nogroup) is not in the admin group "staff": denied.
        let bus = PrivateBus::start("staff");
        let engine = ScriptedEngine::new();
        let (term, task) = start(engine.clone(), &layout, &bus);
        let _ = client(&bus).await;
        engine.wait_finished(1, SOON).await;
        let verdict = tokio::task::spawn_blocking({
            let a = bus.address.clone();
            move || as_user(&a, 65534, 65534)
        })
        .await
        .unwrap();
        assert!(verdict.starts_with("ERR access denied"), "{verdict}");
        // root is admitted.
        let verdict = tokio::task::spawn_blocking({
            let a = bus.address.clone();
            move || as_user(&a, 0, 0)
        })
        .await
        .unwrap();
        assert!(verdict.starts_with("OK {"), "{verdict}");
        term.send(()).await.unwrap();
        task.await.unwrap().unwrap();

        // With the admin group set to nobody's group, nobody is admitted.
        let bus = PrivateBus::start("nogroup");
        let engine = ScriptedEngine::new();
        let (term, task) = start(engine.clone(), &layout, &bus);
        let _ = client(&bus).await;
        engine.wait_finished(1, SOON).await;
        let verdict = tokio::task::spawn_blocking({
            let a = bus.address.clone();
            move || as_user(&a, 65534, 65534)
        })
        .await
        .unwrap();
        assert!(verdict.starts_with("OK {"), "{verdict}");
        term.send(()).await.unwrap();
        task.await.unwrap().unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_daemon_is_told_it_is_not_running() {
    let bus = PrivateBus::start("staff");
    let verdict = tokio::task::spawn_blocking({
        let a = bus.address.clone();
        move || as_user(&a, 0, 0)
    })
    .await
    .unwrap();
    assert!(verdict.starts_with("ERR paasd is not running"), "{verdict}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unprivileged_daemon_cannot_take_the_name() {
    // Only the service user may own org.paasd.Paasd1 (root stands in for it on this test bus):
    // a client as nobody is refused.
    let bus = PrivateBus::start("staff");
    let conn = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .build()
        .await
        .unwrap();
    // the service user may own it…
    conn.request_name("org.paasd.Paasd1").await.unwrap();
    conn.release_name("org.paasd.Paasd1").await.unwrap();
    // …and the policy forbids anyone else: checked through dbus-send as nobody.
    let out = tokio::task::spawn_blocking({
        let a = bus.address.clone();
        move || {
            Command::new("dbus-send")
                .arg(format!("--bus={a}"))
                .args([
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.RequestName",
                    "string:org.paasd.Paasd1",
                    "uint32:4",
                ])
                .uid(65534)
                .gid(65534)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("AccessDenied"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn status_answers_while_a_reconcile_call_waits_for_its_run() {
    let bus = PrivateBus::start("staff");
    let apply = Duration::from_millis(1500);
    let layout = NixLayout::new(r#"{"users": {"alice": {}}, "applyMs": 1500}"#);
    let engine = ScriptedEngine::new();
    held("a Reconcile call and Status", async {
        let (term, task) = start(engine.clone(), &layout, &bus);
        let p = client(&bus).await;
        engine.wait_started(1, SOON).await;
        tokio::time::advance(apply).await;
        engine.wait_finished(1, SOON).await;
        let waiting = tokio::spawn({
            let p = p.clone();
            async move { p.reconcile().await }
        });
        engine.wait_started(2, SOON).await;
        // The clock is held: the run cannot end until the test advances it. Status answers
        // meanwhile.
        let status: serde_json::Value = serde_json::from_str(&p.status().await.unwrap()).unwrap();
        assert_eq!(status["running"], true);
        assert!(
            engine.runs()[1].finished.is_none() && !waiting.is_finished(),
            "Status answered while the run and the Reconcile call were in progress"
        );
        tokio::time::advance(apply).await;
        let r: serde_json::Value = serde_json::from_str(&waiting.await.unwrap().unwrap()).unwrap();
        assert_eq!(r["failed"], false);
        assert_eq!(engine.runs().len(), 2);
        term.send(()).await.unwrap();
        task.await.unwrap().unwrap();
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn the_api_comes_up_when_the_bus_comes_up_after_the_daemon() {
    // paasd starts before the bus is there (or before dbus has loaded its policy): it reconciles
    // anyway and serves the API as soon as the bus lets it, without a restart.
    let dir = PrivateBus::dir();
    let address = PrivateBus::address_in(&dir);
    let layout = NixLayout::new(r#"{"users": {"alice": {}}}"#);
    let engine = ScriptedEngine::new();
    held("the late bus", async {
        // The daemon's first try fails (no socket); it retries after 1 s, then 2 s, 4 s …
        let (term, task) = start_on(engine.clone(), &layout, address);
        engine.wait_finished(1, SOON).await;
        let bus = PrivateBus::start_in("staff", dir);
        let conn = connect(&bus).await;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
        let has_owner = || async { dbus.name_has_owner(NAME.try_into().unwrap()).await.unwrap() };
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(!has_owner().await, "no retry before 1 s");
        // The first retry, 1 s after the failed start, takes the name.
        tokio::time::advance(Duration::from_millis(2)).await;
        until(
            "the name, owned after the first retry",
            has_owner,
            |owned| *owned,
        )
        .await;
        let p = client(&bus).await;
        assert_eq!(p.generation().await.unwrap(), 1);
        let status: serde_json::Value = serde_json::from_str(&p.status().await.unwrap()).unwrap();
        assert_eq!(status["users"]["alice"]["lldap"]["state"], "ok");
        assert_eq!(
            engine.runs().len(),
            1,
            "the API came up without another run"
        );
        term.send(()).await.unwrap();
        task.await.unwrap().unwrap();
    })
    .await;
}
