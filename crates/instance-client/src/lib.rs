//! The instance API's wire format, shared by the instance manager that serves it and the operator that
//! calls it, the operator's typed mTLS client, and the object store both reach backups in.

mod client;
pub mod objects;
pub mod wire;

pub use client::{ClientError, InstanceClient, Target};
