//! The instance manager (`cnredis instance run`, PID 1 of every database pod): what it decides and what it
//! renders, as pure functions over plain data. [`config`] turns a RedisCluster spec and the pod's identity
//! into the server's configuration file and tells which changes apply live; [`decide`] turns what the
//! server looks like and what the cluster status wants into a list of actions, enforcing the split-brain,
//! empty-primary and self-fencing guards of DESIGN.md. The supervisor, the HTTP API and the Kubernetes IO
//! that execute these decisions are the shell around this core and come next.

pub mod backup;
pub mod config;
pub mod decide;
pub mod failpoint;
pub mod failsafe;
pub mod http;
pub mod info;
pub mod lease;
pub mod manager;
pub mod metrics;
pub mod restore;
pub mod run;
pub mod server;
pub mod source;
pub mod supervisor;
pub mod watchdog;
