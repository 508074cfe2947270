//! Reading desired passwords, once for every target: each source the policy names (a file, a
//! generated password) is read, and the plan is given only its keyed fingerprint; the secrets
//! stay here for the actions that send them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::core::id::TargetId;
use crate::core::policy::{DesiredPassword, PasswordSource};
use crate::core::spec::PasswordMode;
use crate::core::state::State;
use crate::secret::{generated_password, read_secret_file, FingerprintKey, Secret};

/// The desired passwords of one target.
#[derive(Default)]
pub struct Passwords {
    /// By user; a missing entry is [`DesiredPassword::None`].
    pub desired: BTreeMap<String, DesiredPassword>,
    pub secrets: HashMap<String, Secret>,
}

/// The fingerprint scope of `user`'s password in `target`: a password is never compared across
/// users or targets.
pub fn scope(target: TargetId, user: &str) -> String {
    format!("{target}/{user}")
}

/// Reads every source. `write`: a generated password is made (and stored 0600) when the account
/// it is for does not exist yet; without it (a plan), a missing one is
/// [`DesiredPassword::ToGenerate`].
pub fn resolve(
    target: TargetId,
    sources: Vec<(String, PasswordSource<'_>)>,
    key: &FingerprintKey,
    state_dir: &Path,
    write: bool,
    state: &State,
) -> Passwords {
    let mut out = Passwords::default();
    for (user, source) in sources {
        let read = match source {
            PasswordSource::None => continue,
            PasswordSource::File { path, mode } => read_secret_file(path).map(|s| (Some(s), mode)),
            PasswordSource::Generated => {
                let Some(kind) = target.service() else {
                    continue;
                };
                let create = write && !state.owns(target, &user);
                generated_password(state_dir, kind, &user, create)
                    .map(|s| (s, PasswordMode::Initial))
            }
        };
        let desired = match read {
            Ok((Some(secret), mode)) => {
                let fingerprint = key.fingerprint(&scope(target, &user), &secret);
                out.secrets.insert(user.clone(), secret);
                DesiredPassword::Known { fingerprint, mode }
            }
            Ok((None, _)) => DesiredPassword::ToGenerate,
            Err(e) => DesiredPassword::Unusable(e.to_string()),
        };
        out.desired.insert(user, desired);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::id::ServiceKind;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_become_fingerprints_and_generated_passwords_are_made_only_when_writing() {
        let d = tempfile::tempdir().expect("tempdir");
        let file = d.path().join("alice");
        std::fs::write(&file, "alice-pw\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let key = FingerprintKey::from_bytes([1; 32]);
        let nc = TargetId::Service(ServiceKind::Nextcloud);
        let sources = || {
            vec![
                (
                    "alice".to_string(),
                    PasswordSource::File {
                        path: &file,
                        mode: PasswordMode::Enforce,
                    },
                ),
                ("bob".to_string(), PasswordSource::Generated),
                (
                    "carol".to_string(),
                    PasswordSource::File {
                        path: Path::new("/nonexistent/carol"),
                        mode: PasswordMode::Enforce,
                    },
                ),
                ("dave".to_string(), PasswordSource::None),
            ]
        };
        let state = State::default();
        let plan = resolve(nc, sources(), &key, d.path(), false, &state);
        assert_eq!(plan.desired["bob"], DesiredPassword::ToGenerate);
        assert!(
            !d.path().join("generated").exists(),
            "a plan generates nothing"
        );
        let apply = resolve(nc, sources(), &key, d.path(), true, &state);
        let fp = key.fingerprint("nextcloud/alice", &Secret::new("alice-pw"));
        assert_eq!(
            apply.desired["alice"],
            DesiredPassword::Known {
                fingerprint: fp,
                mode: PasswordMode::Enforce
            }
        );
        assert!(matches!(
            apply.desired["bob"],
            DesiredPassword::Known {
                mode: PasswordMode::Initial,
                ..
            }
        ));
        assert!(matches!(
            apply.desired["carol"],
            DesiredPassword::Unusable(_)
        ));
        assert!(!apply.desired.contains_key("dave"));
        assert_eq!(apply.secrets["alice"].expose(), "alice-pw");
        assert_eq!(apply.secrets.len(), 2);
    }
}
