//! Renders the API reference (`docs/api.md`) from the CRD schemas, so the documentation users read is
//! the schema the API server enforces: descriptions, types, defaults, ranges, enums and CEL rules.

use std::fmt::Write;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use crate::cluster::OPERATOR_OWNED_PARAMETERS;

const K8S_API: &str = "https://kubernetes.io/docs/reference/kubernetes-api";

/// Fields whose type is a Kubernetes type, by the end of their path: linked to the upstream reference
/// instead of expanded.
const KUBERNETES_TYPES: &[(&str, &str, &str)] = &[
    (
        ".resources",
        "ResourceRequirements",
        "workload-resources/pod-v1/#resources",
    ),
    (
        ".imagePullSecrets",
        "[]LocalObjectReference",
        "common-definitions/local-object-reference/",
    ),
    (
        ".tolerations",
        "[]Toleration",
        "workload-resources/pod-v1/#scheduling",
    ),
    (
        ".nodeAffinity",
        "NodeAffinity",
        "workload-resources/pod-v1/#NodeAffinity",
    ),
    (
        ".topologySpreadConstraints",
        "[]TopologySpreadConstraint",
        "workload-resources/pod-v1/#scheduling",
    ),
    (".conditions", "[]Condition", "common-definitions/object-meta/"),
    (
        ".accessKeyId",
        "SecretKeySelector",
        "workload-resources/pod-v1/#environment-variables",
    ),
    (
        ".secretAccessKey",
        "SecretKeySelector",
        "workload-resources/pod-v1/#environment-variables",
    ),
    (
        ".sessionToken",
        "SecretKeySelector",
        "workload-resources/pod-v1/#environment-variables",
    ),
    (
        ".recovery.backup",
        "LocalObjectReference",
        "common-definitions/local-object-reference/",
    ),
];

/// The whole API reference as Markdown.
pub fn api_reference(crds: &[CustomResourceDefinition]) -> String {
    let mut out = String::new();
    let group = crds.first().map(|c| c.spec.group.as_str()).unwrap_or_default();
    let _ = writeln!(out, "# API reference: `{group}/v1`\n");
    out.push_str(
        "Generated from the CRD schemas by `make generate`; do not edit by hand. Fields marked *required* \
         must be given; every other field has the default shown, which `kubectl get -o yaml` displays \
         after creation. Rules are enforced at admission: a violating object is rejected with the \
         message shown.\n\n",
    );
    for crd in crds {
        let _ = writeln!(
            out,
            "- [{kind}](#{anchor})",
            kind = crd.spec.names.kind,
            anchor = crd.spec.names.kind.to_lowercase()
        );
    }
    out.push('\n');
    for crd in crds {
        render_crd(crd, &mut out);
    }
    render_owned_parameters(&mut out);
    out
}

fn render_crd(crd: &CustomResourceDefinition, out: &mut String) {
    let names = &crd.spec.names;
    let version = &crd.spec.versions[0];
    let schema = serde_json::to_value(
        version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref()),
    )
    .expect("schema serializes");
    let _ = writeln!(out, "## {}\n", names.kind);
    let spec = &schema["properties"]["spec"];
    if let Some(description) = spec["description"].as_str() {
        let _ = writeln!(out, "{description}\n");
    }
    let short = names.short_names.clone().unwrap_or_default().join(", ");
    let _ = writeln!(
        out,
        "`kubectl get {plural}` (short name `{short}`, category `{category}`) shows: {columns}.\n",
        plural = names.plural,
        category = names.categories.clone().unwrap_or_default().join(", "),
        columns = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    );
    render_rules(&schema, "metadata", out);
    let mut sections = vec![("spec".to_string(), spec.clone())];
    if schema["properties"]["status"].is_object() {
        sections.push(("status".to_string(), schema["properties"]["status"].clone()));
    }
    while !sections.is_empty() {
        let (path, object) = sections.remove(0);
        let nested = render_object(&names.kind, &path, &object, out);
        for (i, section) in nested.into_iter().enumerate() {
            sections.insert(i, section);
        }
    }
}

