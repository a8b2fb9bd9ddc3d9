//! A container's environment and argv, as the kubelet computes them: `env` (values, field, resource,
//! secret and config-map references), `envFrom`, the `KUBERNETES_SERVICE_*` variables, and `$(VAR)`
//! expansion in `command` and `args`. Pure: the referenced objects are passed in.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Values the environment may refer to, gathered by the caller.
#[derive(Default)]
pub struct EnvSources {
    /// Secret name → key → decoded value.
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// ConfigMap name → key → value.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    pub pod_ip: String,
    pub host_ip: String,
    /// Address and port of the `kubernetes` Service.
    pub kubernetes_service: (String, u16),
    /// Services of the pod's namespace (name, cluster IP, first port), for the `<NAME>_SERVICE_HOST`
    /// and `<NAME>_SERVICE_PORT` variables (`enableServiceLinks`).
    pub service_links: Vec<(String, String, u16)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("secret {0:?} not found")]
    MissingSecret(String),
    #[error("key {key:?} not found in secret {name:?}")]
    MissingSecretKey { name: String, key: String },
    #[error("configmap {0:?} not found")]
    MissingConfigMap(String),
    #[error("key {key:?} not found in configmap {name:?}")]
    MissingConfigMapKey { name: String, key: String },
    #[error("unsupported field path {0:?}")]
    UnsupportedFieldPath(String),
    #[error("unsupported resource {0:?}")]
    UnsupportedResource(String),
}

/// The environment of `container`, in the order upstream builds it: service variables, `envFrom`, `env`.
pub fn container_env(
    pod: &Pod,
    container: &Container,
    sources: &EnvSources,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let (host, port) = &sources.kubernetes_service;
    for (name, value) in [
        ("KUBERNETES_SERVICE_HOST", host.clone()),
        ("KUBERNETES_SERVICE_PORT", port.to_string()),
        ("KUBERNETES_SERVICE_PORT_HTTPS", port.to_string()),
        ("KUBERNETES_PORT", format!("tcp://{host}:{port}")),
    ] {
        set(&mut env, name, value);
    }
    for (name, ip, port) in &sources.service_links {
        let prefix = name.to_uppercase().replace('-', "_");
        set(&mut env, &format!("{prefix}_SERVICE_HOST"), ip.clone());
        set(&mut env, &format!("{prefix}_SERVICE_PORT"), port.to_string());
    }
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(secret) = &from.secret_ref {
            match sources.secrets.get(&secret.name) {
                Some(data) => data
                    .iter()
                    .for_each(|(k, v)| set(&mut env, &format!("{prefix}{k}"), v.clone())),
                None if secret.optional == Some(true) => {}
                None => return Err(EnvError::MissingSecret(secret.name.clone())),
            }
        }
        if let Some(cm) = &from.config_map_ref {
            match sources.config_maps.get(&cm.name) {
                Some(data) => data
                    .iter()
                    .for_each(|(k, v)| set(&mut env, &format!("{prefix}{k}"), v.clone())),
                None if cm.optional == Some(true) => {}
                None => return Err(EnvError::MissingConfigMap(cm.name.clone())),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            None => expand(var.value.as_deref().unwrap_or_default(), &env),
            Some(from) => {
                if let Some(field) = &from.field_ref {
                    field_value(pod, &field.field_path, sources)?
                } else if let Some(resource) = &from.resource_field_ref {
                    resource_value(container, &resource.resource, resource.divisor.as_ref())?
                } else if let Some(key) = &from.secret_key_ref {
                    let found = referenced_key(
                        &sources.secrets,
                        &key.name,
                        &key.key,
                        key.optional,
                        |name, key| {
                            if key.is_empty() {
                                EnvError::MissingSecret(name)
                            } else {
                                EnvError::MissingSecretKey { name, key }
                            }
                        },
                    )?;
                    match found {
                        Some(value) => value,
                        None => continue,
                    }
                } else if let Some(key) = &from.config_map_key_ref {
                    let found = referenced_key(
                        &sources.config_maps,
                        &key.name,
                        &key.key,
                        key.optional,
                        |name, key| {
                            if key.is_empty() {
                                EnvError::MissingConfigMap(name)
                            } else {
                                EnvError::MissingConfigMapKey { name, key }
                            }
                        },
                    )?;
                    match found {
                        Some(value) => value,
                        None => continue,
                    }
                } else {
                    String::new()
                }
            }
        };
        set(&mut env, &var.name, value);
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        set(
            &mut env,
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        );
    }
    if !env.iter().any(|(k, _)| k == "HOSTNAME") {
        set(
            &mut env,
            "HOSTNAME",
            pod.metadata.name.clone().unwrap_or_default(),
        );
    }
    Ok(env)
}

