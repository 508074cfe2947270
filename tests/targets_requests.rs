//! How many requests a no-change run sends to each service for 1,000 managed users (health
//! check included), measured on the doubles; the bounds asserted here are the numbers given in
//! docs/services.md.

mod targets_support;

use paas_doubles::gitlab::{GitlabConfig, GitlabDouble};
use paas_doubles::jellyfin::{JellyfinConfig, JellyfinDouble};
use paas_doubles::mailcow::{MailcowConfig, MailcowDouble};
use paas_doubles::nextcloud::{NextcloudConfig, NextcloudDouble};
use paas_doubles::service::Stats;
use paas_doubles::vaultwarden::{VaultwardenConfig, VaultwardenDouble};
use paasd::secret::Secret;
use paasd::targets::accounts::Service;
use paasd::targets::gitlab::Gitlab;
use paasd::targets::jellyfin::Jellyfin;
use paasd::targets::mailcow::Mailcow;
use paasd::targets::nextcloud::Nextcloud;
use paasd::targets::vaultwarden::Vaultwarden;
use targets_support::{quick, World, TIMEOUT};

const USERS: usize = 1000;

/// Provisions USERS accounts, then counts the requests of one more run (which must change
/// nothing).
async fn measure(svc: &dyn Service, reset: impl Fn(), stats: impl Fn() -> Stats) -> u64 {
    let mut w = World::new(svc);
    for i in 0..USERS {
        let id = format!("u{i:04}");
        w.user(&id, &format!("{id}@example.com")).display_name = Some(format!("User {i}"));
        w.passwords
            .insert(id.clone(), Secret::new(format!("pw-{id}-Abc123456")));
    }
    let first = w.run().await;
    assert!(first.errors().is_empty(), "{:?}", first.errors().first());
    reset();
    let run = w.run().await;
    assert!(run.changes().is_empty());
    let s = stats();
    assert_eq!(s.total_writes(), 0);
    println!(
        "{}: {} requests for a no-change run of {USERS} users ({:?})",
        svc.kind(),
        s.total_requests(),
        s.requests
    );
    s.total_requests()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_change_runs_of_1000_users() {
    let nc_d = NextcloudDouble::start(NextcloudConfig::new("a-Pw-1"))
        .await
        .expect("double");
    let nc = Nextcloud::new(&nc_d.url(), "admin", Secret::new("a-Pw-1"), TIMEOUT)
        .expect("client")
        .with_backoff(quick());
    // status.php + 3 pages of 500 details (1,001 users with the admin).
    let n = measure(&nc, || nc_d.reset_stats(), || nc_d.stats()).await;
    assert!(n <= 4, "nextcloud: {n}");
    nc_d.assert_no_violations();

    let gl_d = GitlabDouble::start(GitlabConfig::new("t-1"))
        .await
        .expect("double");
    let gl = Gitlab::new(&gl_d.url(), Secret::new("t-1"), None, "dc=x", TIMEOUT)
        .expect("client")
        .with_backoff(quick());
    // readiness + 11 pages of 100 users + 10 pages of marked users.
    let n = measure(&gl, || gl_d.reset_stats(), || gl_d.stats()).await;
    assert!(n <= 22, "gitlab: {n}");
    gl_d.assert_no_violations();

    let jf_d = JellyfinDouble::start(JellyfinConfig::new("k-1"))
        .await
        .expect("double");
    let jf = Jellyfin::new(&jf_d.url(), Secret::new("k-1"), TIMEOUT)
        .expect("client")
        .with_backoff(quick());
    // /health + GET /Users.
    let n = measure(&jf, || jf_d.reset_stats(), || jf_d.stats()).await;
    assert!(n <= 2, "jellyfin: {n}");
    jf_d.assert_no_violations();

    let vw_d = VaultwardenDouble::start(VaultwardenConfig::new("v-1"))
        .await
        .expect("double");
    let vw = Vaultwarden::new(&vw_d.url(), Secret::new("v-1"), TIMEOUT)
        .expect("client")
        .with_backoff(quick());
    // /alive + GET /admin/users (the session from the first run is reused).
    let n = measure(&vw, || vw_d.reset_stats(), || vw_d.stats()).await;
    assert!(n <= 2, "vaultwarden: {n}");
    vw_d.assert_no_violations();

    let mc_d = MailcowDouble::start(MailcowConfig::new("m-1"))
        .await
        .expect("double");
    let mc = Mailcow::new(&mc_d.url(), Secret::new("m-1"), "example.com", TIMEOUT)
        .expect("client")
        .with_backoff(quick());
    // version + GET mailbox/all/<domain>.
    let n = measure(&mc, || mc_d.reset_stats(), || mc_d.stats()).await;
    assert!(n <= 2, "mailcow: {n}");
    mc_d.assert_no_violations();
}
