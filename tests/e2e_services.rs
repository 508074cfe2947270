//! End to end across targets: LLDAP + Nextcloud + Vaultwarden doubles (each checked against the
//! vendor's contract) driven by `reconcile::apply`: one declaration, every service; second run writes
//! nothing anywhere; one service down does not block the others and recovers by itself; removal
//! reaches every service; generated passwords stay in their 0600 store; repeated `paasctl`
//! runs reuse Vaultwarden's admin session (its logins are rate-limited), and a rate limit is one
//! line for the target.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use paas_doubles::lldap::{LldapConfig, LldapDouble};
use paas_doubles::nextcloud::{NextcloudConfig, NextcloudDouble};
use paas_doubles::vaultwarden::{VaultwardenConfig, VaultwardenDouble};
use paasd::backoff::Backoff;
use paasd::core::spec::{parse_spec, Spec};
use paasd::reconcile::{self, Options, Outcome, Report};
use paasd::session::Sessions;
use serde_json::{json, Value};

const ADMIN_PW: &str = "lldap-Admin-Secret-1";
const NC_PW: &str = "nextcloud-Admin-Secret-2";
const VW_TOKEN: &str = "vaultwarden-Token-Secret-3";
const ALICE_PW: &str = "alice-Secret-Pass-4";

struct Env {
    lldap: LldapDouble,
    nc: NextcloudDouble,
    vw: VaultwardenDouble,
    dir: tempfile::TempDir,
    /// The deployment's login sessions, kept across its runs (as the daemon keeps them).
    sessions: Sessions,
}

impl Env {
    async fn start() -> Env {
        let lldap = LldapDouble::start(LldapConfig::new(ADMIN_PW))
            .await
            .expect("lldap double");
        let nc = NextcloudDouble::start(NextcloudConfig::new(NC_PW))
            .await
            .expect("nextcloud double");
        let vw = VaultwardenDouble::start(VaultwardenConfig::new(VW_TOKEN))
            .await
            .expect("vaultwarden double");
        let dir = tempfile::tempdir().expect("tempdir");
        let e = Env {
            lldap,
            nc,
            vw,
            dir,
            sessions: Sessions::in_memory(),
        };
        e.secret("admin", ADMIN_PW);
        e.secret("nc", NC_PW);
        e.secret("vw", VW_TOKEN);
        e.secret("alice", ALICE_PW);
        e
    }

    fn secret(&self, name: &str, value: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        fs::write(&p, value).expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
        p
    }

    fn spec(&self, users: Value) -> Spec {
        parse_spec(&self.spec_json(users).to_string()).expect("valid spec")
    }

    fn spec_json(&self, users: Value) -> Value {
        let d = self.dir.path();
        json!({
            "version": 1,
            "lldap": { "url": self.lldap.http_url(), "ldapUrl": self.lldap.ldap_url(), "baseDn": self.lldap.base_dn(),
                       "adminPasswordFile": d.join("admin"), "timeoutSeconds": 5 },
            "groups": { "family": {} },
            "users": users,
            "nextcloud": { "url": self.nc.url(), "adminUser": "admin", "adminPasswordFile": d.join("nc") },
            "vaultwarden": { "url": self.vw.url(), "adminTokenFile": d.join("vw") }
        })
    }

    fn users(&self) -> Value {
        json!({
            "alice": { "email": "alice@example.com", "displayName": "Alice", "groups": ["family"],
                       "passwordFile": self.dir.path().join("alice"),
                       "nextcloud": { "quota": "10 GB", "admin": true } },
            "bob": { "email": "bob@example.com", "displayName": "Bob", "passwordStrategy": "generated",
                     "services": ["nextcloud", "vaultwarden"] }
        })
    }

    fn opts(&self) -> Options {
        let mut o = Options::new(self.dir.path().join("state"));
        let quick = Backoff {
            attempts: 3,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
            jitter: true,
        };
        o.backoff = quick;
        o.ready_wait = quick;
        o.sessions = self.sessions.clone();
        o
    }

    fn writes(&self) -> (u64, u64, u64) {
        (
            self.lldap.stats().total_mutations(),
            self.nc.stats().total_writes(),
            self.vw.stats().total_writes(),
        )
    }

    fn reset(&self) {
        self.lldap.reset_stats();
        self.nc.reset_stats();
        self.vw.reset_stats();
    }

    fn no_violations(&self) {
        self.lldap.assert_no_violations();
        self.nc.assert_no_violations();
        self.vw.assert_no_violations();
    }
}

