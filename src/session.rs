//! Login sessions that outlive a run.
//!
//! Some services limit how often a client may log in — Vaultwarden allows 3 admin logins per
//! address at once and then one per 5 minutes (`ADMIN_RATELIMIT_*`) — so a session a target got
//! is kept and reused by later runs until shortly before it expires. [`Sessions`] is one store of
//! such sessions, handed to the targets of every run:
//!
//! - the daemon keeps one store in memory for as long as it runs;
//! - `paasctl plan|apply` keeps theirs in `<state_dir>/sessions.json` ([`SESSIONS_FILE`], mode
//!   0600, written with the one atomic writer), so one `paasctl` run reuses the session of the
//!   one before.
//!
//! A session is a secret: in memory it is a [`Secret`] (zeroed on drop, never printed), it is
//! never logged, and on disk it is only in that file. Each session is kept under a *scope* that
//! names the target and its URL (`vaultwarden https://vault.example.org`), so it is only ever
//! sent to the server that issued it. Expired sessions are dropped when the file is read and
//! whenever it is written.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::clock::unix_now;
use crate::secret::Secret;

/// The file of the sessions in the state directory.
pub const SESSIONS_FILE: &str = "sessions.json";

/// The version of [`SESSIONS_FILE`]'s layout.
const VERSION: u32 = 1;

/// A store of login sessions (cheap to clone: clones share the store).
#[derive(Clone, Default)]
pub struct Sessions {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Where the sessions are kept between processes (`None`: in memory only).
    file: Option<PathBuf>,
    map: Mutex<BTreeMap<String, Stored>>,
}

struct Stored {
    value: Secret,
    /// Unix time from which the session is no longer used.
    expires_at: u64,
}

/// `sessions.json` as written.
#[derive(Serialize)]
struct FileOut<'a> {
    version: u32,
    sessions: BTreeMap<&'a str, EntryOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EntryOut<'a> {
    value: &'a str,
    expires_at: u64,
}

/// `sessions.json` as read.
#[derive(Deserialize)]
struct FileIn {
    version: u32,
    #[serde(default)]
    sessions: BTreeMap<String, EntryIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryIn {
    value: String,
    expires_at: u64,
}

/// The scopes only: a session's value is never shown.
impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scopes: Vec<String> = self.lock().keys().cloned().collect();
        f.debug_struct("Sessions")
            .field("file", &self.inner.file)
            .field("scopes", &scopes)
            .finish()
    }
}

impl Sessions {
    /// A store kept in memory only (the daemon's, for as long as it runs).
    pub fn in_memory() -> Self {
        Sessions::default()
    }

    /// The store of `<state_dir>/sessions.json`: its unexpired sessions are read now, and every
    /// change is written back. A missing, unreadable or damaged file is an empty store; so is a
    /// file readable by group or others (it is not trusted, and the next write replaces it with
    /// an owner-only one).
    pub fn persistent(state_dir: &Path) -> Self {
        let path = state_dir.join(SESSIONS_FILE);
        let map = read_file(&path, unix_now());
        Sessions {
            inner: Arc::new(Inner {
                file: Some(path),
                map: Mutex::new(map),
            }),
        }
    }

