//! What the commands that ask the operator for something share: stamping the RedisCluster with an
//! annotation of the current time, and following the change until it completes, one line per new state
//! with the time since the request.

use std::future::Future;
use std::time::{Duration, Instant};

use cnredis_api::RedisCluster;
use jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::connect::Kube;

/// Sets `annotation` of the RedisCluster `name` to the current time (RFC 3339, nanoseconds: a new value
/// even within one second) and returns the value.
pub async fn stamp(kube: &Kube, name: &str, annotation: &str) -> anyhow::Result<String> {
    let at = Timestamp::now().to_string();
    let clusters: Api<RedisCluster> = Api::namespaced(kube.client.clone(), &kube.namespace);
    clusters
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {annotation: at}}})),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot annotate {name}: {e}"))?;
    Ok(at)
}

/// One look at a change under way.
pub struct Look {
    pub done: bool,
    /// Where it is, for people.
    pub line: String,
}

pub enum Outcome {
    /// Completed after this many seconds.
    Done(f64),
    /// Not completed in time; the last line seen.
    TimedOut(String),
}

/// Calls `look` every `period` until it says done or `timeout` has passed, printing each new line.
pub async fn follow<F, Fut>(timeout: Duration, period: Duration, mut look: F) -> anyhow::Result<Outcome>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Look>>,
{
    let clock = Instant::now();
    let mut last = String::new();
    loop {
        let seen = look().await?;
        if seen.line != last {
            println!("  {:>5.1}s  {}", clock.elapsed().as_secs_f64(), seen.line);
            last = seen.line;
        }
        if seen.done {
            return Ok(Outcome::Done(clock.elapsed().as_secs_f64()));
        }
        if clock.elapsed() > timeout {
            return Ok(Outcome::TimedOut(last));
        }
        tokio::time::sleep(period).await;
    }
}