/// Renders one object's field table and returns the nested objects to render after it.
fn render_object(kind: &str, path: &str, schema: &Value, out: &mut String) -> Vec<(String, Value)> {
    let _ = writeln!(out, "### {kind} `{path}`\n");
    if path.contains('.')
        && let Some(description) = schema["description"].as_str()
    {
        let _ = writeln!(out, "{description}\n");
    }
    let Some(properties) = schema["properties"].as_object() else {
        return Vec::new();
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    out.push_str("| Field | Type | Default | Description |\n|---|---|---|---|\n");
    let mut nested = Vec::new();
    for (name, field) in properties {
        let field_path = format!("{path}.{name}");
        let (type_name, expand) = describe_type(&field_path, name, field);
        if let Some(object) = expand {
            nested.push((field_path.clone(), object));
        }
        let default = if required.contains(&name.as_str()) {
            "*required*".to_string()
        } else {
            field.get("default").map(inline_json).unwrap_or_default()
        };
        let description = field["description"]
            .as_str()
            .unwrap_or_default()
            .replace('\n', " ")
            .replace('|', "\\|");
        let _ = writeln!(out, "| `{name}` | {type_name} | {default} | {description} |");
    }
    out.push('\n');
    render_rules(schema, path, out);
    for (name, field) in properties {
        let item = if field["type"] == "array" {
            &field["items"]
        } else {
            field
        };
        if item["properties"].is_null() {
            render_rules(field, &format!("{path}.{name}"), out);
        }
    }
    nested
}

/// The Markdown type of a field, and the object schema to document in its own section, if any.
fn describe_type(path: &str, name: &str, field: &Value) -> (String, Option<Value>) {
    if let Some((_, k8s_type, page)) = KUBERNETES_TYPES
        .iter()
        .find(|(suffix, _, _)| path.ends_with(suffix))
    {
        return (format!("[{k8s_type}]({K8S_API}/{page})"), None);
    }
    if field["format"] == "date-time" {
        return ("Time (RFC 3339)".to_string(), None);
    }
    match field["type"].as_str() {
        Some("object") if field["properties"].is_object() => {
            (format!("object ({name})"), Some(field.clone()))
        }
        Some("object") if field["additionalProperties"].is_object() => {
            let bound = field["maxProperties"]
                .as_u64()
                .map(|m| format!(", at most {m}"))
                .unwrap_or_default();
            (
                format!(
                    "map of {}{bound}",
                    field["additionalProperties"]["type"].as_str().unwrap_or("any")
                ),
                None,
            )
        }
        Some("array") => {
            let (item, nested) = describe_type(path, name, &field["items"]);
            (format!("[]{item}"), nested)
        }
        Some(scalar) => (scalar_type(scalar, field), None),
        None if field["x-kubernetes-int-or-string"] == true => ("int or string".to_string(), None),
        None => ("any".to_string(), None),
    }
}

fn scalar_type(scalar: &str, field: &Value) -> String {
    let mut text = scalar.to_string();
    if let Some(values) = field["enum"].as_array() {
        let values: Vec<String> = values
            .iter()
            .map(|v| format!("`{}`", v.as_str().unwrap_or_default()))
            .collect();
        let _ = write!(text, ": one of {}", values.join(", "));
    }
    // schemars writes integer bounds as floats (`maximum: 3600.0`).
    match (field["minimum"].as_f64(), field["maximum"].as_f64()) {
        (Some(min), Some(max)) => {
            let _ = write!(text, ", {min} to {max}");
        }
        (Some(min), None) => {
            let _ = write!(text, ", at least {min}");
        }
        (None, Some(max)) => {
            let _ = write!(text, ", at most {max}");
        }
        (None, None) => {}
    }
    if let Some(max) = field["maxLength"].as_u64() {
        let _ = write!(text, ", at most {max} characters");
    }
    text
}

fn render_rules(schema: &Value, path: &str, out: &mut String) {
    let Some(rules) = schema["x-kubernetes-validations"].as_array() else {
        return;
    };
    let _ = writeln!(out, "Rules on `{path}`:\n");
    for rule in rules {
        let message = match (rule["message"].as_str(), rule["messageExpression"].as_str()) {
            (Some(message), _) => message.to_string(),
            (None, Some(expression)) => prose_of(expression),
            (None, None) => format!("`{}`", rule["rule"].as_str().unwrap_or_default()),
        };
        let transition = if rule["rule"].as_str().unwrap_or_default().contains("oldSelf") {
            " (on update)"
        } else {
            ""
        };
        let _ = writeln!(out, "- {message}{transition}");
    }
    out.push('\n');
}

/// The readable part of a CEL message expression: its string literals that are prose (words and spaces),
/// with `…` where the expression computes a value, e.g. `'bad: ' + names + '; fix it'` -> `bad: …; fix it`.
fn prose_of(expression: &str) -> String {
    let prose: Vec<&str> = expression
        .split('\'')
        .skip(1)
        .step_by(2)
        .filter(|literal| literal.contains(' ') && literal.chars().any(char::is_alphabetic))
        .collect();
    prose.join("…")
}

fn render_owned_parameters(out: &mut String) {
    out.push_str(
        "## Parameters cnredis manages\n\nThese server parameters are set by cnredis and rejected in \
         `spec.parameters` (names are compared case-insensitively). Use the field on the right instead.\n\n\
         | Parameter | Set from |\n|---|---|\n",
    );
    for parameter in OPERATOR_OWNED_PARAMETERS {
        let _ = writeln!(out, "| `{parameter}` | {} |", owner_of(parameter));
    }
    out.push('\n');
}

fn owner_of(parameter: &str) -> &'static str {
    match parameter {
        "appendonly" | "appendfsync" | "appenddirname" | "appendfilename" | "dbfilename" | "dir" => {
            "`spec.persistence`, `spec.storage`"
        }
        "maxmemory" | "maxmemory-policy" => "`spec.memory` and the container memory limit",
        "requirepass" | "masterauth" | "masteruser" | "primaryauth" | "primaryuser" | "user" | "aclfile" => {
            "`spec.auth`"
        }
        p if p.starts_with("tls-") => "`spec.tls`",
        p if p.starts_with("min-replicas") || p.starts_with("min-slaves") => "`spec.failover`",
        p if p.starts_with("cluster-") => "`spec.mode`",
        p if p.starts_with("repl-ping-") => "the fence (a fenced primary sends its replicas no PING)",
        _ => "the instance manager (pod identity, ports, replication)",
    }
}

