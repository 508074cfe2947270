//! Observe → plan → apply for one service; called by `reconcile` after LLDAP.
//!
//! Before anything else the service's health endpoint is polled with backoff, so a service that is
//! starting shows as "waiting for <service>" for all its users instead of failing them one by one.

use std::collections::{BTreeMap, HashMap};

use futures::stream::{self, StreamExt};
use tracing::{info, warn};

use super::desired::{password_source, service_users, PasswordSource};
use super::plan::{plan_service, ServicePassword, ServicePlan, ServicePlanInput};
use super::{AccountAction, Service, ServiceError};
use crate::directory::Directory;
use crate::plan::{Action, Change, Effect, ObjectKind};
use crate::retry::{retry, Backoff};
use crate::secret::{generated_password, read_secret_file, FingerprintKey, Secret};
use crate::spec::Spec;
use crate::state::State;

/// Everything known before applying to one service.
pub struct Prepared {
    pub plan: ServicePlan,
    /// Desired passwords by user, for the actions that send one.
    secrets: HashMap<String, Secret>,
    fingerprints: HashMap<String, String>,
    pub users: Vec<String>,
}

/// Why a service could not be planned at all.
#[derive(Debug, Clone)]
pub enum NotReady {
    /// The health endpoint did not answer in time: "waiting for <service>".
    Waiting(String),
    Failed(String),
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Waiting(m) | NotReady::Failed(m) => f.write_str(m),
        }
    }
}

/// Health check (with backoff), observe, desired accounts, passwords, pure plan.
#[allow(clippy::too_many_arguments)]
pub async fn prepare(
    svc: &dyn Service,
    spec: &Spec,
    dir: &Directory,
    state: &State,
    key: &FingerprintKey,
    state_dir: &std::path::Path,
    wait: Backoff,
    writable: bool,
    force: bool,
    now: u64,
) -> Result<Prepared, NotReady> {
    let name = svc.name();
    let (health, _) = retry(wait, |_| svc.health()).await;
    if let Err(e) = health {
        return Err(NotReady::Waiting(format!("waiting for {name}: {e}")));
    }
    let (observed, _) = retry(wait, |_| svc.observe()).await;
    let observed = observed.map_err(|e| NotReady::Failed(format!("{name}: {e}")))?;
    let users = service_users(spec, dir, name);
    let desired: BTreeMap<String, _> = users
        .values()
        .map(|u| (u.id.clone(), svc.desired(u)))
        .collect();
    let mut secrets = HashMap::new();
    let mut fingerprints = HashMap::new();
    let mut passwords = BTreeMap::new();
    for id in users.keys() {
        let scope = format!("{name}/{id}");
        let entry = match password_source(spec, name, id) {
            PasswordSource::None => ServicePassword::None,
            PasswordSource::File { path, enforce } => match read_secret_file(path) {
                Ok(s) => {
                    let fingerprint = key.fingerprint(&scope, &s);
                    fingerprints.insert(id.clone(), fingerprint.clone());
                    secrets.insert(id.clone(), s);
                    ServicePassword::Set {
                        fingerprint,
                        enforce,
                    }
                }
                Err(e) => ServicePassword::Unusable(e.to_string()),
            },
            PasswordSource::Generated => {
                // Created (and stored 0600) only when an account is about to be created with it.
                let exists = state
                    .targets
                    .get(name)
                    .is_some_and(|t| t.accounts.contains_key(id));
                match generated_password(state_dir, name, id, writable && !exists) {
                    Ok(Some(s)) => {
                        let fingerprint = key.fingerprint(&scope, &s);
                        fingerprints.insert(id.clone(), fingerprint.clone());
                        secrets.insert(id.clone(), s);
                        ServicePassword::Set {
                            fingerprint,
                            enforce: false,
                        }
                    }
                    Ok(None) => ServicePassword::Set {
                        fingerprint: "(to be generated)".into(),
                        enforce: false,
                    },
                    Err(e) => ServicePassword::Unusable(e.to_string()),
                }
            }
        };
        passwords.insert(id.clone(), entry);
    }
    let empty = Default::default();
    let plan = plan_service(&ServicePlanInput {
        service: name,
        caps: svc.capabilities(),
        desired: &desired,
        observed: &observed,
        state: state.targets.get(name).unwrap_or(&empty),
        passwords: &passwords,
        removal: spec.removal,
        removal_grace_period: spec.removal_grace_period,
        max_percent: spec.removal_guard.max_percent,
        force,
        now,
    });
    Ok(Prepared {
        plan,
        secrets,
        fingerprints,
        users: users.into_keys().collect(),
    })
}

