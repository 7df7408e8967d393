//! The public API: the calls on [`crate::Node`], one module per capability. They read what the
//! driver publishes, or build a [`crate::command::Command`] and await its reply; they never
//! reach into the driver itself.

pub(crate) mod broadcast;
pub(crate) mod exchange;
pub(crate) mod faults;
pub(crate) mod keys;
pub(crate) mod manager;
pub(crate) mod membership;
pub(crate) mod messaging;
pub(crate) mod query;
pub(crate) mod singleton;
pub(crate) mod table;
pub(crate) mod tracker;
pub(crate) mod tracker_relay;
