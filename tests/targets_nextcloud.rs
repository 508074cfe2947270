//! The Nextcloud backend against the Nextcloud double (every request checked against the
//! provisioning API's OpenAPI documents): create → no-change run → change → disable → enable →
//! delete, groups created on demand, admin by group, quota normalisation, passwords, adoption
//! of hand-made accounts, faults and maintenance.

mod targets_support;

use paas_doubles::nextcloud::{NextcloudConfig, NextcloudDouble, NextcloudUser};
use paasd::core::plan::Op;
use paasd::core::spec::Removal;
use paasd::secret::Secret;
use paasd::targets::accounts::{AccountAction, Service, ServiceError};
use paasd::targets::nextcloud::Nextcloud;
use targets_support::{quick, World, TIMEOUT};

const ADMIN_PW: &str = "nc-admin-Pw-1";

async fn setup() -> (NextcloudDouble, Nextcloud) {
    let d = NextcloudDouble::start(NextcloudConfig::new(ADMIN_PW))
        .await
        .expect("double");
    let nc = Nextcloud::new(&d.url(), "admin", Secret::new(ADMIN_PW), TIMEOUT)
        .expect("client")
        .with_backoff(quick())
        .with_managed_groups(["family".to_string(), "friends".to_string()]);
    (d, nc)
}

#[tokio::test]
async fn full_lifecycle_converges() {
    let (d, nc) = setup().await;
    let mut w = World::new(&nc);
    {
        let a = w.user("alice", "Alice@Example.com");
        a.display_name = Some("Alice Liddell".into());
        a.settings_mut().nextcloud.quota = Some("10 GB".into());
        a.settings_mut().nextcloud.groups = vec!["family".into()];
    }
    w.user("bob", "bob@example.com")
        .settings_mut()
        .nextcloud
        .admin = true;
    w.passwords
        .insert("alice".into(), Secret::new("alice-Pw-123456"));
    w.passwords
        .insert("bob".into(), Secret::new("bob-Pw-123456"));

    // Create (groups `family` does not exist yet: created on the way).
    let run = w.converge().await;
    assert_eq!(run.ops_of("alice"), vec![Op::Create]);
    let alice = d.user("alice").expect("alice exists");
    assert_eq!(alice.display_name, "Alice Liddell");
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    assert_eq!(alice.quota_bytes(), Some(10 << 30));
    assert!(alice.groups.contains("family"));
    assert!(d.check_password("alice", "alice-Pw-123456"));
    assert!(d.user("bob").expect("bob").groups.contains("admin"));
    assert!(d.groups().contains(&"family".to_string()));
    let acct = w.account("alice").await.expect("observed");
    assert_eq!(acct.fields["quota"], "10737418240");
    assert_eq!(acct.fields["email"], "alice@example.com");

    // A no-change run writes nothing.
    d.reset_stats();
    let run = w.run().await;
    assert!(run.changes().is_empty());
    assert_eq!(d.stats().total_writes(), 0, "{:?}", d.stats().writes);

    // Change: display name, quota, groups, admin, password.
    {
        let a = w.users.get_mut("alice").expect("alice");
        a.display_name = Some("Alice L.".into());
        a.settings_mut().nextcloud.quota = Some("1.55 GB".into());
        a.settings_mut().nextcloud.groups = vec!["friends".into()];
        a.settings_mut().nextcloud.admin = true;
    }
    w.users
        .get_mut("bob")
        .expect("bob")
        .settings_mut()
        .nextcloud
        .admin = false;
    w.passwords
        .insert("alice".into(), Secret::new("alice-Pw-changed-1"));
    let run = w.converge().await;
    assert_eq!(run.ops_of("alice"), vec![Op::Update]);
    let alice = d.user("alice").expect("alice");
    assert_eq!(alice.display_name, "Alice L.");
    assert_eq!(
        alice.quota, "1.6 GB",
        "Nextcloud's rounding; compared equal afterwards"
    );
    assert!(alice.groups.contains("friends") && alice.groups.contains("admin"));
    assert!(
        !alice.groups.contains("family"),
        "a group paasd manages (listed in the spec) was left"
    );
    assert!(d.check_password("alice", "alice-Pw-changed-1"));
    assert!(!d.user("bob").expect("bob").groups.contains("admin"));

    // Disable, enable.
    w.users.get_mut("alice").expect("alice").enable = false;
    let run = w.converge().await;
    assert_eq!(run.ops_of("alice"), vec![Op::Disable]);
    assert!(!d.user("alice").expect("alice").enabled);
    w.users.get_mut("alice").expect("alice").enable = true;
    let run = w.converge().await;
    assert_eq!(run.ops_of("alice"), vec![Op::Enable]);
    assert!(d.user("alice").expect("alice").enabled);

    // Removal = delete: gone from the spec, gone from Nextcloud.
    w.removal = Removal::Delete;
    w.users.remove("bob");
    let run = w.converge().await;
    assert_eq!(run.ops_of("bob"), vec![Op::Delete]);
    assert!(d.user("bob").is_none());
    assert!(!w.state.accounts.contains_key("bob"));

    d.assert_no_violations();
}

