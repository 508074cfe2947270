//! The client side of the D-Bus API, for `paasctl status`, `paasctl reconcile` and
//! `paasctl plan` without `--spec`.

use std::collections::BTreeSet;

use anyhow::{anyhow, Context as _};
use serde_json::Value;

use crate::daemon::dbus::{builder, Bus, NAME};

#[zbus::proxy(
    interface = "org.paasd.Paasd1",
    default_service = "org.paasd.Paasd1",
    default_path = "/org/paasd/Paasd1",
    gen_blocking = false
)]
pub trait Paasd1 {
    fn reconcile(&self) -> zbus::Result<String>;
    fn plan(&self) -> zbus::Result<String>;
    fn reload(&self) -> zbus::Result<String>;
    fn status(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn generation(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn last_result(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn spec_error(&self) -> zbus::Result<String>;
    #[zbus(signal)]
    fn reconcile_finished(&self, summary: String) -> zbus::Result<()>;
}

/// Which bus paasctl talks to: `--bus`, else `$PAASD_BUS`, else the system bus.
pub fn bus_from(flag: Option<&Bus>) -> Bus {
    if let Some(b) = flag {
        return b.clone();
    }
    match std::env::var("PAASD_BUS") {
        Ok(s) if !s.is_empty() => s.parse().unwrap_or(Bus::System),
        _ => Bus::System,
    }
}

/// `paasctl status`
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Print the daemon's JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// The bus: system (default; or $PAASD_BUS), session, or a D-Bus address.
    #[arg(long)]
    pub bus: Option<Bus>,
}

/// `paasctl reconcile`
#[derive(Debug, Clone, clap::Args)]
pub struct ReconcileArgs {
    /// Print the daemon's JSON report instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// The bus: system (default; or $PAASD_BUS), session, or a D-Bus address.
    #[arg(long)]
    pub bus: Option<Bus>,
}

async fn connect(bus: &Bus) -> anyhow::Result<Paasd1Proxy<'static>> {
    let b = builder(bus)
        .with_context(|| format!("cannot connect to the {bus}"))?
        .ok_or_else(|| anyhow!("no bus configured"))?;
    let conn = b
        .build()
        .await
        .with_context(|| format!("cannot connect to the {bus}"))?;
    Paasd1Proxy::new(&conn).await.map_err(|e| explain(e, bus))
}

/// Turn bus errors into messages an admin can act on.
pub fn explain(e: zbus::Error, bus: &Bus) -> anyhow::Error {
    let name = match &e {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str().to_string()),
        zbus::Error::FDO(fdo) => Some(fdo_name(fdo)),
        _ => None,
    };
    match name.as_deref() {
        Some("org.freedesktop.DBus.Error.ServiceUnknown")
        | Some("org.freedesktop.DBus.Error.NameHasNoOwner") => anyhow!(
            "paasd is not running: nothing owns {NAME} on the {bus} (see `systemctl status paasd`)"
        ),
        Some("org.freedesktop.DBus.Error.AccessDenied") => anyhow!(
            "access denied by the D-Bus policy of {NAME}: only root and members of the paasd \
             admin group may use it (group paas-admin by default; on NixOS services.paas.adminGroup)"
        ),
        _ => match e {
            zbus::Error::MethodError(_, Some(msg), _) => anyhow!("paasd: {msg}"),
            other => anyhow!("talking to paasd on the {bus}: {other}"),
        },
    }
}

fn fdo_name(e: &zbus::fdo::Error) -> String {
    use zbus::fdo::Error as F;
    match e {
        F::ServiceUnknown(_) => "org.freedesktop.DBus.Error.ServiceUnknown".into(),
        F::NameHasNoOwner(_) => "org.freedesktop.DBus.Error.NameHasNoOwner".into(),
        F::AccessDenied(_) => "org.freedesktop.DBus.Error.AccessDenied".into(),
        _ => String::new(),
    }
}

fn parse(json: &str) -> anyhow::Result<Value> {
    serde_json::from_str(json).context("paasd sent invalid JSON")
}

