//! Names, labels, annotations and ports that every part of cnredis agrees on (see DESIGN.md, "Names,
//! labels, ports"). Anything that builds or parses a name goes through here.

use std::collections::BTreeSet;

/// API group of every cnredis custom resource.
pub const GROUP: &str = "redis.cnredis.io";
/// The one served and stored API version.
pub const VERSION: &str = "v1";
/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "cnredis";

/// Label naming the RedisCluster an object belongs to.
pub const LABEL_CLUSTER: &str = "cnredis.io/cluster";
/// Label naming the instance (pod) an object belongs to.
pub const LABEL_INSTANCE_NAME: &str = "cnredis.io/instanceName";
/// Label carrying an instance's role; set by the operator only, and what the `-leader` and `-replica`
/// Services select on.
pub const LABEL_ROLE: &str = "cnredis.io/role";
/// Value of [`LABEL_ROLE`] on the primary.
pub const ROLE_PRIMARY: &str = "primary";
/// Value of [`LABEL_ROLE`] on a replica.
pub const ROLE_REPLICA: &str = "replica";

/// Annotation on a RedisCluster: JSON list of fenced pod names, `["*"]` fences every instance.
pub const ANNOTATION_FENCED_INSTANCES: &str = "cnredis.io/fencedInstances";

/// Annotation on a RedisCluster: a restart was asked for at this time (RFC 3339). A new value rolls every
/// instance, replicas first and the primary last by switchover, like any other change of the pod spec.
pub const ANNOTATION_RESTARTED_AT: &str = "cnredis.io/restartedAt";

/// Annotation on a RedisCluster, copied by the operator to its pods: a reload was asked for at this time
/// (RFC 3339). The kubelet rewrites a pod's secret volumes when the pod changes; each instance manager
/// re-reads its configuration and password and reports the value once it has applied what the rewritten
/// files hold (the file [`RELOADED_AT_FILE`] beside the password, written by the kubelet in the same
/// atomic update). Never part of the pod spec: a reload restarts nothing.
pub const ANNOTATION_RELOADED_AT: &str = "cnredis.io/reloadedAt";

/// The pod's `cnredis.io/reloadedAt` as a file of the password volume (downward API).
pub const RELOADED_AT_FILE: &str = "reloaded-at";

/// Annotation on the instance-API Secret: when its certificate expires (RFC 3339).
pub const ANNOTATION_CERTIFICATE_NOT_AFTER: &str = "cnredis.io/certificateNotAfter";

/// Redis protocol port.
pub const REDIS_PORT: u16 = 6379;
/// `min-replicas-to-write` of a fenced server: more replicas than can ever exist (the server's maximum).
/// Every write (scripts and transactions too) gets `NOREPLICAS`; reads go on.
pub const FENCED_MIN_REPLICAS: i64 = i32::MAX as i64;
/// `min-replicas-max-lag` while fenced: the barrier only applies with a non-zero lag bound.
pub const FENCED_MAX_LAG: i64 = 10;
/// `repl-ping-replica-period` (seconds) while fenced: a fenced primary sends its replicas no PING, which
/// would move their replication offsets past what it had when fenced. Otherwise the replicas the failover
/// did not promote could be a PING ahead of the one it promoted when they switch to it, and be resynced in
/// full. (Replicas of a primary fenced for longer than their `repl-timeout` reconnect to it.)
pub const FENCED_PING_PERIOD: i64 = 3600;
/// `repl-ping-replica-period` of a server that is not fenced: the engines' default.
pub const PING_PERIOD: i64 = 10;
/// Where instance pods find the object stores' credentials: one directory per store, holding
/// `ACCESS_KEY_ID`, `SECRET_ACCESS_KEY` and optionally `SESSION_TOKEN`.
pub const OBJECT_STORE_CREDENTIALS_DIR: &str = "/etc/cnredis/object-store";
/// The credentials directory of the cluster's own `spec.backup.objectStore`.
pub const BACKUP_CREDENTIALS: &str = "backup";
/// Instance manager HTTP API.
pub const INSTANCE_API_PORT: u16 = 8000;
/// Instance metrics (redis_exporter names plus `cnredis_instance_*`).
pub const INSTANCE_METRICS_PORT: u16 = 9121;
/// Controller metrics and health.
pub const CONTROLLER_METRICS_PORT: u16 = 8080;
/// Sentinel port (sentinel mode, later).
pub const SENTINEL_PORT: u16 = 26379;
/// Cluster bus port (sharded mode, later).
pub const CLUSTER_BUS_PORT: u16 = 16379;

/// Longest RedisCluster name: the longest derived name, `<cluster>-replica` or `<cluster>-<serial>` with
/// room for a five-digit serial, must stay a valid 63-character DNS label.
pub const MAX_CLUSTER_NAME_LEN: usize = 50;

/// Pod and PVC name of the instance with this serial: `<cluster>-<serial>`.
pub fn instance_name(cluster: &str, serial: u32) -> String {
    format!("{cluster}-{serial}")
}

/// The serial of an instance name of `cluster`, or `None` if the name is not one of its instances.
pub fn instance_serial(cluster: &str, name: &str) -> Option<u32> {
    let digits = name.strip_prefix(cluster)?.strip_prefix('-')?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|serial| *serial > 0)
}

/// Read/write Service: selects the primary.
pub fn leader_service(cluster: &str) -> String {
    format!("{cluster}-leader")
}

