//! End to end: paasd's reconcile (library and the `paasctl` binary) against the LLDAP test
//! double, whose every GraphQL document is validated against LLDAP's schema.graphql.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use paas_doubles::lldap::{LldapConfig, LldapDouble, SeedUser};
use paasd::backoff::Backoff;
use paasd::core::spec::{parse_spec, Spec};
use paasd::reconcile::{self, Options, Outcome};
use serde_json::{json, Value};

const ADMIN_PW: &str = "admin-Secret-7q";
const ALICE_PW: &str = "alice-Secret-91x";
const BOB_PW: &str = "bob-Secret-44k";

struct Env {
    double: LldapDouble,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Env {
        let double = LldapDouble::start(LldapConfig::new(ADMIN_PW))
            .await
            .expect("the LLDAP double starts (needs ../shared/contracts)");
        let dir = tempfile::tempdir().expect("tempdir");
        let e = Env { double, dir };
        e.secret("admin", ADMIN_PW);
        e.secret("alice", ALICE_PW);
        e.secret("bob", BOB_PW);
        e
    }

    fn secret(&self, name: &str, value: &str) -> PathBuf {
        let p = self.dir.path().join(format!("{name}.pw"));
        fs::write(&p, format!("{value}\n")).expect("write secret");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
        p
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn spec_json(&self, users: Value, groups: Value, extra: Value) -> Value {
        let mut v = json!({
            "version": 1,
            "lldap": {
                "url": self.double.http_url(),
                "ldapUrl": self.double.ldap_url(),
                "baseDn": self.double.base_dn(),
                "adminUsername": "admin",
                "adminPasswordFile": self.dir.path().join("admin.pw"),
                "timeoutSeconds": 5
            },
            "groups": groups,
            "users": users,
        });
        for (k, x) in extra.as_object().cloned().unwrap_or_default() {
            v[k] = x;
        }
        v
    }

    fn spec(&self, users: Value, groups: Value, extra: Value) -> Spec {
        parse_spec(&self.spec_json(users, groups, extra).to_string()).expect("valid spec")
    }

    fn default_users(&self) -> Value {
        json!({
            "alice": { "email": "alice@example.com", "displayName": "Alice", "firstName": "Alice", "lastName": "Liddell",
                       "groups": ["family", "media"], "admin": true, "passwordFile": self.dir.path().join("alice.pw") },
            "bob": { "email": "bob@example.com", "groups": ["family"], "passwordFile": self.dir.path().join("bob.pw"),
                     "passwordMode": "initial" },
            "carol": { "email": "carol@example.com", "groups": ["media"], "enable": false }
        })
    }

    fn default_spec(&self) -> Spec {
        self.spec(
            self.default_users(),
            json!({ "family": {}, "media": { "displayName": "Media" } }),
            json!({}),
        )
    }

    fn opts(&self) -> Options {
        let mut o = Options::new(self.state_dir());
        o.backoff = Backoff {
            attempts: 6,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(50),
            jitter: true,
        };
        o.ready_wait = o.backoff;
        o
    }

    fn write_spec(&self, v: &Value) -> PathBuf {
        let p = self.dir.path().join("spec.json");
        fs::write(&p, serde_json::to_vec_pretty(v).expect("json")).expect("write spec");
        p
    }
}

fn groups_of(d: &LldapDouble, id: &str) -> Vec<String> {
    d.user(id).map(|u| u.groups).unwrap_or_default()
}

#[tokio::test]
async fn first_apply_creates_and_second_writes_nothing() {
    let env = Env::start().await;
    let spec = env.default_spec();
    let r1 = reconcile::apply(&spec, &env.opts()).await;
    assert_eq!(r1.failed, 0, "{:#?}", r1.objects);
    assert_eq!(
        r1.created,
        3 + 3,
        "3 users, family, media, paas_disabled: {r1:#?}"
    );
    assert_eq!(
        r1.summary_line(),
        "6 created, 0 updated, 0 deleted, 0 unchanged, 0 failed"
    );

    let d = &env.double;
    assert_eq!(
        groups_of(d, "alice"),
        vec!["Media", "family", "lldap_admin"]
    );
    assert_eq!(groups_of(d, "bob"), vec!["family"]);
    assert_eq!(groups_of(d, "carol"), vec!["paas_disabled"]);
    let alice = d.user("alice").expect("alice");
    assert_eq!(alice.display_name.as_deref(), Some("Alice"));
    assert_eq!(alice.last_name.as_deref(), Some("Liddell"));
    assert_eq!(
        alice.attributes.get("paasd-managed"),
        Some(&vec!["true".to_string()])
    );
    assert!(d.check_password("alice", ALICE_PW));
    assert!(d.check_password("bob", BOB_PW));
    assert!(!d.user("carol").expect("carol").has_password);

    d.reset_stats();
    let r2 = reconcile::apply(&spec, &env.opts()).await;
    assert_eq!(
        r2.summary_line(),
        "0 created, 0 updated, 0 deleted, 5 unchanged, 0 failed"
    );
    let s = d.stats();
    assert_eq!(s.total_mutations(), 0, "{s:#?}");
    assert!(
        s.total_requests() <= 3,
        "no-change run sent {} requests",
        s.total_requests()
    );
    assert_eq!(
        s.ldap_ops("bind"),
        0,
        "no LDAP bind on a no-change run: {s:#?}"
    );
    assert_eq!(r2.targets[0].requests, s.total_requests());
    assert_eq!(d.password_set_count("alice"), 1);
    d.assert_no_violations();
}

#[tokio::test]
async fn passwords_enforce_vs_initial_and_fingerprints_avoid_rewrites() {
    let env = Env::start().await;
    let spec = env.default_spec();
    reconcile::apply(&spec, &env.opts()).await;
    // Both files change.
    env.secret("alice", "alice-New-Secret-2");
    env.secret("bob", "bob-New-Secret-2");
    let d = &env.double;
    d.reset_stats();
    let r = reconcile::apply(&spec, &env.opts()).await;
    assert_eq!(r.failed, 0, "{:#?}", r.objects);
    assert!(
        d.check_password("alice", "alice-New-Secret-2"),
        "enforce: alice follows her file"
    );
    assert!(
        d.check_password("bob", BOB_PW),
        "initial: bob keeps his first password"
    );
    assert_eq!(d.stats().ldap_ops("password_modify"), 1);

    // Someone changes alice's password behind paasd's back: a normal run does not notice
    // (fingerprint unchanged, no bind), --verify-passwords does and repairs it.
    reconcile::apply(&spec, &env.opts()).await;
    d.with_state(|st| st.set_password("alice", "changed-by-hand"))
        .expect("set by hand");
    let r = reconcile::apply(&spec, &env.opts()).await;
    assert_eq!(r.updated, 0);
    assert!(d.check_password("alice", "changed-by-hand"));
    let mut o = env.opts();
    o.verify_passwords = true;
    let r = reconcile::apply(&spec, &o).await;
    assert_eq!(r.updated, 1, "{r:#?}");
    assert!(d.check_password("alice", "alice-New-Secret-2"));
    // Verifying passwords that are right changes nothing and writes nothing.
    d.reset_stats();
    let r = reconcile::apply(&spec, &o).await;
    assert_eq!(
        r.summary_line(),
        "0 created, 0 updated, 0 deleted, 5 unchanged, 0 failed"
    );
    assert_eq!(d.stats().ldap_ops("password_modify"), 0);
    d.assert_no_violations();
}

#[tokio::test]
async fn unmanaged_users_survive_and_removed_users_are_disabled_then_deleted() {
    let env = Env::start().await;
    let d = &env.double;
    d.seed_user(SeedUser {
        groups: vec!["family".into()],
        ..SeedUser::new("zoe", "zoe@example.com")
    })
    .expect("seed zoe");
    reconcile::apply(&env.default_spec(), &env.opts()).await;
    assert!(groups_of(d, "zoe").contains(&"family".to_string()));

    // alice leaves the spec: disabled (default removal), zoe untouched.
    let users = env.default_users();
    let mut fewer = users.clone();
    fewer.as_object_mut().map(|o| o.remove("alice"));
    let groups = json!({ "family": {}, "media": { "displayName": "Media" } });
    let r = reconcile::apply(
        &env.spec(fewer.clone(), groups.clone(), json!({})),
        &env.opts(),
    )
    .await;
    assert_eq!(r.updated, 1, "{r:#?}");
    assert_eq!(groups_of(d, "alice"), vec!["paas_disabled"]);
    assert!(groups_of(d, "zoe").contains(&"family".to_string()));

    // removal = delete: alice goes, zoe stays.
    let r = reconcile::apply(
        &env.spec(fewer, groups, json!({ "removal": "delete" })),
        &env.opts(),
    )
    .await;
    assert_eq!(r.deleted, 1, "{r:#?}");
    assert!(d.user("alice").is_none());
    assert!(d.user("zoe").is_some());
    d.assert_no_violations();
}

#[tokio::test]
async fn one_failing_user_does_not_stop_the_others() {
    let env = Env::start().await;
    let d = &env.double;
    // zoe (hand-made) already holds bob's e-mail.
    d.seed_user(SeedUser::new("zoe", "bob@example.com"))
        .expect("seed");
    let r = reconcile::apply(&env.default_spec(), &env.opts()).await;
    assert_eq!(r.failed, 1, "{r:#?}");
    let bob = r
        .objects
        .iter()
        .find(|o| o.name == "bob")
        .expect("bob reported");
    assert_eq!(bob.outcome, Outcome::Failed);
    assert!(bob
        .error
        .as_deref()
        .unwrap_or("")
        .contains("already used by LLDAP user \"zoe\""));
    assert!(d.user("alice").is_some());
    assert!(d.user("carol").is_some());
    d.assert_no_violations();
}

#[tokio::test]
async fn faults_retry_and_still_converge() {
    let env = Env::start().await;
    let d = &env.double;
    let f = d.faults();
    f.fail_next(3, 503);
    f.reset_next(2);
    f.truncate_next(2);
    f.set_delay(Duration::from_millis(20));
    f.expire_tokens_after(4);
    f.ldap_reset_next(1);
    let spec = env.default_spec();
    // 7 failures in a row at first: within 8 attempts per request.
    let mut o = env.opts();
    o.backoff.attempts = 8;
    o.ready_wait.attempts = 8;
    let r = reconcile::apply(&spec, &o).await;
    assert_eq!(r.failed, 0, "{:#?}", r.objects);
    let injected: u64 = d.stats().faults_injected.values().sum();
    assert!(
        injected >= 8,
        "faults were injected: {:?}",
        d.stats().faults_injected
    );
    f.clear();
    d.reset_stats();
    let r = reconcile::apply(&spec, &env.opts()).await;
    assert_eq!(
        r.summary_line(),
        "0 created, 0 updated, 0 deleted, 5 unchanged, 0 failed"
    );
    assert_eq!(
        d.stats().total_mutations(),
        0,
        "converged: no duplicate work"
    );
    assert_eq!(d.users().len(), 4, "admin + 3, no duplicates");
    d.assert_no_violations();
}

#[tokio::test]
async fn lldap_down_is_reported_per_user_with_the_reason() {
    let env = Env::start().await;
    let mut v = env.spec_json(
        env.default_users(),
        json!({ "family": {}, "media": {} }),
        json!({}),
    );
    v["lldap"]["url"] = json!("http://127.0.0.1:9");
    let spec = parse_spec(&v.to_string()).expect("valid");
    let mut o = env.opts();
    o.backoff.attempts = 2;
    let r = reconcile::apply(&spec, &o).await;
    assert_eq!(r.failed, 5);
    assert!(!r.targets[0].ok);
    assert!(
        r.targets[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("cannot reach LLDAP"),
        "{r:#?}"
    );
}

fn paasctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_paasctl"))
        .args(args)
        .env("PAASCTL_LOG", "debug")
        .output()
        .expect("run paasctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test(flavor = "multi_thread")]
async fn paasctl_plan_apply_validate() {
    let env = Env::start().await;
    let v = env.spec_json(
        env.default_users(),
        json!({ "family": {}, "media": { "displayName": "Media" } }),
        json!({}),
    );
    let spec = env.write_spec(&v);
    let state = env.state_dir();
    let (spec_s, state_s) = (path_str(&spec).to_string(), path_str(&state).to_string());
    let run = |args: Vec<&str>| {
        let args: Vec<String> = args.into_iter().map(str::to_string).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                paasctl(&a)
            })
            .await
            .expect("join")
        }
    };

