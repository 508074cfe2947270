//! `paasd::targets::lldap::ldap::LdapPasswords` against a real OpenLDAP slapd: the Password Modify
//! extended operation (RFC 3062) as the admin, simple binds as the user, connection reuse,
//! errors, and an outage. The ldap-utils clients check independently that a password set by
//! paasd really changed in the server.
//!
//! Needs `slapd` and `ldap-utils` (Debian): the tests fail with the install line when missing.

#[path = "support/slapd.rs"]
mod slapd;

use std::time::{Duration, Instant};

use paasd::backoff::{Backoff, Transient};
use paasd::secret::Secret;
use paasd::targets::lldap::ldap::{LdapError, LdapPasswords};

use slapd::{Slapd, ADMIN_DN, ADMIN_PASSWORD, ADMIN_USER, BASE_DN};

const TIMEOUT: Duration = Duration::from_secs(5);

fn quick_backoff() -> Backoff {
    Backoff {
        attempts: 3,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(20),
        jitter: true,
    }
}

fn client(s: &Slapd, admin_password: &str, backoff: Backoff) -> LdapPasswords {
    LdapPasswords::new(
        &s.url(),
        BASE_DN,
        ADMIN_USER,
        Secret::new(admin_password),
        TIMEOUT,
        backoff,
    )
}

fn secret(s: &str) -> Secret {
    Secret::new(s)
}

#[test]
fn fixture_directory_is_as_documented() {
    let s = Slapd::start();
    let c = client(&s, ADMIN_PASSWORD, quick_backoff());
    assert_eq!(c.user_dn("alice"), slapd::user_dn("alice"));
    assert_eq!(
        s.ldapwhoami(ADMIN_DN, ADMIN_PASSWORD),
        Ok(format!("dn:{ADMIN_DN}"))
    );
    for (uid, password) in slapd::USERS {
        assert_eq!(
            s.ldapwhoami(&slapd::user_dn(uid), password),
            Ok(format!("dn:{}", slapd::user_dn(uid)))
        );
    }
    let groups = s.ldapsearch_as_admin(&format!("ou=groups,{BASE_DN}"), &["ou"]);
    assert!(groups.contains("ou: groups"), "{groups}");
}

#[tokio::test]
async fn set_password_then_check_new_old_and_wrong() {
    let s = Slapd::start();
    let c = client(&s, ADMIN_PASSWORD, quick_backoff());
    let old = slapd::initial_password("alice");
    let new = "Alice-new-P@ss w0rd, with spaces & ünïcode";

    assert!(c.check_password("alice", &secret(old)).await.unwrap());
    assert!(!c.check_password("alice", &secret(new)).await.unwrap());

    c.set_password("alice", &secret(new)).await.unwrap();
    assert_eq!(c.password_sets(), 1);

    assert!(c.check_password("alice", &secret(new)).await.unwrap());
    assert!(!c.check_password("alice", &secret(old)).await.unwrap());
    assert!(!c.check_password("alice", &secret("wrong")).await.unwrap());
    // One admin bind for the set, one bind per check (5 checks).
    assert_eq!(c.binds(), 6);

    // bob is untouched.
    let bob = slapd::initial_password("bob");
    assert!(c.check_password("bob", &secret(bob)).await.unwrap());
    assert!(!c.check_password("bob", &secret(new)).await.unwrap());
    c.close().await;
}

#[tokio::test]
async fn ldap_utils_confirm_the_password_changed_in_slapd() {
    let s = Slapd::start();
    let c = client(&s, ADMIN_PASSWORD, quick_backoff());
    let dn = slapd::user_dn("bob");
    let old = slapd::initial_password("bob");
    let new = "bob-rotated-9f2c";

    assert_eq!(s.ldapwhoami(&dn, old), Ok(format!("dn:{dn}")));
    c.set_password("bob", &secret(new)).await.unwrap();
    c.close().await;

    // An independent client: the new password binds, the old one no longer does.
    assert_eq!(s.ldapwhoami(&dn, new), Ok(format!("dn:{dn}")));
    let refused = s.ldapwhoami(&dn, old).unwrap_err();
    assert!(refused.contains("Invalid credentials (49)"), "{refused}");

    // The server stored a fresh hash ({SSHA}, slapd's default scheme) instead of the
    // cleartext value loaded at start: the change happened in slapd, not in our client.
    let ldif = s.ldapsearch_as_admin(&dn, &["userPassword"]);
    let stored = ldif
        .lines()
        .find_map(|l| l.strip_prefix("userPassword:: "))
        .unwrap_or_else(|| panic!("no base64 userPassword in {ldif}"));
    // base64("{SSHA}") is "e1NTSEF9".
    assert!(stored.starts_with("e1NTSEF9"), "stored value: {stored}");
    assert!(!ldif.contains(new) && !ldif.contains(old), "{ldif}");
}

