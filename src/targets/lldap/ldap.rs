//! Passwords over LDAP: LLDAP's GraphQL API has no password mutation, so paasd uses the LDAP
//! Password Modify extended operation (RFC 3062) as the admin, and checks a password with a
//! simple bind as the user. One admin connection is opened lazily and shared by every set;
//! each check opens its own short connection (a bind changes a connection's identity).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ldap3::exop::PasswordModify;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings};
use tokio::sync::Mutex;

use crate::backoff::{retry, Backoff, Transient};
use crate::secret::Secret;

/// LDAP result code for a wrong password.
const INVALID_CREDENTIALS: u32 = 49;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LdapError {
    #[error("cannot reach LDAP at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("LDAP bind as {dn} failed: {message}")]
    AdminBind { dn: String, message: String },
    #[error("LDAP {operation} for {dn} failed (result code {rc}): {message}")]
    Refused {
        operation: &'static str,
        dn: String,
        rc: u32,
        message: String,
    },
}

impl Transient for LdapError {
    fn is_transient(&self) -> bool {
        // 51 busy, 52 unavailable, 80 other (server-side error). 53 (unwilling) is permanent:
        // slapd uses it e.g. for a bind with an empty password.
        match self {
            LdapError::Connect { .. } => true,
            LdapError::Refused { rc, .. } => matches!(rc, 51 | 52 | 80),
            LdapError::AdminBind { .. } => false,
        }
    }
}

pub struct LdapPasswords {
    url: String,
    base_dn: String,
    admin_dn: String,
    admin_password: Secret,
    timeout: Duration,
    backoff: Backoff,
    admin: Mutex<Option<Ldap>>,
    binds: AtomicU64,
    password_sets: AtomicU64,
}

impl LdapPasswords {
    pub fn new(
        url: &str,
        base_dn: &str,
        admin_user: &str,
        admin_password: Secret,
        timeout: Duration,
        backoff: Backoff,
    ) -> Self {
        LdapPasswords {
            url: url.to_string(),
            base_dn: base_dn.to_string(),
            admin_dn: format!("uid={admin_user},ou=people,{base_dn}"),
            admin_password,
            timeout,
            backoff,
            admin: Mutex::new(None),
            binds: AtomicU64::new(0),
            password_sets: AtomicU64::new(0),
        }
    }

    /// The DN of a user (LLDAP: `uid=<id>,ou=people,<baseDn>`).
    pub fn user_dn(&self, id: &str) -> String {
        format!("uid={id},ou=people,{}", self.base_dn)
    }

    /// LDAP binds made so far (admin and checks).
    pub fn binds(&self) -> u64 {
        self.binds.load(Ordering::Relaxed)
    }

    pub fn password_sets(&self) -> u64 {
        self.password_sets.load(Ordering::Relaxed)
    }

    async fn connect(&self) -> Result<Ldap, LdapError> {
        let settings = LdapConnSettings::new().set_conn_timeout(self.timeout);
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.url)
            .await
            .map_err(|e| LdapError::Connect {
                url: self.url.clone(),
                message: e.to_string(),
            })?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    async fn admin_conn(&self) -> Result<Ldap, LdapError> {
        let mut guard = self.admin.lock().await;
        if let Some(l) = guard.as_mut() {
            if !l.is_closed() {
                return Ok(l.clone());
            }
        }
        let mut ldap = self.connect().await?;
        self.binds.fetch_add(1, Ordering::Relaxed);
        let res = ldap
            .with_timeout(self.timeout)
            .simple_bind(&self.admin_dn, self.admin_password.expose())
            .await
            .map_err(|e| LdapError::Connect {
                url: self.url.clone(),
                message: e.to_string(),
            })?;
        if res.rc != 0 {
            return Err(LdapError::AdminBind {
                dn: self.admin_dn.clone(),
                message: format!("result code {} {}", res.rc, res.text),
            });
        }
        *guard = Some(ldap.clone());
        Ok(ldap)
    }

    async fn set_once(&self, id: &str, password: &Secret) -> Result<(), LdapError> {
        let mut ldap = self.admin_conn().await?;
        let dn = self.user_dn(id);
        let exop = PasswordModify {
            user_id: Some(&dn),
            old_pass: None,
            new_pass: Some(password.expose()),
        };
        let res = ldap.with_timeout(self.timeout).extended(exop).await;
        match res {
            Err(e) => {
                // The connection may be broken: drop it so the retry reconnects.
                *self.admin.lock().await = None;
                Err(LdapError::Connect {
                    url: self.url.clone(),
                    message: e.to_string(),
                })
            }
            Ok(r) if r.1.rc == 0 => {
                self.password_sets.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(r) => Err(LdapError::Refused {
                operation: "password modify",
                dn,
                rc: r.1.rc,
                message: r.1.text,
            }),
        }
    }

    /// Sets a user's password with the Password Modify extended operation, as the admin.
    pub async fn set_password(&self, id: &str, password: &Secret) -> Result<(), LdapError> {
        retry(self.backoff, |_| self.set_once(id, password)).await.0
    }

    async fn check_once(&self, id: &str, password: &Secret) -> Result<bool, LdapError> {
        let mut ldap = self.connect().await?;
        let dn = self.user_dn(id);
        self.binds.fetch_add(1, Ordering::Relaxed);
        let res = ldap
            .with_timeout(self.timeout)
            .simple_bind(&dn, password.expose())
            .await
            .map_err(|e| LdapError::Connect {
                url: self.url.clone(),
                message: e.to_string(),
            })?;
        let _ = ldap.unbind().await;
        match res.rc {
            0 => Ok(true),
            INVALID_CREDENTIALS => Ok(false),
            rc => Err(LdapError::Refused {
                operation: "bind",
                dn,
                rc,
                message: res.text,
            }),
        }
    }

    /// Whether the user's current password is `password` (a simple bind as the user).
    pub async fn check_password(&self, id: &str, password: &Secret) -> Result<bool, LdapError> {
        retry(self.backoff, |_| self.check_once(id, password))
            .await
            .0
    }

    /// Closes the admin connection.
    pub async fn close(&self) {
        if let Some(mut l) = self.admin.lock().await.take() {
            let _ = l.unbind().await;
        }
    }
}
