//! The `tables` workload: clients writing and reading the agents' replicated table `nemesis`
//! (unique keys, contended keys, inserts if absent, serial inserts, deletes, reads on every
//! agent), and the checkers of what docs/TABLES.md promises about them.

pub mod check;
pub mod ops;
pub mod order;
pub mod workload;

#[cfg(test)]
mod tests;