#[tokio::test]
async fn check_password_for_an_unknown_user_is_false() {
    // slapd answers a bind to a DN that does not exist with invalidCredentials (49), exactly
    // like a wrong password, so that binds cannot probe which users exist.
    let s = Slapd::start();
    let c = client(&s, ADMIN_PASSWORD, quick_backoff());
    let r = c.check_password("nobody", &secret("whatever")).await;
    assert!(matches!(r, Ok(false)), "{r:?}");
    assert_eq!(c.binds(), 1, "a definite answer is not retried");
}

#[tokio::test]
async fn check_password_with_an_empty_password_is_never_true() {
    // A DN with an empty password is an "unauthenticated bind" (RFC 4513 5.1.2): a server
    // allowing it would report success. slapd refuses it by default with unwillingToPerform.
    let s = Slapd::start();
    let c = client(&s, ADMIN_PASSWORD, quick_backoff());
    let r = c.check_password("alice", &secret("")).await;
    match r {
        Err(LdapError::Refused {
            operation, rc, dn, ..
        }) => {
            assert_eq!(operation, "bind");
            assert_eq!(rc, 53);
            assert_eq!(dn, slapd::user_dn("alice"));
        }
        other => panic!("expected a refused bind (53), got {other:?}"),
    }
}

#[tokio::test]
async fn set_password_for_an_unknown_user_is_a_clear_permanent_error() {
    let s = Slapd::start();
    let c = client(&s, ADMIN_PASSWORD, quick_backoff());
    let err = c
        .set_password("nobody", &secret("irrelevant-pw-1"))
        .await
        .unwrap_err();
    match &err {
        LdapError::Refused {
            operation, dn, rc, ..
        } => {
            assert_eq!(*operation, "password modify");
            assert_eq!(dn, &slapd::user_dn("nobody"));
            assert_eq!(*rc, 32, "noSuchObject");
        }
        other => panic!("expected Refused(32), got {other:?}"),
    }
    assert!(!err.is_transient());
    let shown = err.to_string();
    assert!(
        shown.contains("uid=nobody,ou=people,dc=example,dc=com"),
        "{shown}"
    );
    assert!(shown.contains("32"), "{shown}");
    assert!(!shown.contains("irrelevant-pw-1"), "{shown}");
    assert_eq!(c.password_sets(), 0);
    assert_eq!(c.binds(), 1, "no retry, no rebind");

    // The admin connection survives the refusal and is reused.
    c.set_password("alice", &secret("after-refusal-1"))
        .await
        .unwrap();
    assert_eq!(c.binds(), 1);
    assert_eq!(
        s.ldapwhoami(&slapd::user_dn("alice"), "after-refusal-1"),
        Ok(format!("dn:{}", slapd::user_dn("alice")))
    );
}

#[tokio::test]
async fn wrong_admin_password_is_an_admin_bind_error_without_the_password() {
    let s = Slapd::start();
    let wrong = "Wr0ng-Admin-Secret-XYZ";
    let new = "never-applied-Q7";
    let c = client(&s, wrong, quick_backoff());
    let err = c.set_password("alice", &secret(new)).await.unwrap_err();
    match &err {
        LdapError::AdminBind { dn, message } => {
            assert_eq!(dn, ADMIN_DN);
            assert!(message.contains("49"), "{message}");
        }
        other => panic!("expected AdminBind, got {other:?}"),
    }
    assert!(!err.is_transient(), "a wrong admin password is not retried");
    assert_eq!(c.binds(), 1, "exactly one bind attempt");
    assert_eq!(c.password_sets(), 0);
    let display = err.to_string();
    let debug = format!("{err:?}");
    assert!(display.contains(ADMIN_DN), "{display}");
    for text in [&display, &debug] {
        assert!(!text.contains(wrong), "admin password leaked: {text}");
        assert!(!text.contains(new), "user password leaked: {text}");
    }
    // Nothing changed in slapd.
    assert!(s
        .ldapwhoami(&slapd::user_dn("alice"), slapd::initial_password("alice"))
        .is_ok());
}

#[tokio::test]
async fn the_admin_connection_is_bound_once_and_reused() {
    let s = Slapd::start();
    let c = client(&s, ADMIN_PASSWORD, quick_backoff());
    const N: u64 = 10;
    for i in 0..N {
        let user = if i % 2 == 0 { "alice" } else { "bob" };
        c.set_password(user, &secret(&format!("{user}-round-{i}")))
            .await
            .unwrap();
    }
    assert_eq!(c.password_sets(), N);
    assert_eq!(c.binds(), 1, "{N} sets, one admin bind");

    // Concurrent sets share the same connection too.
    let (pa, pb) = (secret("alice-concurrent"), secret("bob-concurrent"));
    let (a, b) = tokio::join!(c.set_password("alice", &pa), c.set_password("bob", &pb));
    a.unwrap();
    b.unwrap();
    assert_eq!(c.binds(), 1);
    assert_eq!(c.password_sets(), N + 2);
    assert!(c
        .check_password("alice", &secret("alice-concurrent"))
        .await
        .unwrap());
    assert!(c
        .check_password("bob", &secret("bob-concurrent"))
        .await
        .unwrap());
    assert_eq!(c.binds(), 3, "plus one bind per check");

    // After close() the next set binds again, once.
    c.close().await;
    c.set_password("alice", &secret("after-close"))
        .await
        .unwrap();
    c.set_password("bob", &secret("after-close")).await.unwrap();
    assert_eq!(c.binds(), 4);
}

