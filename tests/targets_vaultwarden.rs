//! The Vaultwarden backend against the Vaultwarden double (admin API: cookie login, JSON
//! content type on every POST): invite → no-change run → disable → enable → delete, session
//! expiry, 409 on an invitation, no passwords.

mod targets_support;

use paas_doubles::vaultwarden::{VaultwardenConfig, VaultwardenDouble, VaultwardenUser};
use paasd::core::plan::Op;
use paasd::core::spec::Removal;
use paasd::secret::Secret;
use paasd::targets::accounts::{AccountAction, Service, ServiceError};
use paasd::targets::vaultwarden::Vaultwarden;
use targets_support::{quick, World, TIMEOUT};

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
