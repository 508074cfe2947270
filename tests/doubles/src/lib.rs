//! Test doubles of the services paasd talks to, checked against the vendors' API descriptions
//! in the shared contracts directory.
//!
//! * [`lldap`]: LLDAP 0.6 (GraphQL API validated against `lldap/schema.graphql`, simple login,
//!   LDAP bind and password modify), with fault injection, counters and a record of every
//!   request that violates the contract.

pub mod lldap;
