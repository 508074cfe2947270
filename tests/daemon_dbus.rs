//! The D-Bus API and its policy on a private dbus-daemon (configured like the system bus, with
//! the shipped policy file), with the scripted engine behind the daemon loop.

mod daemon_support;

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use daemon_support::{NixLayout, PrivateBus, ScriptedEngine};
use futures::StreamExt as _;
use paasd::cli::client::{self as ctl, Paasd1Proxy};
use paasd::daemon::dbus::Bus;
use paasd::daemon::{self, Config, Signals};
use tokio::sync::mpsc;

const HELPER_ENV: &str = "PAASD_TEST_CLIENT_BUS";

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
        debounce: Duration::from_millis(100),
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

async fn client(bus: &PrivateBus) -> Paasd1Proxy<'static> {
    let conn = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .build()
        .await
        .unwrap();
    // Wait for the daemon to own its name.
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
    for _ in 0..200 {
        if dbus
            .name_has_owner("org.paasd.Paasd1".try_into().unwrap())
            .await
            .unwrap()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // No property cache: every read asks the daemon.
    Paasd1Proxy::builder(&conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_reports_runs_plans_status_and_spec_errors() {
    let bus = PrivateBus::start("staff");
    let layout = NixLayout::new(r#"{"users": {"alice": {}, "bob": {}}, "fail": ["alice"]}"#);
    let engine = ScriptedEngine::new();
    let (term, task) = start(engine.clone(), &layout, &bus);
    let p = client(&bus).await;
    engine.wait_finished(1, Duration::from_secs(5)).await;

    // Properties (the engine returned; the loop records the result right after).
    let mut last = String::new();
    for _ in 0..200 {
        last = p.last_result().await.unwrap();
        if !last.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
    let sig = tokio::time::timeout(Duration::from_secs(2), finished.next())
        .await
        .unwrap()
        .unwrap();
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

    // An invalid new spec: kept out, reported, the last good spec stays in force.
    layout.switch(
        "bad",
        r#"{"invalid": "\"alice-at-example.com\" is not an e-mail address"}"#,
    );
    let mut spec_error = String::new();
    for _ in 0..200 {
        spec_error = p.spec_error().await.unwrap();
        if !spec_error.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
    assert_eq!(engine.runs().last().unwrap().users, vec!["alice", "bob"]);

    // Fixed: a new generation, the error clears.
    layout.switch("good", r#"{"users": {"carol": {}}}"#);
    engine.wait_finished(4, Duration::from_secs(3)).await;
    assert_eq!(p.spec_error().await.unwrap(), "");
    assert_eq!(p.generation().await.unwrap(), 2);

    term.send(()).await.unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_admits_root_and_the_admin_group_and_denies_everyone_else() {
    let layout = NixLayout::new(r#"{"users": {"alice": {}}}"#);

    // nobody (uid 65534, group nogroup) is not in the admin group "staff": denied.
    let bus = PrivateBus::start("staff");
    let engine = ScriptedEngine::new();
    let (term, task) = start(engine.clone(), &layout, &bus);
    let _ = client(&bus).await;
    engine.wait_finished(1, Duration::from_secs(5)).await;
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
    engine.wait_finished(1, Duration::from_secs(5)).await;
    let verdict = tokio::task::spawn_blocking({
        let a = bus.address.clone();
        move || as_user(&a, 65534, 65534)
    })
    .await
    .unwrap();
    assert!(verdict.starts_with("OK {"), "{verdict}");
    term.send(()).await.unwrap();
    task.await.unwrap().unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_answers_while_a_reconcile_call_waits_for_its_run() {
    let bus = PrivateBus::start("staff");
    let layout = NixLayout::new(r#"{"users": {"alice": {}}, "applyMs": 1500}"#);
    let engine = ScriptedEngine::new();
    let (term, task) = start(engine.clone(), &layout, &bus);
    let p = client(&bus).await;
    engine.wait_finished(1, Duration::from_secs(5)).await;
    let waiting = tokio::spawn({
        let p = p.clone();
        async move { p.reconcile().await }
    });
    engine.wait_started(2, Duration::from_secs(2)).await;
    let t = std::time::Instant::now();
    let status: serde_json::Value = serde_json::from_str(&p.status().await.unwrap()).unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(status["running"], true);
    let r: serde_json::Value = serde_json::from_str(&waiting.await.unwrap().unwrap()).unwrap();
    assert_eq!(r["failed"], false);
    term.send(()).await.unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_comes_up_when_the_bus_comes_up_after_the_daemon() {
    // paasd starts before the bus is there (or before dbus has loaded its policy): it reconciles
    // anyway and serves the API as soon as the bus lets it, without a restart.
    let dir = PrivateBus::dir();
    let address = PrivateBus::address_in(&dir);
    let layout = NixLayout::new(r#"{"users": {"alice": {}}}"#);
    let engine = ScriptedEngine::new();
    let (term, task) = start_on(engine.clone(), &layout, address);
    engine.wait_finished(1, Duration::from_secs(5)).await;
    let bus = PrivateBus::start_in("staff", dir);
    let conn = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .build()
        .await
        .unwrap();
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
    let mut owned = false;
    // Retries come after 1 s, then 2 s, 4 s …: within 10 s the name must be owned.
    for _ in 0..100 {
        if dbus
            .name_has_owner("org.paasd.Paasd1".try_into().unwrap())
            .await
            .unwrap()
        {
            owned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(owned, "the daemon never took its name on the late bus");
    let p = client(&bus).await;
    assert_eq!(p.generation().await.unwrap(), 1);
    let status: serde_json::Value = serde_json::from_str(&p.status().await.unwrap()).unwrap();
    assert_eq!(status["users"]["alice"]["lldap"]["state"], "ok");
    term.send(()).await.unwrap();
    task.await.unwrap().unwrap();
}
