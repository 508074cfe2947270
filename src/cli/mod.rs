//! `paasctl`: plan, apply and validate a spec from the command line; status, reconcile and the
//! daemon's plan through its D-Bus API ([`client`]).

pub mod client;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::core::id::ServiceKind;
use crate::core::spec::{load_spec, SpecError};
use crate::engine::report::TargetState;
use crate::reconcile::{self, ObjectReport, Options, Report};
use crate::session::Sessions;
use client as ctl;

#[derive(Parser)]
#[command(
    name = "paasctl",
    version,
    about = "Plan, apply and inspect paasd's declarative accounts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what apply would change (+ create, ~ update, - delete), without changing anything.
    Plan {
        /// The spec file; without it the running paasd computes the plan of its spec (D-Bus).
        #[arg(long)]
        spec: Option<PathBuf>,
        #[command(flatten)]
        run: RunArgs,
        /// Exit 2 when changes are pending (0: none, 1: error or a target not planned).
        #[arg(long)]
        detailed_exitcode: bool,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Bring LLDAP and the services to the spec.
    Apply {
        #[arg(long)]
        spec: PathBuf,
        #[command(flatten)]
        run: RunArgs,
        /// Print one JSON object (created, updated, deleted, unchanged, failed, objects, …).
        #[arg(long)]
        json: bool,
        /// Users' changes in flight at once, per target.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// The running paasd's view: users × targets with ✓ / ✗ / … and the reasons (D-Bus).
    Status(ctl::StatusArgs),
    /// Show generated passwords (root only): `paasctl credentials show USER [SERVICE]`.
    Credentials {
        #[command(subcommand)]
        command: CredentialsCommand,
    },
    /// Ask the running paasd to reconcile now and wait for the result (D-Bus).
    Reconcile(ctl::ReconcileArgs),
    /// Check a spec file; every problem is printed with its JSON path.
    Validate {
        #[arg(long)]
        spec: PathBuf,
    },
}

/// What `plan` and `apply` share.
#[derive(clap::Args)]
struct RunArgs {
    /// paasd's state directory.
    #[arg(long, default_value = "/var/lib/paasd")]
    state_dir: PathBuf,
    /// Verify every enforced password by an LDAP bind, even if unchanged.
    #[arg(long)]
    verify_passwords: bool,
    /// Apply (or, with plan, show) removals even beyond removalGuard.maxPercent.
    #[arg(long)]
    force: bool,
}

impl RunArgs {
    /// The run's options; login sessions are kept in the state directory, so that the next
    /// `paasctl` run reuses them (Vaultwarden limits admin logins).
    fn options(&self) -> Options {
        let mut opts = Options::new(&self.state_dir);
        opts.verify_passwords = self.verify_passwords;
        opts.force = self.force;
        opts.sessions = Sessions::persistent(&self.state_dir);
        opts
    }
}

#[derive(Subcommand)]
enum CredentialsCommand {
    /// Print the generated password of USER in SERVICE (or in every service).
    Show {
        user: String,
        service: Option<String>,
        #[arg(long, default_value = "/var/lib/paasd")]
        state_dir: PathBuf,
    },
}

/// `paasctl plan`'s exit code: 1 when a target could not be planned (the plan is incomplete;
/// each reason is printed), else 2 when `changes` (with `--detailed-exitcode`), else 0.
pub fn plan_exit_code(unplanned: impl Iterator<Item = String>, changes: bool) -> u8 {
    let unplanned: Vec<String> = unplanned.collect();
    if !unplanned.is_empty() {
        eprintln!("error: the plan is incomplete, these targets could not be planned:");
        for u in &unplanned {
            eprintln!("  {u}");
        }
        return 1;
    }
    if changes {
        2
    } else {
        0
    }
}

/// Prints generated passwords from the 0600 store; refused unless run as root.
fn credentials_show(
    user: &str,
    service: Option<&str>,
    state_dir: &std::path::Path,
) -> anyhow::Result<u8> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!("generated passwords are shown to root only (run with sudo)");
    }
    let services: Vec<ServiceKind> = match service {
        Some(s) => vec![s.parse()?],
        None => ServiceKind::ALL.to_vec(),
    };
    let mut found = 0;
    for s in services {
        match crate::secret::generated_password(state_dir, s, user, false) {
            Ok(Some(pw)) => {
                println!("{s}\t{}", pw.expose());
                found += 1;
            }
            Ok(None) => {}
            Err(e) => eprintln!("{s}: {e}"),
        }
    }
    if found == 0 {
        anyhow::bail!(
            "no generated password for {user} in {}",
            state_dir.display()
        );
    }
    Ok(0)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PAASCTL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn load(spec: &std::path::Path) -> anyhow::Result<crate::core::spec::Spec> {
    let s = load_spec(spec).map_err(|e| match e {
        SpecError::Invalid(_) => anyhow::anyhow!("spec {}: {e}", spec.display()),
        other => anyhow::Error::new(other),
    })?;
    for w in &s.warnings {
        eprintln!("warning: {w}");
    }
    Ok(s)
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Status(args) => ctl::status(&args).await,
        Command::Credentials {
            command:
                CredentialsCommand::Show {
                    user,
                    service,
                    state_dir,
                },
        } => credentials_show(&user, service.as_deref(), &state_dir),
        Command::Reconcile(args) => ctl::reconcile(&args).await,
        Command::Plan {
            spec: None,
            json,
            detailed_exitcode,
            ..
        } => ctl::plan(None, json, detailed_exitcode).await,
        Command::Validate { spec } => {
            let s = load(&spec)?;
            println!(
                "spec {} is valid: {} users, {} groups",
                spec.display(),
                s.users.len(),
                s.groups.len()
            );
            Ok(0)
        }
        Command::Plan {
            spec: Some(spec),
            run,
            detailed_exitcode,
            json,
        } => {
            let s = load(&spec)?;
            let plan = reconcile::plan(&s, &run.options()).await;
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print!("{plan}");
            }
            Ok(plan_exit_code(
                plan.targets.iter().filter(|t| !t.ok).map(|t| {
                    format!(
                        "{}: {}",
                        t.target,
                        t.error.as_deref().unwrap_or("not planned")
                    )
                }),
                detailed_exitcode && !plan.is_empty(),
            ))
        }
        Command::Apply {
            spec,
            run,
            json,
            concurrency,
        } => {
            let s = load(&spec)?;
            let mut opts = run.options();
            opts.concurrency = concurrency;
            let report = reconcile::apply(&s, &opts).await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&report);
            }
            Ok(if report.has_failures() { 1 } else { 0 })
        }
    }
}

/// The failures of an apply, then its summary. A target that could not be used at all is one
/// line (with how many of its objects waited), not one line per object.
fn print_report(report: &Report) {
    for t in &report.targets {
        if t.state != TargetState::Applied {
            let n = report
                .objects
                .iter()
                .filter(|o| o.target == t.target)
                .count();
            eprintln!(
                "✗ {}: {} ({n} objects not reconciled)",
                t.target,
                t.error.as_deref().unwrap_or("failed")
            );
        } else if let Some(e) = &t.error {
            eprintln!("✗ {}: {e}", t.target);
        }
    }
    let applied = |o: &ObjectReport| {
        report
            .target(o.target)
            .is_some_and(|t| t.state == TargetState::Applied)
    };
    for o in report.objects.iter().filter(|o| applied(o)) {
        if let Some(e) = &o.error {
            eprintln!("✗ {} {} {}: {e}", o.target, o.kind, o.name);
        }
    }
    for b in &report.blocked {
        eprintln!("! {b}");
    }
    for t in &report.targets {
        for n in &t.notes {
            eprintln!("· {}: {n}", t.target);
        }
    }
    println!("{}", report.summary_line());
}

/// `paasctl`'s `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