fn outcome(r: &Report, target: &str, user: &str) -> Outcome {
    r.objects
        .iter()
        .find(|o| o.target == target && o.name == user)
        .map(|o| o.outcome)
        .unwrap_or_else(|| panic!("no result for {target}/{user}: {r:#?}"))
}

#[tokio::test]
async fn one_declaration_every_service_and_a_second_run_writes_nothing() {
    let env = Env::start().await;
    let spec = env.spec(env.users());
    // The first apply through the binary, with every log line (trace) captured.
    let spec_path = env.dir.path().join("spec.json");
    fs::write(&spec_path, env.spec_json(env.users()).to_string()).expect("write spec");
    let state_dir = env.dir.path().join("state");
    let out = tokio::task::spawn_blocking({
        let (spec_path, state_dir) = (spec_path.clone(), state_dir.clone());
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_paasctl"))
                .args(["apply", "--json", "--spec"])
                .arg(&spec_path)
                .arg("--state-dir")
                .arg(&state_dir)
                .env("PAASCTL_LOG", "trace")
                .output()
                .expect("paasctl apply")
        }
    })
    .await
    .expect("join");
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{logs}");
    assert!(logs.contains("paas_target"), "trace logs were captured");
    let r: Value = serde_json::from_slice(&out.stdout).expect("--json report");
    assert_eq!(r["failed"], 0, "{r:#}");
    for t in ["lldap", "nextcloud", "vaultwarden"] {
        let o = r["objects"]
            .as_array()
            .and_then(|objs| {
                objs.iter()
                    .find(|o| o["target"] == t && o["name"] == "alice")
            })
            .unwrap_or_else(|| panic!("no result for {t}/alice"));
        assert_eq!(o["outcome"], "created", "{t}");
    }
    let alice = env.nc.user("alice").expect("alice in nextcloud");
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    assert!(alice.groups.contains("admin"));
    assert!(env.nc.check_password("alice", ALICE_PW));
    assert!(
        env.vw.user_by_email("alice@example.com").is_some(),
        "invited"
    );
    // bob's generated Nextcloud password: 0600 in the state dir, and it is the one Nextcloud has.
    let gen = env.dir.path().join("state/generated/nextcloud/bob");
    let mode = fs::metadata(&gen)
        .expect("generated password stored")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let generated = fs::read_to_string(&gen).expect("read");
    assert!(generated.len() >= 20);
    assert!(env.nc.check_password("bob", &generated));
    // No secret in the logs, the report, the spec or any state file but the generated store.
    let mut files = vec![spec_path.clone()];
    let mut dirs = vec![state_dir.clone()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).expect("read dir").filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                if !p.ends_with("generated") {
                    dirs.push(p);
                }
            } else {
                files.push(p);
            }
        }
    }
    assert!(
        files.len() >= 3,
        "spec, state.json, fingerprint.key: {files:?}"
    );
    for secret in [generated.as_str(), ALICE_PW, NC_PW, VW_TOKEN, ADMIN_PW] {
        assert!(!logs.contains(secret), "a secret is in paasctl's output");
        for f in &files {
            let bytes = fs::read(f).expect("read");
            assert!(
                !String::from_utf8_lossy(&bytes).contains(secret),
                "a secret is in {}",
                f.display()
            );
        }
    }
    assert!(logs.contains("alice"), "the scan reads the real output");

    // `paasctl credentials show` (root only) is the one place that shows it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_paasctl"))
        .args(["credentials", "show", "bob", "nextcloud", "--state-dir"])
        .arg(&state_dir)
        .output()
        .expect("paasctl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("nextcloud\t{generated}")
    );

    env.reset();
    let r = reconcile::apply(&spec, &env.opts()).await;
    assert_eq!(r.failed, 0, "{:#?}", r.objects);
    assert_eq!(
        (r.created, r.updated, r.deleted),
        (0, 0, 0),
        "{}",
        r.summary_line()
    );
    assert_eq!(
        env.writes(),
        (0, 0, 0),
        "second run writes nothing anywhere"
    );
    env.no_violations();
}

