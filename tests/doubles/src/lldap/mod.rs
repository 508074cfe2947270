//! A test double of LLDAP 0.6: its GraphQL API (checked against the vendor schema), its simple
//! login, and the LDAP bind / password-modify operations, with fault injection and counters.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use paas_doubles::lldap::{LldapConfig, LldapDouble};
//! let double = LldapDouble::start(LldapConfig::new("admin-secret")).await?;
//! println!("{} {}", double.http_url(), double.ldap_url());
//! // … run the client …
//! double.assert_no_violations();
//! double.stop().await;
//! # Ok(()) }
//! ```

mod control;
mod graphql;
mod http;
mod ldap;
mod model;
mod search;
mod sql;
mod time;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use control::{FaultPlan, Faults, Stats, UserListCost, Violation};
pub use graphql::ContractError;
pub use ldap::OID_PASSWORD_MODIFY;
pub use model::{
    AttributeSchema, AttributeType, Group, GroupFilter, Kind, LldapError, State, User, UserFilter,
    ADMIN_GROUP, PASSWORD_MANAGER_GROUP, READONLY_GROUP,
};

use control::{lock, FaultState};

/// Where the shared vendor contracts are: `PAAS_CONTRACTS`, else `../shared/contracts` next to
/// the repository (relative to this crate: `../../../shared/contracts`).
pub fn default_contracts_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PAAS_CONTRACTS") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("..")
        .join("shared")
        .join("contracts")
}

/// How to start the double.
#[derive(Debug, Clone)]
pub struct LldapConfig {
    /// HTTP listen address (port 0 picks a free port). Default `127.0.0.1:0`.
    pub http_addr: SocketAddr,
    /// LDAP listen address (port 0 picks a free port). Default `127.0.0.1:0`.
    pub ldap_addr: SocketAddr,
    /// Default `dc=example,dc=com`.
    pub base_dn: String,
    /// Default `admin`.
    pub admin_username: String,
    /// Default `admin@example.com`.
    pub admin_email: String,
    pub admin_password: String,
    /// Where `lldap/schema.graphql` is; `None`: [`default_contracts_dir`].
    pub contracts_dir: Option<PathBuf>,
    /// Users created at start-up by [`LldapDouble::seed_users`].
    pub seed_users: usize,
    /// JWT lifetime (LLDAP: one day).
    pub token_lifetime: Duration,
    /// Faults active from the start.
    pub faults: FaultPlan,
}

impl LldapConfig {
    /// Defaults with the given admin password.
    pub fn new(admin_password: impl Into<String>) -> Self {
        Self {
            admin_password: admin_password.into(),
            ..Self::default()
        }
    }
}

impl Default for LldapConfig {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ldap_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            base_dn: "dc=example,dc=com".into(),
            admin_username: "admin".into(),
            admin_email: "admin@example.com".into(),
            admin_password: "password".into(),
            contracts_dir: None,
            seed_users: 0,
            token_lifetime: Duration::from_secs(86_400),
            faults: FaultPlan::default(),
        }
    }
}

/// Why the double could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Contract(#[from] ContractError),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot seed users: {0}")]
    Seed(LldapError),
}

/// A user to create "by hand" (bypassing GraphQL; not counted in the stats).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SeedUser {
    pub id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Set without counting as a password set.
    pub password: Option<String>,
    /// Group names; missing groups are created.
    pub groups: Vec<String>,
    /// Custom attributes (must exist in the user schema).
    pub attributes: BTreeMap<String, Vec<String>>,
}

impl SeedUser {
    /// A user with an id and e-mail.
    pub fn new(id: impl Into<String>, email: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            email: email.into(),
            ..Self::default()
        }
    }
}

/// A read-only view of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub uuid: String,
    /// Stored attributes (incl. first_name/last_name/avatar).
    pub attributes: BTreeMap<String, Vec<String>>,
    /// Group display names, sorted.
    pub groups: Vec<String>,
    pub has_password: bool,
    pub password_set_count: u64,
}

/// A read-only view of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    pub id: i32,
    pub display_name: String,
    pub uuid: String,
    pub attributes: BTreeMap<String, Vec<String>>,
    /// Member ids, sorted.
    pub members: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct TokenInfo {
    pub user: String,
    pub expires_micros: i64,
    pub epoch: u64,
}

pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub contract: graphql::Contract,
    pub faults: Faults,
    pub stats: Mutex<Stats>,
    pub violations: Mutex<Vec<Violation>>,
    pub tokens: Mutex<HashMap<String, TokenInfo>>,
    /// Refresh token → user id.
    pub refresh_tokens: Mutex<HashMap<String, String>>,
    pub base_dn: String,
    pub token_lifetime: Duration,
}

impl Shared {
    pub(crate) fn violation(&self, endpoint: &str, message: impl Into<String>) {
        let message = message.into();
        tracing::warn!(%endpoint, %message, "lldap double: contract violation");
        lock(&self.violations).push(Violation {
            endpoint: endpoint.to_owned(),
            message,
        });
    }

