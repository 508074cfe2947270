//! The rules every target's plan follows, in one place: what paasd owns, what happens to what it
//! owns when it leaves the spec (removal, grace period, the mass-removal guard), where a password
//! comes from and when it is due. Pure: the plans of LLDAP and of the account services call these
//! functions instead of spelling the rules out twice.

use std::path::Path;

use super::id::TargetId;
use super::plan::Held;
use super::spec::{PasswordMode, PasswordStrategy, Removal, ServicePasswords, Spec};

/// paasd owns an object that carries its marker in the target, or that its state recorded as
/// created or adopted. Everything else (made by hand, by another tool) is never changed unless
/// the spec declares it — then it is adopted, and the plan says so.
pub fn is_owned(marked: bool, recorded: bool) -> bool {
    marked || recorded
}

/// What happens to an owned object that left the spec (or a service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalStep {
    /// `removal = "delete"`, and the grace period (if any) is over.
    Delete,
    /// Disable it (`removal = "disable"`, or `"delete"` during the grace period). With
    /// `start_grace_period`, the grace period starts now: its start must be recorded.
    Disable { start_grace_period: bool },
    /// `removal = "keep"`: leave it as it is.
    Keep,
}

/// The removal rule: `removed_since` is when the object left the spec, as recorded.
pub fn removal_step(
    removal: Removal,
    grace_period: u64,
    removed_since: Option<u64>,
    now: u64,
) -> RemovalStep {
    match removal {
        Removal::Keep => RemovalStep::Keep,
        Removal::Disable => RemovalStep::Disable {
            start_grace_period: false,
        },
        Removal::Delete => {
            let over = grace_period == 0
                || removed_since.is_some_and(|t| now.saturating_sub(t) >= grace_period);
            if over {
                RemovalStep::Delete
            } else {
                RemovalStep::Disable {
                    start_grace_period: removed_since.is_none(),
                }
            }
        }
    }
}

/// Why an object is being removed, as the plan says it: `<left>; removal = "…"`, plus the grace
/// period when it starts now.
pub fn removal_reason(
    left: &str,
    removal: Removal,
    step: RemovalStep,
    grace_period: u64,
) -> String {
    let mut r = format!("{left}; removal = \"{removal}\"");
    if let RemovalStep::Disable {
        start_grace_period: true,
    } = step
    {
        r.push_str(&format!(
            "; deleted after removalGracePeriod ({grace_period} s)"
        ));
    }
    r
}

/// The mass-removal guard: `removalGuard.maxPercent`, unless `--force`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    pub max_percent: u32,
    pub force: bool,
}

impl Guard {
    /// Whether disabling or deleting `removing` of the `managed` objects paasd owns in `target`
    /// must be held back. A handful (up to 3) is never held back.
    pub fn check(&self, target: TargetId, removing: usize, managed: usize) -> Option<Held> {
        let max = self.max_percent as usize;
        (!self.force && removing > 3 && removing * 100 > max * managed.max(1)).then_some(Held {
            target,
            removing,
            managed,
            max_percent: self.max_percent,
        })
    }
}

/// Where one user's password in one target comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource<'a> {
    /// paasd sets no password (no source, or the target logs in through LDAP/SSO).
    None,
    /// A file: the user's `passwordFile` or the deployment's universal file.
    File { path: &'a Path, mode: PasswordMode },
    /// A password paasd generates for this target, kept 0600 in its state directory; it is set
    /// when the account is created, never again.
    Generated,
}

/// The password strategy chain. In LLDAP (the SSO password): the user's `passwordStrategy`, else
/// `passwords.strategy`; `generated` falls back to the user's file (a generated SSO password
/// would be known to nobody). In a service: its `passwordStrategy` (`"none"` = LDAP/SSO login),
/// else the user's, else the deployment's; Vaultwarden never takes one (client-side encryption).
/// `user` may be absent from the spec (an LLDAP user given access through a group).
pub fn password_source<'a>(spec: &'a Spec, target: TargetId, user: &str) -> PasswordSource<'a> {
    let su = spec.users.get(user);
    let user_strategy = su.and_then(|u| u.password_strategy);
    let strategy = match target {
        TargetId::Lldap => user_strategy.unwrap_or(spec.passwords.strategy),
        TargetId::Service(kind) => {
            if !kind.capabilities().passwords {
                return PasswordSource::None;
            }
            let Some(conn) = spec.services.get(kind) else {
                return PasswordSource::None;
            };
            match conn.password_strategy {
                ServicePasswords::None => return PasswordSource::None,
                ServicePasswords::Strategy(s) => s,
                ServicePasswords::Inherit => user_strategy.unwrap_or(spec.passwords.strategy),
            }
        }
    };
    let mode = su.map_or(PasswordMode::Enforce, |u| u.password_mode);
    let own_file = || match su.and_then(|u| u.password_file.as_deref()) {
        Some(path) => PasswordSource::File { path, mode },
        None => PasswordSource::None,
    };
    match strategy {
        PasswordStrategy::PerUser => own_file(),
        PasswordStrategy::Generated if target == TargetId::Lldap => own_file(),
        PasswordStrategy::Generated => PasswordSource::Generated,
        PasswordStrategy::Universal => match spec.passwords.universal_password_file.as_deref() {
            Some(path) => PasswordSource::File { path, mode },
            None => PasswordSource::None,
        },
    }
}

