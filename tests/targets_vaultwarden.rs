//! The Vaultwarden backend against the Vaultwarden double (admin API: cookie login, JSON
//! content type on every POST): invite → no-change run → disable → enable → delete, session
//! expiry, 409 on an invitation, no passwords; the admin session kept across runs (Vaultwarden
//! rate-limits admin logins), and a rate limit as one wait of the target.

mod targets_support;

use std::time::{Duration, UNIX_EPOCH};

use paas_doubles::vaultwarden::{VaultwardenConfig, VaultwardenDouble, VaultwardenUser};
use paasd::clock::{local_hhmmss, unix_now};
use paasd::core::plan::Op;
use paasd::core::spec::Removal;
use paasd::engine::report::TargetState;
use paasd::engine::Outcome;
use paasd::secret::Secret;
use paasd::session::Sessions;
use paasd::targets::accounts::{AccountAction, Service, ServiceError};
use paasd::targets::vaultwarden::Vaultwarden;
use targets_support::{quick, Run, World, TIMEOUT};

const TOKEN: &str = "vw-admin-Token-1";

async fn setup() -> (VaultwardenDouble, Vaultwarden) {
    let d = VaultwardenDouble::start(VaultwardenConfig::new(TOKEN))
        .await
        .expect("double");
    let vw = Vaultwarden::new(&d.url(), Secret::new(TOKEN), TIMEOUT)
        .expect("client")
        .with_backoff(quick());
    (d, vw)
}

#[tokio::test]
async fn full_lifecycle_converges() {
    let (d, vw) = setup().await;
    let mut w = World::new(&vw);
    w.user("alice", "Alice@Example.com");
    w.user("bob", "bob@example.com");
    // A password strategy for a service that cannot take one: nothing is sent.
    w.passwords
        .insert("alice".into(), Secret::new("alice-Pw-123456"));
    let run = w.converge().await;
    assert_eq!(run.ops_of("alice"), vec![Op::Create]);
    let alice = d.user_by_email("alice@example.com").expect("invited");
    assert!(alice.enabled);
    assert!(!alice.has_master_password, "invited only");
    assert_eq!(w.state.accounts["alice"].remote_id, alice.uuid);
    assert_eq!(w.state.accounts["alice"].password_fingerprint, None);

    d.reset_stats();
    let run = w.run().await;
    assert!(run.changes().is_empty());
    assert_eq!(d.stats().total_writes(), 0);

    // The user registers; paasd keeps managing the account by e-mail.
    assert!(d.accept_invite("alice@example.com", "Alice"));
    w.users.get_mut("alice").expect("alice").enable = false;
    let run = w.converge().await;
    assert_eq!(run.ops_of("alice"), vec![Op::Disable]);
    assert!(!d.user_by_email("alice@example.com").expect("alice").enabled);
    w.users.get_mut("alice").expect("alice").enable = true;
    let run = w.converge().await;
    assert_eq!(run.ops_of("alice"), vec![Op::Enable]);
    assert!(d.user_by_email("alice@example.com").expect("alice").enabled);

    // Removal = disable (default), then delete.
    w.users.remove("bob");
    let run = w.converge().await;
    assert_eq!(run.ops_of("bob"), vec![Op::Disable]);
    assert!(!d.user_by_email("bob@example.com").expect("bob").enabled);
    w.removal = Removal::Delete;
    let run = w.converge().await;
    assert_eq!(run.ops_of("bob"), vec![Op::Delete]);
    assert!(d.user_by_email("bob@example.com").is_none());
    d.assert_no_violations();
}

