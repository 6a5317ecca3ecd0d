//! popup-ldap: Voicenter's Pop Up Screen endpoint, answering who is calling from Active
//! Directory or another LDAP directory.
//!
//! One request travels one way: [`http`] reads it into a [`call::CallDetails`], [`lookup`]
//! normalises the number ([`phone`]), asks the [`directory`] for candidates, verifies them and
//! renders the answer through [`mapping`]; [`http`] sends it as JSON.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![warn(missing_docs)]

pub mod admin;
mod braces;
pub mod call;
pub mod check;
pub mod cidr;
pub mod cli;
mod console;
pub mod directory;
pub mod docs;
pub mod explain;
pub mod http;
pub mod hygiene;
pub mod locks;
pub mod logging;
pub mod lookup;
pub mod mapping;
pub mod phone;
pub mod priority;
pub mod secret;
pub mod server;
pub mod settings;
#[cfg(unix)]
pub mod systemd;
