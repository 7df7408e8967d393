//! The API's routes, one file per resource; each gives a `routes()` router over `AppState`.

pub mod agent;
pub mod broadcast;
pub mod discovery;
pub mod events;
pub mod history;
pub mod keys;
pub mod member_view;
pub mod members;
pub mod metrics;
pub mod monitor;
pub mod partitions;
pub mod query;
pub mod send;
pub mod singletons;
pub mod tables;
pub mod tags;
pub mod tracker;
