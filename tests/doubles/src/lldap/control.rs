//! Fault injection, counters and contract violations of the LLDAP double.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not make the double unusable for the others.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Faults to inject. Counters (`*_next`) are consumed one request at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct FaultPlan {
    /// Answer the next N HTTP requests with `fail_status` (plain-text body, like a proxy).
    pub fail_next: u32,
    /// The status used by `fail_next` (500, 502, 503…); 0 means 503.
    pub fail_status: u16,
    /// Close the connection without answering (TCP reset) for the next N HTTP requests.
    pub reset_next: u32,
    /// Delay every HTTP response by this many milliseconds.
    pub delay_ms: u64,
    /// Cut the body of the next N HTTP responses in half (invalid JSON, consistent length).
    pub truncate_next: u32,
    /// After this many more GraphQL requests, every token issued so far expires
    /// (`401 Expired JWT`); the client must log in again. One-shot.
    pub expire_tokens_after: Option<u64>,
    /// Delay every LDAP response by this many milliseconds.
    pub ldap_delay_ms: u64,
    /// Close the LDAP connection without answering (TCP reset) for the next N LDAP requests.
    pub ldap_reset_next: u32,
    /// Answer the next N LDAP requests with resultCode 52 (unavailable).
    pub ldap_unavailable_next: u32,
}

/// What to do with one HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpDecision {
    pub delay: Duration,
    pub reset: bool,
    pub fail: Option<u16>,
    pub truncate: bool,
}

/// What to do with one LDAP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LdapDecision {
    pub delay: Duration,
    pub reset: bool,
    pub unavailable: bool,
}

#[derive(Debug, Default)]
pub(crate) struct FaultState {
    pub plan: FaultPlan,
    /// Tokens with an older epoch are expired.
    pub token_epoch: u64,
}

/// A handle to change the faults of a running double (cheap to clone).
#[derive(Clone)]
pub struct Faults {
    pub(crate) inner: Arc<Mutex<FaultState>>,
}

impl Faults {
    /// The current plan.
    pub fn plan(&self) -> FaultPlan {
        lock(&self.inner).plan.clone()
    }

    /// Replaces the whole plan.
    pub fn set(&self, plan: FaultPlan) {
        lock(&self.inner).plan = plan;
    }

    /// Removes every fault.
    pub fn clear(&self) {
        lock(&self.inner).plan = FaultPlan::default();
    }

    /// Answer the next `n` HTTP requests with `status` (e.g. 500, 502, 503).
    pub fn fail_next(&self, n: u32, status: u16) {
        let mut f = lock(&self.inner);
        f.plan.fail_next = n;
        f.plan.fail_status = status;
    }

    /// Reset the connection instead of answering the next `n` HTTP requests.
    pub fn reset_next(&self, n: u32) {
        lock(&self.inner).plan.reset_next = n;
    }

    /// Delay every HTTP response.
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.inner).plan.delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    }

    /// Truncate the next `n` HTTP response bodies.
    pub fn truncate_next(&self, n: u32) {
        lock(&self.inner).plan.truncate_next = n;
    }

    /// Expire every token after `n` more GraphQL requests.
    pub fn expire_tokens_after(&self, n: u64) {
        lock(&self.inner).plan.expire_tokens_after = Some(n);
    }

    /// Expire every token issued so far, now.
    pub fn expire_tokens_now(&self) {
        lock(&self.inner).token_epoch += 1;
    }

    /// Delay every LDAP response.
    pub fn set_ldap_delay(&self, delay: Duration) {
        lock(&self.inner).plan.ldap_delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    }

    /// Reset the LDAP connection instead of answering the next `n` LDAP requests.
    pub fn ldap_reset_next(&self, n: u32) {
        lock(&self.inner).plan.ldap_reset_next = n;
    }

    /// Answer the next `n` LDAP requests with resultCode 52 (unavailable).
    pub fn ldap_unavailable_next(&self, n: u32) {
        lock(&self.inner).plan.ldap_unavailable_next = n;
    }

    pub(crate) fn take_http(&self) -> HttpDecision {
        let mut f = lock(&self.inner);
        let p = &mut f.plan;
        let mut d = HttpDecision {
            delay: Duration::from_millis(p.delay_ms),
            reset: false,
            fail: None,
            truncate: false,
        };
        if p.reset_next > 0 {
            p.reset_next -= 1;
            d.reset = true;
        } else if p.fail_next > 0 {
            p.fail_next -= 1;
            d.fail = Some(if p.fail_status == 0 {
                503
            } else {
                p.fail_status
            });
        } else if p.truncate_next > 0 {
            p.truncate_next -= 1;
            d.truncate = true;
        }
        d
    }

    /// Counts one GraphQL request against `expire_tokens_after`; returns the current epoch.
    pub(crate) fn tick_token_expiry(&self) -> u64 {
        let mut f = lock(&self.inner);
        match f.plan.expire_tokens_after {
            Some(0) => {
                f.plan.expire_tokens_after = None;
                f.token_epoch += 1;
            }
            Some(n) => f.plan.expire_tokens_after = Some(n - 1),
            None => {}
        }
        f.token_epoch
    }

    pub(crate) fn token_epoch(&self) -> u64 {
        lock(&self.inner).token_epoch
    }

    pub(crate) fn take_ldap(&self) -> LdapDecision {
        let mut f = lock(&self.inner);
        let p = &mut f.plan;
        let mut d = LdapDecision {
            delay: Duration::from_millis(p.ldap_delay_ms),
            reset: false,
            unavailable: false,
        };
        if p.ldap_reset_next > 0 {
            p.ldap_reset_next -= 1;
            d.reset = true;
        } else if p.ldap_unavailable_next > 0 {
            p.ldap_unavailable_next -= 1;
            d.unavailable = true;
        }
        d
    }
}

