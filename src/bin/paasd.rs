//! paasd: keeps LLDAP (and the configured services) reconciled with /etc/paas/spec.json.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use paasd::daemon::{self, dbus::Bus, logging::LogFormat, reconciler::Engine};

#[derive(Debug, Parser)]
#[command(
    name = "paasd",
    version,
    about = "Declarative user accounts: the reconciling daemon"
)]
struct Args {
    /// The spec (symlinks are followed and watched).
    #[arg(long, default_value = "/etc/paas/spec.json")]
    spec: PathBuf,
    /// paasd's state (state.json, the generation counter).
    #[arg(long, default_value = "/var/lib/paasd")]
    state_dir: PathBuf,
    /// Seconds between drift-repair runs (±10 % jitter).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    resync_interval: u64,
    /// Milliseconds of quiet after a change of the spec path before it is read.
    #[arg(long, default_value_t = 200)]
    debounce_ms: u64,
    /// Where logs go: auto = the journal under systemd, readable text on a terminal.
    #[arg(long, value_enum, default_value_t = LogFormat::Auto)]
    log_format: LogFormat,
    /// The D-Bus bus: system, session, none, or a D-Bus address (tests).
    #[arg(long, default_value = "system")]
    bus: Bus,
    /// On the periodic resync, do not verify enforced passwords with an LDAP bind (by default
    /// the resync repairs passwords changed in LLDAP behind paasd's back).
    #[arg(long)]
    no_verify_passwords: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = daemon::logging::init(args.log_format, "paasd") {
        eprintln!("paasd: cannot set up logging: {e:#}");
        return ExitCode::FAILURE;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let cfg = daemon::Config {
        spec_path: args.spec,
        state_dir: args.state_dir,
        resync: Duration::from_secs(args.resync_interval),
        debounce: Duration::from_millis(args.debounce_ms),
        bus: args.bus,
        verify_passwords: !args.no_verify_passwords,
    };
    let result = rt.block_on(async move {
        let signals = daemon::Signals::from_os()?;
        tracing::info!(version = env!("CARGO_PKG_VERSION"), spec = %cfg.spec_path.display(),
            state_dir = %cfg.state_dir.display(), "paasd starting");
        daemon::run(Arc::new(Engine), cfg, signals).await
    });
    match result {
        Ok(()) => {
            tracing::info!("paasd stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("paasd failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
