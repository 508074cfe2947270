//! The Jellyfin backend against the Jellyfin double (checked against Jellyfin's 10.11 OpenAPI
//! document; `MediaBrowser Token` auth only): create → no-change run → policy change →
//! disable (an administrator is demoted first) → enable → delete, passwords, random password
//! when there is no strategy.

mod targets_support;

use paas_doubles::jellyfin::{JellyfinConfig, JellyfinDouble, JellyfinUser};
use paasd::core::plan::Op;
use paasd::core::spec::Removal;
use paasd::secret::Secret;
use paasd::targets::accounts::{AccountAction, Service, ServiceError};
use paasd::targets::jellyfin::Jellyfin;
use targets_support::{quick, World, TIMEOUT};

const KEY: &str = "jf-api-Key-1";

async fn setup() -> (JellyfinDouble, Jellyfin) {
    let d = JellyfinDouble::start(JellyfinConfig::new(KEY))
        .await
        .expect("double");
    let jf = Jellyfin::new(&d.url(), Secret::new(KEY), TIMEOUT)
        .expect("client")
        .with_backoff(quick());
    (d, jf)
}

#[tokio::test]
async fn full_lifecycle_converges() {
    let (d, jf) = setup().await;
    let mut w = World::new(&jf);
    {
        let a = w.user("alice", "alice@example.com");
        a.settings_mut().jellyfin.admin = true;
        a.settings_mut().jellyfin.enable_all_folders = Some(false);
    }
    w.user("bob", "bob@example.com");
    w.passwords
        .insert("alice".into(), Secret::new("alice-Pw-123456"));
    let run = w.converge().await;
    assert_eq!(run.ops_of("alice"), vec![Op::Create]);
    let alice = d.user_by_name("alice").expect("created");
    assert!(alice.is_admin());
    assert_eq!(alice.policy["EnableAllFolders"], false);
    assert!(d.check_password(&alice.id, "alice-Pw-123456"));
    // No password source: a random one, never empty.
    let bob = d.user_by_name("bob").expect("created");
    assert!(!d.check_password(&bob.id, ""));
    assert!(bob
        .password
        .as_deref()
        .is_some_and(|p| p.len() >= paasd::secret::GENERATED_LEN));

    d.reset_stats();
    let run = w.run().await;
    assert!(run.changes().is_empty());
    assert_eq!(d.stats().total_writes(), 0, "{:?}", d.stats().writes);

    // Policy change and a new password.
    w.users
        .get_mut("alice")
        .expect("alice")
        .settings_mut()
        .jellyfin
        .enable_all_folders = Some(true);
    w.passwords
        .insert("alice".into(), Secret::new("alice-Pw-new-1"));
    let run = w.converge().await;
    assert_eq!(run.ops_of("alice"), vec![Op::Update]);
    let alice = d.user_by_name("alice").expect("alice");
    assert_eq!(alice.policy["EnableAllFolders"], true);
    assert!(alice.is_admin(), "other policy flags kept");
    assert!(d.check_password(&alice.id, "alice-Pw-new-1"));

    // Disabling an administrator: Jellyfin refuses unless the flag goes first.
    w.users.get_mut("alice").expect("alice").enable = false;
    let run = w.converge().await;
    assert_eq!(run.ops_of("alice"), vec![Op::Disable]);
    let alice = d.user_by_name("alice").expect("alice");
    assert!(alice.is_disabled() && !alice.is_admin());
    w.users.get_mut("alice").expect("alice").enable = true;
    let run = w.converge().await;
    assert_eq!(run.ops_of("alice"), vec![Op::Enable]);
    let alice = d.user_by_name("alice").expect("alice");
    assert!(
        !alice.is_disabled() && alice.is_admin(),
        "admin again once enabled"
    );

    w.removal = Removal::Delete;
    w.users.remove("bob");
    let run = w.converge().await;
    assert_eq!(run.ops_of("bob"), vec![Op::Delete]);
    assert!(d.user_by_name("bob").is_none());
    assert!(d.user_by_name("root").is_some());
    d.assert_no_violations();
}

#[tokio::test]
async fn adoption_refusals_and_faults() {
    let (d, jf) = setup().await;
    d.seed_user(JellyfinUser::new("Carol"));
    let mut w = World::new(&jf);
    w.user("carol", "carol@example.com");
    let run = w.converge().await;
    assert_eq!(
        run.ops_of("carol"),
        vec![Op::Adopt],
        "names compare case-insensitively"
    );

    // The legacy header is not what paasd sends; a wrong key is a clear refusal.
    let bad = Jellyfin::new(&d.url(), Secret::new("wrong-Key-9"), TIMEOUT)
        .expect("client")
        .with_backoff(quick());
    match bad.observe().await {
        Err(ServiceError::Refused(m)) => {
            assert!(m.contains("apiKeyFile"), "{m}");
            assert!(!m.contains("wrong-Key-9"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A duplicate name (no earlier attempt): Jellyfin's bare 400, reported.
    let dup = AccountAction::Create {
        user: "carol2".into(),
        key: "carol".into(),
        enabled: true,
        fields: Default::default(),
        groups: Default::default(),
        with_password: true,
    };
    match jf.execute(&dup, Some(&Secret::new("dup-Pw-123456"))).await {
        Err(ServiceError::Refused(m)) => {
            assert!(m.contains("400") && !m.contains("dup-Pw-123456"), "{m}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    d.faults().fail_next(2, 503);
    jf.observe().await.expect("503s are retried");
    jf.health().await.expect("healthy");
    d.assert_no_violations();
}
