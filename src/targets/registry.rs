//! The configured services, built from the spec: one backend per top-level service connection,
//! with its secret read from the file the spec names.

use std::time::Duration;

use super::gitlab::Gitlab;
use super::jellyfin::Jellyfin;
use super::mailcow::Mailcow;
use super::nextcloud::Nextcloud;
use super::vaultwarden::Vaultwarden;
use super::Service;
use crate::secret::read_secret_file;
use crate::spec::{ServiceConnection, Spec};

/// The spec key of a service's secret file.
pub fn secret_key(service: &str) -> &'static str {
    match service {
        "nextcloud" => "adminPasswordFile",
        "gitlab" => "tokenFile",
        "vaultwarden" => "adminTokenFile",
        _ => "apiKeyFile",
    }
}

fn build_one(
    spec: &Spec,
    name: &'static str,
    conn: &ServiceConnection,
    timeout: Duration,
) -> Result<Box<dyn Service>, String> {
    let secret = read_secret_file(&conn.secret_file)
        .map_err(|e| format!("{name}.{}: {e}", secret_key(name)))?;
    let url = conn.url.as_str();
    let built: Result<Box<dyn Service>, super::ServiceError> = match name {
        "nextcloud" => {
            let admin = conn
                .admin_user
                .as_deref()
                .ok_or_else(|| "nextcloud.adminUser: missing".to_string())?;
            let managed = spec
                .users
                .values()
                .flat_map(|u| u.settings().nextcloud.groups.iter().cloned());
            Nextcloud::new(url, admin, secret, timeout)
                .map(|s| Box::new(s.with_managed_groups(managed)) as Box<dyn Service>)
        }
        "gitlab" => Gitlab::new(
            url,
            secret,
            conn.ldap_provider.as_deref(),
            &spec.lldap.base_dn,
            timeout,
        )
        .map(|s| Box::new(s) as Box<dyn Service>),
        "jellyfin" => Jellyfin::new(url, secret, timeout).map(|s| Box::new(s) as Box<dyn Service>),
        "vaultwarden" => {
            Vaultwarden::new(url, secret, timeout).map(|s| Box::new(s) as Box<dyn Service>)
        }
        "mailcow" => {
            let domain = conn
                .domain
                .as_deref()
                .ok_or_else(|| "mailcow.domain: missing".to_string())?;
            Mailcow::new(url, secret, domain, timeout).map(|s| Box::new(s) as Box<dyn Service>)
        }
        other => return Err(format!("{other}: unknown service")),
    };
    built.map_err(|e| format!("{name}: {e}"))
}

/// One backend (or the reason there is none) per configured service, in the spec's service
/// order (nextcloud, gitlab, jellyfin, vaultwarden, mailcow). An error names the spec key, e.g.
/// `nextcloud.adminPasswordFile: cannot read secret file …`.
pub fn build(spec: &Spec, timeout: Duration) -> Vec<Result<Box<dyn Service>, String>> {
    spec.services
        .configured()
        .into_iter()
        .filter_map(|name| {
            let conn = spec.services.get(name)?;
            Some(build_one(spec, name, conn, timeout))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_spec;
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
        let built = build(&spec, Duration::from_secs(5));
        assert_eq!(built.len(), 5);
        let names: Vec<String> = built
            .iter()
            .map(|r| match r {
                Ok(s) => s.name().to_string(),
                Err(e) => e.clone(),
            })
            .collect();
        assert!(
            names[0].starts_with("nextcloud.adminPasswordFile: "),
            "{}",
            names[0]
        );
        assert_eq!(names[1], "gitlab");
        assert!(
            names[2].starts_with("jellyfin.apiKeyFile: "),
            "{}",
            names[2]
        );
        assert!(!names[2].contains("s3cret"));
        assert_eq!(names[3], "vaultwarden");
        assert_eq!(names[4], "mailcow");
    }
}
