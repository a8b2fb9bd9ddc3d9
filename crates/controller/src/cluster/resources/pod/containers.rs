//! The containers of an instance pod: `bootstrap` copies the static `cnredis` binary from the operator
//! image into the shared `controller` volume, and `server` runs it as `cnredis instance run`, PID 1 of the
//! unmodified engine image, configured through the environment (see `docs/instance-manager.md`).

use std::collections::BTreeMap;

use cnredis_api::RedisCluster;
use cnredis_api::cluster::LogLevel;
use cnredis_api::names::{INSTANCE_API_PORT, INSTANCE_METRICS_PORT, REDIS_PORT};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, Probe,
    ResourceFieldSelector, ResourceRequirements, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::volumes::{
    AUTH_DIR, CONTROLLER_VOLUME, DATA_DIR, INSTANCE_API_TLS_DIR, PodVolume, RUN_DIR, SERVER_TLS_DIR,
};
use crate::cluster::resources::meta::cluster_name;
use crate::cluster::resources::secrets::PASSWORD_KEY;

pub const BOOTSTRAP_CONTAINER: &str = "bootstrap";
pub const SERVER_CONTAINER: &str = "server";

/// Where the operator image keeps the binary (see the Dockerfile).
const OPERATOR_BINARY: &str = "/usr/local/bin/cnredis";
/// Where `bootstrap` installs it for `server`.
const INSTALLED_BINARY: &str = "/controller/cnredis";

/// The init container: `cnredis bootstrap /controller/cnredis`.
pub fn bootstrap(operator_image: &str, volumes: &[PodVolume]) -> Container {
    Container {
        name: BOOTSTRAP_CONTAINER.to_string(),
        image: Some(operator_image.to_string()),
        command: Some(strings(&[OPERATOR_BINARY, "bootstrap", INSTALLED_BINARY])),
        volume_mounts: Some(
            volumes
                .iter()
                .filter(|v| v.volume.name == CONTROLLER_VOLUME)
                .map(PodVolume::mount)
                .collect(),
        ),
        resources: Some(bootstrap_resources()),
        security_context: Some(container_security_context()),
        ..Container::default()
    }
}

/// Requests equal to limits, cpu and memory both: a pod is Guaranteed only if every container, init
/// containers included, is, so this container must not stand in the way of a user who asks for it.
/// A copy of one binary needs little of either.
fn bootstrap_resources() -> ResourceRequirements {
    let amounts = BTreeMap::from([
        ("cpu".to_string(), Quantity("100m".to_string())),
        ("memory".to_string(), Quantity("64Mi".to_string())),
    ]);
    ResourceRequirements {
        requests: Some(amounts.clone()),
        limits: Some(amounts),
        ..ResourceRequirements::default()
    }
}

/// The database container: `cnredis instance run`, which supervises the engine's server.
pub fn server(cluster: &RedisCluster, volumes: &[PodVolume]) -> Container {
    let spec = &cluster.spec;
    Container {
        name: SERVER_CONTAINER.to_string(),
        image: Some(spec.image_name.clone()),
        image_pull_policy: spec.image_pull_policy.clone(),
        command: Some(strings(&[INSTALLED_BINARY, "instance", "run"])),
        env: Some(server_env(cluster)),
        ports: Some(vec![
            port("redis", REDIS_PORT),
            port("api", INSTANCE_API_PORT),
            port("metrics", INSTANCE_METRICS_PORT),
        ]),
        // Ready: the server answers and, for a replica, is linked and in sync. Probed often, because
        // readiness is what moves a pod in and out of the Services.
        readiness_probe: Some(probe("/readyz", 2, 2, 3)),
        // Alive: the instance manager runs. Lenient, as restarting PID 1 restarts the server too.
        liveness_probe: Some(probe("/healthz", 10, 5, 6)),
        resources: spec.resources.clone(),
        volume_mounts: Some(volumes.iter().map(PodVolume::mount).collect()),
        security_context: Some(container_security_context()),
        ..Container::default()
    }
}

fn server_env(cluster: &RedisCluster) -> Vec<EnvVar> {
    let spec = &cluster.spec;
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("POD_IP", "status.podIP"),
        value_env("CNREDIS_CLUSTER_NAME", cluster_name(cluster)),
        value_env("CNREDIS_DATA_DIR", DATA_DIR),
        value_env("CNREDIS_RUN_DIR", RUN_DIR),
        value_env("CNREDIS_API_TLS_DIR", INSTANCE_API_TLS_DIR),
        value_env("CNREDIS_LOG_FORMAT", "json"),
        value_env("CNREDIS_LOG_LEVEL", log_level(spec.log_level)),
        value_env(
            "CNREDIS_LEASE_DURATION_SECONDS",
            &spec.failover.primary_lease_seconds.to_string(),
        ),
    ];
    if spec.auth.enabled {
        // The path of the password, never the password: it stays in the secret volume.
        env.push(value_env(
            "CNREDIS_PASSWORD_FILE",
            &format!("{AUTH_DIR}/{PASSWORD_KEY}"),
        ));
    }
    if spec.tls.is_some() {
        env.push(value_env("CNREDIS_SERVER_TLS_DIR", SERVER_TLS_DIR));
    }
    if has_memory_limit(cluster) {
        // Without a limit the instance manager reads the cgroup, which has none: no maxmemory.
        env.push(EnvVar {
            name: "CNREDIS_MEMORY_LIMIT".to_string(),
            value_from: Some(EnvVarSource {
                resource_field_ref: Some(ResourceFieldSelector {
                    container_name: Some(SERVER_CONTAINER.to_string()),
                    resource: "limits.memory".to_string(),
                    divisor: Some(Quantity("1".to_string())),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
    }
    env
}

fn has_memory_limit(cluster: &RedisCluster) -> bool {
    cluster
        .spec
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .is_some_and(|limits| limits.contains_key("memory"))
}

/// The tracing filter of a log level, as `--log-level` reads it.
fn log_level(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    }
}

/// Both containers: no privilege to gain or keep, nothing written outside the volumes.
fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}

/// An HTTPS GET on the instance API. The kubelet does not verify the certificate, and the `GET`
/// endpoints need no client certificate.
fn probe(path: &str, period_seconds: i32, timeout_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::Int(i32::from(INSTANCE_API_PORT)),
            scheme: Some("HTTPS".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        timeout_seconds: Some(timeout_seconds),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

fn port(name: &str, number: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: i32::from(number),
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    }
}

fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.to_string(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn value_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..EnvVar::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
