//! Watching the spec through its symlink chain.
//!
//! On NixOS `/etc/paas/spec.json` is a symlink to `/etc/static/paas/spec.json`, `/etc/static` is a
//! symlink into the store, and the activation script switches generations by atomically renaming
//! a new `/etc/static` link over the old one. Watching the file itself sees none of this, so the
//! watcher resolves the path component by component, remembers every directory entry the lookup
//! went through (`(directory, name)`), watches those directories with inotify and reacts only to
//! events naming one of those entries. After every change the chain is resolved again and the
//! watches follow it. The kernel wakes the daemon only for events; nothing polls.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use tokio::sync::mpsc;

/// At most this many symlinks are followed (as the kernel's ELOOP limit).
const MAX_LINKS: usize = 40;

/// Every directory entry looked up while resolving `path`, in order: `(directory, name)`.
/// Directories are symlink-free. The walk stops at the first missing entry (its directory is
/// still listed, so the entry's creation is noticed).
pub fn resolve_chain(path: &Path) -> io::Result<Vec<(PathBuf, OsString)>> {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    let mut out = Vec::new();
    let mut queue: VecDeque<OsString> = VecDeque::new();
    push_components(&mut queue, &path, false);
    let mut cur = PathBuf::from("/");
    let mut links = 0;
    while let Some(c) = queue.pop_front() {
        if c == "/" {
            cur = PathBuf::from("/");
            continue;
        }
        if c == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&c);
        out.push((cur.clone(), c));
        match std::fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::other(format!(
                        "too many levels of symbolic links resolving {}",
                        path.display()
                    )));
                }
                let target = std::fs::read_link(&next)?;
                push_components(&mut queue, &target, true);
            }
            Ok(_) => cur = next,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Put the components of `p` into `queue`, at its front when `front` (a symlink's target is
/// resolved before the rest of the original path).
fn push_components(queue: &mut VecDeque<OsString>, p: &Path, front: bool) {
    let mut comps: Vec<OsString> = Vec::new();
    for c in p.components() {
        match c {
            Component::RootDir => comps.push("/".into()),
            Component::ParentDir => comps.push("..".into()),
            Component::Normal(n) => comps.push(n.to_os_string()),
            Component::CurDir | Component::Prefix(_) => {}
        }
    }
    if front {
        for c in comps.into_iter().rev() {
            queue.push_front(c);
        }
    } else {
        queue.extend(comps);
    }
}

fn dir_mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::CLOSE_WRITE
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
}

struct Watched {
    dirs: HashMap<WatchDescriptor, PathBuf>,
    by_dir: HashMap<PathBuf, WatchDescriptor>,
    entries: HashSet<(PathBuf, OsString)>,
}

/// Start watching `path`; every debounced change is sent as `()` on the returned channel.
///
/// `debounce` is the quiet time that must follow the last relevant event before a change is
/// reported (bursts such as an activation touching several links become one report). The
/// watcher task ends when the receiver is dropped.
pub fn spawn(path: PathBuf, debounce: Duration) -> io::Result<mpsc::Receiver<()>> {
    let inotify = Inotify::init()?;
    let stream = inotify.into_event_stream([0u8; 4096])?;
    let mut watched = Watched {
        dirs: HashMap::new(),
        by_dir: HashMap::new(),
        entries: HashSet::new(),
    };
    rewatch(&stream.watches(), &mut watched, &path);
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut stream = stream;
        loop {
            // Wait for the first relevant event.
            let mut relevant = false;
            while !relevant {
                match stream.next().await {
                    Some(Ok(ev)) => relevant = is_relevant(&watched, &ev),
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "reading inotify events failed; spec watching stops");
                        return;
                    }
                    None => return,
                }
            }
            // Debounce: wait for `debounce` of quiet after the last relevant event (bounded, so
            // a storm cannot starve us). Events of other entries in the watched directories
            // (/etc, /tmp, the store) do not restart the quiet time.
            let deadline = tokio::time::Instant::now() + debounce * 10;
            let quiet = tokio::time::sleep(debounce);
            tokio::pin!(quiet);
            loop {
                tokio::select! {
                    ev = stream.next() => match ev {
                        Some(Ok(ev)) => {
                            if !is_relevant(&watched, &ev) {
                                continue;
                            }
                            quiet.as_mut().reset(tokio::time::Instant::now() + debounce);
                        }
                        Some(Err(e)) => {
                            tracing::error!(error = %e, "reading inotify events failed; spec watching stops");
                            return;
                        }
                        None => return,
                    },
                    _ = &mut quiet => break,
                }
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
            }
            rewatch(&stream.watches(), &mut watched, &path);
            tracing::debug!(spec = %path.display(), "spec path changed");
            // A full channel means a change is already queued: coalesce.
            match tx.try_send(()) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(())) => {}
                Err(mpsc::error::TrySendError::Closed(())) => return,
            }
        }
    });
    Ok(rx)
}