/// The result of one change in a service.
pub struct Done {
    pub index: usize,
    pub effects: Vec<Effect>,
    pub error: Option<String>,
}

async fn run_change(svc: &dyn Service, p: &Prepared, change: &Change, index: usize) -> Done {
    let name = svc.name();
    let mut effects = Vec::new();
    for action in &change.actions {
        let Action::Account(a) = action else {
            continue;
        };
        let user = a.user().to_string();
        if let AccountAction::MarkRemoved { since, .. } = a {
            effects.push(Effect::AccountRemovedSince {
                service: name.into(),
                user,
                since: (*since != 0).then_some(*since),
            });
            continue;
        }
        let secret = p.secrets.get(&user);
        let r: Result<_, ServiceError> = svc.execute(a, secret).await;
        match r {
            Err(e) => {
                return Done {
                    index,
                    effects,
                    error: Some(e.to_string()),
                }
            }
            Ok(done) => {
                let fingerprint = p.fingerprints.get(&user).cloned();
                match a {
                    AccountAction::Create {
                        key, with_password, ..
                    } => {
                        effects.push(Effect::AccountOwned {
                            service: name.into(),
                            user: user.clone(),
                            remote_id: done.remote_id.unwrap_or_else(|| key.clone()),
                            created: true,
                        });
                        if let (true, Some(fingerprint)) = (*with_password, fingerprint) {
                            effects.push(Effect::AccountPassword {
                                service: name.into(),
                                user,
                                fingerprint,
                            });
                        }
                    }
                    AccountAction::Mark { remote_id, .. }
                    | AccountAction::Enable { remote_id, .. } => {
                        effects.push(Effect::AccountOwned {
                            service: name.into(),
                            user,
                            remote_id: remote_id.clone(),
                            created: false,
                        })
                    }
                    AccountAction::SetPassword { .. } => {
                        if let Some(fingerprint) = fingerprint {
                            effects.push(Effect::AccountPassword {
                                service: name.into(),
                                user,
                                fingerprint,
                            });
                        }
                    }
                    AccountAction::Delete { .. } => effects.push(Effect::AccountDeleted {
                        service: name.into(),
                        user,
                    }),
                    _ => {}
                }
            }
        }
    }
    Done {
        index,
        effects,
        error: None,
    }
}

/// Applies a prepared plan with bounded concurrency; records effects into `state`.
pub async fn apply(
    svc: &dyn Service,
    p: &Prepared,
    spec: &Spec,
    state: &mut State,
    concurrency: usize,
    cancel: &tokio_util::sync::CancellationToken,
    generation: u64,
) -> Vec<Done> {
    let changes = &p.plan.changes;
    let results: Vec<Option<Done>> = stream::iter(0..changes.len())
        .map(|i| async move {
            if cancel.is_cancelled() {
                return None;
            }
            Some(run_change(svc, p, &changes[i], i).await)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut out = Vec::new();
    for d in results.into_iter().flatten() {
        for e in &d.effects {
            state.record(e, spec);
        }
        let c = &changes[d.index];
        let action = c.op.verb();
        match &d.error {
            None => {
                info!(paas_target = %c.target, paas_user = %c.name, paas_action = action, paas_result = "ok", paas_generation = generation, "{action} {} account {}: ok", c.target, c.name)
            }
            Some(e) => {
                warn!(paas_target = %c.target, paas_user = %c.name, paas_action = action, paas_result = "failed", paas_generation = generation, paas_error = %e, "{action} {} account {}: {e}", c.target, c.name)
            }
        }
        debug_assert_eq!(c.kind, ObjectKind::User);
        out.push(d);
    }
    out
}