/// One key of a Secret or ConfigMap the environment refers to; `None` when it is missing but optional.
/// `missing(name, key)` builds the error, with an empty key when the whole object is missing.
fn referenced_key(
    objects: &BTreeMap<String, BTreeMap<String, String>>,
    name: &str,
    key: &str,
    optional: Option<bool>,
    missing: impl Fn(String, String) -> EnvError,
) -> Result<Option<String>, EnvError> {
    match objects.get(name) {
        Some(data) => match data.get(key) {
            Some(value) => Ok(Some(value.clone())),
            None if optional == Some(true) => Ok(None),
            None => Err(missing(name.to_string(), key.to_string())),
        },
        None if optional == Some(true) => Ok(None),
        None => Err(missing(name.to_string(), String::new())),
    }
}

/// `command` + `args` with `$(VAR)` expanded from `env`.
pub fn container_argv(container: &Container, env: &[(String, String)]) -> Vec<String> {
    container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .map(|arg| expand(arg, env))
        .collect()
}

fn set(env: &mut Vec<(String, String)>, name: &str, value: String) {
    match env.iter_mut().find(|(k, _)| k == name) {
        Some(entry) => entry.1 = value,
        None => env.push((name.to_string(), value)),
    }
}

/// Upstream's expansion: `$(VAR)` becomes the value of VAR if defined (else stays as written), `$$` is a
/// literal `$`.
pub fn expand(input: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.iter().find(|(k, _)| k == name) {
                Some((_, value)) => out.push_str(value),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn field_value(pod: &Pod, path: &str, sources: &EnvSources) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let lookup = |map: &Option<BTreeMap<String, String>>, key: &str| {
        map.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default()
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => sources.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => sources.host_ip.clone(),
        other => {
            if let Some(key) = bracket_key(other, "metadata.labels") {
                lookup(&meta.labels, &key)
            } else if let Some(key) = bracket_key(other, "metadata.annotations") {
                lookup(&meta.annotations, &key)
            } else {
                return Err(EnvError::UnsupportedFieldPath(other.to_string()));
            }
        }
    })
}

/// `metadata.labels['a.b/c']` → `a.b/c`.
fn bracket_key(path: &str, prefix: &str) -> Option<String> {
    let inner = path
        .strip_prefix(prefix)?
        .strip_prefix("['")?
        .strip_suffix("']")?;
    Some(inner.to_string())
}

fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&Quantity>,
) -> Result<String, EnvError> {
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| EnvError::UnsupportedResource(resource.to_string()))?;
    let resources = container.resources.as_ref();
    let map = match kind {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => return Err(EnvError::UnsupportedResource(resource.to_string())),
    };
    let Some(quantity) = map.and_then(|m| m.get(name)) else {
        // Upstream reports node allocatable for an unset limit; the local nodes advertise none.
        return Ok("0".to_string());
    };
    let value =
        parse_quantity(&quantity.0).ok_or_else(|| EnvError::UnsupportedResource(quantity.0.clone()))?;
    let divisor = divisor.and_then(|d| parse_quantity(&d.0)).unwrap_or(1.0);
    Ok(format!("{}", (value / divisor).ceil() as i64))
}