    let (code, out, err) = run(vec!["validate", "--spec", &spec_s]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is valid: 3 users, 2 groups"), "{out}");

    let (code, out, _) = run(vec![
        "plan",
        "--spec",
        &spec_s,
        "--state-dir",
        &state_s,
        "--detailed-exitcode",
    ])
    .await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("+ lldap user \"alice\" (create)"), "{out}");
    assert!(out.contains("+ lldap group \"family\" (create)"), "{out}");
    assert!(
        out.contains("Plan: 8 to create, 0 to change, 0 to delete."),
        "{out}"
    );
    assert!(!state.join("state.json").exists(), "plan writes nothing");
    assert!(env.double.user("alice").is_none());

    let (code, out, err) = run(vec!["apply", "--spec", &spec_s, "--state-dir", &state_s]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.trim(),
        "6 created, 0 updated, 0 deleted, 0 unchanged, 0 failed"
    );
    for secret in [ADMIN_PW, ALICE_PW, BOB_PW] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "a password leaked into paasctl's output"
        );
    }
    assert!(
        err.contains("paas_user"),
        "debug logs carry structured fields: {err}"
    );

    let (code, out, _) = run(vec![
        "apply",
        "--spec",
        &spec_s,
        "--state-dir",
        &state_s,
        "--json",
    ])
    .await;
    assert_eq!(code, 0);
    let j: Value = serde_json::from_str(&out).expect("--json prints one JSON object");
    for k in ["created", "updated", "deleted", "unchanged", "failed"] {
        assert!(j.get(k).is_some(), "missing {k}");
    }
    assert_eq!(j["unchanged"], 5);

    let (code, out, _) = run(vec![
        "plan",
        "--spec",
        &spec_s,
        "--state-dir",
        &state_s,
        "--detailed-exitcode",
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("No changes."), "{out}");

    let mut bad = v.clone();
    bad["users"]["bob"]["groups"] = json!(["nope"]);
    bad["users"]["alice"]["email"] = json!("not-an-email");
    let bad_path = env.dir.path().join("bad.json");
    fs::write(&bad_path, bad.to_string()).expect("write");
    let (code, _, err) = run(vec!["validate", "--spec", path_str(&bad_path)]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("users.bob.groups[0]: group \"nope\" is not declared under groups"),
        "{err}"
    );
    assert!(
        err.contains("users.alice.email: \"not-an-email\" is not an e-mail address"),
        "{err}"
    );

    // A password file readable by others is refused for that user, with the fix in the message.
    fs::set_permissions(
        env.dir.path().join("alice.pw"),
        fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let (code, out, err) = run(vec!["apply", "--spec", &spec_s, "--state-dir", &state_s]).await;
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("alice") && err.contains("chmod 600"), "{err}");
    assert!(out.contains("1 failed"), "{out}");
    env.double.assert_no_violations();
}
