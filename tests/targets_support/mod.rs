//! What the service backend tests share: a miniature of the engine's loop — observe, plan with
//! the generic service plan, execute every action, record ownership like paasd's state — so a
//! backend is tested for convergence (a second run plans nothing), not only for single calls.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use paasd::plan::{Action, Op};
use paasd::retry::Backoff;
use paasd::secret::Secret;
use paasd::spec::Removal;
use paasd::state::{OwnedAccount, TargetState};
use paasd::targets::plan::{plan_service, ServicePassword, ServicePlan, ServicePlanInput};
use paasd::targets::{Account, AccountAction, DesiredAccount, Service, ServiceError, ServiceUser};

pub fn quick() -> Backoff {
    Backoff {
        attempts: 4,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(20),
    }
}

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// One simulated paasd deployment against one service.
pub struct World<'a> {
    pub svc: &'a dyn Service,
    pub users: BTreeMap<String, ServiceUser>,
    /// Per user: the password paasd would apply there.
    pub passwords: BTreeMap<String, Secret>,
    pub state: TargetState,
    pub removal: Removal,
}

/// What one run did.
#[derive(Debug, Default)]
pub struct Run {
    pub plan: ServicePlan,
    pub ops: Vec<(String, Op)>,
    pub errors: Vec<(String, ServiceError)>,
}

impl Run {
    pub fn ops_of(&self, user: &str) -> Vec<Op> {
        self.ops
            .iter()
            .filter(|(u, _)| u == user)
            .map(|(_, o)| *o)
            .collect()
    }
}

fn fingerprint(s: &Secret) -> String {
    // Good enough for a test: never the password itself in the state.
    format!(
        "len{}-{}",
        s.expose().len(),
        s.expose().bytes().map(u32::from).sum::<u32>()
    )
}

impl<'a> World<'a> {
    pub fn new(svc: &'a dyn Service) -> Self {
        World {
            svc,
            users: BTreeMap::new(),
            passwords: BTreeMap::new(),
            state: TargetState::default(),
            removal: Removal::Disable,
        }
    }

    pub fn user(&mut self, id: &str, email: &str) -> &mut ServiceUser {
        self.users.insert(
            id.to_string(),
            ServiceUser {
                id: id.to_string(),
                email: email.to_string(),
                enabled: true,
                ..ServiceUser::default()
            },
        );
        self.users.get_mut(id).expect("just inserted")
    }

    pub fn desired(&self) -> BTreeMap<String, DesiredAccount> {
        self.users
            .iter()
            .map(|(id, u)| (id.clone(), self.svc.desired(u)))
            .collect()
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

    /// One run: observe → plan → execute → record.
    pub async fn run(&mut self) -> Run {
        self.svc.health().await.expect("healthy");
        let observed = self.observe().await;
        let desired = self.desired();
        let passwords: BTreeMap<String, ServicePassword> = self
            .passwords
            .iter()
            .map(|(u, s)| {
                (
                    u.clone(),
                    ServicePassword::Set {
                        fingerprint: fingerprint(s),
                        enforce: true,
                    },
                )
            })
            .collect();
        let plan = plan_service(&ServicePlanInput {
            service: self.svc.name(),
            caps: self.svc.capabilities(),
            desired: &desired,
            observed: &observed,
            state: &self.state,
            passwords: &passwords,
            removal: self.removal,
            removal_grace_period: 0,
            max_percent: 100,
            force: true,
            now: 1,
        });
        let mut run = Run {
            plan: plan.clone(),
            ..Run::default()
        };
        for c in &plan.changes {
            run.ops.push((c.name.clone(), c.op));
            for a in &c.actions {
                let Action::Account(a) = a else { continue };
                let user = a.user().to_string();
                let pw = self.passwords.get(&user).cloned();
                match self.svc.execute(a, pw.as_ref()).await {
                    Ok(done) => self.record(a, done.remote_id, pw.as_ref()),
                    Err(e) => {
                        run.errors.push((user, e));
                        break;
                    }
                }
            }
        }
        run
    }

    fn record(&mut self, a: &AccountAction, remote_id: Option<String>, pw: Option<&Secret>) {
        let accounts = &mut self.state.accounts;
        match a {
            AccountAction::Create {
                user,
                with_password,
                ..
            } => {
                accounts.insert(
                    user.clone(),
                    OwnedAccount {
                        remote_id: remote_id.expect("create names the id"),
                        created: true,
                        password_fingerprint: if *with_password {
                            pw.map(fingerprint)
                        } else {
                            None
                        },
                        removed_since: None,
                    },
                );
            }
            AccountAction::Mark { user, remote_id } => {
                accounts
                    .entry(user.clone())
                    .or_insert_with(|| OwnedAccount {
                        remote_id: remote_id.clone(),
                        ..OwnedAccount::default()
                    });
            }
            AccountAction::SetPassword { user, remote_id } => {
                let e = accounts
                    .entry(user.clone())
                    .or_insert_with(|| OwnedAccount {
                        remote_id: remote_id.clone(),
                        ..OwnedAccount::default()
                    });
                e.password_fingerprint = pw.map(fingerprint);
            }
            AccountAction::Delete { user, .. } => {
                accounts.remove(user);
            }
            AccountAction::MarkRemoved { user, since } => {
                if let Some(e) = accounts.get_mut(user) {
                    e.removed_since = (*since != 0).then_some(*since);
                }
            }
            _ => {}
        }
    }

    /// Runs until nothing is left to do; asserts that the last run planned nothing and that no
    /// action failed.
    pub async fn converge(&mut self) -> Run {
        let first = self.run().await;
        assert!(first.errors.is_empty(), "errors: {:?}", first.errors);
        let second = self.run().await;
        assert!(
            second.plan.changes.is_empty(),
            "a second run still plans changes: {:#?}",
            second.plan.changes
        );
        assert!(second.errors.is_empty(), "errors: {:?}", second.errors);
        first
    }
}
