//! A create whose answer is lost (the double creates the account, then cuts its answer short):
//! the retry meets "exists" and every backend must take that as its own success — one account,
//! with the id — instead of failing or creating twice. The same "exists" without an earlier
//! failed attempt stays an error (tested per service elsewhere).

mod targets_support;

use std::collections::BTreeMap;

use paas_doubles::gitlab::{GitlabConfig, GitlabDouble};
use paas_doubles::jellyfin::{JellyfinConfig, JellyfinDouble};
use paas_doubles::mailcow::{MailcowConfig, MailcowDouble};
use paas_doubles::nextcloud::{NextcloudConfig, NextcloudDouble};
use paas_doubles::service::Stats;
use paas_doubles::vaultwarden::{VaultwardenConfig, VaultwardenDouble};
use paasd::secret::Secret;
use paasd::targets::accounts::{AccountAction, Service};
use paasd::targets::gitlab::Gitlab;
use paasd::targets::jellyfin::Jellyfin;
use paasd::targets::mailcow::Mailcow;
use paasd::targets::nextcloud::Nextcloud;
use paasd::targets::vaultwarden::Vaultwarden;
use targets_support::{quick, TIMEOUT};

fn injected(s: &Stats) -> u64 {
    s.faults_injected.values().sum()
}

fn create(key: &str, fields: &[(&str, &str)]) -> AccountAction {
    AccountAction::Create {
        user: "lost".into(),
        key: key.into(),
        enabled: true,
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        groups: Default::default(),
        with_password: true,
    }
}

async fn created_once(svc: &dyn Service, action: &AccountAction, key: &str) -> String {
    let pw = Secret::new("lost-Pw-12345678");
    let done = svc
        .execute(action, Some(&pw))
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", svc.kind()));
    let id = done.remote_id.expect("an id");
    let accounts = svc.observe().await.expect("observe");
    let same: Vec<_> = accounts
        .iter()
        .filter(|a| a.key.eq_ignore_ascii_case(key))
        .collect();
    assert_eq!(same.len(), 1, "{}: exactly one account", svc.kind());
    assert_eq!(
        same[0].remote_id,
        id,
        "{}: the id of that account",
        svc.kind()
    );
    id
}

#[tokio::test]
async fn a_lost_create_answer_is_not_a_failure() {
    let d = NextcloudDouble::start(NextcloudConfig::new("a-Pw-1"))
        .await
        .expect("double");
    let nc = Nextcloud::new(&d.url(), "admin", Secret::new("a-Pw-1"), TIMEOUT)
        .expect("client")
        .with_backoff(quick());
    d.faults().truncate_next(1);
    created_once(
        &nc,
        &create("lost", &[("email", "lost@example.com")]),
        "lost",
    )
    .await;
    assert_eq!(injected(&d.stats()), 1, "the answer was cut");
    d.assert_no_violations();

    let d = GitlabDouble::start(GitlabConfig::new("t-1"))
        .await
        .expect("double");
    let gl = Gitlab::new(&d.url(), Secret::new("t-1"), None, "dc=x", TIMEOUT)
        .expect("client")
        .with_backoff(quick());
    d.faults().truncate_next(1);
    created_once(
        &gl,
        &create("lost", &[("email", "lost@example.com")]),
        "lost",
    )
    .await;
    let u = d.user_by_username("lost").expect("created");
    assert_eq!(
        u.custom_attributes.get("paasd_managed").map(String::as_str),
        Some("true"),
        "marked after the lookup"
    );
    assert_eq!(injected(&d.stats()), 1, "the answer was cut");
    d.assert_no_violations();

    let d = JellyfinDouble::start(JellyfinConfig::new("k-1"))
        .await
        .expect("double");
    let jf = Jellyfin::new(&d.url(), Secret::new("k-1"), TIMEOUT)
        .expect("client")
        .with_backoff(quick());
    d.faults().truncate_next(1);
    created_once(&jf, &create("lost", &[]), "lost").await;
    assert_eq!(injected(&d.stats()), 1, "the answer was cut");
    d.assert_no_violations();

    let d = VaultwardenDouble::start(VaultwardenConfig::new("v-1"))
        .await
        .expect("double");
    let vw = Vaultwarden::new(&d.url(), Secret::new("v-1"), TIMEOUT)
        .expect("client")
        .with_backoff(quick());
    vw.health().await.expect("alive");
    vw.observe().await.expect("log in first");
    d.faults().truncate_next(1);
    created_once(&vw, &create("lost@example.com", &[]), "lost@example.com").await;
    assert_eq!(injected(&d.stats()), 1, "the answer was cut");
    d.assert_no_violations();

    let d = MailcowDouble::start(MailcowConfig::new("m-1"))
        .await
        .expect("double");
    let mc = Mailcow::new(&d.url(), Secret::new("m-1"), "example.com", TIMEOUT)
        .expect("client")
        .with_backoff(quick());
    d.faults().truncate_next(1);
    created_once(&mc, &create("lost@example.com", &[]), "lost@example.com").await;
    assert_eq!(injected(&d.stats()), 1, "the answer was cut");
    d.assert_no_violations();
}