/// `paasctl status`: a table of users × targets. Exit code 0 when the daemon answered.
pub async fn status(args: &StatusArgs) -> anyhow::Result<u8> {
    let bus = bus_from(args.bus.as_ref());
    let proxy = connect(&bus).await?;
    let raw = proxy.status().await.map_err(|e| explain(e, &bus))?;
    if args.json {
        println!("{raw}");
        return Ok(0);
    }
    print!("{}", render_status(&parse(&raw)?));
    Ok(0)
}

/// `paasctl reconcile`: ask for a run, wait, print the summary. Exit code 1 when anything failed.
pub async fn reconcile(args: &ReconcileArgs) -> anyhow::Result<u8> {
    let bus = bus_from(args.bus.as_ref());
    let proxy = connect(&bus).await?;
    let raw = proxy.reconcile().await.map_err(|e| explain(e, &bus))?;
    let v = parse(&raw)?;
    let failed = v["failed"].as_bool().unwrap_or(false);
    if args.json {
        println!("{raw}");
    } else {
        if let Some(err) = v["specError"].as_str() {
            eprintln!("warning: the spec file is invalid; the last good spec (generation {}) was applied:", v["generation"]);
            for line in err.lines() {
                eprintln!("  {line}");
            }
        }
        println!(
            "generation {}: {}",
            v["generation"],
            v["summary"].as_str().unwrap_or("")
        );
        print_failures(&v["report"]);
    }
    Ok(if failed { 1 } else { 0 })
}

/// `paasctl plan` without `--spec`: the daemon computes the plan for the spec it runs.
/// With `detailed_exitcode`, 2 means changes are pending.
pub async fn plan(bus: Option<&Bus>, json: bool, detailed_exitcode: bool) -> anyhow::Result<u8> {
    let bus = bus_from(bus);
    let proxy = connect(&bus).await?;
    let raw = proxy.plan().await.map_err(|e| explain(e, &bus))?;
    let v = parse(&raw)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v["plan"])?);
    } else {
        if let Some(err) = v["specError"].as_str() {
            eprintln!("warning: the spec file is invalid; this is the plan of the last good spec (generation {}):", v["generation"]);
            for line in err.lines() {
                eprintln!("  {line}");
            }
        }
        print!("{}", v["text"].as_str().unwrap_or(""));
        if !v["text"].as_str().unwrap_or("").ends_with('\n') {
            println!();
        }
    }
    let unplanned = v["plan"]["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["ok"].as_bool() == Some(false))
        .map(|t| {
            format!(
                "{}: {}",
                t["target"].as_str().unwrap_or("?"),
                t["error"].as_str().unwrap_or("not planned")
            )
        });
    Ok(super::plan_exit_code(
        unplanned,
        detailed_exitcode && v["empty"].as_bool() == Some(false),
    ))
}

fn print_failures(report: &Value) {
    if let Some(objects) = report["objects"].as_array() {
        for o in objects {
            if o["outcome"]
                .as_str()
                .map(|s| s.eq_ignore_ascii_case("failed"))
                == Some(true)
            {
                println!(
                    "  ✗ {} {} {}: {}",
                    o["target"].as_str().unwrap_or("?"),
                    o["kind"].as_str().unwrap_or("").to_lowercase(),
                    o["name"].as_str().unwrap_or("?"),
                    o["error"].as_str().unwrap_or("failed")
                );
            }
        }
    }
    if let Some(targets) = report["targets"].as_array() {
        for t in targets {
            if t["ok"].as_bool() == Some(false) {
                println!(
                    "  ✗ {}: {}",
                    t["target"].as_str().unwrap_or("?"),
                    t["error"].as_str().unwrap_or("failed")
                );
            }
        }
    }
}

