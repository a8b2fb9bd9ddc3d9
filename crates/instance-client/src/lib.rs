//! The instance API's wire format, shared by the instance manager that serves it and the operator that
//! calls it, and the operator's typed mTLS client.

mod client;
pub mod wire;

pub use client::{ClientError, InstanceClient, Target};
