//! The targets paasd reconciles: LLDAP ([`lldap`]) and the services with accounts of their own,
//! each a backend behind the one account adapter ([`accounts`]). [`build`] makes the targets of
//! a spec, in the order they run, with the store of login sessions they keep across runs
//! ([`Sessions`]: Vaultwarden's admin session).

pub mod accounts;
pub mod gitlab;
pub mod jellyfin;
pub mod lldap;
pub mod mailcow;
pub mod nextcloud;
pub mod vaultwarden;

use std::time::Duration;

use accounts::{AccountTarget, Service, ServiceError};
use gitlab::Gitlab;
use jellyfin::Jellyfin;
use lldap::LldapTarget;
use mailcow::Mailcow;
use nextcloud::Nextcloud;
use vaultwarden::Vaultwarden;

use crate::backoff::Backoff;
use crate::core::id::ServiceKind;
use crate::core::spec::{ServiceConnection, Spec};
use crate::engine::AnyTarget;
use crate::secret::read_secret_file;
use crate::session::Sessions;

/// The backend of one configured service, with its secret read from the file the spec names. An
/// error names the spec key, e.g. `nextcloud.adminPasswordFile: cannot read secret file …`.
/// Backends that log in keep their session in `sessions`.
pub fn backend<'a>(
    spec: &'a Spec,
    kind: ServiceKind,
    conn: &'a ServiceConnection,
    backoff: Backoff,
    sessions: &Sessions,
) -> Result<Box<dyn Service + 'a>, String> {
    let timeout = Duration::from_secs(spec.lldap.timeout_seconds);
    let secret = read_secret_file(&conn.secret_file)
        .map_err(|e| format!("{kind}.{}: {e}", kind.secret_key()))?;
    let url = conn.url.as_str();
    let missing = |key: &str| format!("{kind}.{key}: missing");
    let built: Result<Box<dyn Service>, ServiceError> = match kind {
        ServiceKind::Nextcloud => {
            let admin = conn
                .admin_user
                .as_deref()
                .ok_or_else(|| missing("adminUser"))?;
            let managed = spec
                .users
                .values()
                .flat_map(|u| u.settings().nextcloud.groups.iter().cloned());
            Nextcloud::new(url, admin, secret, timeout).map(|s| {
                Box::new(s.with_managed_groups(managed).with_backoff(backoff)) as Box<dyn Service>
            })
        }
        ServiceKind::Gitlab => Gitlab::new(
            url,
            secret,
            conn.ldap_provider.as_deref(),
            &spec.lldap.base_dn,
            timeout,
        )
        .map(|s| Box::new(s.with_backoff(backoff)) as Box<dyn Service>),
        ServiceKind::Jellyfin => Jellyfin::new(url, secret, timeout)
            .map(|s| Box::new(s.with_backoff(backoff)) as Box<dyn Service>),
        ServiceKind::Vaultwarden => Vaultwarden::new(url, secret, timeout).map(|s| {
            Box::new(s.with_backoff(backoff).with_sessions(sessions.clone())) as Box<dyn Service>
        }),
        ServiceKind::Mailcow => {
            let domain = conn.domain.as_deref().ok_or_else(|| missing("domain"))?;
            Mailcow::new(url, secret, domain, timeout)
                .map(|s| Box::new(s.with_backoff(backoff)) as Box<dyn Service>)
        }
    };
    built.map_err(|e| format!("{kind}: {e}"))
}

/// The targets of `spec`, in the order they run: LLDAP first (the services go by the members of
/// its groups), then every configured service in [`ServiceKind::ALL`] order. A target that could
/// not be set up is still returned: it reports why on every run.
pub fn build<'a>(
    spec: &'a Spec,
    backoff: Backoff,
    sessions: &Sessions,
) -> Vec<Box<dyn AnyTarget + 'a>> {
    let mut targets: Vec<Box<dyn AnyTarget + 'a>> = vec![Box::new(LldapTarget::new(spec, backoff))];
    for (kind, conn) in spec.services.iter() {
        targets.push(Box::new(AccountTarget::new(
            kind,
            spec,
            backend(spec, kind, conn, backoff, sessions),
        )));
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec::parse_spec;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn one_backend_per_configured_service_and_errors_name_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = dir.path().join("ok");
        std::fs::write(&ok, "s3cret\n").expect("write");
        std::fs::set_permissions(&ok, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let open = dir.path().join("open");
        std::fs::write(&open, "s3cret\n").expect("write");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let missing = dir.path().join("missing");
        let p = |x: &std::path::Path| x.to_str().expect("utf-8").to_string();
        let spec = parse_spec(
            &serde_json::json!({
                "version": 1,
                "lldap": { "url": "http://l", "ldapUrl": "ldap://l", "baseDn": "dc=x,dc=y", "adminPasswordFile": p(&ok) },
                "users": {},
                "nextcloud": { "url": "http://n", "adminUser": "root", "adminPasswordFile": p(&missing) },
                "gitlab": { "url": "http://g", "tokenFile": p(&ok), "ldapProvider": "ldapmain" },
                "jellyfin": { "url": "http://j", "apiKeyFile": p(&open) },
                "vaultwarden": { "url": "http://v", "adminTokenFile": p(&ok) },
                "mailcow": { "url": "http://m", "apiKeyFile": p(&ok), "domain": "example.org" }
            })
            .to_string(),
        )
        .expect("valid spec");
        let built: Vec<String> = spec
            .services
            .iter()
            .map(|(kind, conn)| {
                match backend(
                    &spec,
                    kind,
                    conn,
                    Backoff::default(),
                    &Sessions::in_memory(),
                ) {
                    Ok(s) => s.kind().to_string(),
                    Err(e) => e,
                }
            })
            .collect();
        assert_eq!(built.len(), 5);
        assert!(
            built[0].starts_with("nextcloud.adminPasswordFile: "),
            "{}",
            built[0]
        );
        assert_eq!(built[1], "gitlab");
        assert!(
            built[2].starts_with("jellyfin.apiKeyFile: "),
            "{}",
            built[2]
        );
        assert!(!built[2].contains("s3cret"));
        assert_eq!(built[3], "vaultwarden");
        assert_eq!(built[4], "mailcow");
        let targets = build(&spec, Backoff::default(), &Sessions::in_memory());
        let ids: Vec<String> = targets.iter().map(|t| t.id().to_string()).collect();
        assert_eq!(
            ids,
            [
                "lldap",
                "nextcloud",
                "gitlab",
                "jellyfin",
                "vaultwarden",
                "mailcow"
            ]
        );
    }
}
