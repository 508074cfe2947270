//! The LLDAP target: the directory behind SSO.
//!
//! - observe: one GraphQL query for every user, group and attribute schema ([`operations`]);
//! - the pure plan ([`plan`]) and a model of applying it ([`simulate`]);
//! - execute: one GraphQL request per action, passwords over LDAP ([`execute`], [`graphql`],
//!   [`ldap`]).
//!
//! The GraphQL documents are files in `graphql/`, typed at build time against paasd's own
//! subset of LLDAP's schema (`schema.graphql`); [`operations`] says how the subset is checked
//! against LLDAP's published schema.
//!
//! LLDAP is also the directory the services go by: it publishes the members of their access
//! groups ([`crate::core::members`]).

pub mod directory;
pub mod execute;
pub mod graphql;
pub mod ldap;
pub mod operations;
pub mod plan;
pub mod simulate;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt as _;

use crate::backoff::Backoff;
use crate::core::id::TargetId;
use crate::core::members::Members;
use crate::core::plan::ObjectKind;
use crate::core::policy::{password_source, PasswordSource};
use crate::core::spec::Spec;
use crate::core::state::{Effect, Origin, State};
use crate::engine::target::{Counters, ExecContext, Inputs, PlanContext, Target};
use crate::http::Http;
use crate::secret::read_secret_file;
use directory::Directory;
use execute::Clients;
use graphql::{GraphqlClient, LldapError};
use ldap::LdapPasswords;
use operations::{paasd_observe, PaasdObserve};
use plan::{Action, LldapPlan, PlanInput};

/// LLDAP, as a target of the engine.
pub struct LldapTarget<'a> {
    spec: &'a Spec,
    /// `Err`: it could not be set up (the admin secret, the URL); every run reports why.
    clients: Result<Clients, String>,
    /// Spec names of groups created in this run, with their ids (users are added to them in a
    /// later phase of the same run).
    created: Mutex<HashMap<String, i64>>,
}

impl<'a> LldapTarget<'a> {
    /// Connects to LLDAP as the spec says (nothing is sent until the engine asks).
    pub fn new(spec: &'a Spec, backoff: Backoff) -> Self {
        LldapTarget {
            spec,
            clients: Self::clients(spec, backoff),
            created: Mutex::new(HashMap::new()),
        }
    }

    fn clients(spec: &Spec, backoff: Backoff) -> Result<Clients, String> {
        let l = &spec.lldap;
        let admin = read_secret_file(&l.admin_password_file)
            .map_err(|e| format!("lldap.adminPasswordFile: {e}"))?;
        let timeout = Duration::from_secs(l.timeout_seconds);
        let mut http = Http::new("LLDAP", &l.url, timeout).map_err(|e| e.to_string())?;
        http.set_backoff(backoff);
        Ok(Clients {
            graphql: GraphqlClient::new(http, &l.admin_username, admin.clone()),
            ldap: LdapPasswords::new(
                &l.ldap_url,
                &l.base_dn,
                &l.admin_username,
                admin,
                timeout,
                backoff,
            ),
        })
    }

    fn clients_or_err(&self) -> Result<&Clients, LldapError> {
        self.clients
            .as_ref()
            .map_err(|e| LldapError::Setup(e.clone()))
    }
}

/// Drops state entries of objects that are gone from LLDAP (deleted by hand), settles create
/// intents (a create that took effect shows up marked in the directory), and records ownership
/// that only LLDAP's markers still know (the state file was lost).
pub fn settle_state(state: &mut State, dir: &Directory) {
    state.lldap.users.retain(|id, o| {
        let present = dir.user(id);
        if o.origin == Origin::Creating {
            match present {
                Some(u) if u.is_marked() => {
                    o.origin = Origin::Created;
                    true
                }
                _ => false,
            }
        } else {
            present.is_some()
        }
    });
    for u in dir.users.values().filter(|u| u.is_marked()) {
        state.lldap.users.entry(u.id.clone()).or_default();
    }
    for g in dir.groups.values() {
        if let Some(key) = g.marker() {
            let entry = state.lldap.groups.entry(key.to_string()).or_default();
            entry.id.get_or_insert(g.id);
        }
    }
    state.lldap.groups.retain(|key, g| {
        let by_marker = dir.group_by_marker(key).map(|x| x.id);
        let by_id = g.id.filter(|id| dir.groups.contains_key(id));
        match by_marker.or(by_id) {
            Some(id) => {
                g.id = Some(id);
                if g.origin == Origin::Creating {
                    g.origin = Origin::Created;
                }
                true
            }
            None => false,
        }
    });
}

