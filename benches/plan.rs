//! Benchmark of the pure plan (no I/O): `plan::plan` for N = 1k, 10k, 100k declared users.
//!
//!     cargo bench --bench plan                         # criterion: first plan and no-change plan
//!     cargo bench --bench plan -- --rss 100000         # peak RSS of spec + directory + plan
//!
//! The spec is realistic: 10 groups, every user in 2 of them, a display name, and a password
//! (the plan sees its fingerprint). Two observed directories:
//! (a) a fresh LLDAP (admin + built-in groups): the first plan creates everything;
//! (b) converged: the fresh directory after `simulate::apply` of the first plan; its plan is empty.
//!
//! The `--rss` mode builds the spec (from JSON text, as paasd reads it), the converged directory
//! and state, and the no-change plan, and prints the process's peak RSS (getrusage) and the
//! resident bytes per managed user — what the daemon holds per user between reconciles.

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use paasd::directory::{AttributeSchema, DirGroup, DirUser, Directory};
use paasd::plan::{self, simulate, PasswordInput, Plan, PlanInput};
use paasd::spec::{parse_spec, Spec};
use paasd::state::State;
use serde_json::{json, Map, Value};

const GROUPS: usize = 10;

fn spec_text(n: usize) -> String {
    let mut users = Map::new();
    for i in 0..n {
        users.insert(
            format!("user{i:06}"),
            json!({
                "email": format!("user{i:06}@example.com"),
                "displayName": format!("User {i}"),
                "groups": [format!("g{}", i % GROUPS), format!("g{}", (i + 1) % GROUPS)],
                "passwordFile": format!("/run/credentials/paasd.service/pw-{i}"),
            }),
        );
    }
    let groups: Map<String, Value> = (0..GROUPS).map(|g| (format!("g{g}"), json!({}))).collect();
    json!({
        "version": 1,
        "lldap": {
            "url": "http://127.0.0.1:17170",
            "ldapUrl": "ldap://127.0.0.1:3890",
            "baseDn": "dc=example,dc=com",
            "adminPasswordFile": "/run/credentials/paasd.service/lldap-admin-password"
        },
        "groups": groups,
        "users": users,
    })
    .to_string()
}

