//! Backups: the RedisBackup controller (`controller`), which instance takes one (`choose`), retention
//! applied to the bucket (`cleanup`), where backups are stored and with which credentials (`store`), and the pure rules of scheduling (`schedule`) and retention
//! (`retention`).

pub mod choose;
pub mod cleanup;
pub mod controller;
pub mod recovery;
pub mod retention;
pub mod schedule;
pub mod scheduler;
pub mod store;
