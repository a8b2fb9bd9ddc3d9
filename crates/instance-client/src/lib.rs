//! The operator's typed mTLS client of the instance API, and the object store the instance manager and
//! the operator both reach backups in. The wire format lives in `cnredis-wire` (the kubectl plugin reads
//! it without linking an HTTP client, TLS or the object store) and is re-exported here as `wire`.

mod client;
pub mod objects;

pub use cnredis_wire as wire;

pub use client::{ClientError, InstanceClient, Target};
