//! paasd: declarative user accounts across LLDAP and self-hosted services.
//!
//! The file tree is the architecture:
//! - [`attributes`]: custom attributes (a compact sorted map);
//! - [`spec`]: the JSON spec v1 (strict parsing, every problem with its JSON path);
//! - [`directory`]: the observed LLDAP state;
//! - [`state`]: paasd's own state file (ownership, password fingerprints, intents);
//! - [`plan`]: the pure diff — desired × observed × state → ordered changes (no I/O);
//! - [`lldap`]: the LLDAP target (GraphQL client, LDAP password operations);
//! - [`reconcile`]: observe → plan → apply → record, with the per-run report;
//! - [`secret`], [`retry`]: secret files and fingerprints; backoff;
//! - [`daemon`]: the long-running service (spec watch, sd_notify, D-Bus API) and paasctl's client of it.

pub mod attributes;
pub mod daemon;
pub mod directory;
pub mod lldap;
pub mod plan;
pub mod reconcile;
pub mod retry;
pub mod secret;
pub mod spec;
pub mod state;
pub mod targets;