#[tokio::test]
async fn a_service_down_waits_without_blocking_the_others_and_recovers() {
    let env = Env::start().await;
    env.nc.faults().set_health(Some(503));
    let spec = env.spec(env.users());
    let r = reconcile::apply(&spec, &env.opts()).await;
    assert_eq!(outcome(&r, "nextcloud", "alice"), Outcome::Pending);
    let err = r
        .objects
        .iter()
        .find(|o| o.target == "nextcloud")
        .and_then(|o| o.error.clone())
        .unwrap_or_default();
    assert!(err.starts_with("waiting for nextcloud"), "{err}");
    assert_eq!(outcome(&r, "lldap", "alice"), Outcome::Created);
    assert_eq!(outcome(&r, "vaultwarden", "alice"), Outcome::Created);
    assert!(env.nc.user("alice").is_none());
    // The service comes back: the next run converges with no admin action.
    env.nc.faults().clear();
    let r = reconcile::apply(&spec, &env.opts()).await;
    assert_eq!(r.failed, 0, "{:#?}", r.objects);
    assert_eq!(outcome(&r, "nextcloud", "alice"), Outcome::Created);
    assert_eq!(outcome(&r, "vaultwarden", "alice"), Outcome::Unchanged);
    env.no_violations();
}

#[tokio::test]
async fn removal_and_enable_false_reach_every_service() {
    let env = Env::start().await;
    reconcile::apply(&env.spec(env.users()), &env.opts()).await;
    let mut users = env.users();
    users["alice"]["enable"] = json!(false);
    users.as_object_mut().map(|o| o.remove("bob"));
    let spec = env.spec(users);
    let r = reconcile::apply(&spec, &env.opts()).await;
    assert_eq!(r.failed, 0, "{:#?}", r.objects);
    assert!(
        !env.nc.user("alice").expect("kept").enabled,
        "alice disabled in nextcloud"
    );
    assert!(
        !env.nc.user("bob").expect("kept").enabled,
        "bob (removed) disabled in nextcloud"
    );
    assert!(
        !env.vw
            .user_by_email("alice@example.com")
            .expect("kept")
            .enabled
    );
    assert!(
        !env.vw
            .user_by_email("bob@example.com")
            .expect("kept")
            .enabled
    );
    env.reset();
    let r = reconcile::apply(&spec, &env.opts()).await;
    assert_eq!(r.failed, 0);
    assert_eq!(env.writes(), (0, 0, 0));
    env.no_violations();
}

/// The spec of `lldap_down_…`: Vaultwarden is for the members of the LLDAP group `vault`.
fn vault_spec(env: &Env, users: Value) -> Spec {
    let mut v = env.spec_json(users);
    v["vaultwarden"]["groups"] = json!(["vault"]);
    parse_spec(&v.to_string()).expect("valid spec")
}

