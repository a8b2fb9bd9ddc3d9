//! The server's configuration file (valkey.conf / redis.conf), rendered from the RedisCluster spec and the
//! pod's identity, and the comparison of two renderings into what `CONFIG SET` can apply live and what
//! needs a restart.
//!
//! The operator owns every line it renders before the user's `spec.parameters`; the user's parameters come
//! last, in the spec's (sorted) order, and may not name an owned parameter. Every value is written so that
//! the server's config-file tokenizer (`sdssplitargs`) reads back exactly the intended string.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use cnredis_api::cluster::{
    AppendFsync, EvictionPolicy, OPERATOR_OWNED_PARAMETERS, PersistenceMode, RedisClusterSpec,
};

/// RDB save points used when persistence includes snapshots and the user sets no `save` parameter (the
/// servers' own defaults since 7.0).
pub const DEFAULT_SAVE_POINTS: &str = "3600 1 300 100 60 10000";

/// Oldest engine release this configuration is written for: multi-pair `save` lines and multi-part AOF
/// appeared in 7.0 (Valkey started at 7.2).
pub const MINIMUM_ENGINE_VERSION: (u32, u32, u32) = (7, 0, 0);

/// Parameters whose value is a list of words: each word is written as its own token, as the server's
/// config-file reader expects.
const MULTI_WORD_PARAMETERS: &[&str] = &[
    "save",
    "client-output-buffer-limit",
    "oom-score-adj-values",
    "latency-tracking-info-percentiles",
];

/// Errors of rendering a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("parameter {0} is managed by cnredis and cannot be set in spec.parameters")]
    OwnedParameter(String),
    #[error("parameter name {0:?} is not a server parameter name (letters, digits and '-')")]
    InvalidParameterName(String),
    #[error("parameter {0} is set twice in spec.parameters (names are case-insensitive)")]
    DuplicateParameter(String),
    #[error("the value of {0} contains a line break or NUL, which a configuration file cannot hold")]
    UnsafeValue(String),
    #[error("parameters.save needs persistence.mode rdb or rdb+aof")]
    SaveWithoutSnapshots,
    #[error("auth is enabled but no password was given")]
    MissingPassword,
    #[error("spec.tls is set but no certificate files were given")]
    MissingTlsFiles,
    #[error("certificate files were given but spec.tls is not set")]
    UnexpectedTlsFiles,
    #[error("path {0:?} is not valid UTF-8")]
    NonUtf8Path(PathBuf),
    #[error("memory.maxmemoryPercent {0} is outside 1..=100")]
    InvalidMaxmemoryPercent(i32),
    #[error("{0} is too old: cnredis needs 7.0 or later")]
    UnsupportedEngine(Engine),
    #[error("cannot read the engine version from {0:?}")]
    UnrecognizedVersionOutput(String),
}

/// Which server the image runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Valkey,
    Redis,
}

impl EngineKind {
    /// `valkey` or `redis`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Valkey => "valkey",
            Self::Redis => "redis",
        }
    }

    /// Executable name in the image's PATH.
    pub fn server_binary(self) -> &'static str {
        match self {
            Self::Valkey => "valkey-server",
            Self::Redis => "redis-server",
        }
    }
}

/// The server found in the image, and its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Engine {
    pub kind: EngineKind,
    pub version: (u32, u32, u32),
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor, patch) = self.version;
        write!(f, "{} {major}.{minor}.{patch}", self.kind.name())
    }
}