    pub(crate) fn seed_user(&self, u: &SeedUser) -> Result<(), LldapError> {
        let mut st = lock(&self.state);
        let mut attrs: Vec<(String, Vec<String>)> = Vec::new();
        for (name, values) in &u.attributes {
            attrs.push(st.deserialize_attribute(Kind::User, name, values, true)?);
        }
        if let Some(f) = &u.first_name {
            attrs.push(("first_name".into(), vec![f.clone()]));
        }
        if let Some(l) = &u.last_name {
            attrs.push(("last_name".into(), vec![l.clone()]));
        }
        let id = st.create_user(&u.id, &u.email, u.display_name.clone(), attrs)?;
        for g in &u.groups {
            let gid = match st.group_by_name(g) {
                Some(group) => group.id,
                None => st.create_group(g, Vec::new())?,
            };
            st.add_user_to_group(&id, gid)?;
        }
        if let Some(p) = &u.password {
            st.set_password(&id, p)?;
            st.forget_password_set(&id);
        }
        Ok(())
    }

    pub(crate) fn seed_users(&self, n: usize) -> Result<(), LldapError> {
        let start = {
            let st = lock(&self.state);
            (0..)
                .find(|i| st.user(&format!("seed{i:05}")).is_none())
                .unwrap_or(0)
        };
        for i in start..start + n {
            let mut u = SeedUser::new(format!("seed{i:05}"), format!("seed{i:05}@example.com"));
            u.display_name = Some(format!("Seed User {i}"));
            u.first_name = Some("Seed".into());
            u.last_name = Some(format!("User{i}"));
            u.groups = vec![format!("seed_group_{}", i % 10)];
            self.seed_user(&u)?;
        }
        Ok(())
    }
}

/// A running LLDAP double. Dropping it stops the servers (as does [`LldapDouble::stop`]).
pub struct LldapDouble {
    shared: Arc<Shared>,
    http_addr: SocketAddr,
    ldap_addr: SocketAddr,
    admin_username: String,
    admin_password: String,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl LldapDouble {
    /// Loads the contract, binds both listeners and starts serving.
    pub async fn start(config: LldapConfig) -> Result<Self, StartError> {
        let contracts = config
            .contracts_dir
            .clone()
            .unwrap_or_else(default_contracts_dir);
        let contract = graphql::Contract::load(&contracts)?;
        let state = State::new(
            &config.admin_username,
            &config.admin_email,
            &config.admin_password,
        );
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            contract,
            faults: Faults {
                inner: Arc::new(Mutex::new(FaultState {
                    plan: config.faults.clone(),
                    token_epoch: 0,
                })),
            },
            stats: Mutex::new(Stats::default()),
            violations: Mutex::new(Vec::new()),
            tokens: Mutex::new(HashMap::new()),
            refresh_tokens: Mutex::new(HashMap::new()),
            base_dn: config.base_dn.clone(),
            token_lifetime: config.token_lifetime,
        });
        shared
            .seed_users(config.seed_users)
            .map_err(StartError::Seed)?;
        let http = TcpListener::bind(config.http_addr)
            .await
            .map_err(|source| StartError::Bind {
                what: "HTTP",
                addr: config.http_addr,
                source,
            })?;
        let ldap = TcpListener::bind(config.ldap_addr)
            .await
            .map_err(|source| StartError::Bind {
                what: "LDAP",
                addr: config.ldap_addr,
                source,
            })?;
        let http_addr = http.local_addr().map_err(|source| StartError::Bind {
            what: "HTTP",
            addr: config.http_addr,
            source,
        })?;
        let ldap_addr = ldap.local_addr().map_err(|source| StartError::Bind {
            what: "LDAP",
            addr: config.ldap_addr,
            source,
        })?;
        let (shutdown, rx) = watch::channel(false);
        let router = http::router(shared.clone());
        let tasks = vec![
            tokio::spawn(http::serve(http, router, rx.clone())),
            tokio::spawn(ldap::serve(ldap, shared.clone(), rx)),
        ];
        tracing::info!(%http_addr, %ldap_addr, contract = %shared.contract.path().display(), "lldap double started");
        Ok(Self {
            shared,
            http_addr,
            ldap_addr,
            admin_username: config.admin_username.to_ascii_lowercase(),
            admin_password: config.admin_password,
            shutdown,
            tasks,
        })
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bound LDAP address.
    pub fn ldap_addr(&self) -> SocketAddr {
        self.ldap_addr
    }

    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// `ldap://127.0.0.1:<port>`.
    pub fn ldap_url(&self) -> String {
        format!("ldap://{}", self.ldap_addr)
    }

    /// The base DN.
    pub fn base_dn(&self) -> &str {
        &self.shared.base_dn
    }

    /// The admin's user id.
    pub fn admin_username(&self) -> &str {
        &self.admin_username
    }

