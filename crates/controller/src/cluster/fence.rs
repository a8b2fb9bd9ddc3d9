//! The operator's own fence of a server, through its Redis port, for a primary whose instance manager
//! cannot fence it: a manager that is hung or stopped while its server runs on neither renews the lease
//! nor fences at its end, so the lease's expiry proves nothing about the server. Once a failover is
//! recorded (the manager, should it run again, then counts itself fenced and never lifts it), the
//! operator sets the same barrier the manager would (`min-replicas-to-write` beyond any replica count,
//! no replication PINGs), disconnects the clients, and checks that a write is refused, before it chooses the replica to
//! promote: so the offsets it compares no longer move, and no client writes to two primaries.
//!
//! Best effort by design: a server that does not answer (its node frozen or cut off) cannot take writes
//! from anyone either while it does not answer, which is the case the lease covers.

use std::net::SocketAddr;
use std::time::Duration;

use cnredis_api::names::{FENCED_MAX_LAG, FENCED_MIN_REPLICAS, FENCED_PING_PERIOD};
use redis::aio::MultiplexedConnection;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

/// How long the server has to answer each command (and to accept the connection).
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    #[error("a write was still taken after the fence")]
    NotEffective,
}

/// Fences the server at `address` (the pod's IP and port 6379), authenticating with `password` when
/// auth is on.
pub async fn fence_server(address: SocketAddr, password: Option<String>) -> Result<(), FenceError> {
    let mut connection = connect(address, password).await?;
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("min-replicas-max-lag")
        .arg(FENCED_MAX_LAG)
        .arg("min-replicas-to-write")
        .arg(FENCED_MIN_REPLICAS)
        .arg("repl-ping-replica-period")
        .arg(FENCED_PING_PERIOD)
        .query_async::<()>(&mut connection)
        .await?;
    for kind in ["normal", "pubsub"] {
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg(kind)
            .arg("SKIPME")
            .arg("yes")
            .query_async::<i64>(&mut connection)
            .await?;
    }
    // Deleting a key that does not exist changes nothing when taken; it must be refused.
    match redis::cmd("DEL")
        .arg("cnredis:fence-probe:{never-written}")
        .query_async::<i64>(&mut connection)
        .await
    {
        Err(error) if matches!(error.code(), Some("NOREPLICAS") | Some("READONLY")) => Ok(()),
        Err(error) => Err(error.into()),
        Ok(_) => Err(FenceError::NotEffective),
    }
}

async fn connect(
    address: SocketAddr,
    password: Option<String>,
) -> Result<MultiplexedConnection, redis::RedisError> {
    // Redis 7.0 has no CLIENT SETINFO.
    let mut settings = RedisConnectionInfo::default().set_skip_set_lib_name();
    if let Some(password) = password {
        settings = settings.set_password(password);
    }
    let info: ConnectionInfo = ConnectionAddr::Tcp(address.ip().to_string(), address.port())
        .into_connection_info()?
        .set_redis_settings(settings);
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(SERVER_TIMEOUT))
        .set_response_timeout(Some(SERVER_TIMEOUT));
    redis::Client::open(info)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}