impl Engine {
    /// Reads the output of `valkey-server --version` or `redis-server --version`, e.g.
    /// `Valkey server v=8.1.8 sha=00000000:1 malloc=libc bits=64 build=7eb4ebc9d7e91f4e`.
    pub fn parse_version_output(output: &str) -> Result<Self, ConfigError> {
        let unrecognized = || ConfigError::UnrecognizedVersionOutput(output.trim().to_string());
        let mut words = output.split_whitespace();
        let kind = match words.next().map(str::to_ascii_lowercase).as_deref() {
            Some("valkey") => EngineKind::Valkey,
            Some("redis") => EngineKind::Redis,
            _ => return Err(unrecognized()),
        };
        let version = words
            .find_map(|word| word.strip_prefix("v="))
            .ok_or_else(unrecognized)?;
        let mut numbers = version.splitn(3, '.').map(|part| {
            // A pre-release suffix ("8.0.0-rc1") does not change what the configuration may contain.
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        match (numbers.next(), numbers.next(), numbers.next()) {
            (Some(Some(major)), Some(Some(minor)), Some(Some(patch))) => Ok(Self {
                kind,
                version: (major, minor, patch),
            }),
            _ => Err(unrecognized()),
        }
    }
}

/// Certificate files projected into the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// Everything the configuration depends on: the cluster spec and this pod's identity and environment.
#[derive(Debug, Clone)]
pub struct ConfigInput<'a> {
    pub spec: &'a RedisClusterSpec,
    pub engine: Engine,
    /// The pod's IP, announced to the primary so that it lists this replica by a reachable address.
    pub pod_ip: Ipv4Addr,
    /// Port the server listens on (plain or TLS): [`cnredis_api::names::REDIS_PORT`] in a pod; tests running several servers
    /// on one host give each its own.
    pub port: u16,
    /// Directory on the data volume holding the RDB and AOF files.
    pub data_dir: PathBuf,
    /// Server password, read from the projected auth secret; required when `spec.auth.enabled`.
    pub password: Option<String>,
    /// The container's memory limit (cgroup), from which `maxmemory` is derived.
    pub memory_limit_bytes: Option<u64>,
    /// Primary to replicate from at start (host, port); `None` starts the server as a primary.
    pub replica_of: Option<(String, u16)>,
    pub tls: Option<TlsFiles>,
    /// Unix socket the instance manager talks to the server through: it works whatever the TLS settings
    /// and never leaves the pod. Only the server's user may open it.
    pub unix_socket: Option<PathBuf>,
}

/// One line of the configuration file: a parameter and its arguments, unquoted.
struct Directive {
    name: String,
    args: Vec<String>,
}

fn directive(name: &str, value: impl Into<String>) -> Directive {
    Directive {
        name: name.to_string(),
        args: vec![value.into()],
    }
}

/// Renders the configuration file. The text is a pure function of `input`: rendering twice gives the same
/// bytes, so a changed file always means a changed configuration.
///
/// The file holds the password: whoever writes it must make it readable by the server only.
pub fn render(input: &ConfigInput<'_>) -> Result<String, ConfigError> {
    if input.engine.version < MINIMUM_ENGINE_VERSION {
        return Err(ConfigError::UnsupportedEngine(input.engine));
    }
    let spec = input.spec;
    let user = user_parameters(&spec.parameters)?;
    let user_save = user
        .iter()
        .find(|(name, _)| name == "save")
        .map(|(_, v)| v.as_str());

    let mut lines = vec![
        directive(
            "port",
            if input.tls.is_some() { 0 } else { input.port }.to_string(),
        ),
        directive("bind", "0.0.0.0"),
        // Protected mode only matters without a password; with auth disabled by the spec it would refuse
        // every client from another pod, so the spec's choice to run open is honoured.
        directive("protected-mode", "no"),
        directive("daemonize", "no"),
        directive("dir", path_str(&input.data_dir)?),
        directive("dbfilename", "dump.rdb"),
    ];
    if let Some(socket) = &input.unix_socket {
        lines.push(directive("unixsocket", path_str(socket)?));
        lines.push(directive("unixsocketperm", "700"));
    }

    let mode = spec.persistence.mode;
    let snapshots = matches!(mode, PersistenceMode::Rdb | PersistenceMode::RdbAof);
    let save = match (snapshots, user_save) {
        (false, Some(_)) => return Err(ConfigError::SaveWithoutSnapshots),
        (false, None) => "",
        (true, Some(user_save)) => user_save,
        (true, None) => DEFAULT_SAVE_POINTS,
    };
    lines.push(Directive {
        name: "save".to_string(),
        args: words(save),
    });
    let aof = matches!(mode, PersistenceMode::Aof | PersistenceMode::RdbAof);
    lines.push(directive("appendonly", yes_no(aof)));
    // Always rendered, so that changing the persistence mode is a value change (applied live) rather
    // than a removed line (which needs a restart).
    lines.push(directive(
        "aof-use-rdb-preamble",
        yes_no(mode == PersistenceMode::RdbAof),
    ));
    lines.push(directive(
        "appendfsync",
        append_fsync(spec.persistence.append_fsync),
    ));

    let percent = spec.memory.maxmemory_percent;
    if !(1..=100).contains(&percent) {
        return Err(ConfigError::InvalidMaxmemoryPercent(percent));
    }
    if let Some(limit) = input.memory_limit_bytes {
        let maxmemory = u128::from(limit) * percent as u128 / 100;
        lines.push(directive("maxmemory", maxmemory.to_string()));
    }
    lines.push(directive("maxmemory-policy", eviction_policy(spec.memory.policy)));

    if spec.auth.enabled {
        let password = input.password.as_deref().ok_or(ConfigError::MissingPassword)?;
        lines.push(directive("requirepass", password));
        // `masterauth` rather than `primaryauth`: both engines read it, and a demoted primary needs it.
        lines.push(directive("masterauth", password));
    }

    lines.push(directive("replica-announce-ip", input.pod_ip.to_string()));
    lines.push(directive("replica-read-only", "yes"));
    if let Some((host, port)) = &input.replica_of {
        lines.push(Directive {
            name: "replicaof".to_string(),
            args: vec![host.clone(), port.to_string()],
        });
    }

    if spec.failover.min_sync_replicas > 0 {
        lines.push(directive(
            "min-replicas-to-write",
            spec.failover.min_sync_replicas.to_string(),
        ));
        lines.push(directive(
            "min-replicas-max-lag",
            spec.failover.max_sync_replica_lag_seconds.to_string(),
        ));
    }

    match (&spec.tls, &input.tls) {
        (Some(_), None) => return Err(ConfigError::MissingTlsFiles),
        (None, Some(_)) => return Err(ConfigError::UnexpectedTlsFiles),
        (None, None) => {}
        (Some(_), Some(files)) => {
            lines.push(directive("tls-port", input.port.to_string()));
            lines.push(directive("tls-cert-file", path_str(&files.cert)?));
            lines.push(directive("tls-key-file", path_str(&files.key)?));
            lines.push(directive("tls-ca-cert-file", path_str(&files.ca)?));
            lines.push(directive("tls-replication", "yes"));
            // Applications authenticate with the password and the `<cluster>-app` secret carries no
            // client certificate; replicas still present theirs. A user may require certificates with
            // `tls-auth-clients yes` in spec.parameters.
            lines.push(directive("tls-auth-clients", "optional"));
        }
    }

    let operator_lines = lines.len();
    for (name, value) in user.into_iter().filter(|(name, _)| name != "save") {
        let args = if MULTI_WORD_PARAMETERS.contains(&name.as_str()) {
            words(&value)
        } else {
            vec![value]
        };
        lines.push(Directive { name, args });
    }

    let mut text = format!(
        "# Rendered by cnredis for {}. The instance manager rewrites this file; set parameters in the RedisCluster.\n",
        input.engine
    );
    if !spec.auth.enabled {
        text.push_str("# spec.auth.enabled is false: any client that can reach this server may use it.\n");
    }
    for (index, line) in lines.iter().enumerate() {
        if index == operator_lines {
            text.push_str("# spec.parameters\n");
        }
        text.push_str(&line.name);
        for arg in &line.args {
            if arg.contains(['\n', '\r', '\0']) {
                return Err(ConfigError::UnsafeValue(line.name.clone()));
            }
            text.push(' ');
            text.push_str(&quote(arg));
        }
        text.push('\n');
    }
    Ok(text)
}

/// The user's parameters, names lowercased (the server reads them case-insensitively), checked against
/// the parameters the operator owns. Admission rejects owned names too; this is the second line.
fn user_parameters(parameters: &BTreeMap<String, String>) -> Result<Vec<(String, String)>, ConfigError> {
    let mut seen = Vec::with_capacity(parameters.len());
    for (name, value) in parameters {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ConfigError::InvalidParameterName(name.clone()));
        }
        let lower = name.to_ascii_lowercase();
        // Checked before a multi-word value is split on whitespace, which would swallow a line break.
        if value.contains(['\n', '\r', '\0']) {
            return Err(ConfigError::UnsafeValue(lower));
        }
        if OPERATOR_OWNED_PARAMETERS.contains(&lower.as_str()) {
            return Err(ConfigError::OwnedParameter(name.clone()));
        }
        if seen.iter().any(|(other, _)| *other == lower) {
            return Err(ConfigError::DuplicateParameter(lower));
        }
        seen.push((lower, value.clone()));
    }
    Ok(seen)
}

