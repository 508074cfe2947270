//! Crash safety: `paasctl apply` — and, in a second test, the `paasd` daemon — reconciling 300
//! users is SIGKILLed at random points, many times, against the LLDAP double (some rounds also lose
//! the state file); then one apply runs to completion and the result must be exact: no duplicate,
//! every declared user marked as paasd's, the state file complete, no temp file left, and a further
//! apply writes nothing.
//!
//! The random delays come from a seeded generator; the seed is printed, and `CRASH_SEED=<n>`
//! replays a run.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use paas_doubles::lldap::{LldapConfig, LldapDouble, SeedUser};
use paasd::core::state::State;
use serde_json::{json, Map, Value};

const ADMIN_PW: &str = "crash-admin-Pw-31";
const USERS: usize = 300;
const KILLS: usize = 25;

/// xorshift64*: small, seeded, good enough for delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn secret(dir: &Path, name: &str, value: &str) -> String {
    let p = dir.join(name);
    fs::write(&p, format!("{value}\n")).expect("write secret");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
    p.to_str().expect("utf-8").to_string()
}

/// The spec; `variant` changes every display name, so each round has work to be killed in.
fn spec(d: &LldapDouble, dir: &Path, variant: usize) -> Value {
    let admin = secret(dir, "admin.pw", ADMIN_PW);
    let pw: Vec<String> = (0..10)
        .map(|i| secret(dir, &format!("pw{i}"), &format!("user-Pw-{i}-x")))
        .collect();
    let mut users = Map::new();
    for i in 0..USERS {
        users.insert(
            format!("u{i:03}"),
            json!({
                "email": format!("u{i:03}@example.com"),
                "displayName": format!("User {i} v{variant}"),
                "groups": [format!("g{}", i % 5), format!("g{}", (i + 1) % 5)],
                "admin": i == 7,
                "enable": i % 50 != 3,
                "passwordFile": pw[i % 10],
                "passwordMode": if i % 4 == 0 { "initial" } else { "enforce" },
            }),
        );
    }
    let groups: Map<String, Value> = (0..5).map(|g| (format!("g{g}"), json!({}))).collect();
    json!({
        "version": 1,
        "lldap": {
            "url": d.http_url(), "ldapUrl": d.ldap_url(), "baseDn": d.base_dn(),
            "adminPasswordFile": admin, "timeoutSeconds": 10
        },
        "groups": groups,
        "users": users,
    })
}

