//! Test doubles of the services paasd talks to, checked against the vendors' API descriptions
//! in the shared contracts directory.
//!
//! * [`lldap`]: LLDAP 0.6 (GraphQL API validated against `lldap/schema.graphql`, simple login,
//!   LDAP bind and password modify), with fault injection, counters and a record of every
//!   request that violates the contract.
//! * [`nextcloud`], [`gitlab`], [`jellyfin`], [`vaultwarden`], [`mailcow`]: HTTP doubles whose
//!   every request and response is checked against the vendor's OpenAPI document by
//!   [`openapi::Contract`]; what they share (faults, counters, violations) is in [`service`].

// `json!` literals of the vendors' large entities (GitLab's user) need more macro recursion.
#![recursion_limit = "256"]

pub mod gitlab;
pub mod jellyfin;
pub mod lldap;
pub mod mailcow;
pub mod nextcloud;
pub mod openapi;
pub mod service;
pub mod vaultwarden;