/// Splits a multi-word value into its words; an empty value stays one empty argument (`save ""`).
fn words(value: &str) -> Vec<String> {
    let words: Vec<String> = value.split_whitespace().map(str::to_string).collect();
    if words.is_empty() {
        vec![String::new()]
    } else {
        words
    }
}

fn path_str(path: &Path) -> Result<&str, ConfigError> {
    path.to_str()
        .ok_or_else(|| ConfigError::NonUtf8Path(path.to_path_buf()))
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

fn append_fsync(value: AppendFsync) -> &'static str {
    match value {
        AppendFsync::Always => "always",
        AppendFsync::Everysec => "everysec",
        AppendFsync::No => "no",
    }
}

fn eviction_policy(value: EvictionPolicy) -> &'static str {
    match value {
        EvictionPolicy::Noeviction => "noeviction",
        EvictionPolicy::AllkeysLru => "allkeys-lru",
        EvictionPolicy::AllkeysLfu => "allkeys-lfu",
        EvictionPolicy::AllkeysRandom => "allkeys-random",
        EvictionPolicy::VolatileLru => "volatile-lru",
        EvictionPolicy::VolatileLfu => "volatile-lfu",
        EvictionPolicy::VolatileRandom => "volatile-random",
        EvictionPolicy::VolatileTtl => "volatile-ttl",
    }
}

