//! The GitLab backend against the GitLab double (REST v4 checked against the users subset of
//! GitLab's OpenAPI v3 document): create with the marker and the LDAP identity → no-change run
//! → change → block → unblock → delete; paging; adoption; hand-made accounts left alone.

mod targets_support;

use paas_doubles::gitlab::{GitlabConfig, GitlabDouble, GitlabUser};
use paasd::core::plan::Op;
use paasd::core::spec::Removal;
use paasd::secret::Secret;
use paasd::targets::accounts::{AccountAction, Service, ServiceError};
use paasd::targets::gitlab::{Gitlab, MARKER};
use targets_support::{quick, World, TIMEOUT};

const TOKEN: &str = "glpat-Test-Token-1";

async fn setup(ldap: Option<&str>) -> (GitlabDouble, Gitlab) {
    let d = GitlabDouble::start(GitlabConfig::new(TOKEN))
        .await
        .expect("double");
    let gl = Gitlab::new(
        &d.url(),
        Secret::new(TOKEN),
        ldap,
        "dc=example,dc=com",
        TIMEOUT,
    )
    .expect("client")
    .with_backoff(quick());
    (d, gl)
}

#[tokio::test]
async fn full_lifecycle_converges() {
    let (d, gl) = setup(Some("ldapmain")).await;
    let mut w = World::new(&gl);
    {
        let a = w.user("alice", "Alice@Example.com");
        a.display_name = Some("Alice Liddell".into());
        a.settings_mut().gitlab.admin = true;
        a.settings_mut().gitlab.projects_limit = Some(20);
    }
    w.user("bob", "bob@example.com")
        .settings_mut()
        .gitlab
        .external = true;
    let run = w.converge().await;
    assert_eq!(run.ops_of("alice"), vec![Op::Create]);
    let alice = d.user_by_username("alice").expect("created");
    assert_eq!(alice.name, "Alice Liddell");
    assert_eq!(alice.email, "alice@example.com");
    assert!(alice.admin);
    assert_eq!(alice.projects_limit, 20);
    assert_eq!(
        alice.custom_attributes.get(MARKER).map(String::as_str),
        Some("true")
    );
    assert_eq!(
        alice.identities,
        vec![(
            "ldapmain".to_string(),
            "uid=alice,ou=people,dc=example,dc=com".to_string()
        )]
    );
    assert!(alice.confirmed, "skip_confirmation");
    let bob = d.user_by_username("bob").expect("created");
    assert!(bob.external && !bob.admin);
    assert_eq!(bob.name, "bob", "no display name: the user id");
    assert!(w.account("alice").await.expect("observed").marked);

    d.reset_stats();
    let run = w.run().await;
    assert!(run.changes().is_empty());
    assert_eq!(d.stats().total_writes(), 0, "{:?}", d.stats().writes);

    // Change.
    {
        let a = w.users.get_mut("alice").expect("alice");
        a.email = "alice@example.org".into();
        a.settings_mut().gitlab.admin = false;
        a.settings_mut().gitlab.can_create_group = Some(false);
    }
    let run = w.converge().await;
    assert_eq!(run.ops_of("alice"), vec![Op::Update]);
    let alice = d.user_by_username("alice").expect("alice");
    assert_eq!(alice.email, "alice@example.org");
    assert!(!alice.admin && !alice.can_create_group);

    // Block, unblock.
    w.users.get_mut("alice").expect("alice").enable = false;
    let run = w.converge().await;
    assert_eq!(run.ops_of("alice"), vec![Op::Disable]);
    assert_eq!(d.user_by_username("alice").expect("alice").state, "blocked");
    w.users.get_mut("alice").expect("alice").enable = true;
    let run = w.converge().await;
    assert_eq!(run.ops_of("alice"), vec![Op::Enable]);
    assert_eq!(d.user_by_username("alice").expect("alice").state, "active");

    // Removal: paasd's state is lost, the marker still says whose accounts they are.
    w.state.accounts.clear();
    w.removal = Removal::Delete;
    w.users.remove("bob");
    let run = w.converge().await;
    assert_eq!(run.ops_of("bob"), vec![Op::Delete]);
    assert!(d.user_by_username("bob").is_none());
    assert!(d.user_by_username("root").is_some(), "never touched");
    d.assert_no_violations();
}

#[tokio::test]
async fn passwords_paging_and_adoption() {
    let (d, gl) = setup(None).await;
    // 230 hand-made users: three pages.
    for i in 0..230 {
        d.seed_user(GitlabUser::new(
            &format!("hand{i:03}"),
            &format!("Hand {i}"),
            &format!("hand{i:03}@example.com"),
        ));
    }
    let mut w = World::new(&gl);
    w.user("hand007", "hand007@example.com").display_name = Some("Hand 7".into());
    w.user("carol", "carol@example.com");
    w.passwords
        .insert("carol".into(), Secret::new("carol-Pw-12345678"));
    let run = w.converge().await;
    assert_eq!(run.ops_of("hand007"), vec![Op::Adopt]);
    assert_eq!(run.ops_of("carol"), vec![Op::Create]);
    assert_eq!(
        w.observe().await.len(),
        232,
        "root, 230 hand-made (hand007 among them), carol"
    );
    let hand = d.user_by_username("hand007").expect("adopted");
    assert_eq!(
        hand.custom_attributes.get(MARKER).map(String::as_str),
        Some("true")
    );
    let carol = d.user_by_username("carol").expect("carol");
    assert_eq!(carol.password.as_deref(), Some("carol-Pw-12345678"));
    // A new password: set, and GitLab expires it (documented).
    w.passwords
        .insert("carol".into(), Secret::new("carol-Pw-new-12345"));
    w.converge().await;
    let carol = d.user_by_username("carol").expect("carol");
    assert_eq!(carol.password.as_deref(), Some("carol-Pw-new-12345"));
    assert!(carol.password_expired);
    // Removal leaves the 229 others alone.
    w.users.clear();
    w.removal = Removal::Delete;
    w.converge().await;
    assert_eq!(d.users().len(), 230, "root + 229 hand-made");
    d.assert_no_violations();
}

#[tokio::test]
async fn refusals_are_clear_and_secret_free() {
    let (d, gl) = setup(None).await;
    d.seed_user(GitlabUser::new("taken", "Taken", "taken@example.com"));
    let create = AccountAction::Create {
        user: "dora".into(),
        key: "dora".into(),
        enabled: true,
        fields: [("email".to_string(), "taken@example.com".to_string())].into(),
        groups: Default::default(),
        with_password: true,
    };
    match gl
        .execute(&create, Some(&Secret::new("dora-Pw-12345678")))
        .await
    {
        Err(ServiceError::Refused(m)) => {
            assert!(m.contains("409") && m.contains("Email"), "{m}");
            assert!(!m.contains("dora-Pw-12345678"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let bad = Gitlab::new(
        &d.url(),
        Secret::new("glpat-wrong-9"),
        None,
        "dc=x",
        TIMEOUT,
    )
    .expect("client")
    .with_backoff(quick());
    match bad.observe().await {
        Err(ServiceError::Refused(m)) => {
            assert!(m.contains("tokenFile"), "{m}");
            assert!(!m.contains("glpat-wrong-9"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    d.faults().fail_next(2, 502);
    gl.observe().await.expect("502s are retried");
    gl.health().await.expect("ready");
    gl.execute(
        &AccountAction::Delete {
            user: "x".into(),
            remote_id: "9999".into(),
        },
        None,
    )
    .await
    .expect("deleting a missing user succeeds");
    d.assert_no_violations();
}
