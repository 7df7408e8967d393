//! The client commands: each asks a running agent through its HTTP API (`client::ApiClient`)
//! and prints the answer for people, or as JSON with `--json` (`keygen` asks nobody).
//!
//! Imports `client` and `views`, never the agent's server (`http`, `agent`).

pub mod discovery;
pub mod events;
pub mod keygen;
pub mod members;
pub mod partition;
pub mod send;
pub mod singleton;
pub mod table;
pub mod tracker;