/// Writes one argument so that the config-file tokenizer reads it back unchanged: plain words bare,
/// anything else in double quotes with `\` and `"` escaped. Line breaks are rejected before this.
fn quote(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._:/@+,=-".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        return value.to_string();
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        if c == '\\' || c == '"' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// Reads one line the way the server's tokenizer does (for the subset [`quote`] writes): bare words and
/// double-quoted strings with backslash escapes. `None` for an unterminated quote.
fn split_args(line: &str) -> Option<Vec<String>> {
    let mut args = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(first) = chars.next() else {
            return Some(args);
        };
        let mut arg = String::new();
        if first == '"' {
            loop {
                match chars.next()? {
                    '\\' => arg.push(chars.next()?),
                    '"' => break,
                    c => arg.push(c),
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return None;
            }
        } else {
            arg.push(first);
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                arg.push(c);
            }
        }
        args.push(arg);
    }
}

/// Whether `CONFIG SET name` takes effect without restarting the server. A conservative allow-list of
/// parameters both engines accept at runtime; every other parameter (ports, TLS settings, `databases`,
/// `io-threads`, modules, ...) is applied by a restart.
pub fn live_settable(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "maxmemory",
        "maxmemory-policy",
        "maxmemory-samples",
        "maxmemory-eviction-tenacity",
        "timeout",
        "tcp-keepalive",
        "hz",
        "dynamic-hz",
        "save",
        // Switching AOF on live rewrites it from the dataset in memory; restarting with `appendonly yes`
        // and no AOF yet would be the risky way round.
        "appendonly",
        "appendfsync",
        "aof-use-rdb-preamble",
        "auto-aof-rewrite-percentage",
        "auto-aof-rewrite-min-size",
        "no-appendfsync-on-rewrite",
        "stop-writes-on-bgsave-error",
        "rdbcompression",
        "rdbchecksum",
        "notify-keyspace-events",
        "maxclients",
        "client-output-buffer-limit",
        "requirepass",
        "masterauth",
        "repl-backlog-size",
        "repl-backlog-ttl",
        "repl-timeout",
        "replica-serve-stale-data",
        "replica-priority",
        "replica-lazy-flush",
        "loglevel",
        "activedefrag",
        "active-expire-effort",
        "busy-reply-threshold",
        "lua-time-limit",
    ];
    const PREFIXES: &[&str] = &[
        "slowlog-",
        "latency-",
        "lazyfree-",
        "min-replicas-",
        "repl-diskless-",
        "active-defrag-",
        "hash-max-",
        "list-max-",
        "list-compress-",
        "set-max-",
        "zset-max-",
        "stream-node-max-",
    ];
    let name = name.to_ascii_lowercase();
    EXACT.contains(&name.as_str()) || PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// Values a live-settable parameter returns to when its line disappears from the configuration, so that
