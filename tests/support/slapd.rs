//! A private OpenLDAP `slapd` for integration tests: its own temporary directory, slapd.conf,
//! mdb database for `dc=example,dc=com` and loopback port, started in the foreground as a
//! child process and killed when the fixture is dropped. It never touches a system slapd
//! instance (the Debian package starts one of its own on install).
//!
//! The directory holds: the base entry, `ou=people`, `ou=groups`, an admin
//! `uid=admin,ou=people,dc=example,dc=com` that may write every `userPassword`, and two
//! inetOrgPerson users, alice and bob, with known passwords. Passwords set later through the
//! Password Modify extended operation are stored with slapd's default scheme, `{SSHA}`.
//!
//! slapd and the ldap-utils clients are required: when they are missing the fixture panics
//! with the `apt-get install` line that provides them, so a test never passes by skipping.
//!
//! Include it with `#[path = "support/slapd.rs"] mod slapd;`.

#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub const BASE_DN: &str = "dc=example,dc=com";
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_DN: &str = "uid=admin,ou=people,dc=example,dc=com";
pub const ADMIN_PASSWORD: &str = "admin-Secret-4711";
/// The users created at start, with their initial passwords.
pub const USERS: &[(&str, &str)] = &[("alice", "alice-initial-1"), ("bob", "bob-initial-2")];

/// The Debian packages providing the binaries this fixture runs.
pub const INSTALL_HINT: &str =
    "install them with `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y slapd ldap-utils`";

const SCHEMA_DIR: &str = "/etc/ldap/schema";
const SCHEMAS: &[&str] = &["core", "cosine", "inetorgperson", "nis"];
/// Where distributions keep slapd's dynamically loaded backends (Debian: /usr/lib/ldap).
const MODULE_DIRS: &[&str] = &[
    "/usr/lib/ldap",
    "/usr/lib/openldap",
    "/usr/libexec/openldap",
];
/// Directories searched after PATH: slapd lives in sbin, which a non-root PATH may lack.
const EXTRA_BIN_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

const START_TIMEOUT: Duration = Duration::from_secs(15);
const PORT_ATTEMPTS: u32 = 5;

/// A running (or stopped) private slapd.
pub struct Slapd {
    dir: tempfile::TempDir,
    slapd: PathBuf,
    port: u16,
    child: Option<Child>,
}

/// The user's DN in the fixture's directory.
pub fn user_dn(uid: &str) -> String {
    format!("uid={uid},ou=people,{BASE_DN}")
}

/// The initial password of a fixture user.
pub fn initial_password(uid: &str) -> &'static str {
    USERS
        .iter()
        .find(|(u, _)| *u == uid)
        .map(|(_, p)| *p)
        .unwrap_or_else(|| panic!("{uid} is not a fixture user"))
}

/// Finds an executable in PATH or the usual system directories, or panics with the install hint.
pub fn require_tool(name: &str) -> PathBuf {
    let path_dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(EXTRA_BIN_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed (looked in PATH and {EXTRA_BIN_DIRS:?}); the LDAP \
                 tests need a real OpenLDAP server and its clients: {INSTALL_HINT}"
            )
        })
}

