//! Fault injection beyond tests/e2e_lldap.rs: responses slower than the timeout, slow responses
//! just under it, tokens expiring mid-run, bursts of 5xx / resets / truncated JSON, LDAP resets,
//! and a permanently broken LLDAP. Every test asserts convergence (no duplicate, a further run
//! writes nothing) and a bound on the requests sent, derived from the retry policy:
//!
//! * a clean first apply of this spec costs `R0` requests (measured on a fresh double);
//! * each injected HTTP fault costs at most one extra request (the retry of that request), and
//!   a retried mutation that had taken effect fails at most once more per object (next run);
//! * a token expiry costs each call in flight (≤ `concurrency`) one 401 answer, plus one login;
//! * a permanently failing LLDAP is given up after `attempts` tries of the login.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use paas_doubles::lldap::{LldapConfig, LldapDouble, SeedUser};
use paasd::backoff::Backoff;
use paasd::core::spec::{parse_spec, Spec};
use paasd::reconcile::{self, Options, Report};
use serde_json::{json, Map, Value};

const ADMIN_PW: &str = "faults-Admin-pw-9";
const N: usize = 40;
const CONCURRENCY: usize = 8;

struct Env {
    d: LldapDouble,
    dir: tempfile::TempDir,
}

async fn env() -> Env {
    let d = LldapDouble::start(LldapConfig::new(ADMIN_PW))
        .await
        .expect("the LLDAP double starts (needs ../shared/contracts)");
    d.seed_user(SeedUser::new("zoe", "zoe@example.com"))
        .expect("seed");
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, v) in [("admin", ADMIN_PW), ("pw", "user-Pw-77")] {
        let p = dir.path().join(name);
        fs::write(&p, v).expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    Env { d, dir }
}

fn spec(d: &LldapDouble, dir: &Path, timeout: u64) -> Spec {
    let mut users = Map::new();
    for i in 0..N {
        users.insert(
            format!("f{i:02}"),
            json!({
                "email": format!("f{i:02}@example.com"),
                "groups": [format!("g{}", i % 3)],
                "passwordFile": dir.join("pw"),
            }),
        );
    }
    let v: Value = json!({
        "version": 1,
        "lldap": {
            "url": d.http_url(), "ldapUrl": d.ldap_url(), "baseDn": d.base_dn(),
            "adminPasswordFile": dir.join("admin"), "timeoutSeconds": timeout
        },
        "groups": { "g0": {}, "g1": {}, "g2": {} },
        "users": users,
    });
    parse_spec(&v.to_string()).expect("valid spec")
}

fn opts(dir: &Path) -> Options {
    let mut o = Options::new(dir.join("state"));
    o.concurrency = CONCURRENCY;
    o.backoff = Backoff {
        attempts: 6,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(40),
        jitter: true,
    };
    o.ready_wait = o.backoff;
    o
}

/// Requests of a clean first apply of the spec (on a fresh double).
async fn clean_cost() -> u64 {
    let e = env().await;
    let r = reconcile::apply(&spec(&e.d, e.dir.path(), 5), &opts(e.dir.path())).await;
    assert_eq!(r.failed, 0, "{r:#?}");
    e.d.stats().total_requests()
}

/// No duplicates, everything declared exists once with its marker, zoe untouched, and a
/// further apply writes nothing.
async fn assert_converged(e: &Env, spec: &Spec) {
    let users = e.d.users();
    assert_eq!(users.len(), N + 2, "declared + admin + zoe, no duplicate");
    for u in users.iter().filter(|u| u.id.starts_with('f')) {
        assert_eq!(
            u.attributes.get("paasd-managed"),
            Some(&vec!["true".to_string()]),
            "{}",
            u.id
        );
        assert!(u.has_password, "{} has its password", u.id);
    }
    assert!(e.d.user("zoe").is_some_and(|z| z.groups.is_empty()));
    assert_eq!(
        e.d.groups().len(),
        3 + 3 + 1,
        "built-ins + g0..g2 + paas_disabled"
    );
    e.d.faults().clear();
    e.d.reset_stats();
    let r = reconcile::apply(spec, &opts(e.dir.path())).await;
    assert_eq!(r.failed, 0, "{r:#?}");
    let s = e.d.stats();
    assert_eq!(s.total_mutations(), 0, "converged: {s:#?}");
    assert_eq!(s.ldap_ops("password_modify"), 0);
    assert!(s.total_requests() <= 3, "no-change run: {s:#?}");
    e.d.assert_no_violations();
}