/// removing it needs no restart.
fn default_when_removed(name: &str) -> Option<&'static str> {
    match name {
        "maxmemory" | "min-replicas-to-write" => Some("0"),
        "min-replicas-max-lag" => Some("10"),
        "requirepass" | "masterauth" => Some(""),
        _ => None,
    }
}

/// How a new configuration differs from the running one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// `CONFIG SET name value` pairs, in the new file's order; the value is as `CONFIG SET` takes it
    /// (words of a multi-word parameter joined by spaces).
    pub live: Vec<(String, String)>,
    /// Parameters whose change takes effect only when the server restarts with the new file.
    pub restart: Vec<String>,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.restart.is_empty()
    }
}

/// Compares two configurations produced by [`render`]. `replicaof` is left out: the replication role is
/// not configuration but a decision of [`crate::decide`], executed with `REPLICAOF`. A parameter that
/// disappears needs a restart unless it is live-settable with a known default.
pub fn diff(old: &str, new: &str) -> ConfigDiff {
    let old_lines = parse(old);
    let new_lines = parse(new);
    let old_map: BTreeMap<&str, &Option<String>> = old_lines
        .iter()
        .map(|(name, value)| (name.as_str(), value))
        .collect();
    let new_names: Vec<&str> = new_lines.iter().map(|(name, _)| name.as_str()).collect();

    let mut result = ConfigDiff::default();
    let mut classify = |name: &str, value: Option<&str>| match value {
        Some(value) if live_settable(name) => result.live.push((name.to_string(), value.to_string())),
        _ => result.restart.push(name.to_string()),
    };
    for (name, value) in new_lines.iter().filter(|(name, _)| name != "replicaof") {
        if old_map.get(name.as_str()) != Some(&value) {
            classify(name, value.as_deref());
        }
    }
    for name in old_map.keys() {
        if *name != "replicaof" && !new_names.contains(name) {
            classify(name, default_when_removed(name));
        }
    }
    result
}

/// (name, value as `CONFIG SET` takes it) for every directive, once per name with the value the server
/// keeps (the last); `None` for a line the tokenizer rejects.
fn parse(text: &str) -> Vec<(String, Option<String>)> {
    let mut directives: Vec<(String, Option<String>)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = match split_args(line) {
            Some(mut args) if !args.is_empty() => {
                let name = args.remove(0);
                (name, Some(args.join(" ")))
            }
            Some(_) => continue,
            None => match line.split_whitespace().next() {
                Some(name) => (name.to_string(), None),
                None => continue,
            },
        };
        let name = name.to_ascii_lowercase();
        directives.retain(|(other, _)| *other != name);
        directives.push((name, value));
    }
    directives
}

#[cfg(test)]
mod tests;