#[tokio::test]
async fn hand_made_accounts_are_adopted_only_when_a_user_maps_to_them() {
    let (d, nc) = setup().await;
    d.seed_user(NextcloudUser {
        email: Some("carol@example.com".into()),
        ..NextcloudUser::new("carol", "carols-own-Pw-1")
    })
    .expect("seed");
    d.seed_user(NextcloudUser::new("dave", "daves-own-Pw-1"))
        .expect("seed");
    let mut w = World::new(&nc);
    w.user("carol", "carol@example.com");
    let run = w.converge().await;
    assert_eq!(run.ops_of("carol"), vec![Op::Adopt]);
    assert!(run.ops_of("dave").is_empty());
    assert!(
        d.check_password("carol", "carols-own-Pw-1"),
        "no password strategy: hers is kept"
    );
    // Dave was never paasd's: removal leaves him alone.
    w.users.clear();
    w.removal = Removal::Delete;
    let run = w.converge().await;
    assert_eq!(run.ops_of("carol"), vec![Op::Delete]);
    assert!(d.user("dave").is_some());
    d.assert_no_violations();
}

#[tokio::test]
async fn without_a_password_the_email_gets_the_welcome_mail_and_without_either_a_clear_error() {
    let (d, nc) = setup().await;
    let mut w = World::new(&nc);
    w.user("erin", "erin@example.com");
    w.converge().await;
    assert!(d.user("erin").is_some());
    let no_mail = AccountAction::Create {
        user: "frank".into(),
        key: "frank".into(),
        enabled: true,
        fields: Default::default(),
        groups: Default::default(),
        with_password: false,
    };
    match nc.execute(&no_mail, None).await {
        Err(ServiceError::Refused(m)) => assert!(m.contains("password"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(d.user("frank").is_none());
    d.assert_no_violations();
}

#[tokio::test]
async fn faults_are_retried_and_maintenance_is_transient() {
    let (d, nc) = setup().await;
    let mut w = World::new(&nc);
    w.user("gina", "gina@example.com");
    w.passwords
        .insert("gina".into(), Secret::new("gina-Pw-123456"));
    d.faults().fail_next(2, 503);
    w.converge().await;
    assert!(d.user("gina").is_some());

    d.set_maintenance(true);
    match nc.health().await {
        Err(ServiceError::Transient(m)) => assert!(m.contains("maintenance"), "{m}"),
        other => panic!("expected transient, got {other:?}"),
    }
    d.set_maintenance(false);
    nc.health().await.expect("healthy again");

    // A wrong admin password is a refusal that names the setting, never the password.
    let bad = Nextcloud::new(&d.url(), "admin", Secret::new("wrong-Pw-9"), TIMEOUT)
        .expect("client")
        .with_backoff(quick());
    match bad.observe().await {
        Err(ServiceError::Refused(m)) => {
            assert!(m.contains("adminPasswordFile"), "{m}");
            assert!(!m.contains("wrong-Pw-9"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Deleting an account that is already gone succeeds (Nextcloud says 101).
    nc.execute(
        &AccountAction::Delete {
            user: "nobody".into(),
            remote_id: "nobody".into(),
        },
        None,
    )
    .await
    .expect("idempotent delete");
    d.assert_no_violations();
}