fn is_relevant(w: &Watched, ev: &inotify::Event<OsString>) -> bool {
    if ev.mask.contains(EventMask::Q_OVERFLOW) {
        return true;
    }
    let Some(dir) = w.dirs.get(&ev.wd) else {
        return false;
    };
    if ev
        .mask
        .intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::IGNORED)
    {
        return true;
    }
    match &ev.name {
        Some(name) => w.entries.contains(&(dir.clone(), name.clone())),
        None => false,
    }
}

/// Resolve the chain again and make the watches match it.
fn rewatch(watches: &inotify::Watches, w: &mut Watched, path: &Path) {
    let chain = match resolve_chain(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(spec = %path.display(), error = %e, "cannot resolve the spec path");
            // Keep watching what we watched; a later change may repair it.
            return;
        }
    };
    let wanted: HashSet<PathBuf> = chain.iter().map(|(d, _)| d.clone()).collect();
    let mut watches = watches.clone();
    // Drop watches no longer on the chain.
    let stale: Vec<PathBuf> = w
        .by_dir
        .keys()
        .filter(|d| !wanted.contains(*d))
        .cloned()
        .collect();
    for d in stale {
        if let Some(wd) = w.by_dir.remove(&d) {
            w.dirs.remove(&wd);
            // The directory may be gone already (the kernel then removed the watch itself).
            let _ = watches.remove(wd);
        }
    }
    for d in &wanted {
        // Re-adding an existing watch returns the same descriptor; a directory replaced by a new
        // one at the same path gets a new descriptor.
        match watches.add(d, dir_mask()) {
            Ok(wd) => {
                if let Some(old) = w.by_dir.insert(d.clone(), wd.clone()) {
                    if old != wd {
                        w.dirs.remove(&old);
                    }
                }
                w.dirs.insert(wd, d.clone());
            }
            Err(e) => {
                tracing::warn!(dir = %d.display(), error = %e, "cannot watch a directory of the spec path")
            }
        }
    }
    w.entries = chain.into_iter().collect();
}

/// The names in `chain` as "dir/name" strings (for logs and tests).
pub fn describe_chain(chain: &[(PathBuf, OsString)]) -> Vec<String> {
    chain
        .iter()
        .map(|(d, n)| d.join(AsRef::<OsStr>::as_ref(n)).display().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn resolves_a_three_level_chain() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("store/abc-etc/paas")).unwrap();
        std::fs::create_dir_all(root.join("etc/paas")).unwrap();
        std::fs::write(root.join("store/xyz-spec.json"), "{}").unwrap();
        symlink(
            root.join("store/xyz-spec.json"),
            root.join("store/abc-etc/paas/spec.json"),
        )
        .unwrap();
        symlink("../store/abc-etc", root.join("etc/static")).unwrap();
        symlink(
            root.join("etc/static/paas/spec.json"),
            root.join("etc/paas/spec.json"),
        )
        .unwrap();
        let chain = resolve_chain(&root.join("etc/paas/spec.json")).unwrap();
        let names = describe_chain(&chain);
        let r = root.display().to_string();
        for want in [
            format!("{r}/etc/paas/spec.json"),
            format!("{r}/etc/static"),
            format!("{r}/store/abc-etc"),
            format!("{r}/store/abc-etc/paas/spec.json"),
            format!("{r}/store/xyz-spec.json"),
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        // The directories are symlink-free.
        for (d, _) in &chain {
            assert_eq!(&d.canonicalize().unwrap(), d);
        }
    }

    #[test]
    fn a_missing_file_stops_the_walk_at_its_directory() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        let chain = resolve_chain(&root.join("nope/spec.json")).unwrap();
        let last = chain.last().unwrap();
        assert_eq!(last.0, root);
        assert_eq!(last.1, "nope");
    }

    #[test]
    fn a_symlink_loop_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        symlink(root.join("b"), root.join("a")).unwrap();
        symlink(root.join("a"), root.join("b")).unwrap();
        assert!(resolve_chain(&root.join("a")).is_err());
    }
}
