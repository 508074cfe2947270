//! End-to-end benchmark: `reconcile::apply` against the LLDAP test double on loopback, counting
//! HTTP requests, bytes and LDAP operations as the double saw them.
//!
//!     cargo bench --bench e2e                    # N = 100, 1000, 10000
//!     cargo bench --bench e2e -- 1000            # one size
//!     cargo test --bench e2e                     # a smoke run with 20 users
//!
//! For each N: first apply of N users (2 groups each, a password file each), a no-change
//! reconcile, and a change of 1 % of the users (e-mail + one membership). Results are printed as a
//! Markdown table (docs/performance.md records them).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use paas_doubles::lldap::{LldapConfig, LldapDouble};
use paasd::core::spec::parse_spec;
use paasd::reconcile::{self, Options};
use serde_json::{json, Map, Value};

const GROUPS: usize = 10;

fn spec_json(
    d: &LldapDouble,
    dir: &std::path::Path,
    n: usize,
    changed_every: Option<usize>,
) -> Value {
    let mut users = Map::new();
    for i in 0..n {
        let changed = changed_every.is_some_and(|k| i % k == 0);
        let g1 = format!("g{}", i % GROUPS);
        let g2 = format!("g{}", (i + if changed { 2 } else { 1 }) % GROUPS);
        users.insert(
            format!("user{i:06}"),
            json!({
                "email": if changed { format!("user{i:06}@changed.example.com") } else { format!("user{i:06}@example.com") },
                "displayName": format!("User {i}"),
                "groups": [g1, g2],
                "passwordFile": dir.join(format!("pw{}", i % 50)),
            }),
        );
    }
    let groups: Map<String, Value> = (0..GROUPS).map(|g| (format!("g{g}"), json!({}))).collect();
    json!({
        "version": 1,
        "lldap": {
            "url": d.http_url(), "ldapUrl": d.ldap_url(), "baseDn": d.base_dn(),
            "adminPasswordFile": dir.join("admin"), "timeoutSeconds": 120
        },
        "groups": groups,
        "users": users,
    })
}

struct Row {
    n: usize,
    run: &'static str,
    wall: Duration,
    requests: u64,
    req_bytes: u64,
    resp_bytes: u64,
    mutations: u64,
    ldap_binds: u64,
    password_writes: u64,
    summary: String,
}

async fn run(
    d: &LldapDouble,
    spec: &Value,
    state: &std::path::Path,
    n: usize,
    name: &'static str,
) -> Row {
    let spec = parse_spec(&spec.to_string()).expect("valid spec");
    let mut opts = Options::new(state);
    opts.concurrency = 16;
    d.reset_stats();
    let t = Instant::now();
    let r = reconcile::apply(&spec, &opts).await;
    let wall = t.elapsed();
    let s = d.stats();
    assert_eq!(
        r.failed,
        0,
        "{name} at {n}: {:?}",
        r.objects.iter().find(|o| o.error.is_some())
    );
    Row {
        n,
        run: name,
        wall,
        requests: s.total_requests(),
        req_bytes: s.request_bytes,
        resp_bytes: s.response_bytes,
        mutations: s.total_mutations(),
        ldap_binds: s.ldap_ops("bind"),
        password_writes: s.ldap_ops("password_modify"),
        summary: r.summary_line(),
    }
}

fn max_rss_kib() -> i64 {
    // SAFETY: getrusage writes into the struct we pass.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u.ru_maxrss
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it: a
    // smoke run with a few users then, so the test suite stays fast.
    let benching = std::env::args().any(|a| a == "--bench");
    let sizes = match (sizes.is_empty(), benching) {
        (false, _) => sizes,
        (true, true) => vec![100, 1000, 10_000],
        (true, false) => vec![20],
    };
    println!("| N users | run | wall time | HTTP requests | request bytes | response bytes | mutations | LDAP binds | password writes | summary |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for n in sizes {
        let d = LldapDouble::start(LldapConfig::new("bench-admin-pw"))
            .await
            .expect("start the double");
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, v: &str| {
            let p = dir.path().join(name);
            fs::write(&p, v).expect("write");
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
        };
        write("admin", "bench-admin-pw");
        for i in 0..50 {
            write(&format!("pw{i}"), &format!("bench-password-{i}"));
        }
        let state = dir.path().join("state");
        let base = spec_json(&d, dir.path(), n, None);
        let changed = spec_json(&d, dir.path(), n, Some(100));
        let rows = vec![
            run(&d, &base, &state, n, "first apply").await,
            run(&d, &base, &state, n, "no change").await,
            run(&d, &changed, &state, n, "1 % changed").await,
            run(&d, &changed, &state, n, "no change").await,
        ];
        for r in rows {
            println!(
                "| {} | {} | {:.3} s | {} | {} | {} | {} | {} | {} | {} |",
                r.n,
                r.run,
                r.wall.as_secs_f64(),
                r.requests,
                r.req_bytes,
                r.resp_bytes,
                r.mutations,
                r.ldap_binds,
                r.password_writes,
                r.summary
            );
        }
        d.assert_no_violations();
        d.stop().await;
    }
    eprintln!(
        "peak RSS of this process (client + in-process double): {} MiB",
        max_rss_kib() / 1024
    );
}