/// Counters of what clients did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// HTTP requests by `"METHOD /path"` (LLDAP endpoints only, not the control endpoints).
    pub requests: BTreeMap<String, u64>,
    /// Bytes of HTTP request bodies received.
    pub request_bytes: u64,
    /// Bytes of HTTP response bodies sent (after truncation).
    pub response_bytes: u64,
    /// Successful logins / failed logins.
    pub logins: u64,
    pub login_failures: u64,
    /// GraphQL requests rejected with 401.
    pub unauthorized: u64,
    /// Executed GraphQL operations by operation name (`<anonymous>` without a name).
    pub graphql_operations: BTreeMap<String, u64>,
    /// Executed root fields: `"query.users"`, `"mutation.createUser"`…
    pub graphql_fields: BTreeMap<String, u64>,
    /// LDAP operations: `bind`, `bind_ok`, `bind_failed`, `password_modify`,
    /// `password_modify_ok`, `password_modify_failed`, `search`, `search_ok`, `search_failed`,
    /// `search_entries` (entries sent), `whoami`, `unbind`, `unsupported`, `connections`.
    pub ldap: BTreeMap<String, u64>,
    /// Faults actually injected, by kind.
    pub faults_injected: BTreeMap<String, u64>,
    /// The cost model of LLDAP's user lists (see [`UserListCost`]).
    #[serde(default)]
    pub user_lists: UserListCost,
}

/// Every user list LLDAP would build, and how many rows each returned.
///
/// LLDAP builds each list of users — the GraphQL `users` field, every `Group.users` (one list
/// per group), every LDAP search that lists users (one per search) — with a sea-orm
/// `find_with_linked` join whose cost grows with the square of the rows it returns (measured:
/// 7.0 s for 3,000 users, 117–162 ms for 300, 22–34 ms for 100). A client that reads users in
/// filtered chunks keeps `rows_squared` (and `max_rows`) small.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UserListCost {
    /// User lists evaluated.
    pub queries: u64,
    /// Users returned, summed over the lists.
    pub rows: u64,
    /// The squares of the rows of each list, summed.
    pub rows_squared: u64,
    /// The longest list.
    pub max_rows: u64,
}

impl UserListCost {
    /// Counts one evaluated user list of `rows` users.
    pub fn record(&mut self, rows: u64) {
        self.queries += 1;
        self.rows += rows;
        self.rows_squared = self.rows_squared.saturating_add(rows.saturating_mul(rows));
        self.max_rows = self.max_rows.max(rows);
    }
}

impl Stats {
    /// Requests to one endpoint, e.g. `"POST /api/graphql"`.
    pub fn requests_to(&self, endpoint: &str) -> u64 {
        self.requests.get(endpoint).copied().unwrap_or(0)
    }

    /// All HTTP requests to LLDAP endpoints.
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// How often a mutation field was executed, e.g. `"createUser"`.
    pub fn mutations(&self, field: &str) -> u64 {
        self.graphql_fields
            .get(&format!("mutation.{field}"))
            .copied()
            .unwrap_or(0)
    }

    /// All executed mutation fields.
    pub fn total_mutations(&self) -> u64 {
        self.graphql_fields
            .iter()
            .filter(|(k, _)| k.starts_with("mutation."))
            .map(|(_, v)| v)
            .sum()
    }

    /// How often a query root field was executed, e.g. `"users"`.
    pub fn queries(&self, field: &str) -> u64 {
        self.graphql_fields
            .get(&format!("query.{field}"))
            .copied()
            .unwrap_or(0)
    }

    /// An LDAP counter (see [`Stats::ldap`]).
    pub fn ldap_ops(&self, name: &str) -> u64 {
        self.ldap.get(name).copied().unwrap_or(0)
    }

    pub(crate) fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
        *map.entry(key.to_owned()).or_default() += 1;
    }
}

/// A request that does not conform to the vendor contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// `"POST /api/graphql"`…
    pub endpoint: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.endpoint, self.message)
    }
}