/// What is known of one user's desired password in one target, once its source was read (the
/// engine reads the files; the plans see only fingerprints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DesiredPassword {
    /// No source: paasd never sets this password.
    None,
    /// The keyed fingerprint of the desired password, and whether it is enforced.
    Known {
        fingerprint: String,
        mode: PasswordMode,
    },
    /// A generated password that does not exist yet (a plan that writes nothing); it is made
    /// right before the account is created.
    ToGenerate,
    /// The source exists but cannot be used (unreadable, bad mode, empty, …).
    Unusable(String),
}

impl DesiredPassword {
    /// The fingerprint of a known password.
    pub fn fingerprint(&self) -> Option<&str> {
        match self {
            DesiredPassword::Known { fingerprint, .. } => Some(fingerprint),
            _ => None,
        }
    }

    /// A password will be sent (known, or generated on the way).
    pub fn is_set(&self) -> bool {
        matches!(
            self,
            DesiredPassword::Known { .. } | DesiredPassword::ToGenerate
        )
    }
}

/// What to do about the password of an object that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordStep {
    Keep,
    Set,
    /// Check the current password first (an LDAP bind) and write only if it differs.
    VerifyThenSet,
}

/// When a password is due on an existing object: an enforced password whose fingerprint differs
/// from the recorded one (or every enforced password with `verify_all`); an initial password only
/// while it is still owed (`pending_initial`: paasd created the object and never set it).
/// `desired` is the fingerprint of the desired password, when there is one. Targets that cannot
/// check a password (`can_verify = false`) write instead of verifying, and `verify_all` does not
/// apply to them.
pub fn password_step(
    desired: Option<&str>,
    mode: PasswordMode,
    recorded: Option<&str>,
    pending_initial: bool,
    verify_all: bool,
    can_verify: bool,
) -> PasswordStep {
    let Some(fingerprint) = desired else {
        return PasswordStep::Keep;
    };
    if pending_initial {
        return PasswordStep::Set;
    }
    let due = match mode {
        PasswordMode::Initial => false,
        PasswordMode::Enforce => (verify_all && can_verify) || recorded != Some(fingerprint),
    };
    match (due, can_verify) {
        (false, _) => PasswordStep::Keep,
        (true, true) => PasswordStep::VerifyThenSet,
        (true, false) => PasswordStep::Set,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::id::ServiceKind;
    use crate::core::spec::parse_spec;
    use serde_json::json;

    #[test]
    fn removal_follows_the_spec_and_the_grace_period() {
        use RemovalStep::*;
        assert_eq!(removal_step(Removal::Keep, 0, None, 10), Keep);
        assert_eq!(
            removal_step(Removal::Disable, 0, None, 10),
            Disable {
                start_grace_period: false
            }
        );
        assert_eq!(removal_step(Removal::Delete, 0, None, 10), Delete);
        assert_eq!(
            removal_step(Removal::Delete, 60, None, 10),
            Disable {
                start_grace_period: true
            }
        );
        assert_eq!(
            removal_step(Removal::Delete, 60, Some(10), 69),
            Disable {
                start_grace_period: false
            }
        );
        assert_eq!(removal_step(Removal::Delete, 60, Some(10), 70), Delete);
        let r = removal_reason(
            "removed from the spec",
            Removal::Delete,
            Disable {
                start_grace_period: true,
            },
            60,
        );
        assert_eq!(
            r,
            "removed from the spec; removal = \"delete\"; deleted after removalGracePeriod (60 s)"
        );
    }

    #[test]
    fn the_guard_holds_back_more_than_the_share_but_never_a_handful() {
        let g = Guard {
            max_percent: 25,
            force: false,
        };
        assert_eq!(g.check(TargetId::Lldap, 3, 4), None, "3 is a handful");
        let held = g.check(TargetId::Lldap, 4, 10).expect("40% > 25%");
        assert!(held.to_string().contains("4 of 10 managed users"), "{held}");
        assert_eq!(g.check(TargetId::Lldap, 4, 16), None, "25% is allowed");
        assert_eq!(
            Guard { force: true, ..g }.check(TargetId::Lldap, 10, 10),
            None
        );
    }

    fn spec() -> Spec {
        parse_spec(
            &json!({
                "version": 1,
                "lldap": { "url": "http://l", "ldapUrl": "ldap://l", "baseDn": "dc=x,dc=y", "adminPasswordFile": "/a" },
                "users": {
                    "alice": { "email": "alice@x.y", "passwordFile": "/p/alice" },
                    "bob": { "email": "bob@x.y", "passwordStrategy": "generated", "passwordFile": "/p/bob" },
                    "carol": { "email": "carol@x.y", "passwordMode": "initial", "passwordFile": "/p/c" }
                },
                "passwords": { "strategy": "perUser", "universalPasswordFile": "/p/u" },
                "nextcloud": { "url": "http://n", "adminUser": "root", "adminPasswordFile": "/n" },
                "gitlab": { "url": "http://g", "tokenFile": "/g", "passwordStrategy": "none" },
                "mailcow": { "url": "http://m", "apiKeyFile": "/m", "domain": "x.y", "passwordStrategy": "universal" },
                "vaultwarden": { "url": "http://v", "adminTokenFile": "/v" }
            })
            .to_string(),
        )
        .expect("valid")
    }

    #[test]
    fn one_strategy_chain_for_every_target() {
        let s = spec();
        let nc = TargetId::Service(ServiceKind::Nextcloud);
        let file = |p: &'static str, mode| PasswordSource::File {
            path: Path::new(p),
            mode,
        };
        assert_eq!(
            password_source(&s, TargetId::Lldap, "alice"),
            file("/p/alice", PasswordMode::Enforce)
        );
        assert_eq!(
            password_source(&s, TargetId::Lldap, "bob"),
            file("/p/bob", PasswordMode::Enforce),
            "LLDAP's password is the user's own even under `generated`"
        );
        assert_eq!(password_source(&s, nc, "bob"), PasswordSource::Generated);
        assert_eq!(
            password_source(&s, nc, "carol"),
            file("/p/c", PasswordMode::Initial)
        );
        assert_eq!(
            password_source(&s, TargetId::Service(ServiceKind::Gitlab), "alice"),
            PasswordSource::None,
            "the service logs in through LDAP"
        );
        assert_eq!(
            password_source(&s, TargetId::Service(ServiceKind::Vaultwarden), "alice"),
            PasswordSource::None
        );
        assert_eq!(
            password_source(&s, TargetId::Service(ServiceKind::Mailcow), "zoe"),
            file("/p/u", PasswordMode::Enforce),
            "an LLDAP-only user under the service's universal strategy"
        );
        assert_eq!(
            password_source(&s, nc, "zoe"),
            PasswordSource::None,
            "perUser without a file"
        );
    }

    #[test]
    fn passwords_are_due_when_enforced_and_changed_or_still_owed() {
        use PasswordMode::*;
        assert_eq!(
            password_step(Some("f2"), Enforce, Some("f2"), false, false, true),
            PasswordStep::Keep
        );
        assert_eq!(
            password_step(Some("f2"), Enforce, Some("f1"), false, false, true),
            PasswordStep::VerifyThenSet
        );
        assert_eq!(
            password_step(Some("f2"), Enforce, Some("f1"), false, false, false),
            PasswordStep::Set
        );
        assert_eq!(
            password_step(Some("f2"), Enforce, Some("f2"), false, true, true),
            PasswordStep::VerifyThenSet,
            "--verify-passwords"
        );
        assert_eq!(
            password_step(Some("f2"), Enforce, Some("f2"), false, true, false),
            PasswordStep::Keep,
            "nothing to verify with"
        );
        assert_eq!(
            password_step(Some("f2"), Initial, None, false, true, true),
            PasswordStep::Keep
        );
        assert_eq!(
            password_step(Some("f2"), Initial, None, true, false, true),
            PasswordStep::Set,
            "an initial password still owed"
        );
        assert_eq!(
            password_step(
                DesiredPassword::ToGenerate.fingerprint(),
                Initial,
                None,
                false,
                false,
                false
            ),
            PasswordStep::Keep
        );
    }
}