#[tokio::test]
async fn slapd_stopped_mid_way_is_a_transient_connect_error_then_recovers() {
    let mut s = Slapd::start();
    // Pauses in [150, 300] ms; 3 attempts make 2 pauses: at least 300 ms in all.
    let backoff = Backoff {
        attempts: 3,
        base: Duration::from_millis(300),
        cap: Duration::from_millis(300),
        jitter: true,
    };
    let c = client(&s, ADMIN_PASSWORD, backoff);
    c.set_password("alice", &secret("before-outage"))
        .await
        .unwrap();
    assert_eq!(c.binds(), 1);

    s.stop();

    let started = Instant::now();
    let err = c
        .set_password("alice", &secret("during-outage"))
        .await
        .unwrap_err();
    let took = started.elapsed();
    match &err {
        LdapError::Connect { url, .. } => assert_eq!(url, &s.url()),
        other => panic!("expected Connect, got {other:?}"),
    }
    assert!(err.is_transient());
    assert!(!err.to_string().contains("during-outage"), "{err}");
    assert!(
        took >= Duration::from_millis(300),
        "gave up after {took:?}: the configured retries did not happen"
    );
    assert!(
        took < Duration::from_secs(4),
        "took {took:?}: retry must stop after 3 attempts"
    );
    assert_eq!(c.password_sets(), 1);

    let err = c
        .check_password("alice", &secret("before-outage"))
        .await
        .unwrap_err();
    assert!(matches!(err, LdapError::Connect { .. }), "{err:?}");
    assert!(err.is_transient());

    // Back up on the same port and data: the client reconnects and binds again, once.
    s.restart();
    let binds_before = c.binds();
    c.set_password("alice", &secret("after-outage"))
        .await
        .unwrap();
    c.set_password("bob", &secret("after-outage"))
        .await
        .unwrap();
    assert_eq!(
        c.binds(),
        binds_before + 1,
        "one new admin bind after the outage"
    );
    assert_eq!(c.password_sets(), 3);
    assert!(c
        .check_password("alice", &secret("after-outage"))
        .await
        .unwrap());
    assert!(!c
        .check_password("alice", &secret("before-outage"))
        .await
        .unwrap());
    assert!(s.ldapwhoami(&slapd::user_dn("bob"), "after-outage").is_ok());
}

#[tokio::test]
async fn a_hung_slapd_times_out_transiently_and_the_client_recovers() {
    let s = Slapd::start();
    let timeout = Duration::from_millis(400);
    let backoff = Backoff {
        attempts: 2,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(10),
        jitter: true,
    };
    let c = LdapPasswords::new(
        &s.url(),
        BASE_DN,
        ADMIN_USER,
        Secret::new(ADMIN_PASSWORD),
        timeout,
        backoff,
    );
    c.set_password("alice", &secret("before-freeze"))
        .await
        .unwrap();

    // The kernel still accepts connections, slapd answers nothing: every operation must be
    // bounded by the timeout, and the error must be retryable.
    s.freeze();
    let started = Instant::now();
    let err = c
        .set_password("alice", &secret("while-frozen"))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, LdapError::Connect { .. }), "{err:?}");
    assert!(err.is_transient(), "{err:?}");
    assert!(
        took < Duration::from_secs(3),
        "2 attempts of at most {timeout:?} each took {took:?}"
    );
    let started = Instant::now();
    let err = c
        .check_password("alice", &secret("before-freeze"))
        .await
        .unwrap_err();
    assert!(matches!(err, LdapError::Connect { .. }), "{err:?}");
    assert!(err.is_transient(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));

    s.thaw();
    c.set_password("alice", &secret("after-thaw"))
        .await
        .unwrap();
    assert!(c
        .check_password("alice", &secret("after-thaw"))
        .await
        .unwrap());
    assert_eq!(
        s.ldapwhoami(&slapd::user_dn("alice"), "after-thaw"),
        Ok(format!("dn:{}", slapd::user_dn("alice")))
    );
}

#[test]
#[should_panic(expected = "apt-get install -y slapd ldap-utils")]
fn a_missing_ldap_tool_fails_with_the_install_line() {
    slapd::require_tool("slapd-that-is-not-installed");
}