fn inline_json(value: &Value) -> String {
    match value {
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_documents_every_spec_field_with_its_default_and_rules() {
        let doc = api_reference(&crate::crds());
        for expected in [
            "## RedisCluster",
            "## RedisBackup",
            "## RedisScheduledBackup",
            "| `instances` | integer | `1` |",
            "| `imageName` | string, at most 512 characters | `valkey/valkey:8.1.4` |",
            "### RedisCluster `spec.persistence`",
            "one of `none`, `rdb`, `aof`, `rdb+aof`",
            "- storage.size can grow but not shrink (on update)",
            "- a RedisCluster name must be at most 50 characters",
            "| `requirepass` | `spec.auth` |",
            "- parameter … is managed by cnredis and cannot be set; use the dedicated spec fields instead (see docs/api.md)",
            "[ResourceRequirements](",
            "| `stopDelaySeconds` | integer, 5 to 3600 | `30` |",
            "| `backup` | object (backup) |",
        ] {
            assert!(doc.contains(expected), "API reference lacks {expected:?}");
        }
    }

    #[test]
    fn every_field_has_a_description() {
        let doc = api_reference(&crate::crds());
        let undocumented: Vec<&str> = doc
            .lines()
            .filter(|l| l.starts_with("| `") && l.ends_with("|  |"))
            .collect();
        assert!(
            undocumented.is_empty(),
            "fields without a doc comment: {undocumented:#?}"
        );
    }
}
