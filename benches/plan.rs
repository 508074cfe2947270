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

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use paasd::core::policy::DesiredPassword;
use paasd::core::spec::{parse_spec, Spec};
use paasd::core::state::State;
use paasd::targets::lldap::directory::{AttributeSchema, DirGroup, DirUser, Directory};
use paasd::targets::lldap::plan::{self, LldapPlan as Plan, PlanInput};
use paasd::targets::lldap::simulate;
use serde_json::{json, Value};

/// The system allocator, counting live and peak heap bytes: the `--rss` mode reports exactly what
/// each structure holds, independent of the allocator's caching.
struct Counting;

static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use std::sync::atomic::Ordering::Relaxed;
        let p = std::alloc::System.alloc(layout);
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(live, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        std::alloc::System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        use std::sync::atomic::Ordering::Relaxed;
        let p = std::alloc::System.realloc(ptr, layout, new);
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            let live = LIVE.fetch_add(new, Relaxed) + new;
            PEAK.fetch_max(live, Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Live heap bytes now.
fn live() -> usize {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Resets the heap peak to the live bytes and returns the peak reached since the last reset.
fn take_peak() -> usize {
    PEAK.swap(live(), std::sync::atomic::Ordering::Relaxed)
}

fn mb(bytes: usize) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

const GROUPS: usize = 10;

/// The spec as paasd reads it, written straight into a string (not through a `serde_json::Value`,
/// whose size would dominate the process's peak RSS).
fn spec_text(n: usize) -> String {
    use std::fmt::Write;
    let mut t = String::with_capacity(160 * n + 1024);
    t.push_str(
        r#"{"version":1,"lldap":{"url":"http://127.0.0.1:17170","ldapUrl":"ldap://127.0.0.1:3890","baseDn":"dc=example,dc=com","adminPasswordFile":"/run/credentials/paasd.service/lldap-admin-password"},"groups":{"#,
    );
    for g in 0..GROUPS {
        let sep = if g == 0 { "" } else { "," };
        let _ = write!(t, r#"{sep}"g{g}":{{}}"#);
    }
    t.push_str(r#"},"users":{"#);
    for i in 0..n {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(
            t,
            r#"{sep}"user{i:06}":{{"email":"user{i:06}@example.com","displayName":"User {i}","groups":["g{}","g{}"],"passwordFile":"/run/credentials/paasd.service/pw-{i}"}}"#,
            i % GROUPS,
            (i + 1) % GROUPS
        );
    }
    t.push_str("}}");
    t
}

fn passwords(spec: &Spec) -> BTreeMap<String, DesiredPassword> {
    spec.users
        .keys()
        .enumerate()
        .map(|(i, id)| {
            // The shape of a real fingerprint: 64 hex digits (HMAC-SHA-256).
            let fp = format!("{:064x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let known = DesiredPassword::Known {
                fingerprint: fp,
                mode: paasd::core::spec::PasswordMode::Enforce,
            };
            (id.clone(), known)
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
                attributes: Default::default(),
            },
        );
    }
    d.users.insert(
        "admin".into(),
        DirUser {
            id: "admin".into(),
            email: "admin@example.com".into(),
            groups: vec![1],
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
    pw: &BTreeMap<String, DesiredPassword>,
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
    pw: BTreeMap<String, DesiredPassword>,
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
    simulate::apply(&first, &mut converged_dir, &mut converged_state, &pw);
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

/// The body LLDAP sends for paasd's observe query, for a directory (what the double serves).
fn observe_answer(dir: &Directory) -> String {
    use std::fmt::Write;
    let mut t = String::with_capacity(400 * dir.users.len() + 4096);
    t.push_str(r#"{"data":{"users":["#);
    for (i, u) in dir.users.values().enumerate() {
        let attributes: Vec<Value> = u
            .attributes
            .iter()
            .map(|(k, v)| json!({ "name": k, "value": v }))
            .collect();
        let groups: Vec<Value> = u.groups.iter().map(|g| json!({ "id": g })).collect();
        let user = json!({
            "id": u.id, "email": u.email, "displayName": u.display_name,
            "firstName": u.first_name, "lastName": u.last_name,
            "attributes": attributes, "groups": groups,
        });
        let _ = write!(t, "{}{user}", if i == 0 { "" } else { "," });
    }
    t.push_str(r#"],"groups":"#);
    let groups: Vec<Value> = dir
        .groups
        .values()
        .map(|g| {
            let attributes: Vec<Value> = g
                .attributes
                .iter()
                .map(|(k, v)| json!({ "name": k, "value": v }))
                .collect();
            json!({ "id": g.id, "displayName": g.display_name, "attributes": attributes })
        })
        .collect();
    let schema = |m: &BTreeMap<String, AttributeSchema>| -> Value {
        let list: Vec<Value> = m
            .iter()
            .map(|(k, a)| {
                json!({ "name": k, "attributeType": a.attribute_type, "isList": a.is_list,
                        "isEditable": a.is_editable, "isReadonly": a.is_readonly,
                        "isHardcoded": a.is_hardcoded })
            })
            .collect();
        json!({ "attributes": list })
    };
    let _ = write!(
        t,
        r#"{},"schema":{{"userSchema":{},"groupSchema":{}}}}}}}"#,
        Value::Array(groups),
        schema(&dir.user_attributes),
        schema(&dir.group_attributes)
    );
    t
}

fn rss_mode(n: usize) {
    // ru_maxrss survives exec (it starts at the parent's peak): the baseline is the current RSS.
    let (_, base) = rss_kib();
    let heap0 = live();
    let text = spec_text(n);
    let text_bytes = text.len();
    take_peak();
    let t = Instant::now();
    let spec = parse_spec(&text).expect("the bench spec is valid");
    let parse = t.elapsed();
    let parse_peak = take_peak() - heap0;
    drop(text);
    let h_spec = live() - heap0;
    let pw = passwords(&spec);
    let h_pw = live() - heap0 - h_spec;
    let empty = fresh();
    take_peak();
    let t = Instant::now();
    let first = run_plan(&spec, &empty, &State::default(), &pw);
    let first_time = t.elapsed();
    let first_peak = take_peak() - heap0;
    let (rss_first_peak, rss_first) = rss_kib();
    let h_first = live() - heap0 - h_spec - h_pw;
    let mut converged = empty;
    let mut state = State::default();
    simulate::apply(&first, &mut converged, &mut state, &pw);
    drop(first);
    let h_state = state_bytes(&state);

    // Observe: the converged directory as LLDAP would send it, parsed the way paasd does.
    let body = observe_answer(&converged);
    let observed = paasd::targets::lldap::operations::parse_observe_answer(body.as_bytes())
        .expect("observe answer");
    assert_eq!(observed, converged, "the observe answer must round-trip");
    drop((observed, converged));
    take_peak();
    let t = Instant::now();
    let dir = paasd::targets::lldap::operations::parse_observe_answer(body.as_bytes())
        .expect("observe answer");
    let observe_time = t.elapsed();
    let observe_peak = take_peak() - heap0;
    let body_bytes = body.len();
    drop(body);
    let h_dir = live() - heap0 - h_spec - h_pw - h_state;

    take_peak();
    let t = Instant::now();
    let again = run_plan(&spec, &dir, &state, &pw);
    let again_time = t.elapsed();
    let again_peak = take_peak() - heap0;
    let (_, rss_again) = rss_kib();
    assert!(again.is_empty());
    let held = live() - heap0;
    trim();
    let (peak, resident) = rss_kib();
    println!("N = {n} users, 10 groups, 2 groups per user, password fingerprints");
    println!(
        "times: parse_spec {:.3} s; first plan {:.3} s; observe answer -> Directory {:.3} s; no-change plan {:.3} s",
        parse.as_secs_f64(),
        first_time.as_secs_f64(),
        observe_time.as_secs_f64(),
        again_time.as_secs_f64()
    );
    println!("heap (exact, counted by the global allocator):");
    println!(
        "  spec JSON text                            {}",
        mb(text_bytes)
    );
    println!(
        "  parse_spec peak (text + parser + Spec)    {}",
        mb(parse_peak)
    );
    println!("  Spec (text freed)                         {}", mb(h_spec));
    println!("  password fingerprints                     {}", mb(h_pw));
    println!("  first plan ({n} creates)                {}", mb(h_first));
    println!(
        "  peak while planning the first apply       {}",
        mb(first_peak)
    );
    println!(
        "  State after the first apply               {}",
        mb(h_state)
    );
    println!(
        "  observe answer (LLDAP's JSON body)        {}",
        mb(body_bytes)
    );
    println!(
        "  peak while observing (spec + fingerprints + state + body + parser + Directory) {}",
        mb(observe_peak)
    );
    println!("  observed Directory (body freed)           {}", mb(h_dir));
    println!(
        "  peak while planning the no-change run     {}",
        mb(again_peak)
    );
    println!("  held after the no-change plan             {}", mb(held));
    println!(
        "  bytes per managed user: {} held between runs, {} at the peak of a no-change run",
        held / n,
        observe_peak.max(again_peak) / n
    );
    println!("resident set (RSS; the heap above plus the allocator's per-allocation overhead):");
    println!(
        "  after the first plan                      {} (peak so far {})",
        mib(rss_first - base),
        mib(rss_first_peak - base)
    );
    println!(
        "  after the no-change plan                  {} (then {} after malloc_trim)",
        mib(rss_again - base),
        mib(resident - base)
    );
    println!(
        "  peak of the whole run                     {} (includes simulating the first apply while the plan is held)",
        mib(peak - base)
    );
    black_box((&spec, &dir, &state, &again, &pw));
}

/// Heap bytes of a copy of the state (what it holds).
fn state_bytes(state: &State) -> usize {
    let before = live();
    let copy = state.clone();
    let bytes = live() - before;
    drop(copy);
    bytes
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