/// Read-only Service: selects the replicas.
pub fn replica_service(cluster: &str) -> String {
    format!("{cluster}-replica")
}

/// Service selecting every instance.
pub fn any_service(cluster: &str) -> String {
    format!("{cluster}-any")
}

/// Secret holding the server password when the user names none.
pub fn auth_secret(cluster: &str) -> String {
    format!("{cluster}-auth")
}

/// Secret an application mounts: uri, host, port, username, password.
pub fn app_secret(cluster: &str) -> String {
    format!("{cluster}-app")
}

/// `coordination.k8s.io` Lease the primary renews; a primary that cannot renew it in time stops accepting
/// writes by itself, and the operator moves its holder to the new primary when it fails over.
pub fn primary_lease(cluster: &str) -> String {
    format!("{cluster}-primary")
}

/// Secret with the instance API's server certificate (`tls.crt`, `tls.key`) and its CA (`ca.crt`) that
/// every instance of a cluster shared before each instance had its own ([`instance_api_secret_of`]); pods
/// that still mount it are replaced by the rolling update their changed pod spec causes.
pub fn instance_api_secret(cluster: &str) -> String {
    format!("{cluster}-instance-api")
}

/// Secret with one instance's instance-API server certificate (`tls.crt`, `tls.key`; its only name is
/// the pod's, see `cnredis_pki::instance_server_name`) and the CA (`ca.crt`), mounted by that pod only.
/// A pod's name ends with its serial, so `<pod>-api` is never the name of another cluster's Secret.
pub fn instance_api_secret_of(pod: &str) -> String {
    format!("{pod}-api")
}

/// Which instances the `cnredis.io/fencedInstances` annotation fences.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum FencedInstances {
    /// No annotation, or an empty list.
    #[default]
    None,
    /// `["*"]`: every instance.
    All,
    /// These pods.
    Some(BTreeSet<String>),
}

impl FencedInstances {
    /// Parses the annotation value. A value that is not a JSON list of strings is an error: the
    /// operator must not guess which instances a user meant to fence.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(Self::None);
        };
        let names: Vec<String> = serde_json::from_str(value).map_err(|err| {
            format!("{ANNOTATION_FENCED_INSTANCES} must be a JSON list of pod names such as [\"c-1\"] or [\"*\"]: {err}")
        })?;
        if names.iter().any(|n| n == "*") {
            return Ok(Self::All);
        }
        if names.is_empty() {
            return Ok(Self::None);
        }
        Ok(Self::Some(names.into_iter().collect()))
    }

    /// Whether `instance` is fenced.
    pub fn contains(&self, instance: &str) -> bool {
        match self {
            Self::None => false,
            Self::All => true,
            Self::Some(names) => names.contains(instance),
        }
    }

    /// The annotation value for this set (`None` means: remove the annotation).
    pub fn to_annotation(&self) -> Option<String> {
        match self {
            Self::None => None,
            Self::All => Some(r#"["*"]"#.to_string()),
            Self::Some(names) => Some(serde_json::to_string(names).expect("a list of strings serializes")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_round_trip_through_their_serial() {
        assert_eq!(instance_name("cache", 12), "cache-12");
        assert_eq!(instance_serial("cache", "cache-12"), Some(12));
    }

    #[test]
    fn names_of_other_clusters_or_objects_have_no_serial() {
        for name in [
            "cache-app",
            "cache-",
            "cache-0",
            "cache-01",
            "cache-1x",
            "cache2-1",
            "other-1",
            "cache-leader",
        ] {
            assert_eq!(instance_serial("cache", name), None, "{name}");
        }
        // A cluster whose name extends another's is not confused with it.
        assert_eq!(instance_serial("cache", "cache-b-1"), None);
        assert_eq!(instance_serial("cache-b", "cache-b-1"), Some(1));
    }

    #[test]
    fn derived_names_of_the_longest_cluster_name_are_dns_labels() {
        let cluster = "a".repeat(MAX_CLUSTER_NAME_LEN);
        for name in [
            instance_name(&cluster, 99_999),
            leader_service(&cluster),
            replica_service(&cluster),
            any_service(&cluster),
            auth_secret(&cluster),
            app_secret(&cluster),
        ] {
            assert!(name.len() <= 63, "{name} is {} characters", name.len());
        }
    }

    #[test]
    fn fenced_instances_annotation_parses() {
        assert_eq!(FencedInstances::parse(None), Ok(FencedInstances::None));
        assert_eq!(FencedInstances::parse(Some("[]")), Ok(FencedInstances::None));
        assert_eq!(FencedInstances::parse(Some(r#"["*"]"#)), Ok(FencedInstances::All));
        let some = FencedInstances::parse(Some(r#"["c-2","c-1"]"#)).unwrap();
        assert!(some.contains("c-1") && some.contains("c-2") && !some.contains("c-3"));
        assert_eq!(some.to_annotation().as_deref(), Some(r#"["c-1","c-2"]"#));
        assert!(FencedInstances::All.contains("anything"));
    }

    #[test]
    fn malformed_fenced_instances_annotation_is_an_error_not_a_guess() {
        let err = FencedInstances::parse(Some("c-1")).unwrap_err();
        assert!(err.contains("JSON list of pod names"), "{err}");
        assert!(FencedInstances::parse(Some(r#"{"c-1":true}"#)).is_err());
    }
}