#[tokio::test]
async fn lldap_down_still_reaches_the_services_and_keeps_group_members() {
    let env = Env::start().await;
    // zoe was made by hand in LLDAP's UI and given access to Vaultwarden by group.
    let mut zoe = paas_doubles::lldap::SeedUser::new("zoe", "zoe@example.com");
    zoe.groups = vec!["vault".into()];
    env.lldap.seed_user(zoe).expect("seed");
    let users = json!({
        "alice": { "email": "alice@example.com", "passwordFile": env.dir.path().join("alice") },
        "carol": { "email": "carol@example.com", "passwordStrategy": "generated" }
    });
    let r = reconcile::apply(&vault_spec(&env, users.clone()), &env.opts()).await;
    assert_eq!(r.failed, 0, "{:#?}", r.objects);
    assert_eq!(outcome(&r, "nextcloud", "carol"), Outcome::Created);
    assert_eq!(outcome(&r, "vaultwarden", "zoe"), Outcome::Created);
    for t in &r.targets {
        assert!(t.requests > 0, "{} reports its requests: {t:?}", t.target);
    }

    // LLDAP goes down; carol leaves the spec.
    env.lldap.faults().fail_next(1_000_000, 503);
    let mut without_carol = users.clone();
    without_carol.as_object_mut().map(|o| o.remove("carol"));
    let spec = vault_spec(&env, without_carol);
    let r = reconcile::apply(&spec, &env.opts()).await;
    let lldap = r.target(paasd::core::id::TargetId::Lldap).expect("lldap");
    assert!(!lldap.ok);
    assert!(
        lldap
            .error
            .as_deref()
            .unwrap_or("")
            .contains("waiting for lldap"),
        "{lldap:?}"
    );
    assert_eq!(outcome(&r, "lldap", "alice"), Outcome::Pending);
    // Nextcloud does not wait for LLDAP: carol's account is disabled.
    assert_eq!(outcome(&r, "nextcloud", "carol"), Outcome::Updated);
    assert!(!env.nc.user("carol").expect("kept").enabled);
    // Vaultwarden goes by the members LLDAP had when it was last read: zoe stays, and the
    // report says why.
    assert_eq!(outcome(&r, "vaultwarden", "zoe"), Outcome::Unchanged);
    assert!(
        env.vw
            .user_by_email("zoe@example.com")
            .expect("kept")
            .enabled
    );
    let vw = r
        .target(paasd::core::id::TargetId::Service(
            paasd::core::id::ServiceKind::Vaultwarden,
        ))
        .expect("vaultwarden");
    assert!(vw.ok, "{vw:?}");
    assert!(
        vw.notes
            .iter()
            .any(|n| n.contains("LLDAP could not be read") && n.contains("last")),
        "{vw:?}"
    );

    // Without any record of the members (a state from before they were kept), nobody is
    // known to be a member: zoe's account is not removed either, and the report says so.
    let state_file = env.dir.path().join("state/state.json");
    let mut state: Value =
        serde_json::from_slice(&fs::read(&state_file).expect("state")).expect("json");
    assert!(
        state.get("members").is_some(),
        "the members are kept in the state"
    );
    state.as_object_mut().map(|o| o.remove("members"));
    fs::write(&state_file, state.to_string()).expect("write state");
    env.reset();
    let r = reconcile::apply(&spec, &env.opts()).await;
    assert!(
        r.objects
            .iter()
            .all(|o| !(o.target == "vaultwarden" && o.name == "zoe")),
        "zoe is neither desired nor removed: {:#?}",
        r.objects
    );
    assert!(
        env.vw
            .user_by_email("zoe@example.com")
            .expect("kept")
            .enabled
    );
    let vw = r
        .target(paasd::core::id::TargetId::Service(
            paasd::core::id::ServiceKind::Vaultwarden,
        ))
        .expect("vaultwarden");
    assert!(
        vw.notes
            .iter()
            .any(|n| n.contains("no account is disabled or removed")),
        "{vw:?}"
    );
    assert_eq!(env.vw.stats().total_writes(), 0);

    // LLDAP is back: everything converges, zoe keeps her account.
    env.lldap.faults().clear();
    let r = reconcile::apply(&spec, &env.opts()).await;
    assert_eq!(r.failed, 0, "{:#?}", r.objects);
    assert_eq!(outcome(&r, "vaultwarden", "zoe"), Outcome::Unchanged);
    env.no_violations();
}

/// Runs the `paasctl` binary with `args`, the spec of `env` (written to `spec.json`) and its
/// state directory, trace logs on; returns the exit status and stdout + stderr.
async fn paasctl(env: &Env, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let spec_path = env.dir.path().join("spec.json");
    fs::write(&spec_path, env.spec_json(env.users()).to_string()).expect("write spec");
    let state_dir = env.dir.path().join("state");
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_paasctl"))
            .args(&args)
            .arg("--spec")
            .arg(&spec_path)
            .arg("--state-dir")
            .arg(&state_dir)
            .env("PAASCTL_LOG", "trace")
            .output()
            .expect("paasctl")
    })
    .await
    .expect("join");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Everything `paasctl` wrote, and every file of the state directory but the sessions file.
fn outputs_and_state(env: &Env, logs: &str) -> Vec<(String, String)> {
    let mut all = vec![("output".to_string(), logs.to_string())];
    let state = env.dir.path().join("state");
    for e in fs::read_dir(&state)
        .expect("state dir")
        .filter_map(Result::ok)
    {
        let p = e.path();
        if p.is_file() && !p.ends_with("sessions.json") {
            let text = String::from_utf8_lossy(&fs::read(&p).expect("read")).into_owned();
            all.push((p.display().to_string(), text));
        }
    }
    all
}

