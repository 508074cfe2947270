//! paasd's own state: what it created or adopted (ownership), fingerprints of applied
//! passwords, removal timestamps, and create intents. Kept in `<state_dir>/state.json`, written
//! atomically (temp file, fsync, rename, fsync of the directory), mode 0600.
//!
//! The state file is a cache of ownership, not its only record: paasd also marks what it manages
//! inside LLDAP (`paasd-managed` attribute), so losing this file loses only password
//! fingerprints (each password is then verified once by an LDAP bind).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::Effect;
use crate::spec::Spec;

pub const STATE_FILE: &str = "state.json";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    #[serde(default = "one")]
    pub version: u32,
    #[serde(default)]
    pub lldap: LldapState,
    /// Services with their own accounts, by service name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub targets: BTreeMap<String, TargetState>,
}

/// What paasd manages in one service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetState {
    /// By paasd user id.
    #[serde(default)]
    pub accounts: BTreeMap<String, OwnedAccount>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnedAccount {
    /// The service's own id of the account.
    pub remote_id: String,
    /// Created by paasd (`false`: adopted).
    #[serde(default)]
    pub created: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_since: Option<u64>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LldapState {
    /// Users paasd manages, by user id.
    #[serde(default)]
    pub users: BTreeMap<String, OwnedUser>,
    /// Groups paasd manages, by spec name.
    #[serde(default)]
    pub groups: BTreeMap<String, OwnedGroup>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnedUser {
    /// Created by paasd (`false`: adopted).
    #[serde(default)]
    pub created: bool,
    /// A create was sent but not confirmed yet (intent recorded before the request).
    #[serde(default, skip_serializing_if = "is_false")]
    pub creating: bool,
    /// HMAC fingerprint of the password last applied or verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_fingerprint: Option<String>,
    /// `passwordMode = "initial"`: created by paasd, password not set yet.
    #[serde(default, skip_serializing_if = "is_false")]
    pub initial_password_pending: bool,
    /// Unix time the user left the spec (for `removalGracePeriod`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_since: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnedGroup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(default)]
    pub created: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub creating: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is damaged ({source}); move it away to start over (ownership is re-read from the markers in LLDAP)")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write state file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl State {
    /// Records what carrying out an action did.
    pub fn record(&mut self, effect: &Effect, spec: &Spec) {
        let state = self;
        let users = &mut state.lldap.users;
        match effect {
            Effect::None => {}
            Effect::GroupCreated { key, id } => {
                state.lldap.groups.insert(
                    key.clone(),
                    OwnedGroup {
                        id: Some(*id),
                        created: true,
                        creating: false,
                    },
                );
            }
            Effect::GroupAdopted { key, id } => {
                let g = state.lldap.groups.entry(key.clone()).or_default();
                g.id = Some(*id);
                g.creating = false;
            }
            Effect::GroupDeleted { key } => {
                state.lldap.groups.remove(key);
            }
            Effect::UserCreated { id } => {
                let initial = spec.users.get(id).is_some_and(|u| {
                    u.password_mode == crate::spec::PasswordMode::Initial
                        && crate::reconcile::lldap_password_source(spec, u).is_some()
                        && u.enable
                });
                users.insert(
                    id.clone(),
                    OwnedUser {
                        created: true,
                        creating: false,
                        initial_password_pending: initial,
                        ..OwnedUser::default()
                    },
                );
            }
            Effect::UserAdopted { id } => {
                let u = users.entry(id.clone()).or_default();
                u.creating = false;
            }
            Effect::UserDeleted { id } => {
                users.remove(id);
            }
            Effect::PasswordApplied {
                user, fingerprint, ..
            } => {
                let u = users.entry(user.clone()).or_default();
                u.password_fingerprint = Some(fingerprint.clone());
                u.initial_password_pending = false;
            }
            Effect::MarkRemoved { user, since } => {
                // A user owned only through its marker (no state entry) must keep its removal
                // time too, or the grace period never starts.
                if since.is_some() {
                    users.entry(user.clone()).or_default().removed_since = *since;
                } else if let Some(u) = users.get_mut(user) {
                    u.removed_since = None;
                }
            }
            Effect::AccountOwned {
                service,
                user,
                remote_id,
                created,
            } => {
                let t = state.targets.entry(service.clone()).or_default();
                let a = t.accounts.entry(user.clone()).or_default();
                a.remote_id = remote_id.clone();
                a.created |= *created;
                a.removed_since = None;
            }
            Effect::AccountDeleted { service, user } => {
                if let Some(t) = state.targets.get_mut(service) {
                    t.accounts.remove(user);
                }
            }
            Effect::AccountPassword {
                service,
                user,
                fingerprint,
            } => {
                if let Some(a) = state
                    .targets
                    .get_mut(service)
                    .and_then(|t| t.accounts.get_mut(user))
                {
                    a.password_fingerprint = Some(fingerprint.clone());
                }
            }
            Effect::AccountRemovedSince {
                service,
                user,
                since,
            } => {
                if let Some(a) = state
                    .targets
                    .get_mut(service)
                    .and_then(|t| t.accounts.get_mut(user))
                {
                    a.removed_since = *since;
                }
            }
        }
    }

    /// Loads `<dir>/state.json`; a missing file is an empty state.
    pub fn load(dir: &Path) -> Result<State, StateError> {
        let path = dir.join(STATE_FILE);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| StateError::Parse { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State {
                version: 1,
                ..State::default()
            }),
            Err(source) => Err(StateError::Read { path, source }),
        }
    }

    /// Writes `<dir>/state.json` atomically: a crash leaves either the old or the new file.
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let path = dir.join(STATE_FILE);
        let werr = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(dir).map_err(werr)?;
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| werr(std::io::Error::other(e.to_string())))?;
        remove_stale_temp_files(dir);
        write_atomic(dir, &path, &bytes).map_err(werr)
    }
}

/// Removes `state.tmp.<pid>` files left by a process that was killed between writing and renaming
/// (the pid no longer exists). A live writer's temp file is left alone.
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("state.tmp."))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let alive = pid == std::process::id() as i32
            || unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// write → fsync → rename → fsync(dir). When root writes into a directory owned by another
/// user (an admin running `paasctl apply` beside the daemon), the file is given to that owner so
/// the daemon can still read it.
pub fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        let dir_meta = fs::metadata(dir)?;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 && dir_meta.uid() != 0 {
            std::os::unix::fs::fchown(&f, Some(dir_meta.uid()), Some(dir_meta.gid()))?;
        }
        drop(f);
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn missing_file_is_empty_state_and_roundtrip_is_exact() {
        let d = tempfile::tempdir().expect("tempdir");
        let empty = State::load(d.path()).expect("load");
        assert!(empty.lldap.users.is_empty());
        let mut s = State::default();
        s.lldap.users.insert(
            "alice".into(),
            OwnedUser {
                created: true,
                password_fingerprint: Some("ab".into()),
                ..OwnedUser::default()
            },
        );
        s.lldap.groups.insert(
            "family".into(),
            OwnedGroup {
                id: Some(4),
                created: true,
                creating: false,
            },
        );
        s.save(d.path()).expect("save");
        assert_eq!(State::load(d.path()).expect("load"), s);
        let mode = fs::metadata(d.path().join(STATE_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(d.path())
            .expect("readdir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    }

    #[test]
    fn damaged_file_is_a_clear_error() {
        let d = tempfile::tempdir().expect("tempdir");
        fs::write(d.path().join(STATE_FILE), b"{\"lldap\": ").expect("write");
        let e = State::load(d.path()).expect_err("must fail");
        assert!(e.to_string().contains("damaged"), "{e}");
    }
}
