//! `paas-double`: runs a test double as a process (for the demo and shell-driven tests).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use paas_doubles::gitlab::{GitlabConfig, GitlabDouble};
use paas_doubles::jellyfin::{JellyfinConfig, JellyfinDouble};
use paas_doubles::lldap::{LldapConfig, LldapDouble};
use paas_doubles::mailcow::{MailcowConfig, MailcowDouble};
use paas_doubles::nextcloud::{NextcloudConfig, NextcloudDouble};
use paas_doubles::service::{write_port_file, Violation};
use paas_doubles::vaultwarden::{VaultwardenConfig, VaultwardenDouble};

#[derive(Parser)]
#[command(
    name = "paas-double",
    about = "Test doubles of the services paasd provisions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// LLDAP: GraphQL + simple login on --http, LDAP bind/password-modify on --ldap.
    Lldap {
        /// HTTP listen address (port 0: a free port).
        #[arg(long, default_value = "127.0.0.1:17170")]
        http: SocketAddr,
        /// LDAP listen address (port 0: a free port).
        #[arg(long, default_value = "127.0.0.1:3890")]
        ldap: SocketAddr,
        #[arg(long, default_value = "dc=example,dc=com")]
        base_dn: String,
        #[arg(long, default_value = "admin")]
        admin_username: String,
        /// File holding the admin password (one trailing newline is stripped).
        #[arg(long)]
        admin_password_file: PathBuf,
        /// Create N users seedNNNNN at start-up.
        #[arg(long, default_value_t = 0)]
        seed_users: usize,
        /// Write {"http": "...", "ldap": "...", "httpUrl": ..., "ldapUrl": ...} here once listening.
        #[arg(long)]
        port_file: Option<PathBuf>,
        /// The shared contracts directory (default: $PAAS_CONTRACTS or ../shared/contracts).
        #[arg(long)]
        contracts: Option<PathBuf>,
    },
    /// Nextcloud OCS provisioning API (Basic auth), health at /status.php.
    Nextcloud {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "admin")]
        admin_user: String,
        /// File holding the admin password (or an app password).
        #[arg(long)]
        admin_password_file: PathBuf,
    },
    /// GitLab REST v4 users API (PRIVATE-TOKEN), health at /-/readiness.
    Gitlab {
        #[command(flatten)]
        common: Common,
        /// File holding the admin's personal access token.
        #[arg(long)]
        token_file: PathBuf,
    },
    /// Jellyfin users API (Authorization: MediaBrowser Token="…"), health at /health.
    Jellyfin {
        #[command(flatten)]
        common: Common,
        /// File holding the API key.
        #[arg(long)]
        api_key_file: PathBuf,
        /// Honour X-Emby-Token and the other legacy credentials.
        #[arg(long)]
        legacy_authorization: bool,
    },
    /// Vaultwarden /admin API (VW_ADMIN cookie), health at /alive.
    Vaultwarden {
        #[command(flatten)]
        common: Common,
        /// File holding the ADMIN_TOKEN.
        #[arg(long)]
        admin_token_file: PathBuf,
        /// Admin session lifetime in minutes.
        #[arg(long, default_value_t = 20)]
        session_minutes: u64,
        /// ADMIN_RATELIMIT_SECONDS: one admin login per this many seconds and client IP.
        #[arg(long, default_value_t = 300)]
        admin_ratelimit_seconds: u64,
        /// ADMIN_RATELIMIT_MAX_BURST: admin logins a client IP may make at once.
        #[arg(long, default_value_t = 3)]
        admin_ratelimit_max_burst: u32,
    },
    /// Mailcow API v1 mailboxes (X-API-Key), health at GET /api/v1/get/status/version.
    Mailcow {
        #[command(flatten)]
        common: Common,
        /// File holding the read-write API key.
        #[arg(long)]
        api_key_file: PathBuf,
        /// File holding a read-only API key.
        #[arg(long)]
        read_only_key_file: Option<PathBuf>,
        /// Domains that exist (repeatable; default example.com).
        #[arg(long = "domain")]
        domains: Vec<String>,
    },
}

/// Options every service double takes.
#[derive(clap::Args)]
struct Common {
    /// Listen address (port 0: a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write {"addr", "port", "url"} here once listening.
    #[arg(long)]
    port_file: Option<PathBuf>,
    /// The shared contracts directory (default: $PAAS_CONTRACTS or ../shared/contracts).
    #[arg(long)]
    contracts: Option<PathBuf>,
}

/// Reads a secret file (one trailing newline stripped; empty is an error).
fn read_secret(path: &std::path::Path) -> anyhow::Result<String> {
    let raw = std::fs::read_to_string(path)
        .with_context(|| format!("reading the secret file {}", path.display()))?;
    let s = raw.strip_suffix('\n').unwrap_or(&raw).to_owned();
    if s.is_empty() {
        bail!("the secret file {} is empty", path.display());
    }
    Ok(s)
}