    /// The file the sessions are kept in, if any.
    pub fn file(&self) -> Option<&Path> {
        self.inner.file.as_deref()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Stored>> {
        match self.inner.map.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The session of `scope`, unless it has expired.
    pub fn get(&self, scope: &str) -> Option<Secret> {
        self.get_at(scope, unix_now())
    }

    /// The session of `scope` if it is still usable at `now` (Unix time).
    pub fn get_at(&self, scope: &str, now: u64) -> Option<Secret> {
        self.lock()
            .get(scope)
            .filter(|s| now < s.expires_at)
            .map(|s| s.value.clone())
    }

    /// Until when the session of `scope` is used (Unix time), if there is one.
    pub fn expires_at(&self, scope: &str) -> Option<u64> {
        self.lock().get(scope).map(|s| s.expires_at)
    }

    /// Keeps `value` as the session of `scope` until `expires_at` (Unix time).
    pub fn put(&self, scope: &str, value: Secret, expires_at: u64) {
        let mut map = self.lock();
        map.insert(scope.to_string(), Stored { value, expires_at });
        self.write(&mut map);
    }

    /// Drops the session of `scope` if it is still `value` (the server rejected it; a session
    /// another caller got in the meantime is kept).
    pub fn forget(&self, scope: &str, value: &Secret) {
        let mut map = self.lock();
        if map.get(scope).is_some_and(|s| &s.value == value) {
            map.remove(scope);
            self.write(&mut map);
        }
    }

    /// Writes the unexpired sessions to the file (if the store has one). A failure is logged
    /// (without any session) and the run goes on: it only costs the next run a login.
    fn write(&self, map: &mut BTreeMap<String, Stored>) {
        let Some(path) = &self.inner.file else {
            return;
        };
        let now = unix_now();
        map.retain(|_, s| now < s.expires_at);
        let file = FileOut {
            version: VERSION,
            sessions: map
                .iter()
                .map(|(scope, s)| {
                    (
                        scope.as_str(),
                        EntryOut {
                            value: s.value.expose(),
                            expires_at: s.expires_at,
                        },
                    )
                })
                .collect(),
        };
        // Room for everything (escapes included) up front, so no copy of a session is left
        // behind in a reallocated buffer; the buffer is zeroed when dropped.
        let room = 64
            + map
                .iter()
                .map(|(k, s)| 2 * (k.len() + s.value.expose().len()) + 64)
                .sum::<usize>();
        let mut bytes = Zeroizing::new(Vec::with_capacity(room));
        if let Err(e) = serde_json::to_writer(&mut *bytes, &file) {
            tracing::warn!(file = %path.display(), error = %e, "cannot encode the sessions");
            return;
        }
        bytes.push(b'\n');
        if let Err(e) = crate::atomic_file::write(path, &bytes) {
            tracing::warn!(file = %path.display(), error = %e,
                "cannot keep the login sessions: the next run logs in again");
        }
    }
}

/// The unexpired sessions of `path` at `now`; nothing when the file is missing, unreadable,
/// damaged or not owner-only.
fn read_file(path: &Path, now: u64) -> BTreeMap<String, Stored> {
    let mut map = BTreeMap::new();
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return map,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read the sessions file; logging in again");
            return map;
        }
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        tracing::warn!(file = %path.display(), mode = format!("{mode:04o}"),
            "the sessions file is readable by group or others: not used (it is rewritten owner-only)");
        return map;
    }
    let bytes = match fs::read(path) {
        Ok(b) => Zeroizing::new(b),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read the sessions file; logging in again");
            return map;
        }
    };
    match serde_json::from_slice::<FileIn>(&bytes) {
        Ok(f) if f.version == VERSION => {
            for (scope, e) in f.sessions {
                let value = Secret::new(e.value);
                if now < e.expires_at {
                    map.insert(
                        scope,
                        Stored {
                            value,
                            expires_at: e.expires_at,
                        },
                    );
                }
            }
        }
        Ok(f) => {
            tracing::warn!(file = %path.display(), version = f.version, "unknown sessions file version; logging in again");
        }
        Err(e) => {
            // serde_json's message names a position, never the content.
            tracing::warn!(file = %path.display(), error = %e, "damaged sessions file; logging in again");
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPE: &str = "vaultwarden http://v";

    #[test]
    fn a_session_is_used_until_it_expires() {
        let s = Sessions::in_memory();
        assert!(s.get(SCOPE).is_none());
        let now = unix_now();
        s.put(SCOPE, Secret::new("VW_ADMIN=a.b.c"), now + 100);
        assert_eq!(
            s.get_at(SCOPE, now).map(|v| v.expose().to_string()),
            Some("VW_ADMIN=a.b.c".to_string())
        );
        assert!(s.get_at(SCOPE, now + 99).is_some());
        assert!(s.get_at(SCOPE, now + 100).is_none(), "expired: not used");
        assert!(s.get_at("vaultwarden http://other", now).is_none());
        // A rejected session is forgotten — unless another one replaced it meanwhile.
        s.forget(SCOPE, &Secret::new("VW_ADMIN=old"));
        assert!(s.get_at(SCOPE, now).is_some());
        s.forget(SCOPE, &Secret::new("VW_ADMIN=a.b.c"));
        assert!(s.get_at(SCOPE, now).is_none());
        // Clones share the store; Debug shows scopes, never values.
        let c = s.clone();
        c.put(SCOPE, Secret::new("VW_ADMIN=zz-secret"), now + 100);
        assert!(s.get(SCOPE).is_some());
        let dbg = format!("{s:?}");
        assert!(dbg.contains(SCOPE) && !dbg.contains("zz-secret"), "{dbg}");
    }

    #[test]
    fn the_file_is_owner_only_survives_processes_and_drops_expired_sessions() {
        let d = tempfile::tempdir().expect("tempdir");
        let dir = d.path().join("state");
        let now = unix_now();
        let s = Sessions::persistent(&dir);
        s.put(SCOPE, Secret::new("VW_ADMIN=kept"), now + 600);
        s.put("other http://x", Secret::new("gone"), now + 1);
        let path = dir.join(SESSIONS_FILE);
        let mode = fs::metadata(&path).expect("written").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).expect("read")).expect("json");
        assert_eq!(v["version"], 1);
        assert_eq!(v["sessions"][SCOPE]["value"], "VW_ADMIN=kept");
        assert_eq!(v["sessions"][SCOPE]["expiresAt"], now + 600);
        // Another process reads it; an entry that expired meanwhile is not loaded.
        let later = read_file(&path, now + 2);
        assert_eq!(later.len(), 1);
        let again = Sessions::persistent(&dir);
        assert_eq!(
            again.get(SCOPE).map(|v| v.expose().to_string()).as_deref(),
            Some("VW_ADMIN=kept")
        );
        assert_eq!(again.file(), Some(path.as_path()));
        // A file others can read is not trusted; a damaged one is an empty store.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(Sessions::persistent(&dir).get(SCOPE).is_none());
        fs::write(&path, b"{\"version\": 1, \"sessions\": {").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        let damaged = Sessions::persistent(&dir);
        assert!(damaged.get(SCOPE).is_none());
        // The next write replaces it, owner-only.
        damaged.put(SCOPE, Secret::new("VW_ADMIN=new"), now + 600);
        assert!(Sessions::persistent(&dir).get(SCOPE).is_some());
        // In memory: no file.
        assert!(Sessions::in_memory().file().is_none());
    }
}
