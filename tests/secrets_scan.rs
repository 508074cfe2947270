//! Secrets never leak: paasctl (validate, plan, apply; text and --json; PAASCTL_LOG=trace) runs
//! against the LLDAP double on success and failure paths, and stdout, stderr, the spec, every
//! file in the state directory and the running process's command line are scanned for every
//! password in use. The scanner is shown to find a planted needle, so the check can fail.
//! Against Vaultwarden too: its admin token and every admin session cookie it issued appear
//! nowhere but in the 0600 sessions file — on success, on a rejected session and on a rate limit.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use paas_doubles::lldap::{LldapConfig, LldapDouble};
use paas_doubles::vaultwarden::{VaultwardenConfig, VaultwardenDouble};
use serde_json::{json, Value};

const ADMIN_PW: &str = "Adm1n-S3cret-zq8w";
const WRONG_ADMIN_PW: &str = "Wr0ng-Adm1n-kk2p";
const ALICE_PW: &str = "Al1ce-S3cret-vv7m";
const BOB_PW: &str = "B0b-S3cret-hh3n";
const CAROL_PW: &str = "Car0l-S3cret-rr5t";
const ALL: [&str; 5] = [ADMIN_PW, WRONG_ADMIN_PW, ALICE_PW, BOB_PW, CAROL_PW];

/// Every place a secret was found: (where, which secret).
fn scan(label: &str, haystack: &[u8], found: &mut Vec<String>) {
    let text = String::from_utf8_lossy(haystack);
    for s in ALL {
        if text.contains(s) {
            found.push(format!("{label}: contains {s}"));
        }
    }
}

fn scan_dir(dir: &Path, found: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            scan_dir(&p, found);
        } else if let Ok(bytes) = fs::read(&p) {
            scan(&p.display().to_string(), &bytes, found);
        }
    }
}

fn secret(dir: &Path, name: &str, value: &str, mode: u32) -> String {
    let p = dir.join(name);
    fs::write(&p, format!("{value}\n")).expect("write secret");
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
    p.to_str().expect("utf-8").to_string()
}

fn spec(d: &LldapDouble, dir: &Path, admin_file: &str, url: &str) -> Value {
    json!({
        "version": 1,
        "lldap": {
            "url": url, "ldapUrl": d.ldap_url(), "baseDn": d.base_dn(),
            "adminPasswordFile": admin_file, "timeoutSeconds": 3
        },
        "groups": { "family": {} },
        "users": {
            "alice": { "email": "alice@example.com", "groups": ["family"], "admin": true,
                       "passwordFile": dir.join("alice.pw") },
            "bob": { "email": "bob@example.com", "passwordFile": dir.join("bob.pw"),
                     "passwordMode": "initial" },
            "carol": { "email": "carol@example.com", "passwordFile": dir.join("carol.pw") }
        }
    })
}

fn paasctl(args: &[&str], spec: &Path, state: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_paasctl"))
        .args(args)
        .arg("--spec")
        .arg(spec)
        .args(if args[0] == "validate" {
            vec![]
        } else {
            vec!["--state-dir".to_string(), state.display().to_string()]
        })
        .env("PAASCTL_LOG", "trace")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run paasctl")
}

