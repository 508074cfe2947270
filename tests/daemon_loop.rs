//! The daemon loop with a scripted engine: spec watching through NixOS-style symlink swaps,
//! debounce, coalescing, SIGHUP, invalid specs, SIGTERM during a run.
//!
//! Time is tokio's, paused: the debounce, the scripted runs' durations and the resync are
//! timers, and tokio advances the clock to the next one whenever the runtime is idle. The only
//! real I/O is inotify, and the kernel queues its events within the `rename`/`write` call that
//! causes them, so the watcher has them at the runtime's next poll, before the clock can move
//! (tokio does not auto-advance in a poll that woke a task). Every step below is therefore
//! deterministic, and the assertions are about what runs, in which order, with which spec, and
//! at which point of tokio's clock.

mod daemon_support;

use std::sync::Arc;
use std::time::Duration;

use daemon_support::{NixLayout, ScriptedEngine};
use paasd::daemon::{self, dbus::Bus, Config, Signals};
use tokio::sync::mpsc;
use tokio::time::Instant;

const DEBOUNCE: Duration = Duration::from_millis(200);
const RESYNC: Duration = Duration::from_secs(3600);
/// The earliest a resync can come (RESYNC − 10 % jitter).
const RESYNC_MIN: Duration = Duration::from_secs(3240);
/// A run that a trigger starts comes within this much tokio time: long before any resync.
const SOON: Duration = Duration::from_secs(60);
/// Tokio's timers have a resolution of 1 ms: a timer set `d` after `t` fires at `t + d` or 1 ms
/// later.
const TICK: Duration = Duration::from_millis(1);

