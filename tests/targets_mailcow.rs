//! The Mailcow backend against the Mailcow double (API v1 checked against Mailcow's OpenAPI
//! 3.1 document; errors as HTTP 200 with `type: "danger"`): create → no-change run → change →
//! deactivate → activate → delete, other domains untouched, a clear error without a password.

mod targets_support;

use paas_doubles::mailcow::{Mailbox, MailcowConfig, MailcowDouble};
use paasd::core::plan::Op;
use paasd::core::spec::Removal;
use paasd::secret::Secret;
use paasd::targets::accounts::{AccountAction, Service, ServiceError};
use paasd::targets::mailcow::Mailcow;
use targets_support::{quick, World, TIMEOUT};

const KEY: &str = "mc-rw-Key-1";

async fn setup() -> (MailcowDouble, Mailcow) {
    let d = MailcowDouble::start(MailcowConfig {
        domains: vec!["example.com".into(), "other.org".into()],
        ..MailcowConfig::new(KEY)
    })
    .await
    .expect("double");
    let mc = Mailcow::new(&d.url(), Secret::new(KEY), "Example.com", TIMEOUT)
        .expect("client")
        .with_backoff(quick());
    (d, mc)
}

#[tokio::test]
async fn full_lifecycle_converges() {
    let (d, mc) = setup().await;
    d.seed_mailbox(Mailbox::new("alice", "other.org", "Someone else"));
    let mut w = World::new(&mc);
    {
        let a = w.user("alice", "alice@somewhere.net");
        a.display_name = Some("Alice Liddell".into());
        a.settings_mut().mailcow.quota = Some(2048);
    }
    w.user("bob", "bob@example.com");
    w.passwords
        .insert("alice".into(), Secret::new("alice-Pw-123456"));
    w.passwords
        .insert("bob".into(), Secret::new("bob-Pw-123456"));
    let run = w.converge().await;
    assert_eq!(run.ops_of("alice"), vec![Op::Create]);
    let alice = d.mailbox("alice@example.com").expect("created");
    assert_eq!(alice.name, "Alice Liddell");
    assert_eq!(alice.quota, 2048 * 1024 * 1024);
    assert_eq!(alice.active, 1);
    assert_eq!(alice.password.as_deref(), Some("alice-Pw-123456"));
    assert_eq!(w.state.accounts["alice"].remote_id, "alice@example.com");
    assert!(
        w.observe()
            .await
            .iter()
            .all(|a| a.key.ends_with("@example.com")),
        "only the spec's domain is read"
    );

    d.reset_stats();
    let run = w.run().await;
    assert!(run.changes().is_empty());
    assert_eq!(d.stats().total_writes(), 0, "{:?}", d.stats().writes);

    // Change name, quota, password.
    {
        let a = w.users.get_mut("alice").expect("alice");
        a.display_name = Some("Alice L.".into());
        a.settings_mut().mailcow.quota = Some(4096);
    }
    w.passwords
        .insert("alice".into(), Secret::new("alice-Pw-new-1"));
    let run = w.converge().await;
    assert_eq!(run.ops_of("alice"), vec![Op::Update]);
    let alice = d.mailbox("alice@example.com").expect("alice");
    assert_eq!(alice.name, "Alice L.");
    assert_eq!(alice.quota, 4096 * 1024 * 1024);
    assert_eq!(alice.password.as_deref(), Some("alice-Pw-new-1"));

    // `active = false` in the spec, then back.
    w.users
        .get_mut("alice")
        .expect("alice")
        .settings_mut()
        .mailcow
        .active = Some(false);
    let run = w.converge().await;
    assert_eq!(run.ops_of("alice"), vec![Op::Disable]);
    assert_eq!(d.mailbox("alice@example.com").expect("alice").active, 0);
    w.users
        .get_mut("alice")
        .expect("alice")
        .settings_mut()
        .mailcow
        .active = None;
    let run = w.converge().await;
    assert_eq!(run.ops_of("alice"), vec![Op::Enable]);
    assert_eq!(d.mailbox("alice@example.com").expect("alice").active, 1);

    w.removal = Removal::Delete;
    w.users.remove("bob");
    let run = w.converge().await;
    assert_eq!(run.ops_of("bob"), vec![Op::Delete]);
    assert!(d.mailbox("bob@example.com").is_none());
    assert!(
        d.mailbox("alice@other.org").is_some(),
        "other domain untouched"
    );
    d.assert_no_violations();
}

#[tokio::test]
async fn danger_answers_and_missing_passwords_are_errors() {
    let (d, mc) = setup().await;
    d.seed_mailbox(Mailbox::new("carol", "example.com", "Carol"));
    let create = |key: &str, with_password| AccountAction::Create {
        user: "carol".into(),
        key: key.into(),
        enabled: true,
        fields: Default::default(),
        groups: Default::default(),
        with_password,
    };
    // No password strategy: refused before any request.
    match mc.execute(&create("dave@example.com", false), None).await {
        Err(ServiceError::Refused(m)) => assert!(m.contains("password strategy"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(d.mailbox("dave@example.com").is_none());
    // HTTP 200 with type "danger": object_exists, with Mailcow's words and without the password.
    let pw = Secret::new("carol-Pw-123456");
    match mc
        .execute(&create("carol@example.com", true), Some(&pw))
        .await
    {
        Err(ServiceError::Refused(m)) => {
            assert!(m.contains("object_exists"), "{m}");
            assert!(!m.contains("carol-Pw-123456"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // An unknown domain.
    match mc
        .execute(&create("erin@nowhere.net", true), Some(&pw))
        .await
    {
        Err(ServiceError::Refused(m)) => assert!(m.contains("domain_not_found"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Deleting a mailbox that is gone succeeds.
    mc.execute(
        &AccountAction::Delete {
            user: "x".into(),
            remote_id: "ghost@example.com".into(),
        },
        None,
    )
    .await
    .expect("idempotent delete");
    // A wrong key: a refusal naming the setting.
    let bad = Mailcow::new(&d.url(), Secret::new("wrong-Key-9"), "example.com", TIMEOUT)
        .expect("client")
        .with_backoff(quick());
    match bad.observe().await {
        Err(ServiceError::Refused(m)) => {
            assert!(m.contains("apiKeyFile"), "{m}");
            assert!(!m.contains("wrong-Key-9"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    d.faults().fail_next(2, 503);
    mc.health().await.expect("503s are retried");
    d.assert_no_violations();
}