/// Announces the double, waits for SIGTERM/SIGINT and prints the recorded violations.
async fn run_until_signal(
    name: &str,
    addr: SocketAddr,
    port_file: Option<&std::path::Path>,
    violations: impl Fn() -> Vec<Violation>,
) -> anyhow::Result<()> {
    if let Some(path) = port_file {
        write_port_file(path, addr).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{name} double: http://{addr}");
    wait_for_signal().await?;
    let v = violations();
    if !v.is_empty() {
        eprintln!("{} contract violation(s) were recorded:", v.len());
        for x in &v {
            eprintln!("  {x}");
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Lldap {
            http,
            ldap,
            base_dn,
            admin_username,
            admin_password_file,
            seed_users,
            port_file,
            contracts,
        } => {
            let raw = std::fs::read_to_string(&admin_password_file).with_context(|| {
                format!(
                    "reading the admin password file {}",
                    admin_password_file.display()
                )
            })?;
            let password = raw.strip_suffix('\n').unwrap_or(&raw).to_owned();
            if password.is_empty() {
                bail!(
                    "the admin password file {} is empty",
                    admin_password_file.display()
                );
            }
            let config = LldapConfig {
                http_addr: http,
                ldap_addr: ldap,
                base_dn,
                admin_username,
                admin_password: password,
                contracts_dir: contracts,
                seed_users,
                ..LldapConfig::default()
            };
            let double = LldapDouble::start(config)
                .await
                .context("starting the LLDAP double")?;
            let ports = serde_json::json!({
                "http": double.http_addr().to_string(),
                "ldap": double.ldap_addr().to_string(),
                "httpPort": double.http_addr().port(),
                "ldapPort": double.ldap_addr().port(),
                "httpUrl": double.http_url(),
                "ldapUrl": double.ldap_url(),
            });
            if let Some(path) = &port_file {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, format!("{ports}\n"))
                    .with_context(|| format!("writing {}", tmp.display()))?;
                std::fs::rename(&tmp, path)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            println!(
                "lldap double: http {} ldap {}",
                double.http_url(),
                double.ldap_url()
            );
            wait_for_signal().await?;
            let violations = double.violations();
            if !violations.is_empty() {
                eprintln!("{} contract violation(s) were recorded:", violations.len());
                for v in &violations {
                    eprintln!("  {v}");
                }
            }
            double.stop().await;
        }
        Command::Nextcloud {
            common,
            admin_user,
            admin_password_file,
        } => {
            let config = NextcloudConfig {
                addr: common.listen,
                admin_user,
                admin_password: read_secret(&admin_password_file)?,
                contracts_dir: common.contracts.clone(),
                ..NextcloudConfig::default()
            };
            let d = NextcloudDouble::start(config)
                .await
                .context("starting the Nextcloud double")?;
            run_until_signal("nextcloud", d.addr(), common.port_file.as_deref(), || {
                d.violations()
            })
            .await?;
            d.stop().await;
        }
        Command::Gitlab { common, token_file } => {
            let config = GitlabConfig {
                addr: common.listen,
                admin_token: read_secret(&token_file)?,
                contracts_dir: common.contracts.clone(),
                ..GitlabConfig::default()
            };
            let d = GitlabDouble::start(config)
                .await
                .context("starting the GitLab double")?;
            run_until_signal("gitlab", d.addr(), common.port_file.as_deref(), || {
                d.violations()
            })
            .await?;
            d.stop().await;
        }
        Command::Jellyfin {
            common,
            api_key_file,
            legacy_authorization,
        } => {
            let config = JellyfinConfig {
                addr: common.listen,
                api_key: read_secret(&api_key_file)?,
                legacy_authorization,
                contracts_dir: common.contracts.clone(),
                ..JellyfinConfig::default()
            };
            let d = JellyfinDouble::start(config)
                .await
                .context("starting the Jellyfin double")?;
            run_until_signal("jellyfin", d.addr(), common.port_file.as_deref(), || {
                d.violations()
            })
            .await?;
            d.stop().await;
        }
        Command::Vaultwarden {
            common,
            admin_token_file,
            session_minutes,
            admin_ratelimit_seconds,
            admin_ratelimit_max_burst,
        } => {
            let config = VaultwardenConfig {
                addr: common.listen,
                admin_token: read_secret(&admin_token_file)?,
                session_lifetime: std::time::Duration::from_secs(session_minutes * 60),
                admin_ratelimit_seconds,
                admin_ratelimit_max_burst,
                contracts_dir: common.contracts.clone(),
                ..VaultwardenConfig::default()
            };
            let d = VaultwardenDouble::start(config)
                .await
                .context("starting the Vaultwarden double")?;
            run_until_signal("vaultwarden", d.addr(), common.port_file.as_deref(), || {
                d.violations()
            })
            .await?;
            d.stop().await;
        }
        Command::Mailcow {
            common,
            api_key_file,
            read_only_key_file,
            domains,
        } => {
            let mut config = MailcowConfig {
                addr: common.listen,
                api_key: read_secret(&api_key_file)?,
                read_only_key: read_only_key_file.as_deref().map(read_secret).transpose()?,
                contracts_dir: common.contracts.clone(),
                ..MailcowConfig::default()
            };
            if !domains.is_empty() {
                config.domains = domains;
            }
            let d = MailcowDouble::start(config)
                .await
                .context("starting the Mailcow double")?;
            run_until_signal("mailcow", d.addr(), common.port_file.as_deref(), || {
                d.violations()
            })
            .await?;
            d.stop().await;
        }
    }
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}