impl<'a> Target for LldapTarget<'a> {
    type Observed = Directory;
    /// LLDAP's desired state is the spec itself.
    type Desired = ();
    type Action = Action;
    type Error = LldapError;

    fn id(&self) -> TargetId {
        TargetId::Lldap
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), LldapError>> {
        async move { self.clients_or_err()?.graphql.login_once().await }.boxed()
    }

    /// Every user, group and attribute schema, with one GraphQL request.
    fn observe(&self) -> BoxFuture<'_, Result<Directory, LldapError>> {
        async move {
            let answer = self
                .clients_or_err()?
                .graphql
                .call::<PaasdObserve>(paasd_observe::Variables)
                .await?;
            Ok(Directory::from(answer))
        }
        .boxed()
    }

    fn publishes_members(&self) -> bool {
        true
    }

    fn members(&self, dir: &Directory) -> Option<Members> {
        Some(dir.members(
            self.spec.services.access_groups(),
            &self.spec.lldap.disabled_group,
        ))
    }

    fn settle(&self, dir: &Directory, state: &mut State) {
        settle_state(state, dir);
    }

    fn desired(&self, _inputs: &Inputs<'_>) {}

    fn password_sources<'b>(&'b self, _desired: &'b ()) -> Vec<(String, PasswordSource<'b>)> {
        self.spec
            .users
            .keys()
            .map(|id| (id.clone(), password_source(self.spec, TargetId::Lldap, id)))
            .filter(|(_, s)| *s != PasswordSource::None)
            .collect()
    }

    fn declared(&self, _desired: &()) -> Vec<(ObjectKind, String)> {
        let users = self
            .spec
            .users
            .keys()
            .map(|u| (ObjectKind::User, u.clone()));
        let groups = self
            .spec
            .groups
            .keys()
            .map(|g| (ObjectKind::Group, g.clone()));
        users.chain(groups).collect()
    }

    fn plan(&self, _desired: &(), dir: &Directory, cx: &PlanContext<'_>) -> LldapPlan {
        plan::plan(&PlanInput {
            spec: self.spec,
            dir,
            state: cx.state,
            passwords: cx.passwords,
            verify_passwords: cx.verify_passwords,
            force: cx.force,
            now: cx.now,
        })
    }

    fn execute<'b>(
        &'b self,
        action: &'b Action,
        cx: &'b ExecContext<'b>,
    ) -> BoxFuture<'b, Result<Vec<Effect>, LldapError>> {
        async move {
            let clients = self.clients_or_err()?;
            let created = match self.created.lock() {
                Ok(g) => g.clone(),
                Err(p) => p.into_inner().clone(),
            };
            let effect = clients.execute(action, &created, cx).await?;
            if let Effect::GroupCreated { key, id } = &effect {
                let mut g = match self.created.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                g.insert(key.clone(), *id);
            }
            Ok(vec![effect])
        }
        .boxed()
    }

    fn finish(&self) -> BoxFuture<'_, ()> {
        async move {
            if let Ok(c) = &self.clients {
                c.ldap.close().await;
            }
        }
        .boxed()
    }

    fn counters(&self) -> Counters {
        match &self.clients {
            Ok(c) => Counters {
                requests: c.graphql.requests(),
                ldap_binds: c.ldap.binds(),
            },
            Err(_) => Counters::default(),
        }
    }
}