#[tokio::test]
async fn ten_paasctl_applies_in_a_row_log_in_to_vaultwarden_once() {
    let env = Env::start().await;
    let mut logs = String::new();
    for n in 0..10 {
        let (status, out, err) = paasctl(&env, &["apply"]).await;
        assert!(status.success(), "apply {n} failed:\n{out}{err}");
        logs.push_str(&out);
        logs.push_str(&err);
    }
    let logins = env.vw.logins();
    assert_eq!(
        (logins.ok, logins.rate_limited),
        (1, 0),
        "ten applies, one admin login: {logins:?}"
    );
    // The session is kept in the state directory: owner-only, with its expiry.
    let file = env.dir.path().join("state/sessions.json");
    let mode = fs::metadata(&file)
        .expect("sessions.json")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let v: Value = serde_json::from_slice(&fs::read(&file).expect("read")).expect("json");
    let entry = &v["sessions"][format!("vaultwarden {}", env.vw.url())];
    let cookies = env.vw.session_cookies();
    assert_eq!(cookies.len(), 1);
    assert_eq!(entry["value"], format!("VW_ADMIN={}", cookies[0]), "{v:#}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let until = entry["expiresAt"].as_u64().expect("expiresAt");
    assert!(
        until > now + 1000 && until <= now + 1140,
        "{until} vs {now}"
    );
    // Nowhere else: not in any output or log line, not in the state, not in the spec.
    for (place, text) in outputs_and_state(&env, &logs) {
        assert!(
            !text.contains(&cookies[0]),
            "the session cookie is in {place}"
        );
        assert!(!text.contains(VW_TOKEN), "the admin token is in {place}");
    }

    // 21 minutes later (the double's clock) Vaultwarden rejects the session: one new login.
    env.vw.advance_clock(Duration::from_secs(21 * 60));
    env.reset();
    let (status, out, err) = paasctl(&env, &["apply"]).await;
    assert!(status.success(), "{out}{err}");
    assert_eq!(env.vw.logins().ok, 2);
    assert_eq!(env.vw.stats().unauthorized, 1);
    // A session past the expiry paasd keeps is not sent: a new login, no rejected call.
    let mut v: Value = serde_json::from_slice(&fs::read(&file).expect("read")).expect("json");
    for (_, e) in v["sessions"].as_object_mut().expect("sessions").iter_mut() {
        e["expiresAt"] = json!(now - 1);
    }
    fs::write(&file, v.to_string()).expect("write");
    env.reset();
    let (status, out, err) = paasctl(&env, &["apply"]).await;
    assert!(status.success(), "{out}{err}");
    assert_eq!(env.vw.logins().ok, 3);
    assert_eq!(env.vw.stats().unauthorized, 0);
    env.no_violations();
}

#[tokio::test]
async fn a_rate_limited_vaultwarden_is_one_line_and_the_other_targets_go_on() {
    let env = Env::start().await;
    // Someone else used up the admin logins of this address (Vaultwarden's default: 3).
    let http = reqwest::Client::new();
    for _ in 0..3 {
        http.post(format!("{}/admin", env.vw.url()))
            .form(&[("token", VW_TOKEN)])
            .send()
            .await
            .expect("login");
    }
    env.reset();
    let (status, out, err) = paasctl(&env, &["apply"]).await;
    assert!(
        !status.success(),
        "the Vaultwarden accounts wait: {out}{err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with('✗')).collect();
    assert_eq!(
        lines.len(),
        1,
        "one line for the target, none per user: {err}"
    );
    assert!(
        lines[0].starts_with(
            "✗ vaultwarden: waiting for vaultwarden: rate limited by Vaultwarden (ADMIN_RATELIMIT_*), next try at "
        ) && lines[0].ends_with("(2 objects not reconciled)"),
        "{}",
        lines[0]
    );
    assert!(
        !out.contains('<') && !err.contains("<!DOCTYPE") && !err.contains("<html"),
        "{err}"
    );
    assert_eq!(
        env.vw.stats().requests_to("POST /admin"),
        1,
        "one login attempt, not retried"
    );
    let (status, out, err) = paasctl(&env, &["apply", "--json"]).await;
    assert!(!status.success());
    let r: Value = serde_json::from_str(&out).expect("--json report");
    let vw = r["targets"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["target"] == "vaultwarden"))
        .expect("vaultwarden");
    assert_eq!(vw["state"], "waiting", "{vw:#}");
    assert!(vw["retryAt"].as_u64().is_some(), "{vw:#}");
    for o in r["objects"].as_array().expect("objects") {
        match o["target"].as_str() {
            Some("vaultwarden") => assert_eq!(o["outcome"], "pending", "{o:#}"),
            _ => assert_ne!(o["outcome"], "failed", "{o:#}"),
        }
    }
    assert!(env.nc.user("alice").is_some(), "the other targets went on");
    let logs = format!("{out}{err}");
    for (place, text) in outputs_and_state(&env, &logs) {
        assert!(!text.contains(VW_TOKEN), "the admin token is in {place}");
        for c in env.vw.session_cookies() {
            assert!(!text.contains(&c), "a session cookie is in {place}");
        }
    }
    env.no_violations();
}
