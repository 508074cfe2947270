//! Secrets: reading password files safely, and keyed fingerprints of applied passwords.
//!
//! A [`Secret`] never prints its value (`Debug`/`Display` show `<redacted>`), so it cannot end
//! up in a log line or an error message by accident. What paasd remembers of an applied
//! password is an HMAC-SHA256 of it under a random per-host key kept 0600 in the state dir —
//! never the password, never a plain hash that could be brute-forced offline without the key.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A secret value. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Best effort: overwrite the bytes before the allocation is freed.
        // SAFETY: writing zero bytes keeps the String valid UTF-8.
        unsafe {
            for b in self.0.as_bytes_mut() {
                std::ptr::write_volatile(b, 0);
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret file {path} is readable by group or others (mode {mode:04o}): run `chmod 600 {path}`")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("secret file {path} is empty")]
    Empty { path: PathBuf },
    #[error("secret file {path} is not valid UTF-8")]
    NotUtf8 { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads a secret file: refuses files readable by group or others, strips one trailing
/// newline (`\n` or `\r\n`), refuses an empty result.
pub fn read_secret_file(path: &Path) -> Result<Secret, SecretError> {
    let read_err = |source| SecretError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(read_err)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let bytes = fs::read(path).map_err(read_err)?;
    let mut text = String::from_utf8(bytes).map_err(|_| SecretError::NotUtf8 {
        path: path.to_path_buf(),
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(SecretError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Secret(text))
}

/// The per-host key for password fingerprints.
#[derive(Clone)]
pub struct FingerprintKey([u8; 32]);

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintKey(<redacted>)")
    }
}

impl FingerprintKey {
    /// Loads `<state_dir>/fingerprint.key`, creating it (32 random bytes, mode 0600) if absent.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, SecretError> {
        let path = state_dir.join("fingerprint.key");
        match fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(&bytes);
                return Ok(FingerprintKey(k));
            }
            Ok(_) => {} // damaged: replace it (every password is verified once more)
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(SecretError::Read { path, source }),
        }
        let mut k = [0u8; 32];
        getrandom::getrandom(&mut k).map_err(|e| SecretError::Write {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let write = |p: &Path| -> std::io::Result<()> {
            let tmp = p.with_extension("key.tmp");
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&k)?;
            f.sync_all()?;
            fs::rename(&tmp, p)
        };
        write(&path).map_err(|source| SecretError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(FingerprintKey(k))
    }

    /// A key for tests and benchmarks.
    pub fn from_bytes(k: [u8; 32]) -> Self {
        FingerprintKey(k)
    }

    /// HMAC-SHA256(key, scope ‖ 0x00 ‖ secret), hex. `scope` binds it to one user and target.
    pub fn fingerprint(&self, scope: &str, secret: &Secret) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac.update(secret.expose().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, content).expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    #[test]
    fn strips_one_trailing_newline() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = write(d.path(), "a", "hunter22\n\n", 0o600);
        assert_eq!(read_secret_file(&p).expect("read").expose(), "hunter22\n");
        let p = write(d.path(), "b", "hunter22\r\n", 0o400);
        assert_eq!(read_secret_file(&p).expect("read").expose(), "hunter22");
    }

    #[test]
    fn refuses_open_modes_and_empty_files() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = write(d.path(), "a", "pw", 0o640);
        let e = read_secret_file(&p).expect_err("group-readable must fail");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        let p = write(d.path(), "b", "pw", 0o604);
        assert!(matches!(
            read_secret_file(&p),
            Err(SecretError::TooOpen { .. })
        ));
        let p = write(d.path(), "c", "\n", 0o600);
        assert!(matches!(
            read_secret_file(&p),
            Err(SecretError::Empty { .. })
        ));
        let missing = d.path().join("missing");
        assert!(matches!(
            read_secret_file(&missing),
            Err(SecretError::Read { .. })
        ));
    }

    #[test]
    fn secret_never_formats_its_value() {
        let s = Secret::new("hunter22");
        assert!(!format!("{s:?} {s}").contains("hunter22"));
    }

    #[test]
    fn fingerprints_are_keyed_scoped_and_stable() {
        let d = tempfile::tempdir().expect("tempdir");
        let k1 = FingerprintKey::load_or_create(d.path()).expect("key");
        let k1again = FingerprintKey::load_or_create(d.path()).expect("key");
        let mode = fs::metadata(d.path().join("fingerprint.key"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let s = Secret::new("pw");
        let f = k1.fingerprint("lldap/alice", &s);
        assert_eq!(f, k1again.fingerprint("lldap/alice", &s));
        assert_ne!(f, k1.fingerprint("lldap/bob", &s));
        let other = FingerprintKey::from_bytes([7; 32]);
        assert_ne!(f, other.fingerprint("lldap/alice", &s));
        assert_eq!(f.len(), 64, "hex of a 32-byte MAC");
    }
}