impl Slapd {
    /// Creates the directory, loads it with slapadd and starts slapd on a free loopback port;
    /// returns once slapd has written its pid file and accepts connections.
    pub fn start() -> Slapd {
        let slapd = require_tool("slapd");
        let slapadd = require_tool("slapadd");
        for schema in SCHEMAS {
            let p = Path::new(SCHEMA_DIR).join(format!("{schema}.schema"));
            assert!(
                p.is_file(),
                "the OpenLDAP schema {} is missing: {INSTALL_HINT}",
                p.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("paasd-slapd-")
            .tempdir()
            .expect("create a temporary directory for slapd");
        fs::create_dir(dir.path().join("db")).expect("create the slapd database directory");
        fs::write(dir.path().join("slapd.conf"), config(dir.path())).expect("write slapd.conf");
        fs::write(dir.path().join("init.ldif"), init_ldif()).expect("write init.ldif");

        let out = Command::new(&slapadd)
            .arg("-f")
            .arg(dir.path().join("slapd.conf"))
            .arg("-l")
            .arg(dir.path().join("init.ldif"))
            .output()
            .expect("run slapadd");
        assert!(out.status.success(), "slapadd failed: {}", describe(&out));

        let mut s = Slapd {
            dir,
            slapd,
            port: 0,
            child: None,
        };
        s.launch_on_free_port();
        s
    }

    /// `ldap://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops slapd (SIGTERM, then SIGKILL after 5 s) and waits until it has exited and its
    /// port no longer accepts connections. The database stays for [`Slapd::restart`].
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid; it has not been reaped yet, so the pid is ours.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
            // A frozen slapd would keep the SIGTERM pending.
            libc::kill(pid, libc::SIGCONT);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "port {} still accepts connections after slapd exited",
                self.port
            );
            sleep(Duration::from_millis(20));
        }
    }

    /// Starts slapd again on the same port and database (after [`Slapd::stop`]).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "slapd is still running");
        if let Err(log) = self.launch(self.port) {
            panic!("slapd did not restart on port {}: {log}", self.port);
        }
    }

    /// Freezes slapd (SIGSTOP): the kernel still accepts TCP connections on its port, but
    /// nothing answers — a hung server. [`Slapd::thaw`] resumes it.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Resumes a frozen slapd (SIGCONT).
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: libc::c_int) {
        let child = self.child.as_ref().expect("slapd is not running");
        // SAFETY: kill(2) on our own, not yet reaped, child.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", child.id());
    }

    /// Runs `ldapwhoami` as `dn` with `password`: `Ok(authzid)` when the bind succeeds,
    /// `Err(output)` when it fails. An independent client, so a success proves the server
    /// itself accepts the password.
    pub fn ldapwhoami(&self, dn: &str, password: &str) -> Result<String, String> {
        let pwfile = self.password_file(password);
        let out = Command::new(require_tool("ldapwhoami"))
            .args([
                "-x",
                "-o",
                "nettimeout=5",
                "-H",
                &self.url(),
                "-D",
                dn,
                "-y",
            ])
            .arg(&pwfile)
            .stdin(Stdio::null())
            .output()
            .expect("run ldapwhoami");
        let _ = fs::remove_file(&pwfile);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(describe(&out))
        }
    }

    /// Runs `ldapsearch -LLL` (base scope) on `entry_dn` as the admin, returning the LDIF.
    pub fn ldapsearch_as_admin(&self, entry_dn: &str, attrs: &[&str]) -> String {
        let pwfile = self.password_file(ADMIN_PASSWORD);
        let out = Command::new(require_tool("ldapsearch"))
            .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-o", "nettimeout=5"])
            .args(["-H", &self.url(), "-D", ADMIN_DN, "-y"])
            .arg(&pwfile)
            .args(["-s", "base", "-b", entry_dn, "(objectClass=*)"])
            .args(attrs)
            .stdin(Stdio::null())
            .output()
            .expect("run ldapsearch");
        let _ = fs::remove_file(&pwfile);
        assert!(
            out.status.success(),
            "ldapsearch failed: {}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// slapd's own log (stderr; `-d 0` keeps it short).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// A 0600 file holding exactly `password` (no newline), for the `-y` option of ldap-utils.
    fn password_file(&self, password: &str) -> PathBuf {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.dir.path().join(format!("pw-{n}"));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .expect("create a password file");
        f.write_all(password.as_bytes())
            .expect("write a password file");
        path
    }

    fn launch_on_free_port(&mut self) {
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match self.launch(port) {
                Ok(()) => return,
                // Another process may have taken the port between our probe and slapd's bind.
                Err(log) => failures.push(format!("port {port}: {log}")),
            }
        }
        panic!(
            "slapd did not start after {PORT_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    /// Starts slapd on `port`; `Err(log)` if it exits or does not come up in time.
    fn launch(&mut self, port: u16) -> Result<(), String> {
        let pidfile = self.dir.path().join("slapd.pid");
        let _ = fs::remove_file(&pidfile);
        let log_path = self.dir.path().join("slapd.log");
        let log = fs::File::create(&log_path).expect("create slapd.log");
        let log_err = log.try_clone().expect("clone the slapd.log handle");
        let url = format!("ldap://127.0.0.1:{port}/");
        // `-d 0` keeps slapd in the foreground (a child we can kill) with no debug output.
        let mut child = Command::new(&self.slapd)
            .arg("-f")
            .arg(self.dir.path().join("slapd.conf"))
            .args(["-h", &url, "-d", "0"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.slapd.display()));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "slapd exited with {status}: {}",
                    read_log(&log_path)
                ));
            }
            // slapd writes its pid file after it has bound its listeners and started the
            // database, so a pid file with our child's pid plus an accepting port means this
            // slapd (not some other process that grabbed the port) is serving.
            let pid_ok = fs::read_to_string(&pidfile)
                .map(|s| s.trim() == child.id().to_string())
                .unwrap_or(false);
            if pid_ok && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                self.port = port;
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "slapd did not answer within {START_TIMEOUT:?}: {}",
                    read_log(&log_path)
                ));
            }
            sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    l.local_addr().expect("local address of a listener").port()
}

fn read_log(path: &Path) -> String {
    let mut s = String::new();
    let _ = fs::File::open(path).and_then(|mut f| f.read_to_string(&mut s));
    if s.trim().is_empty() {
        "(no output)".to_string()
    } else {
        s
    }
}

fn describe(out: &Output) -> String {
    format!(
        "{}; stdout: {}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

fn config(dir: &Path) -> String {
    let mut c = String::new();
    for schema in SCHEMAS {
        c.push_str(&format!("include \"{SCHEMA_DIR}/{schema}.schema\"\n"));
    }
    c.push_str(&format!(
        "pidfile \"{}\"\n",
        dir.join("slapd.pid").display()
    ));
    // Debian builds the backends as modules; other builds may link mdb in.
    if let Some(m) = MODULE_DIRS
        .iter()
        .find(|d| Path::new(d).join("back_mdb.so").exists())
    {
        c.push_str(&format!("modulepath \"{m}\"\nmoduleload back_mdb\n"));
    }
    c.push_str(&format!(
        "database mdb\n\
         maxsize 16777216\n\
         suffix \"{BASE_DN}\"\n\
         directory \"{}\"\n\
         access to attrs=userPassword\n  by dn.exact=\"{ADMIN_DN}\" write\n  by self write\n  by anonymous auth\n  by * none\n\
         access to *\n  by dn.exact=\"{ADMIN_DN}\" write\n  by * read\n",
        dir.join("db").display()
    ));
    c
}

fn init_ldif() -> String {
    let mut l = format!(
        "dn: {BASE_DN}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\n\
         dc: example\no: Example\n\n\
         dn: ou=people,{BASE_DN}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{BASE_DN}\nobjectClass: organizationalUnit\nou: groups\n\n"
    );
    let users = std::iter::once((ADMIN_USER, ADMIN_PASSWORD)).chain(USERS.iter().copied());
    for (uid, password) in users {
        l.push_str(&format!(
            "dn: {dn}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n\
             mail: {uid}@example.com\nuserPassword: {password}\n\n",
            dn = user_dn(uid)
        ));
    }
    l
}
