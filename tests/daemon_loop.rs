//! The daemon loop with a scripted engine: spec watching through NixOS-style symlink swaps,
//! debounce, coalescing, SIGHUP, invalid specs, SIGTERM during a run.

mod daemon_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use daemon_support::{NixLayout, ScriptedEngine};
use paasd::daemon::{self, dbus::Bus, Config, Signals};
use tokio::sync::mpsc;

struct Running {
    hup: mpsc::Sender<()>,
    term: mpsc::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn start(engine: Arc<ScriptedEngine>, layout: &NixLayout, bus: Bus) -> Running {
    start_with(engine, layout, bus, Duration::from_secs(3600))
}

fn start_with(
    engine: Arc<ScriptedEngine>,
    layout: &NixLayout,
    bus: Bus,
    resync: Duration,
) -> Running {
    let (hup, hup_rx) = mpsc::channel(1);
    let (term, term_rx) = mpsc::channel(1);
    let cfg = Config {
        spec_path: layout.spec_path(),
        state_dir: layout.root.join("state"),
        resync,
        debounce: Duration::from_millis(200),
        bus,
        verify_passwords: true,
    };
    let task = tokio::spawn(daemon::run(
        engine,
        cfg,
        Signals {
            hup: hup_rx,
            term: term_rx,
        },
    ));
    Running { hup, term, task }
}

impl Running {
    async fn stop(self) {
        self.term.send(()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the daemon stops within 5 s")
            .unwrap()
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_of_the_middle_link_reconciles_the_new_spec_within_two_seconds() {
    let layout = NixLayout::new(r#"{"users": {"alice": {}}}"#);
    let engine = ScriptedEngine::new();
    let d = start(engine.clone(), &layout, Bus::None);
    let runs = engine.wait_finished(1, Duration::from_secs(5)).await;
    assert_eq!(runs[0].users, vec!["alice"]);
    assert_eq!(runs[0].generation, 1);

    // Generation 1 → 2: swap /etc/static.
    let swapped = Instant::now();
    layout.switch("g1", r#"{"users": {"alice": {}, "bob": {}}}"#);
    let runs = engine.wait_started(2, Duration::from_secs(2)).await;
    let latency = runs[1].started - swapped;
    assert!(latency < Duration::from_secs(2), "latency {latency:?}");
    assert!(
        latency >= Duration::from_millis(200),
        "the change is debounced: {latency:?}"
    );
    assert_eq!(runs[1].users, vec!["alice", "bob"]);
    assert_eq!(runs[1].generation, 2);
    eprintln!("spec swap → reconcile start: {latency:?}");

    // And again: the watches followed the chain to the new store path.
    layout.switch("g2", r#"{"users": {"carol": {}}}"#);
    let runs = engine.wait_started(3, Duration::from_secs(2)).await;
    assert_eq!(runs[2].users, vec!["carol"]);
    assert_eq!(runs[2].generation, 3);

    // Replacing the first link (a hand edit on a non-NixOS host) is seen too.
    let plain = layout.root.join("plain.json");
    std::fs::write(&plain, r#"{"users": {"dave": {}}}"#).unwrap();
    std::fs::rename(&plain, layout.spec_path()).unwrap();
    let runs = engine.wait_started(4, Duration::from_secs(2)).await;
    assert_eq!(runs[3].users, vec!["dave"]);
    // An in-place write of the (now regular) file as well.
    std::fs::write(layout.spec_path(), r#"{"users": {"erin": {}}}"#).unwrap();
    let runs = engine.wait_started(5, Duration::from_secs(2)).await;
    assert_eq!(runs[4].users, vec!["erin"]);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_changes_is_debounced_into_one_run() {
    let layout = NixLayout::new(r#"{"users": {"alice": {}}}"#);
    let engine = ScriptedEngine::new();
    let d = start(engine.clone(), &layout, Bus::None);
    engine.wait_finished(1, Duration::from_secs(5)).await;
    for i in 0..5 {
        layout.switch(
            &format!("b{i}"),
            &format!(r#"{{"users": {{"u{i}": {{}}}}}}"#),
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    engine.wait_finished(2, Duration::from_secs(3)).await;
    // Nothing else follows.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let runs = engine.runs();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(runs[1].users, vec!["u4"]);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_during_a_run_coalesce_into_one_follow_up_run() {
    let layout = NixLayout::new(r#"{"users": {"alice": {}}, "applyMs": 1500}"#);
    let engine = ScriptedEngine::new();
    let d = start(engine.clone(), &layout, Bus::None);
    engine.wait_started(1, Duration::from_secs(5)).await;
    // Three separate changes (each longer apart than the debounce) while the first run is busy.
    for i in 0..3 {
        layout.switch(
            &format!("c{i}"),
            &format!(r#"{{"users": {{"u{i}": {{}}}}, "applyMs": 50}}"#),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    d.hup.send(()).await.unwrap();
    let runs = engine.wait_finished(2, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let runs_after = engine.runs();
    assert_eq!(
        runs_after.len(),
        2,
        "one follow-up run only: {runs_after:#?}"
    );
    assert_eq!(
        runs[1].users,
        vec!["u2"],
        "the follow-up applies the newest spec"
    );
    assert!(
        runs[1].started >= runs[0].finished.unwrap(),
        "runs never overlap"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reconciles_without_a_spec_change() {
    let layout = NixLayout::new(r#"{"users": {"alice": {}}}"#);
    let engine = ScriptedEngine::new();
    let d = start(engine.clone(), &layout, Bus::None);
    engine.wait_finished(1, Duration::from_secs(5)).await;
    d.hup.send(()).await.unwrap();
    let runs = engine.wait_finished(2, Duration::from_secs(2)).await;
    assert_eq!(runs[1].generation, 1, "same spec, same generation");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cancels_the_running_apply_and_waits_for_it() {
    let layout = NixLayout::new(r#"{"users": {"alice": {}}, "applyMs": 10000}"#);
    let engine = ScriptedEngine::new();
    let d = start(engine.clone(), &layout, Bus::None);
    engine.wait_started(1, Duration::from_secs(5)).await;
    let t = Instant::now();
    d.stop().await;
    assert!(t.elapsed() < Duration::from_secs(2));
    let runs = engine.runs();
    assert!(runs[0].cancelled, "{runs:#?}");
    assert!(
        runs[0].finished.is_some(),
        "stop waited for the apply to return"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_spec_at_start_waits_for_a_valid_one() {
    let layout = NixLayout::new(r#"{"invalid": "not an e-mail address"}"#);
    let engine = ScriptedEngine::new();
    let d = start(engine.clone(), &layout, Bus::None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(engine.runs().is_empty());
    layout.switch("ok", r#"{"users": {"alice": {}}}"#);
    let runs = engine.wait_finished(1, Duration::from_secs(3)).await;
    assert_eq!(runs[0].generation, 1);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_resync_runs_with_jitter_and_verifies_passwords() {
    let layout = NixLayout::new(r#"{"users": {"alice": {}}}"#);
    let engine = ScriptedEngine::new();
    let d = start_with(
        engine.clone(),
        &layout,
        Bus::None,
        Duration::from_millis(400),
    );
    let runs = engine.wait_finished(3, Duration::from_secs(3)).await;
    assert!(
        !runs[0].verify_passwords,
        "the start-up run trusts the fingerprints"
    );
    assert!(
        runs[1].verify_passwords && runs[2].verify_passwords,
        "{runs:#?}"
    );
    for w in runs.windows(2).take(2) {
        let gap = w[1].started - w[0].finished.unwrap();
        assert!(
            // ± 10 % jitter: 360–440 ms (a loaded machine may add to it, never subtract)
            gap >= Duration::from_millis(355) && gap <= Duration::from_secs(2),
            "resync gap {gap:?} (400 ms ± 10 %)"
        );
    }
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_that_does_not_exist_yet_is_picked_up_when_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (_hup, hup_rx) = mpsc::channel(1);
    let (term, term_rx) = mpsc::channel(1);
    let engine = ScriptedEngine::new();
    let cfg = Config {
        spec_path: root.join("etc/paas/spec.json"),
        state_dir: root.join("state"),
        resync: Duration::from_secs(3600),
        debounce: Duration::from_millis(200),
        bus: Bus::None,
        verify_passwords: false,
    };
    let task = tokio::spawn(daemon::run(
        engine.clone(),
        cfg,
        Signals {
            hup: hup_rx,
            term: term_rx,
        },
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(engine.runs().is_empty());
    std::fs::create_dir_all(root.join("etc/paas")).unwrap();
    std::fs::write(
        root.join("etc/paas/spec.json"),
        r#"{"users": {"alice": {}}}"#,
    )
    .unwrap();
    let runs = engine.wait_finished(1, Duration::from_secs(3)).await;
    assert_eq!(runs[0].users, vec!["alice"]);
    // The watches reached the new directory: a later edit is seen as well.
    std::fs::write(root.join("etc/paas/spec.json"), r#"{"users": {"bob": {}}}"#).unwrap();
    let runs = engine.wait_finished(2, Duration::from_secs(3)).await;
    assert_eq!(runs[1].users, vec!["bob"]);
    term.send(()).await.unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_during_a_run_of_the_same_spec_adds_no_run() {
    // nixos-rebuild: the spec swap starts a run, the unit reload (SIGHUP) follows it.
    let layout = NixLayout::new(r#"{"users": {"alice": {}}}"#);
    let engine = ScriptedEngine::new();
    let d = start(engine.clone(), &layout, Bus::None);
    engine.wait_finished(1, Duration::from_secs(5)).await;
    layout.switch("g1", r#"{"users": {"bob": {}}, "applyMs": 600}"#);
    engine.wait_started(2, Duration::from_secs(2)).await;
    d.hup.send(()).await.unwrap();
    engine.wait_finished(2, Duration::from_secs(3)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(engine.runs().len(), 2, "{:#?}", engine.runs());
    // Idle, a reload always reconciles.
    d.hup.send(()).await.unwrap();
    engine.wait_finished(3, Duration::from_secs(3)).await;
    d.stop().await;
}
