//! `paas-double`: runs a test double as a process (for the demo and shell-driven tests).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use paas_doubles::lldap::{LldapConfig, LldapDouble};

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
