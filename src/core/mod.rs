//! The pure core: what paasd wants (the spec), what it owns (its state), what it decides (the
//! policy) and the diff it computes (plans). No network, no engine, no target: everything here
//! is a value or a pure function of values, so it can be printed, tested and fuzzed.
//!
//! - [`id`]: the closed sets of targets and services, with what each one can do;
//! - [`spec`]: the JSON spec v1 (strict parsing, every problem with its JSON path);
//! - [`attributes`]: custom attributes (a compact sorted map);
//! - [`plan`]: the shape of a plan shared by every target (changes, field diffs, problems);
//! - [`policy`]: who is managed, removal and its grace period, the mass-removal guard, where a
//!   password comes from and when it is due;
//! - [`members`]: the LLDAP users behind access groups (group-driven provisioning);
//! - [`state`]: paasd's own record of what it owns, and the effects that change it.

pub mod attributes;
pub mod id;
pub mod members;
pub mod plan;
pub mod policy;
pub mod spec;
pub mod state;
