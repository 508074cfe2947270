//! paasd's own state: what it created or adopted (ownership), fingerprints of applied
//! passwords, removal timestamps, create intents, and the last access-group members it read.
//! Kept in `<state_dir>/state.json`, written atomically, mode 0600.
//!
//! The state file is a cache of ownership, not its only record: paasd also marks what it manages
//! inside LLDAP (`paasd-managed` attribute) and, where a service has a place for it, inside the
//! service, so losing this file loses only password fingerprints (each password is then verified
//! once by an LDAP bind) and the ownership of accounts in services without a marker.
//!
//! Every change to the state is an [`Effect`] of carrying out one action, recorded with
//! [`State::record`]: the state is a pure fold over effects.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::id::{ServiceKind, TargetId};
use super::members::MembersSnapshot;

pub const STATE_FILE: &str = "state.json";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    #[serde(default = "one")]
    pub version: u32,
    #[serde(default)]
    pub lldap: LldapState,
    /// Services with their own accounts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub targets: BTreeMap<ServiceKind, TargetState>,
    /// The members of the services' access groups when LLDAP was last read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<MembersSnapshot>,
}

fn one() -> u32 {
    1
}

/// How paasd came to own an object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Origin {
    /// A create was sent but not confirmed yet (the intent is recorded before the request).
    Creating,
    /// paasd created it.
    Created,
    /// It existed and was taken over (declared in the spec, or owned through its marker).
    #[default]
    Adopted,
}

impl Origin {
    pub fn created(self) -> bool {
        self == Origin::Created
    }
}

/// The state file spells the origin as two flags (`created`, `creating`).
#[derive(Serialize, Deserialize)]
struct OriginFlags {
    #[serde(default)]
    created: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    creating: bool,
}

impl From<OriginFlags> for Origin {
    fn from(f: OriginFlags) -> Origin {
        match (f.creating, f.created) {
            (true, _) => Origin::Creating,
            (false, true) => Origin::Created,
            (false, false) => Origin::Adopted,
        }
    }
}

impl From<Origin> for OriginFlags {
    fn from(o: Origin) -> OriginFlags {
        OriginFlags {
            created: o != Origin::Adopted,
            creating: o == Origin::Creating,
        }
    }
}

impl Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        OriginFlags::from(*self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        OriginFlags::deserialize(d).map(Origin::from)
    }
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
    #[serde(flatten)]
    pub origin: Origin,
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
    #[serde(flatten)]
    pub origin: Origin,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What carrying out one action did, for paasd's state. Effects name their object; the state
/// is changed only through [`State::record`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "effect", rename_all = "camelCase")]
pub enum Effect {
    /// The action changed the target; there is nothing to record.
    Changed,
    /// Intent: an LLDAP user is about to be created (recorded before the request, so a crash
    /// between the create and its record is recognised on the next run).
    #[serde(rename_all = "camelCase")]
    UserCreating {
        id: String,
        initial_password_pending: bool,
    },
    /// Intent: an LLDAP group is about to be created.
    GroupCreating {
        key: String,
    },
    #[serde(rename_all = "camelCase")]
    UserCreated {
        id: String,
        initial_password_pending: bool,
    },
    UserAdopted {
        id: String,
    },
    GroupCreated {
        key: String,
        id: i64,
    },
    GroupAdopted {
        key: String,
        id: i64,
    },
    GroupDeleted {
        key: String,
    },
    /// In a service: an account was created or adopted, with the service's own id.
    #[serde(rename_all = "camelCase")]
    AccountOwned {
        service: ServiceKind,
        user: String,
        remote_id: String,
        created: bool,
    },
    /// The user's object (LLDAP user, service account) is gone.
    Deleted {
        target: TargetId,
        user: String,
    },
    /// The password was verified (already right) or written; its fingerprint.
    PasswordApplied {
        target: TargetId,
        user: String,
        fingerprint: String,
        written: bool,
    },
    /// When the user left the spec (the removal grace period); `None`: it is back.
    RemovedSince {
        target: TargetId,
        user: String,
        since: Option<u64>,
    },
}

impl Effect {
    /// A password check that found the password right: nothing was written.
    pub fn is_verification(&self) -> bool {
        matches!(self, Effect::PasswordApplied { written: false, .. })
    }
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
    /// Whether paasd records ownership of `user`'s object in `target`.
    pub fn owns(&self, target: TargetId, user: &str) -> bool {
        match target {
            TargetId::Lldap => self.lldap.users.contains_key(user),
            TargetId::Service(k) => self
                .targets
                .get(&k)
                .is_some_and(|t| t.accounts.contains_key(user)),
        }
    }

    /// What paasd owns in `service` (empty when nothing).
    pub fn service(&self, service: ServiceKind) -> &TargetState {
        static EMPTY: std::sync::OnceLock<TargetState> = std::sync::OnceLock::new();
        self.targets
            .get(&service)
            .unwrap_or_else(|| EMPTY.get_or_init(TargetState::default))
    }

    fn account_mut(&mut self, service: ServiceKind, user: &str) -> Option<&mut OwnedAccount> {
        self.targets
            .get_mut(&service)
            .and_then(|t| t.accounts.get_mut(user))
    }

