//! Secrets: reading password files safely, and keyed fingerprints of applied passwords.
//!
//! A [`Secret`] never prints its value (`Debug`/`Display` show `<redacted>`), so it cannot end
//! up in a log line or an error message by accident, and its bytes are zeroed when it is dropped.
//! What paasd remembers of an applied password is an HMAC-SHA256 of it under a random per-host
//! key kept 0600 in the state dir — never the password, never a plain hash that could be
//! brute-forced offline without the key.

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::core::id::ServiceKind;

/// A secret value. Its `Debug` and `Display` never show the value; its memory is zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
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

/// Whether `path` is inside the unit's systemd credentials directory (`$CREDENTIALS_DIRECTORY`,
/// or `/run/credentials/<unit>/`).
fn in_credentials_dir(path: &Path) -> bool {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let plain = path.components().all(|c| {
        !matches!(
            c,
            std::path::Component::ParentDir | std::path::Component::CurDir
        )
    });
    plain
        && (dir.is_some_and(|d| path.starts_with(&d))
            || (path.starts_with("/run/credentials/") && path.components().count() == 5))
}

/// Reads a secret file: refuses files readable by group or others (group-readable is accepted in
/// systemd's credentials directory, which only the unit can enter), strips one trailing
/// newline (`\n` or `\r\n`), refuses an empty result.
pub fn read_secret_file(path: &Path) -> Result<Secret, SecretError> {
    let read_err = |source| SecretError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(read_err)?;
    let mode = meta.permissions().mode() & 0o7777;
    // systemd hands credentials (LoadCredential=) over as 0440 in a directory only the unit
    // can enter; group-readable is fine there. Everywhere else: owner only.
    let allowed = if in_credentials_dir(path) { 0o040 } else { 0 };
    if mode & 0o077 & !allowed != 0 {
        return Err(SecretError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let bytes = Zeroizing::new(fs::read(path).map_err(read_err)?);
    let mut text = String::from_utf8(bytes.to_vec()).map_err(|_| SecretError::NotUtf8 {
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
    Ok(Secret::new(text))
}

/// The per-host key for password fingerprints.
#[derive(Clone)]
pub struct FingerprintKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintKey(<redacted>)")
    }
}

impl FingerprintKey {
    /// Loads `<state_dir>/fingerprint.key`, creating it (32 random bytes, mode 0600) if absent.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, SecretError> {
        let path = state_dir.join(KEY_FILE);
        if let Some(k) = Self::read(&path)? {
            return Ok(k);
        }
        // Absent or damaged: a new key (every password is verified once more).
        let mut k = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(k.as_mut()).map_err(|e| SecretError::Write {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        crate::atomic_file::write(&path, k.as_ref())
            .map_err(|source| SecretError::Write { path, source })?;
        Ok(FingerprintKey(k))
    }

    /// The key of `<state_dir>` for a run that writes nothing: the existing key, or a random one
    /// kept in memory only (every enforced password then shows as "to verify", which is the
    /// truth when paasd never recorded one).
    pub fn load_or_ephemeral(state_dir: &Path) -> Self {
        match Self::read(&state_dir.join(KEY_FILE)) {
            Ok(Some(k)) => k,
            _ => {
                let mut k = Zeroizing::new([0u8; 32]);
                // Without randomness the key is all zeroes: fingerprints then match nothing
                // recorded under the real key either, which is all this key is for.
                let _ = getrandom::getrandom(k.as_mut());
                FingerprintKey(k)
            }
        }
    }

    fn read(path: &Path) -> Result<Option<Self>, SecretError> {
        match fs::read(path) {
            Ok(bytes) if bytes.len() == 32 => {
                let bytes = Zeroizing::new(bytes);
                let mut k = Zeroizing::new([0u8; 32]);
                k.copy_from_slice(&bytes);
                Ok(Some(FingerprintKey(k)))
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SecretError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// A key for tests and benchmarks.
    pub fn from_bytes(k: [u8; 32]) -> Self {
        FingerprintKey(Zeroizing::new(k))
    }

    /// HMAC-SHA256(key, scope ‖ 0x00 ‖ secret), hex. `scope` binds it to one user and target.
    pub fn fingerprint(&self, scope: &str, secret: &Secret) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac.update(secret.expose().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The file of the fingerprint key in the state directory.
pub const KEY_FILE: &str = "fingerprint.key";

/// Length of generated passwords: 24 characters of `[A-Za-z0-9]` ≈ 143 bits.
pub const GENERATED_LEN: usize = 24;

/// A new random password from the OS CSPRNG: [`GENERATED_LEN`] characters of `[A-Za-z0-9]`,
/// with at least one upper-case letter, one lower-case letter and one digit (what services'
/// password policies ask for). The one password generator of paasd.
pub fn generate_password() -> Result<Secret, getrandom::Error> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    loop {
        let mut out = Zeroizing::new(String::with_capacity(GENERATED_LEN));
        let mut buf = Zeroizing::new([0u8; 64]);
        while out.len() < GENERATED_LEN {
            getrandom::getrandom(buf.as_mut())?;
            // Rejection sampling: 248 = 4 × 62 keeps the distribution uniform.
            for &b in buf.iter() {
                if b < 248 && out.len() < GENERATED_LEN {
                    out.push(ALPHABET[(b % 62) as usize] as char);
                }
            }
        }
        let has = |f: fn(&char) -> bool| out.chars().any(|c| f(&c));
        if has(char::is_ascii_uppercase)
            && has(char::is_ascii_lowercase)
            && has(char::is_ascii_digit)
        {
            return Ok(Secret(out));
        }
    }
}

/// The path of the generated password of `user` in `service`.
pub fn generated_path(state_dir: &Path, service: ServiceKind, user: &str) -> PathBuf {
    state_dir.join("generated").join(service.name()).join(user)
}

/// The generated password of `user` in `service`: read from `<state_dir>/generated/<service>/<user>`
/// (mode 0600, directories 0700); when absent and `create` is set, a new one is drawn from the
/// OS CSPRNG and stored first. `Ok(None)`: absent and not created (plan mode).
pub fn generated_password(
    state_dir: &Path,
    service: ServiceKind,
    user: &str,
    create: bool,
) -> Result<Option<Secret>, SecretError> {
    let path = generated_path(state_dir, service, user);
    match read_secret_file(&path) {
        Ok(s) => return Ok(Some(s)),
        Err(SecretError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if !create {
        return Ok(None);
    }
    let werr = |source| SecretError::Write {
        path: path.clone(),
        source,
    };
    let secret = generate_password().map_err(|e| werr(std::io::Error::other(e.to_string())))?;
    crate::atomic_file::write(&path, secret.expose().as_bytes()).map_err(werr)?;
    Ok(Some(secret))
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
    fn credentials_directory_may_be_group_readable_but_nothing_else() {
        assert!(in_credentials_dir(Path::new(
            "/run/credentials/paasd.service/lldap-admin-password"
        )));
        assert!(!in_credentials_dir(Path::new(
            "/run/credentials/paasd.service"
        )));
        assert!(!in_credentials_dir(Path::new("/run/secrets/alice")));
        assert!(!in_credentials_dir(Path::new(
            "/run/credentials/../secrets"
        )));
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
    fn generated_passwords_are_random_stored_0600_and_stable() {
        let d = tempfile::tempdir().expect("tempdir");
        assert!(
            generated_password(d.path(), ServiceKind::Nextcloud, "alice", false)
                .expect("read")
                .is_none()
        );
        let a = generated_password(d.path(), ServiceKind::Nextcloud, "alice", true)
            .expect("create")
            .expect("some");
        assert_eq!(a.expose().len(), GENERATED_LEN);
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(a.expose().chars().any(|c| c.is_ascii_uppercase()));
        assert!(a.expose().chars().any(|c| c.is_ascii_lowercase()));
        assert!(a.expose().chars().any(|c| c.is_ascii_digit()));
        let again = generated_password(d.path(), ServiceKind::Nextcloud, "alice", true)
            .expect("read")
            .expect("some");
        assert_eq!(a, again, "stored, not regenerated");
        let b = generated_password(d.path(), ServiceKind::Gitlab, "alice", true)
            .expect("create")
            .expect("some");
        assert_ne!(a, b, "unique per service");
        let p = generated_path(d.path(), ServiceKind::Nextcloud, "alice");
        assert_eq!(
            fs::metadata(&p).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        let dir_mode = fs::metadata(p.parent().expect("parent"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
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