/// A Kubernetes quantity as a number (`1Gi` → 1073741824, `250m` → 0.25).
pub fn parse_quantity(text: &str) -> Option<f64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let text = text.trim();
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    text.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": "c-1", "namespace": "ns", "uid": "u1", "labels": { "cnredis.io/cluster": "c" } },
            "spec": { "nodeName": "cnredis-a", "serviceAccountName": "sa", "containers": [] }
        }))
        .unwrap()
    }

    fn sources() -> EnvSources {
        EnvSources {
            secrets: [(
                "s".to_string(),
                [("pw".to_string(), "hunter2".to_string())].into(),
            )]
            .into(),
            config_maps: [("cm".to_string(), [("A".to_string(), "1".to_string())].into())].into(),
            pod_ip: "10.244.1.5".into(),
            host_ip: "10.245.0.12".into(),
            kubernetes_service: ("10.96.0.1".into(), 443),
            service_links: vec![("db-leader".into(), "10.96.0.20".into(), 6379)],
        }
    }

    fn container(value: serde_json::Value) -> Container {
        serde_json::from_value(value).unwrap()
    }

    fn get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn downward_api_secret_configmap_and_resource_values_resolve() {
        let c = container(json!({
            "name": "x",
            "resources": { "limits": { "memory": "256Mi" } },
            "envFrom": [{ "configMapRef": { "name": "cm" }, "prefix": "CM_" }],
            "env": [
                { "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
                { "name": "POD_IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } },
                { "name": "CLUSTER", "valueFrom": { "fieldRef": { "fieldPath": "metadata.labels['cnredis.io/cluster']" } } },
                { "name": "PW", "valueFrom": { "secretKeyRef": { "name": "s", "key": "pw" } } },
                { "name": "MEM", "valueFrom": { "resourceFieldRef": { "resource": "limits.memory", "divisor": "1Mi" } } },
                { "name": "GREETING", "value": "pod $(POD_NAME) at $(POD_IP), $$(POD_NAME) stays, $(NOPE) stays" }
            ]
        }));
        let env = container_env(&pod(), &c, &sources()).unwrap();
        assert_eq!(get(&env, "POD_NAME"), Some("c-1"));
        assert_eq!(get(&env, "POD_IP"), Some("10.244.1.5"));
        assert_eq!(get(&env, "CLUSTER"), Some("c"));
        assert_eq!(get(&env, "PW"), Some("hunter2"));
        assert_eq!(get(&env, "MEM"), Some("256"));
        assert_eq!(get(&env, "CM_A"), Some("1"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get(&env, "DB_LEADER_SERVICE_HOST"), Some("10.96.0.20"));
        assert_eq!(get(&env, "DB_LEADER_SERVICE_PORT"), Some("6379"));
        assert_eq!(
            get(&env, "GREETING"),
            Some("pod c-1 at 10.244.1.5, $(POD_NAME) stays, $(NOPE) stays")
        );
        assert!(get(&env, "PATH").is_some());
    }

    #[test]
    fn missing_references_are_errors_unless_optional() {
        let missing = container(
            json!({ "name": "x", "env": [{ "name": "P", "valueFrom": { "secretKeyRef": { "name": "s", "key": "nope" } } }] }),
        );
        assert_eq!(
            container_env(&pod(), &missing, &sources()),
            Err(EnvError::MissingSecretKey {
                name: "s".into(),
                key: "nope".into()
            })
        );
        let optional = container(
            json!({ "name": "x", "env": [{ "name": "P", "valueFrom": { "secretKeyRef": { "name": "gone", "key": "k", "optional": true } } }] }),
        );
        let env = container_env(&pod(), &optional, &sources()).unwrap();
        assert_eq!(get(&env, "P"), None);
    }

    #[test]
    fn argv_expands_variables_in_command_and_args() {
        let c =
            container(json!({ "name": "x", "command": ["/bin/echo", "$(A)"], "args": ["$(B)", "$$(A)"] }));
        let env = vec![
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "2".to_string()),
        ];
        assert_eq!(container_argv(&c, &env), vec!["/bin/echo", "1", "2", "$(A)"]);
    }

    #[test]
    fn quantities_parse_with_binary_and_decimal_suffixes() {
        assert_eq!(parse_quantity("1Gi"), Some(1073741824.0));
        assert_eq!(parse_quantity("250m"), Some(0.25));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("1.5G"), Some(1.5e9));
        assert_eq!(parse_quantity("lots"), None);
    }
}