fn passwords(spec: &Spec) -> BTreeMap<String, PasswordInput> {
    spec.users
        .keys()
        .enumerate()
        .map(|(i, id)| {
            // The shape of a real fingerprint: 64 hex digits (HMAC-SHA-256).
            let fp = format!("{:064x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            (id.clone(), PasswordInput::Fingerprint(fp))
        })
        .collect()
}

/// A fresh LLDAP: the admin in lldap_admin, the three built-in groups, hard-coded attributes.
fn fresh() -> Directory {
    let mut d = Directory::default();
    for (id, name) in [
        (1, "lldap_admin"),
        (2, "lldap_password_manager"),
        (3, "lldap_strict_readonly"),
    ] {
        d.groups.insert(
            id,
            DirGroup {
                id,
                display_name: name.into(),
                attributes: BTreeMap::new(),
            },
        );
    }
    d.users.insert(
        "admin".into(),
        DirUser {
            id: "admin".into(),
            email: "admin@example.com".into(),
            groups: BTreeSet::from([1]),
            ..DirUser::default()
        },
    );
    for name in ["avatar", "first_name", "last_name"] {
        let schema = AttributeSchema {
            attribute_type: "STRING".into(),
            is_list: false,
            is_editable: true,
            is_readonly: false,
            is_hardcoded: true,
        };
        d.user_attributes.insert(name.into(), schema);
    }
    d
}

fn run_plan(
    spec: &Spec,
    dir: &Directory,
    state: &State,
    pw: &BTreeMap<String, PasswordInput>,
) -> Plan {
    plan::plan(&PlanInput {
        spec,
        dir,
        state,
        passwords: pw,
        verify_passwords: false,
        force: false,
        now: 1_800_000_000,
    })
}

struct Fixture {
    spec: Spec,
    pw: BTreeMap<String, PasswordInput>,
    empty_dir: Directory,
    empty_state: State,
    converged_dir: Directory,
    converged_state: State,
}

fn fixture(n: usize) -> Fixture {
    let spec = parse_spec(&spec_text(n)).expect("the bench spec is valid");
    let pw = passwords(&spec);
    let empty_dir = fresh();
    let empty_state = State::default();
    let first = run_plan(&spec, &empty_dir, &empty_state, &pw);
    let mut converged_dir = empty_dir.clone();
    let mut converged_state = State::default();
    simulate::apply(&spec, &first, &mut converged_dir, &mut converged_state, &pw);
    let again = run_plan(&spec, &converged_dir, &converged_state, &pw);
    assert!(again.is_empty(), "the converged plan must be empty");
    assert_eq!(again.unchanged_users, n);
    Fixture {
        spec,
        pw,
        empty_dir,
        empty_state,
        converged_dir,
        converged_state,
    }
}

fn bench_plan(c: &mut Criterion) {
    let mut g = c.benchmark_group("plan");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(5));
    // `cargo test` runs this bench once as a smoke test (without `--bench`): skip 100k there.
    let sizes: &[usize] = if std::env::args().any(|a| a == "--bench") {
        &[1_000, 10_000, 100_000]
    } else {
        &[1_000, 10_000]
    };
    for &n in sizes {
        let f = fixture(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("first", n), &f, |b, f| {
            b.iter(|| black_box(run_plan(&f.spec, &f.empty_dir, &f.empty_state, &f.pw)))
        });
        g.bench_with_input(BenchmarkId::new("no-change", n), &f, |b, f| {
            b.iter(|| {
                black_box(run_plan(
                    &f.spec,
                    &f.converged_dir,
                    &f.converged_state,
                    &f.pw,
                ))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_plan);

fn rss_kib() -> (i64, i64) {
    // SAFETY: getrusage only writes into the struct we pass.
    let peak = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u.ru_maxrss
    };
    // Current resident set: second field of /proc/self/statm, in pages.
    let pages: i64 = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|x| x.parse().ok()))
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as i64;
    (peak, pages * page / 1024)
}

/// Gives freed heap back to the kernel, so the resident set counts live data only.
fn trim() {
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn mib(kib: i64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn rss_mode(n: usize) {
    // ru_maxrss survives exec (it starts at the parent's peak): the baseline is the current RSS.
    let (_, base) = rss_kib();
    let t = Instant::now();
    let text = spec_text(n);
    let (_, with_text) = rss_kib();
    let spec = parse_spec(&text).expect("the bench spec is valid");
    let parse = t.elapsed();
    drop(text);
    trim();
    let (_, with_spec) = rss_kib();
    let pw = passwords(&spec);
    let (_, with_pw) = rss_kib();
    let empty = fresh();
    let t = Instant::now();
    let first = run_plan(&spec, &empty, &State::default(), &pw);
    let first_time = t.elapsed();
    let (_, with_first_plan) = rss_kib();
    let mut dir = empty;
    let mut state = State::default();
    simulate::apply(&spec, &first, &mut dir, &mut state, &pw);
    drop(first);
    trim();
    let (_, with_dir) = rss_kib();
    let t = Instant::now();
    let again = run_plan(&spec, &dir, &state, &pw);
    let again_time = t.elapsed();
    assert!(again.is_empty());
    trim();
    let (peak, held) = rss_kib();
    println!("N = {n} users, 10 groups, 2 groups per user, password fingerprints");
    println!(
        "times: spec JSON -> parse_spec {:.3} s; first plan {:.3} s; no-change plan {:.3} s",
        parse.as_secs_f64(),
        first_time.as_secs_f64(),
        again_time.as_secs_f64()
    );
    println!(
        "resident: baseline {}; + spec JSON text {}; spec parsed (text freed) {}; + password fingerprints {}; + first plan {}; \
         spec + passwords + converged directory + state (plan freed) {}; + no-change plan {}",
        mib(base),
        mib(with_text),
        mib(with_spec),
        mib(with_pw),
        mib(with_first_plan),
        mib(with_dir),
        mib(held)
    );
    println!(
        "peak RSS (getrusage): {} (includes the JSON text and serde_json::Value while parsing)",
        mib(peak)
    );
    println!(
        "bytes per managed user: {} held (spec + passwords + directory + state + plan), {} at peak",
        (held - base) * 1024 / n as i64,
        (peak - base) * 1024 / n as i64
    );
    black_box((&spec, &dir, &state, &again, &pw));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--rss") {
        let n = args
            .get(i + 1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(100_000);
        rss_mode(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
