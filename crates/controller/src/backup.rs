//! Backups: the pure rules of scheduling (`schedule`) and retention (`retention`). The controllers that
//! act on them, and the instance side that takes a backup, are not built yet.

pub mod retention;
pub mod schedule;
