//! The closed sets paasd works with: the targets it reconciles and the kinds of service with
//! accounts of their own. Each kind owns its name, the spec key of its secret file and what it can
//! do, so no other place spells a service name or its secret key.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A service that keeps accounts of its own, besides LLDAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceKind {
    Nextcloud,
    Gitlab,
    Jellyfin,
    Vaultwarden,
    Mailcow,
}

/// What a service lets paasd do; the account plan respects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// paasd can set an account's password.
    pub passwords: bool,
    /// Accounts can be disabled (else `removal = "disable"` changes nothing there).
    pub disable: bool,
    /// The service keeps paasd's marker on an account (GitLab's custom attributes): accounts
    /// paasd creates or adopts carry it, so their ownership survives the loss of the state file.
    pub marker: bool,
}

impl ServiceKind {
    /// Every service, in the order paasd reconciles them.
    pub const ALL: [ServiceKind; 5] = [
        ServiceKind::Nextcloud,
        ServiceKind::Gitlab,
        ServiceKind::Jellyfin,
        ServiceKind::Vaultwarden,
        ServiceKind::Mailcow,
    ];

    /// The name in the spec, in logs, reports and state (`nextcloud`, …).
    pub const fn name(self) -> &'static str {
        match self {
            ServiceKind::Nextcloud => "nextcloud",
            ServiceKind::Gitlab => "gitlab",
            ServiceKind::Jellyfin => "jellyfin",
            ServiceKind::Vaultwarden => "vaultwarden",
            ServiceKind::Mailcow => "mailcow",
        }
    }

    pub fn from_name(name: &str) -> Option<ServiceKind> {
        ServiceKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The spec key of the file holding paasd's credential for the service.
    pub const fn secret_key(self) -> &'static str {
        match self {
            ServiceKind::Nextcloud => "adminPasswordFile",
            ServiceKind::Gitlab => "tokenFile",
            ServiceKind::Vaultwarden => "adminTokenFile",
            ServiceKind::Jellyfin | ServiceKind::Mailcow => "apiKeyFile",
        }
    }

    pub const fn capabilities(self) -> Capabilities {
        match self {
            // A Vaultwarden master password is made in the user's client (client-side
            // encryption): paasd invites, it cannot set one.
            ServiceKind::Vaultwarden => Capabilities {
                passwords: false,
                disable: true,
                marker: false,
            },
            ServiceKind::Gitlab => Capabilities {
                passwords: true,
                disable: true,
                marker: true,
            },
            _ => Capabilities {
                passwords: true,
                disable: true,
                marker: false,
            },
        }
    }

    /// `nextcloud.adminUser`: Nextcloud logs in as a user, the others with a token or key.
    pub const fn needs_admin_user(self) -> bool {
        matches!(self, ServiceKind::Nextcloud)
    }

    /// `mailcow.domain`: Mailcow's accounts are mailboxes of one domain.
    pub const fn needs_domain(self) -> bool {
        matches!(self, ServiceKind::Mailcow)
    }

    /// `gitlab.ldapProvider`: GitLab links accounts to an LDAP identity.
    pub const fn has_ldap_provider(self) -> bool {
        matches!(self, ServiceKind::Gitlab)
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Something paasd reconciles: LLDAP, or one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetId {
    Lldap,
    Service(ServiceKind),
}

impl TargetId {
    pub const fn name(self) -> &'static str {
        match self {
            TargetId::Lldap => "lldap",
            TargetId::Service(k) => k.name(),
        }
    }

    pub fn service(self) -> Option<ServiceKind> {
        match self {
            TargetId::Lldap => None,
            TargetId::Service(k) => Some(k),
        }
    }
}

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `target == "nextcloud"`: compares the name.
impl PartialEq<&str> for TargetId {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl From<ServiceKind> for TargetId {
    fn from(k: ServiceKind) -> Self {
        TargetId::Service(k)
    }
}

/// The name is not one of paasd's targets or services.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} \"{name}\" (known: {known})")]
pub struct UnknownName {
    what: &'static str,
    name: String,
    known: String,
}

fn known_services() -> String {
    ServiceKind::ALL.map(ServiceKind::name).join(", ")
}

impl FromStr for ServiceKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        ServiceKind::from_name(s).ok_or_else(|| UnknownName {
            what: "service",
            name: s.to_string(),
            known: known_services(),
        })
    }
}

impl FromStr for TargetId {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        if s == "lldap" {
            return Ok(TargetId::Lldap);
        }
        ServiceKind::from_name(s)
            .map(TargetId::Service)
            .ok_or_else(|| UnknownName {
                what: "target",
                name: s.to_string(),
                known: format!("lldap, {}", known_services()),
            })
    }
}

macro_rules! serde_by_name {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_by_name!(ServiceKind);
serde_by_name!(TargetId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_say_what_is_known() {
        for k in ServiceKind::ALL {
            assert_eq!(k.name().parse::<ServiceKind>(), Ok(k));
            assert_eq!(
                k.name().parse::<TargetId>(),
                Ok(TargetId::Service(k)),
                "{k}"
            );
        }
        assert_eq!("lldap".parse::<TargetId>(), Ok(TargetId::Lldap));
        let e = "owncloud".parse::<ServiceKind>().expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "unknown service \"owncloud\" (known: nextcloud, gitlab, jellyfin, vaultwarden, mailcow)"
        );
        let json = serde_json::to_string(&TargetId::Service(ServiceKind::Mailcow)).expect("json");
        assert_eq!(json, "\"mailcow\"");
        let back: TargetId = serde_json::from_str("\"lldap\"").expect("json");
        assert_eq!(back, TargetId::Lldap);
    }

    #[test]
    fn only_vaultwarden_refuses_passwords() {
        for k in ServiceKind::ALL {
            assert_eq!(
                k.capabilities().passwords,
                k != ServiceKind::Vaultwarden,
                "{k}"
            );
        }
        assert_eq!(ServiceKind::Gitlab.secret_key(), "tokenFile");
    }
}
