//! The one way paasd writes a file it keeps: atomically and owner-only.
//!
//! The bytes go to `<name>.tmp.<pid>` (mode 0600) in the same directory, are fsynced, renamed
//! over the target, and the directory is fsynced: a crash leaves the old file or the new one,
//! never half of either. A temp file left by a writer that was killed (of any file) is removed by
//! the next write into that directory (its pid no longer exists).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically with mode 0600, creating its directory (mode 0700) if
/// needed. When root writes into a directory owned by another user (an admin running `paasctl
/// apply` beside the daemon), the file is given to that owner so the daemon can still read it.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_dir(&dir)?;
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        ));
    };
    remove_stale_temp_files(&dir);
    let tmp = dir.join(format!("{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        let dir_meta = fs::metadata(&dir)?;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 && dir_meta.uid() != 0 {
            std::os::unix::fs::fchown(&f, Some(dir_meta.uid()), Some(dir_meta.gid()))?;
        }
        drop(f);
        fs::rename(&tmp, path)?;
        fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` and its missing parents, owner-only.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Removes the `<file>.tmp.<pid>` files in `dir` whose writer is gone. A live writer's file is
/// left alone.
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let file = e.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|n| n.rsplit_once(".tmp."))
            .and_then(|(_, p)| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let alive = pid == std::process::id() as i32
            || unsafe { libc::kill(pid, 0) } == 0
            || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let _ = fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_owner_only_replaces_and_leaves_no_temp_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("sub/state.json");
        write(&p, b"one").expect("write");
        write(&p, b"two").expect("write again");
        assert_eq!(fs::read(&p).expect("read"), b"two");
        let mode = fs::metadata(&p).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(d.path().join("sub"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let names: Vec<_> = fs::read_dir(d.path().join("sub"))
            .expect("readdir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["state.json"]);
    }

    #[test]
    fn temp_files_of_dead_writers_are_removed() {
        let d = tempfile::tempdir().expect("tempdir");
        // No process has pid 2^22 + 1 (above the kernel's pid_max).
        let stale = d.path().join("state.json.tmp.4194305");
        fs::write(&stale, b"half").expect("write");
        let other = d.path().join("generation.tmp.4194305");
        fs::write(&other, b"half").expect("write");
        let live = d
            .path()
            .join(format!("generation.tmp.{}", std::process::id()));
        fs::write(&live, b"being written").expect("write");
        let unrelated = d.path().join("notes.tmp");
        fs::write(&unrelated, b"not a temp file of ours").expect("write");
        write(&d.path().join("state.json"), b"x").expect("write");
        assert!(!stale.exists(), "stale temp file removed");
        assert!(!other.exists(), "another file's stale temp file too");
        assert!(live.exists(), "a live writer's temp file is left alone");
        assert!(unrelated.exists());
    }
}