/// The table of `paasctl status`.
pub fn render_status(v: &Value) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "spec {} · generation {}",
        v["specPath"].as_str().unwrap_or("?"),
        v["generation"]
    ));
    if v["running"].as_bool() == Some(true) {
        out.push_str(" · reconciling now");
    }
    out.push('\n');
    if let Some(last) = v["lastRun"].as_str() {
        out.push_str(&format!(
            "last run {last}: {}\n",
            v["lastResult"].as_str().unwrap_or("")
        ));
    } else {
        out.push_str("no run finished yet\n");
    }
    if let Some(next) = v["nextResync"].as_str() {
        out.push_str(&format!("next resync {next}\n"));
    }
    if let Some(err) = v["specError"].as_str() {
        out.push_str("the spec file is invalid (the last good spec stays in force):\n");
        for line in err.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    let targets: Vec<String> = v["targets"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let users = v["users"].as_object().cloned().unwrap_or_default();
    out.push('\n');
    let width = users
        .keys()
        .map(|u| u.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    out.push_str(&format!("{:width$}", "USER"));
    for t in &targets {
        out.push_str(&format!("  {t}"));
    }
    out.push('\n');
    let mut reasons: Vec<String> = Vec::new();
    for (user, row) in &users {
        out.push_str(&format!("{user:width$}"));
        for t in &targets {
            let e = &row[t];
            let mark = match e["state"].as_str() {
                Some("ok") => "✓",
                Some("failed") => "✗",
                Some(_) => "…",
                None => "–",
            };
            let pad = t.chars().count();
            out.push_str(&format!("  {mark:<pad$}"));
            if let Some(err) = e["lastError"].as_str() {
                let since = e["lastChange"]
                    .as_str()
                    .map(|s| format!(" (since {s})"))
                    .unwrap_or_default();
                reasons.push(format!("  {user} in {t}: {err}{since}"));
            }
        }
        out.push('\n');
    }
    if users.is_empty() {
        out.push_str("(no users declared)\n");
    }
    let failed_targets: BTreeSet<String> = v["targets"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, s)| s["ok"].as_bool() == Some(false))
                .map(|(t, s)| format!("  {t}: {}", s["error"].as_str().unwrap_or("failed")))
                .collect()
        })
        .unwrap_or_default();
    if !reasons.is_empty() || !failed_targets.is_empty() {
        out.push_str("\nreasons:\n");
        for r in failed_targets {
            out.push_str(&r);
            out.push('\n');
        }
        for r in reasons {
            out.push_str(&r);
            out.push('\n');
        }
    }
    out.push_str("\n✓ in sync  ✗ failed  … pending  – not provisioned there\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_marks_and_reasons() {
        let v = serde_json::json!({
            "specPath": "/etc/paas/spec.json", "generation": 4, "running": false,
            "lastRun": "2026-11-21T17:00:00Z", "lastResult": "1 created, 0 updated, 0 deleted, 1 unchanged, 1 failed",
            "nextResync": "2026-11-21T18:00:00Z", "specError": null,
            "targets": {"lldap": {"ok": true, "error": null},
                        "nextcloud": {"ok": false, "state": "waiting", "error": "waiting for nextcloud: cannot reach nextcloud"}},
            "users": {
                "alice": {"lldap": {"state": "failed", "lastChange": "2026-11-21T17:00:00Z", "lastRun": null, "lastError": "503 Service Unavailable"},
                          "nextcloud": {"state": "pending", "lastChange": null, "lastRun": null, "lastError": "waiting for nextcloud: cannot reach nextcloud"}},
                "bob": {"lldap": {"state": "ok", "lastChange": null, "lastRun": null, "lastError": null}},
                "carol": {"lldap": {"state": "pending", "lastChange": null, "lastRun": null, "lastError": null}}
            }
        });
        let s = render_status(&v);
        assert!(s.contains("USER   lldap  nextcloud"), "{s}");
        assert!(s.contains("alice  ✗      …"), "{s}");
        assert!(s.contains("bob    ✓      –"), "{s}");
        assert!(s.contains("carol  …"), "{s}");
        assert!(s.contains("alice in lldap: 503 Service Unavailable"), "{s}");
        assert!(
            s.contains("nextcloud: waiting for nextcloud: cannot reach nextcloud"),
            "{s}"
        );
        assert!(s.contains("generation 4"), "{s}");
    }
}