    /// The admin's password.
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// The DN of a user: `uid=<id>,ou=people,<base_dn>`.
    pub fn user_dn(&self, user_id: &str) -> String {
        format!("uid={user_id},ou=people,{}", self.shared.base_dn)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        lock(&self.shared.stats).clone()
    }

    /// Resets the counters.
    pub fn reset_stats(&self) {
        *lock(&self.shared.stats) = Stats::default();
    }

    /// Contract violations seen so far.
    pub fn violations(&self) -> Vec<Violation> {
        lock(&self.shared.violations).clone()
    }

    /// Returns and clears the violations.
    pub fn take_violations(&self) -> Vec<Violation> {
        std::mem::take(&mut *lock(&self.shared.violations))
    }

    /// Panics (listing them) if any contract violation was recorded.
    pub fn assert_no_violations(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "the client violated the LLDAP contract {} time(s):\n{}",
            v.len(),
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n\n")
        );
    }

    /// The fault-injection handle.
    pub fn faults(&self) -> Faults {
        self.shared.faults.clone()
    }

    /// The whole state as JSON (what `GET /__double/state` returns).
    pub fn state(&self) -> serde_json::Value {
        lock(&self.shared.state).to_json()
    }

    /// Runs `f` with the model locked (read or change anything).
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut lock(&self.shared.state))
    }

    /// Creates a user by hand (see [`SeedUser`]).
    pub fn seed_user(&self, user: SeedUser) -> Result<(), LldapError> {
        self.shared.seed_user(&user)
    }

    /// Creates a group by hand; returns its id.
    pub fn seed_group(&self, name: &str) -> Result<i32, LldapError> {
        lock(&self.shared.state).create_group(name, Vec::new())
    }

    /// Creates `n` users `seedNNNNN` (each in one of ten groups `seed_group_<k>`).
    pub fn seed_users(&self, n: usize) -> Result<(), LldapError> {
        self.shared.seed_users(n)
    }

    /// Adds a custom user attribute to the schema by hand.
    pub fn add_user_attribute(
        &self,
        name: &str,
        attribute_type: AttributeType,
        is_list: bool,
    ) -> Result<(), LldapError> {
        lock(&self.shared.state).add_attribute(
            Kind::User,
            name,
            attribute_type,
            is_list,
            true,
            true,
        )
    }

    /// One user.
    pub fn user(&self, id: &str) -> Option<UserView> {
        let st = lock(&self.shared.state);
        st.user(id).map(|u| user_view(&st, u))
    }

    /// All users, sorted by id.
    pub fn users(&self) -> Vec<UserView> {
        let st = lock(&self.shared.state);
        st.users.values().map(|u| user_view(&st, u)).collect()
    }

    /// One group by name (case-insensitive).
    pub fn group(&self, name: &str) -> Option<GroupView> {
        let st = lock(&self.shared.state);
        st.group_by_name(name).map(|g| group_view(&st, g))
    }

    /// All groups, sorted by id.
    pub fn groups(&self) -> Vec<GroupView> {
        let st = lock(&self.shared.state);
        st.groups.values().map(|g| group_view(&st, g)).collect()
    }

    /// All memberships as (user id, group name), sorted.
    pub fn memberships(&self) -> Vec<(String, String)> {
        let st = lock(&self.shared.state);
        let mut out: Vec<(String, String)> = st
            .groups
            .values()
            .flat_map(|g| {
                st.members_of(g.id)
                    .into_iter()
                    .map(|u| (u.id.clone(), g.display_name.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort();
        out
    }

    /// How many times the user's password was set (LDAP password modify).
    pub fn password_set_count(&self, user_id: &str) -> u64 {
        lock(&self.shared.state).password_set_count(user_id)
    }

    /// Whether `password` is the user's current password.
    pub fn check_password(&self, user_id: &str, password: &str) -> bool {
        lock(&self.shared.state).check_password(user_id, password)
    }

    /// Stops both servers and closes open connections.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for LldapDouble {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn user_view(st: &State, u: &User) -> UserView {
    UserView {
        id: u.id.clone(),
        email: u.email.clone(),
        display_name: u.display_name.clone(),
        first_name: u
            .attributes
            .get("first_name")
            .and_then(|v| v.first().cloned()),
        last_name: u
            .attributes
            .get("last_name")
            .and_then(|v| v.first().cloned()),
        uuid: u.uuid.clone(),
        attributes: u.attributes.clone(),
        groups: st
            .groups_of(&u.id)
            .iter()
            .map(|g| g.display_name.clone())
            .collect(),
        has_password: st.password(&u.id).is_some(),
        password_set_count: st.password_set_count(&u.id),
    }
}

fn group_view(st: &State, g: &Group) -> GroupView {
    GroupView {
        id: g.id,
        display_name: g.display_name.clone(),
        uuid: g.uuid.clone(),
        attributes: g.attributes.clone(),
        members: st.members_of(g.id).iter().map(|u| u.id.clone()).collect(),
    }
}
