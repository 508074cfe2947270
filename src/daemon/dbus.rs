//! The D-Bus API: `org.paasd.Paasd1` at `/org/paasd/Paasd1` on the system bus.
//!
//! Methods return JSON strings so that `busctl call` and `paasctl` read the same thing:
//! - `Reconcile() -> s`: runs a reconcile (a fresh run, after any run in progress) and returns
//!   `{"generation", "summary", "failed", "specError", "report"}`;
//! - `Plan() -> s`: `{"generation", "specError", "empty", "text", "plan"}`;
//! - `Reload() -> s`: re-reads the spec; fails with `org.paasd.Paasd1.Error.SpecInvalid` listing
//!   every problem when the file is invalid (the last good spec stays in force);
//! - `Status() -> s`: see [`super::status::Status`].
//!
//! Properties `Generation` (t), `LastResult` (s), `SpecError` (s, empty when the spec is valid)
//! emit PropertiesChanged; the signal `ReconcileFinished(s summary)` follows every run.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use zbus::object_server::SignalEmitter;
use zbus::{fdo, Connection};

use super::status::Status;

pub const NAME: &str = "org.paasd.Paasd1";
pub const PATH: &str = "/org/paasd/Paasd1";
pub const INTERFACE: &str = "org.paasd.Paasd1";

/// Which bus to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    System,
    Session,
    /// A D-Bus address such as `unix:path=/run/x/bus`.
    Address(String),
    /// No D-Bus at all.
    None,
}

impl std::str::FromStr for Bus {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "system" => Bus::System,
            "session" => Bus::Session,
            "none" => Bus::None,
            other => Bus::Address(other.to_string()),
        })
    }
}

impl std::fmt::Display for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bus::System => f.write_str("system bus"),
            Bus::Session => f.write_str("session bus"),
            Bus::Address(a) => write!(f, "bus {a}"),
            Bus::None => f.write_str("no bus"),
        }
    }
}

pub(crate) fn builder(bus: &Bus) -> zbus::Result<Option<zbus::connection::Builder<'static>>> {
    Ok(Some(match bus {
        Bus::System => zbus::connection::Builder::system()?,
        Bus::Session => zbus::connection::Builder::session()?,
        Bus::Address(a) => zbus::connection::Builder::address(a.as_str())?,
        Bus::None => return Ok(None),
    }))
}

/// A method call handed to the daemon loop; the answer is JSON or an error message.
pub type Reply = oneshot::Sender<Result<String, RequestError>>;

#[derive(Debug)]
pub enum Request {
    Reconcile(Reply),
    Plan(Reply),
    Reload(Reply),
}

#[derive(Debug, Clone)]
pub enum RequestError {
    /// No valid spec has been loaded.
    NoSpec(String),
    /// The spec file is invalid (the message lists every problem).
    SpecInvalid(String),
    Failed(String),
}

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.paasd.Paasd1.Error")]
pub enum ApiError {
    #[zbus(error)]
    ZBus(zbus::Error),
    NoSpec(String),
    SpecInvalid(String),
    Failed(String),
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::NoSpec(m) => ApiError::NoSpec(m),
            RequestError::SpecInvalid(m) => ApiError::SpecInvalid(m),
            RequestError::Failed(m) => ApiError::Failed(m),
        }
    }
}

pub struct Api {
    requests: mpsc::Sender<Request>,
    status: Arc<Mutex<Status>>,
}

impl Api {
    pub fn new(requests: mpsc::Sender<Request>, status: Arc<Mutex<Status>>) -> Self {
        Api { requests, status }
    }

    async fn ask(&self, make: fn(Reply) -> Request) -> Result<String, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(make(tx))
            .await
            .map_err(|_| ApiError::Failed("paasd is shutting down".into()))?;
        match rx.await {
            Ok(r) => r.map_err(ApiError::from),
            Err(_) => Err(ApiError::Failed("paasd is shutting down".into())),
        }
    }

    fn with_status<T>(&self, f: impl FnOnce(&Status) -> T) -> T {
        let guard = match self.status.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&guard)
    }
}

#[zbus::interface(name = "org.paasd.Paasd1")]
impl Api {
    /// Reconcile now and wait for the result (JSON).
    async fn reconcile(&self) -> Result<String, ApiError> {
        tracing::info!("reconcile requested over D-Bus");
        self.ask(Request::Reconcile).await
    }

    /// Compute the plan against the live targets without changing anything (JSON).
    async fn plan(&self) -> Result<String, ApiError> {
        self.ask(Request::Plan).await
    }

    /// Re-read the spec file.
    async fn reload(&self) -> Result<String, ApiError> {
        self.ask(Request::Reload).await
    }

    /// Per user × target: state, last change, last error (JSON).
    async fn status(&self) -> fdo::Result<String> {
        self.with_status(serde_json::to_string)
            .map_err(|e| fdo::Error::Failed(format!("serialising the status: {e}")))
    }

    #[zbus(property)]
    async fn generation(&self) -> u64 {
        self.with_status(|s| s.generation)
    }

    #[zbus(property)]
    async fn last_result(&self) -> String {
        self.with_status(|s| s.last_result.clone())
    }

    #[zbus(property)]
    async fn spec_error(&self) -> String {
        self.with_status(|s| s.spec_error.clone().unwrap_or_default())
    }

    #[zbus(signal)]
    pub async fn reconcile_finished(emitter: &SignalEmitter<'_>, summary: &str)
        -> zbus::Result<()>;
}

/// Connect, export the API and take the well-known name.
pub async fn serve(bus: &Bus, api: Api) -> zbus::Result<Option<Connection>> {
    let Some(b) = builder(bus)? else {
        return Ok(None);
    };
    let conn = b.serve_at(PATH, api)?.name(NAME)?.build().await?;
    Ok(Some(conn))
}

/// Emit PropertiesChanged for the properties and, after a run, `ReconcileFinished`.
pub async fn announce(conn: &Connection, finished: Option<&str>) -> zbus::Result<()> {
    let iface = conn.object_server().interface::<_, Api>(PATH).await?;
    let emitter = iface.signal_emitter();
    {
        let api = iface.get().await;
        api.generation_changed(emitter).await?;
        api.last_result_changed(emitter).await?;
        api.spec_error_changed(emitter).await?;
    }
    if let Some(summary) = finished {
        Api::reconcile_finished(emitter, summary).await?;
    }
    Ok(())
}