fn failed(r: &Report) -> Vec<String> {
    r.objects
        .iter()
        .filter_map(|o| o.error.as_ref().map(|e| format!("{}: {e}", o.name)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_responses_just_under_the_timeout_cost_no_retry() {
    let r0 = clean_cost().await;
    let e = env().await;
    let spec = spec(&e.d, e.dir.path(), 1);
    e.d.faults().set_delay(Duration::from_millis(600)); // timeout 1 s
    let r = reconcile::apply(&spec, &opts(e.dir.path())).await;
    assert_eq!(r.failed, 0, "{:?}", failed(&r));
    let s = e.d.stats();
    println!(
        "slow under timeout: {} requests (clean {r0})",
        s.total_requests()
    );
    assert_eq!(s.total_requests(), r0, "no retry at all: {s:#?}");
    assert_converged(&e, &spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_slower_than_the_timeout_then_recovery_converge() {
    let r0 = clean_cost().await;
    let e = env().await;
    let spec = spec(&e.d, e.dir.path(), 1);
    // Every answer takes 1.3 s against a 1 s timeout, for the first 2.5 s of the run.
    e.d.faults().set_delay(Duration::from_millis(1300));
    let faults = e.d.faults();
    let healer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        faults.set_delay(Duration::ZERO);
    });
    let mut o = opts(e.dir.path());
    o.backoff.cap = Duration::from_millis(400);
    o.backoff.base = Duration::from_millis(100);
    let r1 = reconcile::apply(&spec, &o).await;
    healer.await.expect("join");
    let s1 = e.d.stats().total_requests();
    // A mutation whose answer timed out may have taken effect: its retry then fails and the
    // next run adopts/fixes it. Two runs converge.
    let r2 = reconcile::apply(&spec, &opts(e.dir.path())).await;
    assert_eq!(
        r2.failed,
        0,
        "second run: {:?} (first: {:?})",
        failed(&r2),
        failed(&r1)
    );
    let total = e.d.stats().total_requests();
    // Timed-out requests: at most `attempts` per request in flight during the slow window
    // (concurrency + the sequential ones), plus a second run that redoes at most everything.
    let bound = 2 * r0 + 6 * (CONCURRENCY as u64 + 2);
    println!(
        "slower than timeout: run 1 {s1} requests, {} failed; both runs {total}; bound {bound} (clean {r0})",
        r1.failed
    );
    assert!(
        total <= bound,
        "requests {total} (first run {s1}) > bound {bound} (clean first apply {r0})"
    );
    assert_converged(&e, &spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_mid_run_costs_one_login_and_the_calls_in_flight() {
    let r0 = clean_cost().await;
    for after in [1u64, 10, 60] {
        let e = env().await;
        let spec = spec(&e.d, e.dir.path(), 5);
        e.d.faults().expire_tokens_after(after);
        let r = reconcile::apply(&spec, &opts(e.dir.path())).await;
        assert_eq!(r.failed, 0, "expiry after {after}: {:?}", failed(&r));
        let s = e.d.stats();
        assert!(s.unauthorized >= 1, "the expiry happened: {s:#?}");
        assert!(
            s.logins <= 2,
            "expiry after {after}: one re-login, not one per call: {} logins",
            s.logins
        );
        let bound = r0 + CONCURRENCY as u64 + 1;
        println!(
            "token expiry after {after}: {} requests, {} logins, {} 401s; bound {bound} (clean {r0})",
            s.total_requests(),
            s.logins,
            s.unauthorized
        );
        assert!(
            s.total_requests() <= bound,
            "expiry after {after}: {} requests > {bound} (clean {r0})",
            s.total_requests()
        );
        assert_converged(&e, &spec).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_5xx_resets_and_truncated_json_converge_with_bounded_retries() {
    let r0 = clean_cost().await;
    let e = env().await;
    let spec = spec(&e.d, e.dir.path(), 5);
    let f = e.d.faults();
    f.fail_next(2, 502);
    f.reset_next(1);
    f.truncate_next(2);
    f.ldap_reset_next(1);
    f.ldap_unavailable_next(1);
    let r1 = reconcile::apply(&spec, &opts(e.dir.path())).await;
    let s1 = e.d.stats();
    let injected: u64 = s1.faults_injected.values().sum();
    assert!(injected >= 5, "{:?}", s1.faults_injected);
    // A truncated answer to a mutation that took effect is retried and then refused (e.g. the
    // user exists): at most one object per truncation fails, and the next run repairs it.
    assert!(r1.failed <= 2, "{:?}", failed(&r1));
    let r2 = reconcile::apply(&spec, &opts(e.dir.path())).await;
    assert_eq!(r2.failed, 0, "{:?}", failed(&r2));
    let total = e.d.stats().total_requests();
    // Each HTTP fault costs one retry; each object failed in run 1 costs its requests again
    // in run 2 (≤ 4 each: update, memberships) plus run 2's login and observation.
    let bound = r0 + injected + 4 * r1.failed as u64 + 2;
    println!(
        "bursts: {injected} faults {:?}; run 1 failed {}; both runs {total} requests; bound {bound} (clean {r0})",
        s1.faults_injected, r1.failed
    );
    assert!(
        total <= bound,
        "requests {total} > bound {bound} (clean {r0}, injected {injected}, failed {})",
        r1.failed
    );
    assert_converged(&e, &spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanently_failing_lldap_is_given_up_after_the_configured_attempts() {
    let e = env().await;
    let spec = spec(&e.d, e.dir.path(), 5);
    e.d.faults().fail_next(1_000_000, 503);
    let o = opts(e.dir.path());
    let r = reconcile::apply(&spec, &o).await;
    assert_eq!(r.failed, N + 3, "every user and group is reported failed");
    assert!(!r.targets[0].ok);
    let s = e.d.stats();
    assert_eq!(
        s.total_requests(),
        u64::from(o.backoff.attempts),
        "the login is tried `attempts` times, then the run stops: {s:#?}"
    );
    assert_eq!(e.d.users().len(), 2, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_was_lost_is_recognised_by_the_marker() {
    // createUser ran, but its answer was lost: the retry gets LLDAP's UNIQUE error, and paasd
    // reads the user back (PaasdGetUser). Its own marker makes it paasd's create; a user without
    // the marker is someone else's and the create fails.
    use paas_doubles::lldap::AttributeType;
    use paasd::core::spec::MARKER_ATTRIBUTE;
    use paasd::core::state::Effect;
    use paasd::engine::target::ExecContext;
    use paasd::http::Http;
    use paasd::secret::Secret;
    use paasd::targets::lldap::execute::Clients;
    use paasd::targets::lldap::graphql::GraphqlClient;
    use paasd::targets::lldap::ldap::LdapPasswords;
    use paasd::targets::lldap::plan::Action;
    use std::collections::{BTreeMap, HashMap};

    let e = env().await;
    e.d.add_user_attribute(MARKER_ATTRIBUTE, AttributeType::String, false)
        .expect("schema");
    let mut ours = SeedUser::new("ours", "ours@example.com");
    ours.attributes
        .insert(MARKER_ATTRIBUTE.into(), vec!["true".into()]);
    e.d.seed_user(ours).expect("seed");
    e.d.seed_user(SeedUser::new("theirs", "theirs@example.com"))
        .expect("seed");
    let timeout = Duration::from_secs(5);
    let backoff = opts(e.dir.path()).backoff;
    let mut http = Http::new("LLDAP", &e.d.http_url(), timeout).expect("client");
    http.set_backoff(backoff);
    let lldap = Clients {
        graphql: GraphqlClient::new(http, "admin", Secret::new(ADMIN_PW)),
        ldap: LdapPasswords::new(
            &e.d.ldap_url(),
            e.d.base_dn(),
            "admin",
            Secret::new(ADMIN_PW),
            timeout,
            backoff,
        ),
    };
    let create = |id: &str| Action::CreateUser {
        id: id.into(),
        email: format!("{id}@example.com"),
        display_name: None,
        first_name: None,
        last_name: None,
        attributes: [(MARKER_ATTRIBUTE.to_string(), vec!["true".to_string()])].into(),
    };
    let (secrets, passwords) = (HashMap::new(), BTreeMap::new());
    let cx = ExecContext::new(&secrets, &passwords);
    let groups = HashMap::new();
    let r = lldap.execute(&create("ours"), &groups, &cx).await;
    assert_eq!(
        r.ok(),
        Some(Effect::UserCreated {
            id: "ours".into(),
            initial_password_pending: false
        })
    );
    let r = lldap.execute(&create("theirs"), &groups, &cx).await;
    let err = r.expect_err("an unmarked user with that id is not paasd's");
    assert!(err.to_string().contains("UNIQUE"), "{err}");
    let s = e.d.stats();
    assert_eq!(s.graphql_operations.get("PaasdGetUser"), Some(&2), "{s:#?}");
    e.d.assert_no_violations();
}