struct Running {
    hup: mpsc::Sender<()>,
    term: mpsc::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn start(engine: Arc<ScriptedEngine>, layout: &NixLayout, bus: Bus) -> Running {
    start_with(engine, layout, bus, RESYNC)
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
        debounce: DEBOUNCE,
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
    /// SIGTERM; returns once the daemon returned. The bound is tokio time (a run that ignored
    /// the cancellation would take its scripted duration).
    async fn stop(self) {
        self.term.send(()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the daemon stops within 5 s of tokio time")
            .unwrap()
            .unwrap();
    }
}

/// Let tokio's clock run up to just before the earliest resync; `engine` must see no run in
/// that time.
async fn nothing_else_follows(engine: &ScriptedEngine) {
    let before = engine.runs().len();
    tokio::time::sleep(RESYNC_MIN - Duration::from_secs(1)).await;
    let runs = engine.runs();
    assert_eq!(runs.len(), before, "no further run: {runs:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_swap_of_the_middle_link_reconciles_the_new_spec_one_debounce_later() {
    let layout = NixLayout::new(r#"{"users": {"alice": {}}}"#);
    let engine = ScriptedEngine::new();
    let d = start(engine.clone(), &layout, Bus::None);
    let runs = engine.wait_finished(1, SOON).await;
    assert_eq!(runs[0].users, vec!["alice"]);
    assert_eq!(runs[0].generation, 1);

    // Generation 1 → 2: swap /etc/static.
    let swapped = Instant::now();
    layout.switch("g1", r#"{"users": {"alice": {}, "bob": {}}}"#);
    let runs = engine.wait_started(2, SOON).await;
    let latency = runs[1].started - swapped;
    assert!(
        latency >= DEBOUNCE && latency <= DEBOUNCE + TICK,
        "the run starts one debounce after the swap: {latency:?}"
    );
    assert_eq!(runs[1].users, vec!["alice", "bob"]);
    assert_eq!(runs[1].generation, 2);

    // And again: the watches followed the chain to the new store path.
    layout.switch("g2", r#"{"users": {"carol": {}}}"#);
    let runs = engine.wait_started(3, SOON).await;
    assert_eq!(runs[2].users, vec!["carol"]);
    assert_eq!(runs[2].generation, 3);

    // Replacing the first link (a hand edit on a non-NixOS host) is seen too.
    let plain = layout.root.join("plain.json");
    std::fs::write(&plain, r#"{"users": {"dave": {}}}"#).unwrap();
    std::fs::rename(&plain, layout.spec_path()).unwrap();
    let runs = engine.wait_started(4, SOON).await;
    assert_eq!(runs[3].users, vec!["dave"]);
    // An in-place write of the (now regular) file as well.
    std::fs::write(layout.spec_path(), r#"{"users": {"erin": {}}}"#).unwrap();
    let runs = engine.wait_started(5, SOON).await;
    assert_eq!(runs[4].users, vec!["erin"]);
    assert!(
        runs.iter().all(|r| !r.verify_passwords),
        "every run came from a change, none from the resync: {runs:#?}"
    );
    d.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_changes_is_debounced_into_one_run() {
    let layout = NixLayout::new(r#"{"users": {"alice": {}}}"#);
    let engine = ScriptedEngine::new();
    let d = start(engine.clone(), &layout, Bus::None);
    engine.wait_finished(1, SOON).await;
    // Five generations, each 40 ms after the one before: never a debounce of quiet in between.
    let mut last = Instant::now();
    for i in 0..5 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        last = Instant::now();
        layout.switch(
            &format!("b{i}"),
            &format!(r#"{{"users": {{"u{i}": {{}}}}}}"#),
        );
        assert_eq!(engine.runs().len(), 1, "no run during the burst");
    }
    let runs = engine.wait_finished(2, SOON).await;
    assert_eq!(runs[1].users, vec!["u4"], "the newest spec");
    let latency = runs[1].started - last;
    assert!(
        latency >= DEBOUNCE && latency <= DEBOUNCE + TICK,
        "one debounce after the last change: {latency:?}"
    );
    nothing_else_follows(&engine).await;
    d.stop().await;
}

#[tokio::test(start_paused = true)]
async fn changes_during_a_run_coalesce_into_one_follow_up_run() {
    let layout = NixLayout::new(r#"{"users": {"alice": {}}, "applyMs": 1500}"#);
    let engine = ScriptedEngine::new();
    let d = start(engine.clone(), &layout, Bus::None);
    engine.wait_started(1, SOON).await;
    // Three separate changes (each longer apart than the debounce, so each is loaded as a
    // generation of its own) and a SIGHUP, all while the first run is busy.
    for i in 0..3 {
        layout.switch(
            &format!("c{i}"),
            &format!(r#"{{"users": {{"u{i}": {{}}}}, "applyMs": 50}}"#),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    d.hup.send(()).await.unwrap();
    assert!(
        engine.runs()[0].finished.is_none(),
        "the changes and the SIGHUP came during the first run"
    );
    let runs = engine.wait_finished(2, SOON).await;
    assert_eq!(
        runs[1].users,
        vec!["u2"],
        "the follow-up applies the newest spec"
    );
    assert_eq!(runs[1].generation, 4, "all three changes were loaded");
    assert!(
        runs[1].started >= runs[0].finished.unwrap(),
        "runs never overlap"
    );
    nothing_else_follows(&engine).await;
    assert_eq!(engine.runs().len(), 2, "one follow-up run only");
    d.stop().await;
}

#[tokio::test(start_paused = true)]
async fn sighup_reconciles_without_a_spec_change() {
    let layout = NixLayout::new(r#"{"users": {"alice": {}}}"#);
    let engine = ScriptedEngine::new();
    let d = start(engine.clone(), &layout, Bus::None);
    engine.wait_finished(1, SOON).await;
    d.hup.send(()).await.unwrap();
    let runs = engine.wait_finished(2, SOON).await;
    assert_eq!(runs[1].generation, 1, "same spec, same generation");
    assert!(!runs[1].verify_passwords, "a reload, not the resync");
    d.stop().await;
}

#[tokio::test(start_paused = true)]
async fn sigterm_cancels_the_running_apply_and_waits_for_it() {
    let layout = NixLayout::new(r#"{"users": {"alice": {}}, "applyMs": 10000}"#);
    let engine = ScriptedEngine::new();
    let d = start(engine.clone(), &layout, Bus::None);
    engine.wait_started(1, SOON).await;
    // SIGTERM one second into the ten-second run.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let term = Instant::now();
    d.stop().await;
    let stopped = Instant::now();
    let runs = engine.runs();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert!(runs[0].cancelled, "{runs:#?}");
    let finished = runs[0]
        .finished
        .expect("stop waited for the apply to return");
    assert!(
        finished >= term && finished < runs[0].started + Duration::from_secs(10),
        "the apply returned after SIGTERM, before its scripted end: {runs:#?}"
    );
    assert!(stopped >= finished, "the daemon returned after the apply");
}

#[tokio::test(start_paused = true)]
async fn an_invalid_spec_at_start_waits_for_a_valid_one() {
    let layout = NixLayout::new(r#"{"invalid": "not an e-mail address"}"#);
    let engine = ScriptedEngine::new();
    let d = start(engine.clone(), &layout, Bus::None);
    // Two hours of tokio time: the start and two resyncs find no valid spec.
    tokio::time::sleep(Duration::from_secs(7200)).await;
    assert!(engine.runs().is_empty());
    layout.switch("ok", r#"{"users": {"alice": {}}}"#);
    let runs = engine.wait_finished(1, SOON).await;
    assert_eq!(runs[0].generation, 1);
    assert_eq!(runs[0].users, vec!["alice"]);
    d.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_periodic_resync_runs_with_jitter_and_verifies_passwords() {
    let layout = NixLayout::new(r#"{"users": {"alice": {}}}"#);
    let engine = ScriptedEngine::new();
    let resync = Duration::from_millis(400);
    let d = start_with(engine.clone(), &layout, Bus::None, resync);
    let runs = engine.wait_finished(4, SOON).await;
    assert!(
        !runs[0].verify_passwords,
        "the start-up run trusts the fingerprints"
    );
    assert!(
        runs[1..].iter().all(|r| r.verify_passwords),
        "the resyncs verify: {runs:#?}"
    );
    let gaps: Vec<Duration> = runs
        .windows(2)
        .map(|w| w[1].started - w[0].finished.unwrap())
        .collect();
    for gap in &gaps {
        // 400 ms ± 10 %, counted from the end of the run before.
        assert!(
            *gap >= resync.mul_f64(0.9) && *gap <= resync.mul_f64(1.1) + TICK,
            "resync gaps {gaps:?} (400 ms ± 10 %)"
        );
    }
    d.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_spec_that_does_not_exist_yet_is_picked_up_when_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (_hup, hup_rx) = mpsc::channel(1);
    let (term, term_rx) = mpsc::channel(1);
    let engine = ScriptedEngine::new();
    let cfg = Config {
        spec_path: root.join("etc/paas/spec.json"),
        state_dir: root.join("state"),
        resync: RESYNC,
        debounce: DEBOUNCE,
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
    // Two hours of tokio time without a spec: nothing runs, not even the resync.
    tokio::time::sleep(Duration::from_secs(7200)).await;
    assert!(engine.runs().is_empty());
    std::fs::create_dir_all(root.join("etc/paas")).unwrap();
    std::fs::write(
        root.join("etc/paas/spec.json"),
        r#"{"users": {"alice": {}}}"#,
    )
    .unwrap();
    let runs = engine.wait_finished(1, SOON).await;
    assert_eq!(runs[0].users, vec!["alice"]);
    // The watches reached the new directory: a later edit is seen as well.
    std::fs::write(root.join("etc/paas/spec.json"), r#"{"users": {"bob": {}}}"#).unwrap();
    let runs = engine.wait_finished(2, SOON).await;
    assert_eq!(runs[1].users, vec!["bob"]);
    term.send(()).await.unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_reload_during_a_run_of_the_same_spec_adds_no_run() {
    // nixos-rebuild: the spec swap starts a run, the unit reload (SIGHUP) follows it.
    let layout = NixLayout::new(r#"{"users": {"alice": {}}}"#);
    let engine = ScriptedEngine::new();
    let d = start(engine.clone(), &layout, Bus::None);
    engine.wait_finished(1, SOON).await;
    layout.switch("g1", r#"{"users": {"bob": {}}, "applyMs": 600}"#);
    engine.wait_started(2, SOON).await;
    d.hup.send(()).await.unwrap();
    let runs = engine.wait_finished(2, SOON).await;
    assert_eq!(runs[1].users, vec!["bob"]);
    nothing_else_follows(&engine).await;
    // Idle, a reload always reconciles.
    d.hup.send(()).await.unwrap();
    let runs = engine.wait_finished(3, SOON).await;
    assert_eq!(runs[2].generation, runs[1].generation);
    d.stop().await;
}