#[tokio::test]
async fn an_expired_session_logs_in_again_once() {
    let (d, vw) = setup().await;
    let mut w = World::new(&vw);
    w.user("carol", "carol@example.com");
    w.converge().await;
    d.expire_sessions();
    d.reset_stats();
    let observed = vw.observe().await.expect("observe after expiry");
    assert!(observed.iter().any(|a| a.key == "carol@example.com"));
    assert_eq!(d.stats().unauthorized, 1, "one 401, then a new login");
    // A wrong token is a refusal naming the setting, not the token.
    let bad = Vaultwarden::new(&d.url(), Secret::new("wrong-Token-9"), TIMEOUT)
        .expect("client")
        .with_backoff(quick());
    match bad.observe().await {
        Err(ServiceError::Refused(m)) => {
            assert!(m.contains("adminTokenFile"), "{m}");
            assert!(!m.contains("wrong-Token-9"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    d.assert_no_violations();
}

#[tokio::test]
async fn an_invitation_to_a_registered_address_takes_the_account_over() {
    let (d, vw) = setup().await;
    let uuid = d
        .seed_user(VaultwardenUser::registered("dave@example.com", "Dave"))
        .expect("seed");
    let create = AccountAction::Create {
        user: "dave".into(),
        key: "Dave@Example.com".into(),
        enabled: true,
        fields: Default::default(),
        groups: Default::default(),
        with_password: false,
    };
    let done = vw.execute(&create, None).await.expect("409 → looked up");
    assert_eq!(done.remote_id.as_deref(), Some(uuid.as_str()));
    match vw
        .execute(
            &AccountAction::SetPassword {
                user: "dave".into(),
                remote_id: uuid.clone(),
            },
            Some(&Secret::new("x-Pw-1")),
        )
        .await
    {
        Err(ServiceError::Refused(m)) => assert!(m.contains("client-side"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!vw.kind().capabilities().passwords);
    // Deleting twice: the second finds nothing and succeeds.
    let del = AccountAction::Delete {
        user: "dave".into(),
        remote_id: uuid,
    };
    vw.execute(&del, None).await.expect("delete");
    vw.execute(&del, None).await.expect("idempotent delete");
    vw.health().await.expect("alive");
    d.assert_no_violations();
}

/// A new client for one run, keeping its session in `sessions` (as `targets::build` makes one
/// per run with the daemon's or `paasctl`'s store).
fn client(d: &VaultwardenDouble, sessions: &Sessions) -> Vaultwarden {
    Vaultwarden::new(&d.url(), Secret::new(TOKEN), TIMEOUT)
        .expect("client")
        .with_backoff(quick())
        .with_sessions(sessions.clone())
}

/// Uses up the double's admin login burst from the test's own address (three logins).
async fn use_up_the_logins(d: &VaultwardenDouble) {
    let http = reqwest::Client::new();
    while d.logins().rate_limited == 0 {
        http.post(format!("{}/admin", d.url()))
            .form(&[("token", TOKEN)])
            .send()
            .await
            .expect("login");
    }
}

/// The one message of a rate-limited run: the target waits, its objects are pending with it.
fn assert_rate_limited(run: &Run, users: &[&str]) -> u64 {
    let r = &run.report;
    let t = &r.targets[0];
    assert_eq!(t.state, TargetState::Waiting, "{t:?}");
    assert!(!t.ok);
    let retry_at = t.retry_at.expect("when to try again");
    let now = unix_now();
    assert!(
        retry_at > now + 290 && retry_at <= now + 301,
        "Vaultwarden's window (ADMIN_RATELIMIT_SECONDS): {retry_at} vs {now}"
    );
    let expected = format!(
        "waiting for vaultwarden: rate limited by Vaultwarden (ADMIN_RATELIMIT_*), next try at {}",
        local_hhmmss(UNIX_EPOCH + Duration::from_secs(retry_at))
    );
    assert_eq!(t.error.as_deref(), Some(expected.as_str()));
    for u in users {
        let o = r
            .objects
            .iter()
            .find(|o| o.name == *u)
            .unwrap_or_else(|| panic!("{u} reported"));
        assert_eq!(o.outcome, Outcome::Pending, "{u} waits, it is not failed");
        assert_eq!(o.error.as_deref(), Some(expected.as_str()));
    }
    assert!(
        r.objects.iter().all(|o| o.outcome != Outcome::Failed),
        "{:#?}",
        r.objects
    );
    let json = serde_json::to_string(r).expect("report");
    assert!(!json.contains('<'), "no page in the report: {json}");
    assert!(
        !json.contains(TOKEN) && !json.contains("VW_ADMIN"),
        "{json}"
    );
    retry_at
}

#[tokio::test]
async fn ten_runs_log_in_once_and_a_session_past_its_lifetime_logs_in_once_more() {
    let d = VaultwardenDouble::start(VaultwardenConfig::new(TOKEN))
        .await
        .expect("double");
    let state = tempfile::tempdir().expect("tempdir");
    // paasctl's store: the state directory, read afresh by every run (every process).
    let first = client(&d, &Sessions::persistent(state.path()));
    let mut w = World::new(&first);
    w.user("alice", "alice@example.com");
    w.user("bob", "bob@example.com");
    for n in 0..10 {
        let vw = client(&d, &Sessions::persistent(state.path()));
        let run = w.run_on(&vw).await;
        assert!(run.errors().is_empty(), "run {n}: {:?}", run.errors());
        assert!(
            run.report.targets[0].ok,
            "run {n}: {:?}",
            run.report.targets
        );
        if n > 0 {
            assert!(run.changes().is_empty(), "run {n}: {:?}", run.changes());
        }
    }
    assert_eq!(
        d.logins().ok,
        1,
        "one admin login for ten runs: {:?}",
        d.logins()
    );
    assert_eq!(d.logins().rate_limited, 0);
    assert_eq!(d.stats().unauthorized, 0);
    assert!(d.user_by_email("bob@example.com").is_some());

    // 21 minutes later (the double's clock): Vaultwarden rejects the session; one new login.
    d.advance_clock(Duration::from_secs(21 * 60));
    d.reset_stats();
    let vw = client(&d, &Sessions::persistent(state.path()));
    let run = w.run_on(&vw).await;
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    assert_eq!(d.logins().ok, 2);
    assert_eq!(d.stats().unauthorized, 1, "the old session, once");
    assert_eq!(vw.logins(), 1);
    // The daemon's store (memory) serves the same way.
    let memory = Sessions::in_memory();
    for _ in 0..5 {
        let vw = client(&d, &memory);
        assert!(w.run_on(&vw).await.errors().is_empty());
    }
    assert_eq!(
        d.logins().ok,
        3,
        "one more for the daemon's store, not five"
    );
    d.assert_no_violations();
}

#[tokio::test]
async fn a_session_that_expires_by_its_own_clock_is_not_sent() {
    let d = VaultwardenDouble::start(VaultwardenConfig::new(TOKEN))
        .await
        .expect("double");
    let sessions = Sessions::in_memory();
    let vw = client(&d, &sessions);
    vw.health().await.expect("ready: logged in");
    let scope = vw.scope().to_string();
    let until = sessions.expires_at(&scope).expect("kept");
    let now = unix_now();
    assert!(
        until > now + 1100 && until <= now + 1140,
        "Max-Age 1200 s less a minute: {until} vs {now}"
    );
    // Past its end (paasd's clock), it is not used: a new login, without a rejected call.
    let cookie = sessions.get(&scope).expect("session");
    sessions.put(&scope, cookie, now);
    d.reset_stats();
    let vw = client(&d, &sessions);
    vw.observe().await.expect("observe");
    assert_eq!(d.logins().ok, 2);
    assert_eq!(d.stats().unauthorized, 0);
    d.assert_no_violations();
}

#[tokio::test]
async fn a_rate_limited_login_is_one_wait_for_the_target_without_retries() {
    let d = VaultwardenDouble::start(VaultwardenConfig::new(TOKEN))
        .await
        .expect("double");
    use_up_the_logins(&d).await;
    d.reset_stats();
    let vw = client(&d, &Sessions::in_memory());
    let mut w = World::new(&vw);
    for u in ["alice", "bob", "carol"] {
        w.user(u, &format!("{u}@example.com"));
    }
    let run = w.run().await;
    assert_rate_limited(&run, &["alice", "bob", "carol"]);
    assert_eq!(
        d.stats().requests_to("POST /admin"),
        1,
        "one login attempt: a 429 is not retried within the run"
    );
    assert_eq!(d.stats().total_writes(), 0);
    // The same client again (within the window): the same wait, without another login.
    let again = w.run().await;
    assert_rate_limited(&again, &["alice", "bob", "carol"]);
    assert_eq!(d.stats().requests_to("POST /admin"), 1, "{:?}", d.stats());
    // Once Vaultwarden allows a login again, the target converges.
    d.advance_clock(Duration::from_secs(301));
    let vw = client(&d, &Sessions::in_memory());
    let run = w.run_on(&vw).await;
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    assert_eq!(d.users().len(), 3);
    d.assert_no_violations();
}

#[tokio::test]
async fn a_session_rejected_mid_run_under_the_limit_halts_the_target() {
    let d = VaultwardenDouble::start(VaultwardenConfig::new(TOKEN))
        .await
        .expect("double");
    let sessions = Sessions::in_memory();
    let first = client(&d, &sessions);
    let mut w = World::new(&first);
    w.user("alice", "alice@example.com");
    w.converge().await;
    assert_eq!(d.logins().ok, 1);
    // Three new users; the session ends after the read, and the login limit is used up.
    for u in ["bob", "carol", "dave"] {
        w.user(u, &format!("{u}@example.com"));
    }
    use_up_the_logins(&d).await;
    d.expire_sessions_after(1);
    d.reset_stats();
    let vw = client(&d, &sessions);
    let run = w.run_on(&vw).await;
    assert_rate_limited(&run, &["bob", "carol", "dave"]);
    let alice = run
        .report
        .objects
        .iter()
        .find(|o| o.name == "alice")
        .expect("alice");
    assert_eq!(alice.outcome, Outcome::Unchanged);
    assert_eq!(
        d.stats().requests_to("POST /admin"),
        1,
        "one login, then nothing more is sent: {:?}",
        d.stats()
    );
    assert_eq!(d.stats().total_writes(), 0);
    d.assert_no_violations();
}
