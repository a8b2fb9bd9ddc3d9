//! The commands the instance manager sends its server, over the server's unix socket: observe (`INFO`),
//! change role (`REPLICAOF`), fence and unfence, disconnect clients, apply configuration live.
//!
//! Fencing uses the server's own write barrier: `min-replicas-to-write` set above any possible number of
//! replicas makes the server answer every write, in scripts and transactions too, with `NOREPLICAS`, while
//! reads go on. It survives role changes and is re-rendered into the configuration file, so a restart of
//! a fenced server starts fenced. A fenced primary also stops sending its replicas PINGs (see
//! [`FENCED_PING_PERIOD`]): its replication offset, and theirs, stays where the fence left it.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};

pub use cnredis_api::names::{FENCED_MAX_LAG, FENCED_MIN_REPLICAS, FENCED_PING_PERIOD, PING_PERIOD};

/// Every command is bounded so that a stuck server cannot stall the manager's loop or an API call, but
/// a server busy for a second or two (a fork of a large dataset, a slow command) is not taken for a dead
/// one. Set on the connection itself: the client library's own default answers in 500 ms.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting to the server's socket may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    #[error("server still accepts writes after fencing ({0})")]
    FenceNotEffective(String),
}

/// A connection to the local server that reconnects after a server restart.
pub struct ServerClient {
    socket: PathBuf,
    password: Mutex<Option<String>>,
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl ServerClient {
    pub fn new(socket: PathBuf, password: Option<String>) -> Self {
        Self {
            socket,
            password: Mutex::new(password),
            connection: tokio::sync::Mutex::new(None),
        }
    }

    /// The password for new connections, after a rotation; the open connection stays authenticated.
    pub fn set_password(&self, password: Option<String>) {
        *self.password.lock().unwrap_or_else(|poison| poison.into_inner()) = password;
    }

    /// Forgets the open connection, e.g. after the server restarted.
    pub async fn reset(&self) {
        *self.connection.lock().await = None;
    }

    async fn connection(&self) -> Result<MultiplexedConnection, ServerError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let password = self
            .password
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        // Redis 7.0 has no CLIENT SETINFO.
        let mut settings = RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some(password) = password {
            settings = settings.set_password(password);
        }
        let info = ConnectionAddr::Unix(self.socket.clone())
            .into_connection_info()?
            .set_redis_settings(settings);
        let client = redis::Client::open(info)?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT));
        let connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(ServerError::from_redis)?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Runs one command; a failed connection is dropped so that the next call reconnects. A command on a
    /// connection the server closed is sent again once on a new one: the manager has two (the loop's and
    /// the lease watchdog's), and a fence through either disconnects the other. (Every command sent here
    /// can be repeated safely.)
    pub async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, ServerError> {
        let mut connection = self.connection().await?;
        match self.send(&mut connection, command).await {
            Err(error) if error.is_closed_connection() => {
                let mut connection = self.connection().await?;
                self.send(&mut connection, command).await
            }
            result => result,
        }
    }

    async fn send<T: redis::FromRedisValue>(
        &self,
        connection: &mut MultiplexedConnection,
        command: &redis::Cmd,
    ) -> Result<T, ServerError> {
        let result = command
            .query_async(connection)
            .await
            .map_err(ServerError::from_redis);
        if let Err(error) = &result
            && error.is_connection_error()
        {
            self.reset().await;
        }
        result
    }

    /// The full `INFO` text.
    pub async fn info(&self) -> Result<String, ServerError> {
        self.query(&redis::cmd("INFO")).await
    }

    /// `REPLICAOF host port`, or `REPLICAOF NO ONE` for `None`.
    pub async fn replicaof(&self, primary: Option<(&str, u16)>) -> Result<(), ServerError> {
        let mut command = redis::cmd("REPLICAOF");
        match primary {
            Some((host, port)) => command.arg(host).arg(port),
            None => command.arg("NO").arg("ONE"),
        };
        self.query::<()>(&command).await
    }

    /// Disconnects application clients (normal and pub/sub), so they reconnect through `-leader`.
    pub async fn disconnect_clients(&self) -> Result<(), ServerError> {
        for kind in ["normal", "pubsub"] {
            let mut command = redis::cmd("CLIENT");
            command.arg("KILL").arg("TYPE").arg(kind).arg("SKIPME").arg("yes");
            self.query::<i64>(&command).await?;
        }
        Ok(())
    }

    /// Makes the server refuse writes, disconnects the clients that could have been writing, and returns
    /// only once a probe write is refused.
    pub async fn fence(&self) -> Result<(), ServerError> {
        self.config_set(&[
            ("min-replicas-max-lag", FENCED_MAX_LAG.to_string()),
            ("min-replicas-to-write", FENCED_MIN_REPLICAS.to_string()),
            ("repl-ping-replica-period", FENCED_PING_PERIOD.to_string()),
        ])
        .await?;
        self.disconnect_clients().await?;
        self.verify_writes_refused().await
    }

    /// Lifts the fence, restoring the configured synchronous-replica settings.
    pub async fn unfence(
        &self,
        min_replicas_to_write: i64,
        min_replicas_max_lag: i64,
    ) -> Result<(), ServerError> {
        self.config_set(&[
            ("min-replicas-to-write", min_replicas_to_write.to_string()),
            ("min-replicas-max-lag", min_replicas_max_lag.to_string()),
            ("repl-ping-replica-period", PING_PERIOD.to_string()),
        ])
        .await
    }

    /// The server refuses writes because of the fence.
    pub async fn is_fenced(&self) -> Result<bool, ServerError> {
        let mut command = redis::cmd("CONFIG");
        command.arg("GET").arg("min-replicas-to-write");
        let pair: Vec<String> = self.query(&command).await?;
        Ok(pair.get(1).and_then(|value| value.parse::<i64>().ok()) == Some(FENCED_MIN_REPLICAS))
    }

    /// A write that changes nothing when it succeeds (deleting a key that does not exist is not even
    /// replicated) must be refused: `NOREPLICAS` on a fenced primary, `READONLY` on a replica.
    async fn verify_writes_refused(&self) -> Result<(), ServerError> {
        let mut probe = redis::cmd("DEL");
        probe.arg("cnredis:fence-probe:{never-written}");
        match self.query::<i64>(&probe).await {
            Ok(_) => Err(ServerError::FenceNotEffective(
                "a probe write succeeded".to_string(),
            )),
            Err(ServerError::Redis(error))
                if matches!(error.code(), Some("NOREPLICAS") | Some("READONLY")) =>
            {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// `CONFIG SET` of several parameters at once (atomic on 7.0+).
    pub async fn config_set(&self, pairs: &[(&str, String)]) -> Result<(), ServerError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let mut command = redis::cmd("CONFIG");
        command.arg("SET");
        for (name, value) in pairs {
            command.arg(*name).arg(value);
        }
        self.query::<()>(&command).await
    }
}

impl ServerError {
    /// A timeout of the connection's own bound is [`Self::Timeout`].
    fn from_redis(error: redis::RedisError) -> Self {
        if error.is_timeout() {
            Self::Timeout(COMMAND_TIMEOUT)
        } else {
            Self::Redis(error)
        }
    }

    /// Whether the connection should be re-established (as opposed to a command error from a healthy
    /// server).
    pub fn is_connection_error(&self) -> bool {
        match self {
            Self::Timeout(_) => true,
            Self::Redis(error) => {
                error.is_io_error()
                    || error.is_connection_dropped()
                    || error.is_connection_refusal()
                    || error.is_unrecoverable_error()
            }
            Self::FenceNotEffective(_) => false,
        }
    }

    /// The server closed the connection (as `CLIENT KILL` does), as opposed to not answering.
    fn is_closed_connection(&self) -> bool {
        matches!(self, Self::Redis(error) if error.is_connection_dropped() && !error.is_timeout())
    }

    /// The server is loading its dataset and refuses commands until done.
    pub fn is_loading(&self) -> bool {
        matches!(self, Self::Redis(error) if error.code() == Some("LOADING"))
    }
}