fn apply_cmd(spec: &Path, state: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_paasctl"));
    c.args(["apply", "--spec"])
        .arg(spec)
        .arg("--state-dir")
        .arg(state)
        .env("PAASCTL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// The process being killed.
#[derive(Clone, Copy)]
enum Victim {
    Paasctl,
    Paasd,
}

fn victim_cmd(victim: Victim, spec: &Path, state: &Path) -> Command {
    match victim {
        Victim::Paasctl => apply_cmd(spec, state),
        Victim::Paasd => {
            let mut c = Command::new(env!("CARGO_BIN_EXE_paasd"));
            c.args(["--spec"])
                .arg(spec)
                .arg("--state-dir")
                .arg(state)
                .args(["--bus", "none", "--log-format", "text"])
                .env("RUST_LOG", "warn")
                .env_remove("NOTIFY_SOCKET")
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            c
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_apply_then_converges_exactly() {
    crash_and_converge(Victim::Paasctl).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_daemon_then_converges_exactly() {
    crash_and_converge(Victim::Paasd).await;
}

async fn crash_and_converge(victim: Victim) {
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    println!("crash test seed: CRASH_SEED={seed}");
    let mut rng = Rng(seed);

    let d = LldapDouble::start(LldapConfig::new(ADMIN_PW))
        .await
        .expect("the LLDAP double starts (needs ../shared/contracts)");
    // Hand-made users paasd must leave alone.
    d.seed_user(SeedUser {
        groups: vec!["g1".into()],
        ..SeedUser::new("zoe", "zoe@example.com")
    })
    .expect("seed zoe");
    d.seed_user(SeedUser::new("yann", "yann@example.com"))
        .expect("seed yann");
    let dir = tempfile::tempdir().expect("tempdir");
    let spec_path = dir.path().join("spec.json");
    fs::write(&spec_path, spec(&d, dir.path(), 0).to_string()).expect("write spec");
    let state = dir.path().join("state");

    let started = Instant::now();
    let mut killed_running = 0;
    for round in 0..KILLS {
        if round % 6 == 5 {
            // The state file is lost: ownership must come back from the markers in LLDAP.
            let _ = fs::remove_file(state.join("state.json"));
        }
        // Every round changes all display names: each apply has ~300 updates to be killed in.
        fs::write(&spec_path, spec(&d, dir.path(), round % 2).to_string()).expect("write spec");
        let delay = rng.next() % 300;
        let mut child = victim_cmd(victim, &spec_path, &state)
            .spawn()
            .expect("spawn");
        tokio::time::sleep(Duration::from_millis(delay)).await;
        if child.try_wait().expect("try_wait").is_none() {
            killed_running += 1;
        }
        child.kill().expect("SIGKILL"); // std's kill sends SIGKILL
        let _ = child.wait();
        println!(
            "round {round}: killed after {delay} ms; {} users in LLDAP",
            d.users().len()
        );
    }
    assert!(
        killed_running >= KILLS / 2,
        "most kills must hit a running apply ({killed_running} of {KILLS})"
    );

    // The run to completion.
    let out = tokio::task::spawn_blocking({
        let (s, st) = (spec_path.clone(), state.clone());
        move || apply_cmd(&s, &st).output().expect("run apply")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "final apply failed (seed {seed}): {stdout}\n{stderr}"
    );

    // No duplicate, nothing lost: declared + admin + the 2 hand-made users.
    let users = d.users();
    assert_eq!(
        users.len(),
        USERS + 3,
        "users in LLDAP (seed {seed}): {:?}",
        users.iter().map(|u| &u.id).collect::<Vec<_>>()
    );
    for u in &users {
        let declared = u.id.starts_with('u');
        let marked = u.attributes.get("paasd-managed") == Some(&vec!["true".to_string()]);
        assert_eq!(declared, marked, "marker of {} (seed {seed})", u.id);
    }
    let zoe = d.user("zoe").expect("zoe");
    assert_eq!(zoe.groups, vec!["g1".to_string()], "zoe is untouched");
    for g in 0..5 {
        assert_eq!(
            d.groups()
                .iter()
                .filter(|x| x.display_name == format!("g{g}"))
                .count(),
            1,
            "group g{g} exists once"
        );
    }

    // Every enabled declared user got its password (initial or enforced), even when the apply
    // that created it was killed before the password write.
    let mut failures = Vec::new();
    let no_password: Vec<String> = (0..USERS)
        .filter(|i| i % 50 != 3)
        .map(|i| format!("u{i:03}"))
        .filter(|id| !d.user(id).is_some_and(|u| u.has_password))
        .collect();
    if !no_password.is_empty() {
        failures.push(format!(
            "{} enabled users have no password in LLDAP: {no_password:?}",
            no_password.len()
        ));
    }

    // The state file parses and lists every declared user; no temp file is left.
    let st = State::load(&state).expect("the state file parses");
    let missing: Vec<String> = (0..USERS)
        .map(|i| format!("u{i:03}"))
        .filter(|id| !st.lldap.users.contains_key(id))
        .collect();
    if !missing.is_empty() {
        failures.push(format!(
            "{} declared users missing from the state file: {missing:?}",
            missing.len()
        ));
    }
    let creating: Vec<&String> = st
        .lldap
        .users
        .iter()
        .filter(|(_, o)| o.origin == paasd::core::state::Origin::Creating)
        .map(|(id, _)| id)
        .collect();
    if !creating.is_empty() {
        failures.push(format!("still marked creating: {creating:?}"));
    }
    let leftovers: Vec<String> = fs::read_dir(&state)
        .expect("state dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    if !leftovers.is_empty() {
        failures.push(format!("temp files left in the state dir: {leftovers:?}"));
    }

    // Converged: a further apply writes nothing.
    d.reset_stats();
    let out = tokio::task::spawn_blocking({
        let (s, st) = (spec_path.clone(), state.clone());
        move || apply_cmd(&s, &st).output().expect("run apply")
    })
    .await
    .expect("join");
    assert!(out.status.success());
    let s = d.stats();
    if s.total_mutations() != 0 || s.ldap_ops("password_modify") != 0 {
        failures.push(format!(
            "the run after convergence wrote: {} mutations, {} password writes",
            s.total_mutations(),
            s.ldap_ops("password_modify")
        ));
    }
    d.assert_no_violations();
    assert!(
        failures.is_empty(),
        "crash safety (CRASH_SEED={seed}):\n  {}",
        failures.join("\n  ")
    );
    println!(
        "crash test: {KILLS} kills ({killed_running} mid-run), converged in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