#[test]
fn the_scanner_finds_a_planted_needle() {
    let mut found = Vec::new();
    scan("clean", b"nothing to see", &mut found);
    assert!(found.is_empty());
    scan(
        "planted",
        format!("log line password={BOB_PW} end").as_bytes(),
        &mut found,
    );
    assert_eq!(found.len(), 1, "{found:?}");
    let d = tempfile::tempdir().expect("tempdir");
    secret(d.path(), "x", ALICE_PW, 0o600);
    let mut found = Vec::new();
    scan_dir(d.path(), &mut found);
    assert_eq!(found.len(), 1, "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_in_output_state_spec_or_argv() {
    let d = LldapDouble::start(LldapConfig::new(ADMIN_PW))
        .await
        .expect("the LLDAP double starts (needs ../shared/contracts)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let admin = secret(dir, "admin.pw", ADMIN_PW, 0o600);
    let wrong = secret(dir, "wrong.pw", WRONG_ADMIN_PW, 0o600);
    secret(dir, "alice.pw", ALICE_PW, 0o600);
    secret(dir, "bob.pw", BOB_PW, 0o600);
    secret(dir, "carol.pw", CAROL_PW, 0o600);
    let state = dir.join("state");
    let good = dir.join("spec.json");
    fs::write(&good, spec(&d, dir, &admin, &d.http_url()).to_string()).expect("spec");
    let down = dir.join("down.json");
    fs::write(
        &down,
        spec(&d, dir, &admin, "http://127.0.0.1:9").to_string(),
    )
    .expect("spec");
    let wrong_spec = dir.join("wrong.json");
    fs::write(
        &wrong_spec,
        spec(&d, dir, &wrong, &d.http_url()).to_string(),
    )
    .expect("spec");
    let mut invalid = spec(&d, dir, &admin, &d.http_url());
    invalid["users"]["alice"]["passwordFile"] = json!("relative/alice.pw");
    invalid["users"]["bob"]["email"] = json!(42);
    let invalid_path = dir.join("invalid.json");
    fs::write(&invalid_path, invalid.to_string()).expect("spec");

    let mut found = Vec::new();
    let mut runs = 0;
    let mut run = |name: &str, args: &[&str], spec: &Path, found: &mut Vec<String>| {
        let (args, spec, state): (Vec<String>, _, _) = (
            args.iter().map(|s| s.to_string()).collect(),
            spec.to_path_buf(),
            state.clone(),
        );
        let out = std::thread::spawn(move || {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            paasctl(&a, &spec, &state)
        })
        .join()
        .expect("join");
        scan(&format!("{name} stdout"), &out.stdout, found);
        scan(&format!("{name} stderr"), &out.stderr, found);
        runs += 1;
        out
    };

    // Success paths.
    let o = run("validate", &["validate"], &good, &mut found);
    assert!(o.status.success());
    let o = run("plan", &["plan"], &good, &mut found);
    assert!(o.status.success());
    run("plan --json", &["plan", "--json"], &good, &mut found);
    let o = run("apply", &["apply"], &good, &mut found);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("TRACE")
            || String::from_utf8_lossy(&o.stderr).contains("DEBUG"),
        "trace logs were on"
    );
    run("apply --json", &["apply", "--json"], &good, &mut found);
    run(
        "apply --verify-passwords",
        &["apply", "--verify-passwords", "--json"],
        &good,
        &mut found,
    );

    // Failure paths.
    let o = run("apply, LLDAP down", &["apply", "--json"], &down, &mut found);
    assert!(!o.status.success());
    let o = run(
        "apply, wrong admin password",
        &["apply"],
        &wrong_spec,
        &mut found,
    );
    assert!(!o.status.success());
    let o = run(
        "plan, wrong admin password",
        &["plan", "--json"],
        &wrong_spec,
        &mut found,
    );
    assert!(!o.status.success());
    let o = run(
        "validate, invalid spec",
        &["validate"],
        &invalid_path,
        &mut found,
    );
    assert!(!o.status.success());
    fs::set_permissions(dir.join("carol.pw"), fs::Permissions::from_mode(0o644)).expect("chmod");
    secret(dir, "alice.pw", "Al1ce-S3cret-vv7m-2", 0o600); // a change: alice is written again
    let o = run(
        "apply, bad password file mode",
        &["apply", "--json"],
        &good,
        &mut found,
    );
    assert!(!o.status.success(), "carol's file is refused");
    fs::set_permissions(dir.join("carol.pw"), fs::Permissions::from_mode(0o600)).expect("chmod");
    d.faults().expire_tokens_after(1);
    d.faults().fail_next(2, 503);
    run(
        "apply, token expiry + 503",
        &["apply", "--json"],
        &good,
        &mut found,
    );
    d.faults().clear();

    // The command line of a running paasctl (slowed down so it can be read).
    d.faults().set_delay(Duration::from_millis(300));
    let mut child = Command::new(env!("CARGO_BIN_EXE_paasctl"))
        .args(["apply", "--verify-passwords", "--spec"])
        .arg(&good)
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let cmdline =
        fs::read(format!("/proc/{}/cmdline", child.id())).expect("read /proc/<pid>/cmdline");
    assert!(
        String::from_utf8_lossy(&cmdline).contains("apply"),
        "read the right process"
    );
    scan("/proc/<pid>/cmdline", &cmdline, &mut found);
    let _ = child.wait();
    d.faults().clear();

    // Files at rest: the spec and everything in the state directory.
    for spec in [&good, &down, &wrong_spec, &invalid_path] {
        scan(
            &spec.display().to_string(),
            &fs::read(spec).expect("spec"),
            &mut found,
        );
    }
    assert!(state.join("state.json").exists());
    scan_dir(&state, &mut found);

    assert!(runs >= 12);
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
    d.assert_no_violations();
}

const VW_TOKEN: &str = "Vw-T0ken-S3cret-pp4x";

/// Every place one of `needles` was found in `haystack`.
fn scan_for(label: &str, haystack: &[u8], needles: &[String], found: &mut Vec<String>) {
    let text = String::from_utf8_lossy(haystack);
    for n in needles {
        if text.contains(n.as_str()) {
            found.push(format!("{label}: contains {n}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_vaultwarden_token_or_session_in_output_state_or_logs() {
    let d = LldapDouble::start(LldapConfig::new(ADMIN_PW))
        .await
        .expect("the LLDAP double starts (needs ../shared/contracts)");
    let vw = VaultwardenDouble::start(VaultwardenConfig::new(VW_TOKEN))
        .await
        .expect("the Vaultwarden double starts");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let admin = secret(dir, "admin.pw", ADMIN_PW, 0o600);
    let token = secret(dir, "vw.token", VW_TOKEN, 0o600);
    secret(dir, "alice.pw", ALICE_PW, 0o600);
    secret(dir, "bob.pw", BOB_PW, 0o600);
    secret(dir, "carol.pw", CAROL_PW, 0o600);
    let state = dir.join("state");
    let mut v = spec(&d, dir, &admin, &d.http_url());
    v["vaultwarden"] = json!({ "url": vw.url(), "adminTokenFile": token });
    let good = dir.join("spec.json");
    fs::write(&good, v.to_string()).expect("spec");

    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut run = |name: &str, args: &[&str]| {
        let (args, spec, state): (Vec<String>, _, _) = (
            args.iter().map(|s| s.to_string()).collect(),
            good.clone(),
            state.clone(),
        );
        let out = std::thread::spawn(move || {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            paasctl(&a, &spec, &state)
        })
        .join()
        .expect("join");
        outputs.push((format!("{name} stdout"), out.stdout.clone()));
        outputs.push((format!("{name} stderr"), out.stderr.clone()));
        out
    };
    let o = run("plan", &["plan"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run("apply", &["apply"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    run("apply --json", &["apply", "--json"]);
    run("plan --json", &["plan", "--json"]);
    // The session is rejected (past its lifetime on Vaultwarden's clock): a new login.
    vw.advance_clock(Duration::from_secs(21 * 60));
    let o = run("apply, session rejected", &["apply", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(vw.logins().ok, 2, "{:?}", vw.logins());
    // Rate limited: the logins of this address are used up and no session is kept.
    let http = reqwest::Client::new();
    while vw.logins().rate_limited == 0 {
        http.post(format!("{}/admin", vw.url()))
            .form(&[("token", VW_TOKEN)])
            .send()
            .await
            .expect("login");
    }
    // The one place the session is: the sessions file, owner-only.
    let sessions = state.join("sessions.json");
    let mode = fs::metadata(&sessions).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let kept = fs::read_to_string(&sessions).expect("read");
    assert!(
        vw.session_cookies()
            .iter()
            .any(|c| kept.contains(c.as_str())),
        "the scan looks for what the sessions file holds"
    );
    let mut found = Vec::new();
    let passwords: Vec<String> = ALL
        .iter()
        .chain([&VW_TOKEN])
        .map(|s| s.to_string())
        .collect();
    scan_for("sessions.json", kept.as_bytes(), &passwords, &mut found);
    fs::remove_file(&sessions).expect("the sessions file");
    let o = run("apply, rate limited", &["apply"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("rate limited by Vaultwarden"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    run("plan, rate limited", &["plan", "--json"]);
    assert!(
        String::from_utf8_lossy(&outputs[1].1).contains("TRACE")
            || String::from_utf8_lossy(&outputs[1].1).contains("DEBUG"),
        "trace logs were on"
    );

    let mut needles = passwords;
    let cookies = vw.session_cookies();
    assert!(
        cookies.len() >= 2,
        "paasd's two sessions and the test's: {cookies:?}"
    );
    needles.extend(cookies);
    for (label, bytes) in &outputs {
        scan_for(label, bytes, &needles, &mut found);
    }
    scan_for(
        "spec",
        &fs::read(&good).expect("spec"),
        &needles,
        &mut found,
    );
    // Every file left in the state directory.
    let mut dirs = vec![state.clone()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).expect("read dir").filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                scan_for(
                    &p.display().to_string(),
                    &fs::read(&p).expect("read"),
                    &needles,
                    &mut found,
                );
            }
        }
    }
    assert!(state.join("state.json").exists());
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
    d.assert_no_violations();
    vw.assert_no_violations();
}
