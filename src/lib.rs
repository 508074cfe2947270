//! paasd: declarative user accounts across LLDAP and self-hosted services.
//!
//! The file tree is the architecture:
//! - [`core`]: pure — the spec, paasd's state, the policy, the shape of plans;
//! - [`engine`]: the one loop every target runs through (observe → plan → apply → record) and
//!   its report;
//! - [`targets`]: LLDAP, and the services with accounts of their own behind one adapter;
//! - [`reconcile`]: a spec's targets through the engine (what `paasctl` and the daemon run);
//! - [`daemon`]: the long-running service (spec watch, sd_notify, D-Bus API, status);
//! - `paasctl`: [`cli`];
//! - plumbing, one of each: [`http`], [`backoff`], [`secret`], [`session`], [`atomic_file`],
//!   [`clock`].

pub mod atomic_file;
pub mod backoff;
pub mod cli;
pub mod clock;
pub mod core;
pub mod daemon;
pub mod engine;
pub mod http;
pub mod reconcile;
pub mod secret;
pub mod session;
pub mod targets;