    /// Records what carrying out an action did.
    pub fn record(&mut self, effect: &Effect) {
        let users = &mut self.lldap.users;
        match effect {
            Effect::Changed => {}
            Effect::UserCreating {
                id,
                initial_password_pending,
            } => {
                users.entry(id.clone()).or_insert(OwnedUser {
                    origin: Origin::Creating,
                    initial_password_pending: *initial_password_pending,
                    ..OwnedUser::default()
                });
            }
            Effect::GroupCreating { key } => {
                self.lldap.groups.entry(key.clone()).or_insert(OwnedGroup {
                    id: None,
                    origin: Origin::Creating,
                });
            }
            Effect::UserCreated {
                id,
                initial_password_pending,
            } => {
                users.insert(
                    id.clone(),
                    OwnedUser {
                        origin: Origin::Created,
                        initial_password_pending: *initial_password_pending,
                        ..OwnedUser::default()
                    },
                );
            }
            Effect::UserAdopted { id } => {
                let u = users.entry(id.clone()).or_default();
                if u.origin == Origin::Creating {
                    u.origin = Origin::Adopted;
                }
            }
            Effect::GroupCreated { key, id } => {
                self.lldap.groups.insert(
                    key.clone(),
                    OwnedGroup {
                        id: Some(*id),
                        origin: Origin::Created,
                    },
                );
            }
            Effect::GroupAdopted { key, id } => {
                let g = self.lldap.groups.entry(key.clone()).or_default();
                g.id = Some(*id);
                if g.origin == Origin::Creating {
                    g.origin = Origin::Adopted;
                }
            }
            Effect::GroupDeleted { key } => {
                self.lldap.groups.remove(key);
            }
            Effect::AccountOwned {
                service,
                user,
                remote_id,
                created,
            } => {
                let a = self
                    .targets
                    .entry(*service)
                    .or_default()
                    .accounts
                    .entry(user.clone())
                    .or_default();
                a.remote_id = remote_id.clone();
                a.created |= *created;
                a.removed_since = None;
            }
            Effect::Deleted { target, user } => match target {
                TargetId::Lldap => {
                    users.remove(user);
                }
                TargetId::Service(k) => {
                    if let Some(t) = self.targets.get_mut(k) {
                        t.accounts.remove(user);
                    }
                }
            },
            Effect::PasswordApplied {
                target,
                user,
                fingerprint,
                ..
            } => match target {
                TargetId::Lldap => {
                    let u = users.entry(user.clone()).or_default();
                    u.password_fingerprint = Some(fingerprint.clone());
                    u.initial_password_pending = false;
                }
                TargetId::Service(k) => {
                    if let Some(a) = self.account_mut(*k, user) {
                        a.password_fingerprint = Some(fingerprint.clone());
                    }
                }
            },
            Effect::RemovedSince {
                target,
                user,
                since,
            } => match target {
                // A user owned only through its marker (no state entry) must keep its removal
                // time too, or the grace period never starts.
                TargetId::Lldap => {
                    if since.is_some() {
                        users.entry(user.clone()).or_default().removed_since = *since;
                    } else if let Some(u) = users.get_mut(user) {
                        u.removed_since = None;
                    }
                }
                TargetId::Service(k) => {
                    if let Some(a) = self.account_mut(*k, user) {
                        a.removed_since = *since;
                    }
                }
            },
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
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| werr(std::io::Error::other(e.to_string())))?;
        crate::atomic_file::write(&path, &bytes).map_err(werr)
    }
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
                origin: Origin::Created,
                password_fingerprint: Some("ab".into()),
                ..OwnedUser::default()
            },
        );
        s.lldap.groups.insert(
            "family".into(),
            OwnedGroup {
                id: Some(4),
                origin: Origin::Creating,
            },
        );
        s.record(&Effect::AccountOwned {
            service: ServiceKind::Nextcloud,
            user: "alice".into(),
            remote_id: "alice".into(),
            created: true,
        });
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
    fn the_file_keeps_its_format() {
        // The format earlier releases wrote: the origin as two flags, services by name.
        let text = r#"{"version":1,
            "lldap":{"users":{"alice":{"created":true,"passwordFingerprint":"f"},
                              "bob":{"created":true,"creating":true,"initialPasswordPending":true},
                              "carol":{"created":false}},
                     "groups":{"family":{"id":3,"created":true}}},
            "targets":{"nextcloud":{"accounts":{"alice":{"remoteId":"alice","created":true}}}}}"#;
        let s: State = serde_json::from_str(text).expect("parse");
        assert_eq!(s.lldap.users["alice"].origin, Origin::Created);
        assert_eq!(s.lldap.users["bob"].origin, Origin::Creating);
        assert!(s.lldap.users["bob"].initial_password_pending);
        assert_eq!(s.lldap.users["carol"].origin, Origin::Adopted);
        assert_eq!(s.lldap.groups["family"].id, Some(3));
        assert!(s.owns(TargetId::Service(ServiceKind::Nextcloud), "alice"));
        let out = serde_json::to_value(&s).expect("json");
        assert_eq!(
            out["lldap"]["users"]["bob"],
            serde_json::json!({"created": true, "creating": true, "initialPasswordPending": true})
        );
        assert_eq!(
            out["lldap"]["users"]["carol"],
            serde_json::json!({"created": false})
        );
    }

    #[test]
    fn damaged_file_is_a_clear_error() {
        let d = tempfile::tempdir().expect("tempdir");
        fs::write(d.path().join(STATE_FILE), b"{\"lldap\": ").expect("write");
        let e = State::load(d.path()).expect_err("must fail");
        assert!(e.to_string().contains("damaged"), "{e}");
    }

    #[test]
    fn removal_time_of_a_marker_only_user_is_kept() {
        let mut s = State::default();
        s.record(&Effect::RemovedSince {
            target: TargetId::Lldap,
            user: "bob".into(),
            since: Some(7),
        });
        assert_eq!(s.lldap.users["bob"].removed_since, Some(7));
        s.record(&Effect::RemovedSince {
            target: TargetId::Lldap,
            user: "bob".into(),
            since: None,
        });
        assert_eq!(s.lldap.users["bob"].removed_since, None);
    }
}
