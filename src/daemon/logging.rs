//! Logging: the journal with structured fields under systemd, readable text otherwise.
//!
//! With the journal, event fields keep their names upper-cased and without prefix, so the core's
//! `paas_user`, `paas_target`, … become `PAAS_USER`, `PAAS_TARGET`, … and
//! `journalctl -u paasd PAAS_USER=alice` shows alice's history.

use std::io::IsTerminal as _;
use std::path::Path;

use anyhow::Context as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// The journal when running under systemd with a journal, else text on stderr.
    Auto,
    Journald,
    Text,
    Json,
}

/// Which format `auto` means here: the journal when stderr is already connected to it
/// (`$JOURNAL_STREAM`, set by systemd) or when the journal socket exists and stderr is not a
/// terminal; readable text otherwise (an admin running `paasd` by hand sees the logs).
pub fn resolve(format: LogFormat) -> LogFormat {
    match format {
        LogFormat::Auto => {
            let socket = Path::new(JOURNAL_SOCKET).exists();
            let stream = std::env::var_os("JOURNAL_STREAM").is_some();
            if socket && (stream || !std::io::stderr().is_terminal()) {
                LogFormat::Journald
            } else {
                LogFormat::Text
            }
        }
        f => f,
    }
}

/// Install the global subscriber. `RUST_LOG` overrides the default level (`info`).
pub fn init(format: LogFormat, identifier: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    match resolve(format) {
        LogFormat::Journald => {
            let layer = tracing_journald::layer()
                .context("connecting to the journal")?
                .with_field_prefix(None)
                .with_syslog_identifier(identifier.to_string());
            registry.with(layer).try_init()?;
        }
        LogFormat::Json => {
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .flatten_event(true)
                        .with_writer(std::io::stderr),
                )
                .try_init()?;
        }
        LogFormat::Text | LogFormat::Auto => {
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_ansi(std::io::stderr().is_terminal()),
                )
                .try_init()?;
        }
    }
    Ok(())
}
