//! The `paasd` binary as systemd runs it, against the LLDAP double: the sd_notify protocol read
//! from a real NOTIFY_SOCKET datagram socket and real signals; paasctl talking to it over a
//! private bus.
//!
//! The real binary runs on the real clock, out of reach of tokio's paused time: the tests wait
//! for what the daemon tells (notifications, its D-Bus answers) and assert on that, never on how
//! long it took. The only time limits are hang guards ([`HANG_GUARD`]), not assertions about
//! speed.

mod daemon_support;

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use daemon_support::{PrivateBus, HANG_GUARD};
use paas_doubles::lldap::{LldapConfig, LldapDouble};
use paas_doubles::nextcloud::{NextcloudConfig, NextcloudDouble};

const ADMIN_PW: &str = "double-admin-Secret-93f1";
const ALICE_PW: &str = "alice-Secret-51aa";
const NC_ADMIN_PW: &str = "nc-admin-Secret-7c2e";

struct Setup {
    dir: tempfile::TempDir,
    double: LldapDouble,
}

impl Setup {
    async fn new() -> Setup {
        let double = LldapDouble::start(LldapConfig::new(ADMIN_PW))
            .await
            .expect("the LLDAP double starts");
        let dir = tempfile::tempdir().unwrap();
        secret(&dir.path().join("admin"), ADMIN_PW);
        secret(&dir.path().join("alice"), ALICE_PW);
        secret(&dir.path().join("nc-admin"), NC_ADMIN_PW);
        let s = Setup { dir, double };
        s.write_spec(&["bob"]);
        s
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_spec(&self, extra: &[&str]) {
        self.write_spec_with(extra, None)
    }

    /// The spec with alice, the `extra` users and, given its URL, a Nextcloud connection.
    fn write_spec_with(&self, extra: &[&str], nextcloud: Option<&str>) {
        let mut users = serde_json::json!({
            "alice": { "email": "alice@example.com", "passwordFile": self.path("alice") },
        });
        for u in extra {
            users[*u] = serde_json::json!({ "email": format!("{u}@example.com") });
        }
        let mut spec = serde_json::json!({
            "version": 1,
            "lldap": {
                "url": self.double.http_url(),
                "ldapUrl": self.double.ldap_url(),
                "baseDn": "dc=example,dc=com",
                "adminPasswordFile": self.path("admin"),
            },
            "users": users,
        });
        if let Some(url) = nextcloud {
            spec["nextcloud"] = serde_json::json!({
                "url": url,
                "adminUser": "admin",
                "adminPasswordFile": self.path("nc-admin"),
            });
        }
        let tmp = self.path("spec.json.tmp");
        std::fs::write(&tmp, spec.to_string()).unwrap();
        std::fs::rename(&tmp, self.path("spec.json")).unwrap();
    }

    /// paasd with the given bus and, with `notify`, a watchdog of 400 ms.
    fn spawn_paasd(&self, bus: &str, notify: Option<&Path>) -> Child {
        self.spawn_paasd_with(bus, notify.map(|n| (n, Some("400000"))))
    }

    /// paasd with the given bus and `(NOTIFY_SOCKET, WATCHDOG_USEC)`, under `sh` so that
    /// WATCHDOG_PID can name paasd's own pid.
    fn spawn_paasd_with(&self, bus: &str, notify: Option<(&Path, Option<&str>)>) -> Child {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("WATCHDOG_PID=$$ exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_paasd"))
            .args(["--spec"])
            .arg(self.path("spec.json"))
            .arg("--state-dir")
            .arg(self.path("state"))
            .args(["--bus", bus, "--log-format", "text"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((socket, watchdog_usec)) = notify {
            cmd.env("NOTIFY_SOCKET", socket);
            if let Some(usec) = watchdog_usec {
                cmd.env("WATCHDOG_USEC", usec);
            }
        }
        cmd.spawn().unwrap()
    }
}

fn secret(path: &Path, value: &str) {
    std::fs::write(path, format!("{value}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// Messages from the notify socket until one satisfies `want` (the last one returned). Panics
/// after [`HANG_GUARD`] of silence about `what`: a hang guard, not an assertion about speed.
fn recv_until(sock: &UnixDatagram, what: &str, want: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + HANG_GUARD;
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 4096];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(deadline - Instant::now()))
            .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                let done = want(&msg);
                seen.push(msg);
                if done {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("hang guard: no notification {what} within {HANG_GUARD:?}; seen: {seen:#?}");
}

/// The `STATUS=` of a notification.
fn status_of(msg: &str) -> Option<&str> {
    msg.lines().find_map(|l| l.strip_prefix("STATUS="))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notify_protocol_on_a_real_notify_socket() {
    let s = Setup::new().await;
    let sock_path = s.path("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let child = s.spawn_paasd("none", Some(&sock_path));

    // READY=1 only after the first reconcile: alice and bob exist in LLDAP by then.
    let seen = tokio::task::block_in_place(|| {
        recv_until(&sock, "READY=1", |m| m.lines().any(|l| l == "READY=1"))
    });
    assert!(
        s.double.user("alice").is_some() && s.double.user("bob").is_some(),
        "READY=1 came before the first reconcile finished: {seen:#?}"
    );
    let ready = seen.last().unwrap();
    let status = status_of(ready).expect("READY=1 carries STATUS=");
    assert!(
        status.starts_with("2 users in sync · next resync "),
        "{status}"
    );
    assert!(
        seen.iter()
            .any(|m| m.contains("STATUS=0/2 users in sync · reconciling")),
        "a status while reconciling: {seen:#?}"
    );

    // WATCHDOG=1 (at half of WATCHDOG_USEC: unit-tested in daemon::notify).
    tokio::task::block_in_place(|| {
        recv_until(&sock, "WATCHDOG=1", |m| {
            m.lines().any(|l| l == "WATCHDOG=1")
        })
    });

    // SIGHUP: RELOADING=1 with MONOTONIC_USEC close to now, then READY=1; a reconcile follows.
    let before = monotonic_usec();
    signal(&child, libc::SIGHUP);
    let seen = tokio::task::block_in_place(|| {
        recv_until(&sock, "READY=1 after SIGHUP", |m| {
            m.lines().any(|l| l == "READY=1")
        })
    });
    let reloading = seen
        .iter()
        .find(|m| m.lines().any(|l| l == "RELOADING=1"))
        .unwrap_or_else(|| panic!("RELOADING=1 missing: {seen:#?}"));
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect("RELOADING=1 carries MONOTONIC_USEC=")
        .parse()
        .unwrap();
    assert!(
        usec >= before && usec <= monotonic_usec(),
        "MONOTONIC_USEC={usec} not within the reload"
    );

    // A spec change with a new user: reconciled without a signal, and told.
    s.write_spec(&["bob", "carol"]);
    let seen = tokio::task::block_in_place(|| {
        recv_until(&sock, "of 3 users in sync", |m| {
            status_of(m).is_some_and(|st| st.starts_with("3 users in sync"))
        })
    });
    assert!(
        s.double.user("carol").is_some(),
        "carol is in sync but not in LLDAP: {seen:#?}"
    );

    // SIGTERM: STOPPING=1, exit 0.
    signal(&child, libc::SIGTERM);
    tokio::task::block_in_place(|| {
        recv_until(&sock, "STOPPING=1", |m| {
            m.lines().any(|l| l == "STOPPING=1")
        })
    });
    let out = tokio::task::block_in_place(|| child.wait_with_output()).unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("reconcile started"), "{log}");
    assert!(
        !log.contains(ALICE_PW) && !log.contains(ADMIN_PW),
        "a secret in the log"
    );
}

/// `paasctl status --json` until `done` holds; polls every 50 ms, panics after [`HANG_GUARD`]
/// (a hang guard, not an assertion about speed).
async fn status_until(
    bus: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + HANG_GUARD;
    let mut last = None;
    while Instant::now() < deadline {
        let (code, out, _) = paasctl(&["status", "--bus", bus, "--json"]);
        if code == 0 {
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            if done(&v) {
                return v;
            }
            last = Some(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("hang guard: no status with {what} within {HANG_GUARD:?}; last: {last:#?}");
}

fn paasctl(args: &[&str]) -> (i32, String, String) {
    paasctl_env(args, None)
}

fn paasctl_env(args: &[&str], bus_env: Option<&str>) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paasctl"));
    if let Some(b) = bus_env {
        cmd.env("PAASD_BUS", b);
    }
    let out = cmd.args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paasctl_status_reconcile_and_plan_ask_the_daemon() {
    let s = Setup::new().await;
    let bus = PrivateBus::start("staff");
    let addr = bus.address.clone();

    let (code, _, err) = paasctl(&["status", "--bus", &addr]);
    assert_eq!(code, 1);
    assert!(err.contains("paasd is not running"), "{err}");

    let mut child = s.spawn_paasd(&addr, None);
    status_until(&addr, "the first run", |v| v["lastRun"].is_string()).await;

    let (code, out, err) = paasctl(&["status", "--bus", &addr]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("alice  ✓"), "{out}");
    assert!(out.contains("bob    ✓"), "{out}");

    let (code, out, err) = paasctl(&["reconcile", "--bus", &addr]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("0 created, 0 updated, 0 deleted,") && out.contains("0 failed"),
        "{out}"
    );

    // A failure: LLDAP answers 503 to everything for a while.
    s.double.faults().set(paas_doubles::lldap::FaultPlan {
        fail_next: 1000,
        ..Default::default()
    });
    let (code, out, _) = paasctl(&["reconcile", "--bus", &addr]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("✗ lldap"), "{out}");
    // LLDAP is not ready: every user of it waits (…), with the reason.
    let (_, out, _) = paasctl(&["status", "--bus", &addr]);
    assert!(out.contains("alice  …"), "{out}");
    assert!(
        out.contains("alice in lldap: waiting for lldap: LLDAP answered HTTP 503"),
        "{out}"
    );
    s.double.faults().clear();

    // plan without --spec: the daemon's plan of its spec (once it reconciled the new one: a
    // plan of three users, nothing to change).
    s.write_spec(&["bob", "dave"]);
    status_until(&addr, "dave reconciled", |v| {
        v["generation"] == 2 && v["users"]["dave"]["lldap"]["state"] == "ok"
    })
    .await;
    let (code, out, err) = paasctl_env(&["plan"], Some(&addr));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("No changes. Every target matches the spec: lldap (3 users"),
        "{out}"
    );

    signal(&child, libc::SIGTERM);
    let status = tokio::task::block_in_place(|| child.wait()).unwrap();
    assert!(status.success());
}

/// The cells of `user`'s row in `paasctl status`, by target.
fn row<'a>(table: &'a str, user: &str) -> Vec<&'a str> {
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(user))
        .unwrap_or_else(|| panic!("no row for {user}: {table}"));
    line.split_whitespace().skip(1).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nextcloud_that_is_down_shows_in_status_and_recovers_when_it_comes_up() {
    let s = Setup::new().await;
    // Nextcloud's port, bound but not listening: connections are refused, as when Nextcloud is
    // down, and no other socket can take the port meanwhile (SO_REUSEADDR lets the double listen
    // on it later).
    let port = tokio::net::TcpSocket::new_v4().unwrap();
    port.set_reuseaddr(true).unwrap();
    port.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let nc_addr = port.local_addr().unwrap();
    let nc_url = format!("http://{nc_addr}");
    s.write_spec_with(&["bob"], Some(&nc_url));
    let bus = PrivateBus::start("staff");
    let addr = bus.address.clone();
    let sock_path = s.path("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let child = s.spawn_paasd_with(&addr, Some((&sock_path, None)));
    let reason = format!("waiting for nextcloud: cannot reach nextcloud at {nc_url}");

    // The first run: LLDAP applied, Nextcloud waited for (the engine's readiness wait, up to
    // ~7 s) and reported as waiting.
    let seen = tokio::task::block_in_place(|| {
        recv_until(&sock, "READY=1", |m| m.lines().any(|l| l == "READY=1"))
    });
    let status = status_of(seen.last().unwrap()).expect("READY=1 carries STATUS=");
    assert!(
        status.starts_with("0/2 users in sync · "),
        "nobody is in sync in every target: {status}"
    );
    assert!(
        status.contains(&format!("nextcloud: {reason}")),
        "STATUS= names nextcloud and why: {status}"
    );
    assert!(s.double.user("alice").is_some() && s.double.user("bob").is_some());

    let (code, out, err) = paasctl(&["status", "--bus", &addr]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("USER   lldap  nextcloud"), "{out}");
    for user in ["alice", "bob"] {
        let cells = row(&out, user);
        assert_eq!(cells[0], "✓", "{user} in lldap: {out}");
        assert!(
            cells[1] == "…" || cells[1] == "✗",
            "{user} in nextcloud is pending or failed: {out}"
        );
        assert!(
            out.contains(&format!("{user} in nextcloud: {reason}")),
            "{user}'s reason: {out}"
        );
    }
    assert!(out.contains(&format!("  nextcloud: {reason}")), "{out}");
    let (code, json, err) = paasctl(&["status", "--bus", &addr, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["targets"]["nextcloud"]["ok"], false, "{v:#}");
    assert_eq!(v["targets"]["nextcloud"]["state"], "waiting", "{v:#}");
    assert_eq!(v["targets"]["lldap"]["ok"], true, "{v:#}");

    // Nextcloud comes up on its port; a reconcile provisions it.
    let nc = NextcloudDouble::start(NextcloudConfig {
        addr: nc_addr,
        ..NextcloudConfig::new(NC_ADMIN_PW)
    })
    .await
    .expect("the Nextcloud double starts on the reserved port");
    let (code, out, err) = paasctl(&["reconcile", "--bus", &addr]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(" 0 failed"), "{out}");
    assert!(nc.user("alice").is_some() && nc.user("bob").is_some());
    nc.assert_no_violations();

    let (_, out, _) = paasctl(&["status", "--bus", &addr]);
    for user in ["alice", "bob"] {
        assert_eq!(row(&out, user)[..2], ["✓", "✓"], "{user}: {out}");
    }
    assert!(!out.contains("waiting for nextcloud"), "{out}");
    let (_, json, _) = paasctl(&["status", "--bus", &addr, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["targets"]["nextcloud"]["ok"], true, "{v:#}");
    // Notifications come in order: the one that says everyone is in sync follows the recovery.
    let seen = tokio::task::block_in_place(|| {
        recv_until(&sock, "of 2 users in sync", |m| {
            status_of(m).is_some_and(|st| st.starts_with("2 users in sync"))
        })
    });
    let status = status_of(seen.last().unwrap()).unwrap();
    assert!(!status.contains("nextcloud"), "{status}");

    signal(&child, libc::SIGTERM);
    let out = tokio::task::block_in_place(|| child.wait_with_output()).unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !log.contains(NC_ADMIN_PW) && !log.contains(ALICE_PW),
        "a secret in the log"
    );
}
