//! What the service backend tests share: one deployment of paasd against one service, run
//! through the production engine (`paasd::engine::apply` with the service's account target) —
//! the same loop `paasctl apply` and the daemon run, with a spec, password files and a state
//! directory — so a backend is tested for convergence (a second run changes nothing), not only
//! for single calls.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use paasd::backoff::Backoff;
use paasd::core::id::{ServiceKind, TargetId};
use paasd::core::plan::Op;
use paasd::core::spec::{parse_spec, Removal, Spec, UserSpec};
use paasd::core::state::{State, TargetState};
use paasd::engine::{self, AnyTarget, Options, Outcome, Report};
use paasd::secret::Secret;
use paasd::targets::accounts::{Account, AccountTarget, Service};
use serde_json::json;

pub fn quick() -> Backoff {
    Backoff {
        attempts: 4,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(20),
        jitter: true,
    }
}

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// One paasd deployment against one service.
pub struct World<'a> {
    pub svc: &'a dyn Service,
    /// The spec's users (each gets an account: the service has no access groups).
    pub users: BTreeMap<String, UserSpec>,
    /// Per user: the password paasd applies there (written to a 0600 password file).
    pub passwords: BTreeMap<String, Secret>,
    /// What paasd owns in the service (read back after every run; changes are written back
    /// before the next).
    pub state: TargetState,
    pub removal: Removal,
    dir: tempfile::TempDir,
}

/// What one run did, as the engine reports it.
#[derive(Debug)]
pub struct Run {
    pub report: Report,
}

impl Run {
    /// The operations carried out for `user`, as the report says.
    pub fn ops_of(&self, user: &str) -> Vec<Op> {
        self.report
            .objects
            .iter()
            .filter(|o| o.name == user && o.outcome != Outcome::Failed)
            .filter_map(|o| o.op)
            .collect()
    }

    /// Every object the plan changed (or tried to), with its operation.
    pub fn changes(&self) -> Vec<(String, Op)> {
        self.report
            .objects
            .iter()
            .filter(|o| o.outcome != Outcome::Unchanged)
            .filter_map(|o| o.op.map(|op| (o.name.clone(), op)))
            .collect()
    }

    /// The objects that failed, with their errors.
    pub fn errors(&self) -> Vec<(String, String)> {
        self.report
            .objects
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Failed | Outcome::Pending))
            .map(|o| (o.name.clone(), o.error.clone().unwrap_or_default()))
            .collect()
    }
}

impl<'a> World<'a> {
    pub fn new(svc: &'a dyn Service) -> Self {
        World {
            svc,
            users: BTreeMap::new(),
            passwords: BTreeMap::new(),
            state: TargetState::default(),
            removal: Removal::Disable,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn kind(&self) -> ServiceKind {
        self.svc.kind()
    }

    /// Declares a user (enabled, no settings).
    pub fn user(&mut self, id: &str, email: &str) -> &mut UserSpec {
        let spec = parse_spec(
            &json!({
                "version": 1,
                "lldap": { "url": "http://lldap.invalid", "ldapUrl": "ldap://lldap.invalid",
                           "baseDn": "dc=example,dc=com", "adminPasswordFile": "/nonexistent" },
                "users": { id: { "email": email } }
            })
            .to_string(),
        )
        .expect("a valid user");
        let user = spec.users.into_values().next().expect("one user");
        self.users.insert(id.to_string(), user);
        self.users.get_mut(id).expect("just inserted")
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The spec of this deployment: its users with their password files, and the service's
    /// connection (the backend is the test's own, so its URL and secret are never read).
    pub fn spec(&self) -> Spec {
        let kind = self.kind();
        let mut conn = json!({ "url": "http://service.invalid" });
        conn[kind.secret_key()] = json!("/nonexistent");
        if kind.needs_admin_user() {
            conn["adminUser"] = json!("admin");
        }
        if kind.needs_domain() {
            conn["domain"] = json!("example.com");
        }
        let mut v = json!({
            "version": 1,
            "lldap": { "url": "http://lldap.invalid", "ldapUrl": "ldap://lldap.invalid",
                       "baseDn": "dc=example,dc=com", "adminPasswordFile": "/nonexistent" },
            "removalGuard": { "maxPercent": 100 },
            "users": {}
        });
        v[kind.name()] = conn;
        let mut spec = parse_spec(&v.to_string()).expect("a valid spec");
        spec.removal = self.removal;
        for (id, u) in &self.users {
            let mut u = u.clone();
            if let Some(pw) = self.passwords.get(id) {
                let path = self.dir.path().join(format!("pw-{id}"));
                std::fs::write(&path, pw.expose()).expect("write password");
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .expect("chmod");
                u.password_file = Some(path);
            }
            spec.users.insert(id.clone(), u);
        }
        spec
    }

    pub fn options(&self) -> Options {
        let mut o = Options::new(self.state_dir());
        o.force = true;
        o.backoff = quick();
        o.ready_wait = quick();
        o
    }

    pub async fn observe(&self) -> Vec<Account> {
        self.svc.observe().await.expect("observe")
    }

    pub async fn account(&self, key: &str) -> Option<Account> {
        self.observe()
            .await
            .into_iter()
            .find(|a| a.key.eq_ignore_ascii_case(key))
    }

    /// One run through the engine: ready → observe → plan → apply → record.
    pub async fn run(&mut self) -> Run {
        let svc = self.svc;
        self.run_on(svc).await
    }

    /// One run through the engine with another backend of the same service (a new client per
    /// run, as `paasctl` and the daemon build their targets for every run).
    pub async fn run_on(&mut self, svc: &dyn Service) -> Run {
        let kind = self.kind();
        let dir = self.state_dir();
        let mut state = State::load(&dir).expect("state");
        if state.service(kind) != &self.state {
            state.targets.insert(kind, self.state.clone());
            state.save(&dir).expect("save state");
        }
        let spec = self.spec();
        let backend: Box<dyn Service + '_> = Box::new(svc);
        let targets: Vec<Box<dyn AnyTarget + '_>> =
            vec![Box::new(AccountTarget::new(kind, &spec, Ok(backend)))];
        let report = engine::apply(&targets, Vec::new(), &self.options()).await;
        assert_eq!(report.targets.len(), 1);
        assert_eq!(report.targets[0].target, TargetId::Service(kind));
        self.state = State::load(&dir).expect("state").service(kind).clone();
        Run { report }
    }

    /// Runs until nothing is left to do; asserts that the last run changed nothing and that no
    /// action failed.
    pub async fn converge(&mut self) -> Run {
        let first = self.run().await;
        assert!(first.errors().is_empty(), "errors: {:?}", first.errors());
        let second = self.run().await;
        assert!(
            second.changes().is_empty(),
            "a second run still changes: {:#?}",
            second.changes()
        );
        assert!(second.errors().is_empty(), "errors: {:?}", second.errors());
        first
    }
}
