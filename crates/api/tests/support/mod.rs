//! Admission as the API server does it for our CRDs, without an API server: schema defaults, then the
//! structural schema (types, enums, ranges, lengths, required and unknown fields, as `kubectl apply
//! --validate=strict` reports them), then the CEL rules (`x-kubernetes-validations`, evaluated by
//! kube's `cel` feature). End-to-end suites check the same objects against a real API server.

#![allow(dead_code)]

use kube::core::cel::{Validator, apply_defaults};
use serde_json::{Map, Value, json};

/// The openAPIV3Schema of the CRD of `kind`.
pub fn schema_of(kind: &str) -> Value {
    let crd = cnredis_api::crds()
        .into_iter()
        .find(|crd| crd.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD of kind {kind}"));
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .unwrap()
        .open_api_v3_schema
        .as_ref()
        .unwrap();
    serde_json::to_value(schema).unwrap()
}

/// Admits `object` (a create when `old` is `None`, else an update of `old`). Returns the defaulted
/// object, or every error message the API server would give.
pub fn admit(object: &Value, old: Option<&Value>) -> Result<Value, Vec<String>> {
    let kind = object["kind"].as_str().expect("object has a kind");
    let schema = schema_of(kind);
    let defaulted = apply_defaults(&schema, object);
    let mut errors = Vec::new();
    check_structure(&schema, &defaulted, "", true, &mut errors);
    if let Err(cel) = Validator::new().validate(&schema, &defaulted, old) {
        errors.extend(cel.iter().map(|e| e.to_string()));
    }
    if errors.is_empty() {
        Ok(defaulted)
    } else {
        Err(errors)
    }
}

/// Asserts `object` is admitted and returns it defaulted.
#[track_caller]
pub fn accepted(object: &Value, old: Option<&Value>) -> Value {
    match admit(object, old) {
        Ok(v) => v,
        Err(errors) => panic!("expected admission, got errors: {errors:#?}\nobject: {object:#}"),
    }
}

/// Asserts `object` is rejected with an error containing `expected`.
#[track_caller]
pub fn rejected(object: &Value, old: Option<&Value>, expected: &str) {
    match admit(object, old) {
        Ok(_) => panic!("expected rejection with {expected:?}, object was admitted: {object:#}"),
        Err(errors) => assert!(
            errors.iter().any(|e| e.contains(expected)),
            "expected an error containing {expected:?}, got {errors:#?}"
        ),
    }
}

/// Returns `base` with the value at a dotted `path` (e.g. `spec.storage.size`) set to `value`;
/// `Value::Null` removes the field.
pub fn with(base: &Value, path: &str, value: Value) -> Value {
    let mut out = base.clone();
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap();
    let mut cursor = &mut out;
    for part in parts {
        cursor = cursor
            .as_object_mut()
            .unwrap()
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    let map = cursor.as_object_mut().unwrap();
    if value.is_null() {
        map.remove(last);
    } else {
        map.insert(last.to_string(), value);
    }
    out
}

/// A minimal RedisCluster as a user writes it.
pub fn cluster(name: &str) -> Value {
    json!({
        "apiVersion": "redis.cnredis.io/v1",
        "kind": "RedisCluster",
        "metadata": { "name": name, "namespace": "default" },
        "spec": { "instances": 3 }
    })
}

/// A RedisCluster with a backup destination.
pub fn cluster_with_backup(name: &str) -> Value {
    with(
        &cluster(name),
        "spec.backup",
        json!({ "objectStore": object_store() }),
    )
}

pub fn object_store() -> Value {
    json!({
        "destinationPath": "s3://backups/cnredis",
        "endpointURL": "http://object-store.storage.svc:9000",
        "s3Credentials": {
            "accessKeyId": { "name": "backup-creds", "key": "ACCESS_KEY_ID" },
            "secretAccessKey": { "name": "backup-creds", "key": "SECRET_ACCESS_KEY" }
        }
    })
}

pub fn backup(name: &str, cluster: &str) -> Value {
    json!({
        "apiVersion": "redis.cnredis.io/v1",
        "kind": "RedisBackup",
        "metadata": { "name": name, "namespace": "default" },
        "spec": { "cluster": { "name": cluster } }
    })
}

pub fn scheduled_backup(name: &str, cluster: &str, schedule: &str) -> Value {
    json!({
        "apiVersion": "redis.cnredis.io/v1",
        "kind": "RedisScheduledBackup",
        "metadata": { "name": name, "namespace": "default" },
        "spec": { "cluster": { "name": cluster }, "schedule": schedule }
    })
}

fn check_structure(schema: &Value, value: &Value, path: &str, root: bool, errors: &mut Vec<String>) {
    let at = if path.is_empty() { "<root>" } else { path };
    if value.is_null() {
        if schema["nullable"] != json!(true) {
            errors.push(format!("{at}: Invalid value: \"null\": must not be null"));
        }
        return;
    }
    let int_or_string = schema["x-kubernetes-int-or-string"] == json!(true);
    let type_ok = match (schema["type"].as_str(), value) {
        _ if int_or_string => value.is_string() || value.is_i64() || value.is_u64(),
        (None, _) => true,
        (Some("object"), Value::Object(_)) | (Some("array"), Value::Array(_)) => true,
        (Some("string"), Value::String(_)) | (Some("boolean"), Value::Bool(_)) => true,
        (Some("integer"), Value::Number(n)) => n.is_i64() || n.is_u64(),
        (Some("number"), Value::Number(_)) => true,
        _ => false,
    };
    if !type_ok {
        errors.push(format!(
            "{at}: Invalid value: {value}: must be of type {}",
            schema["type"]
        ));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        errors.push(format!(
            "{at}: Unsupported value: {value}: supported values: {}",
            list.join(", ")
        ));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema["minimum"].as_f64()
            && n < min
        {
            errors.push(format!(
                "{at}: Invalid value: {value}: should be greater than or equal to {min}"
            ));
        }
        if let Some(max) = schema["maximum"].as_f64()
            && n > max
        {
            errors.push(format!(
                "{at}: Invalid value: {value}: should be less than or equal to {max}"
            ));
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|min| len < min) {
            errors.push(format!(
                "{at}: Invalid value: {value}: should be at least {} chars long",
                schema["minLength"]
            ));
        }
        if schema["maxLength"].as_u64().is_some_and(|max| len > max) {
            errors.push(format!(
                "{at}: Too long: may not be more than {} bytes",
                schema["maxLength"]
            ));
        }
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            check_structure(&schema["items"], item, &format!("{path}[{i}]"), false, errors);
        }
    }
    if let Some(fields) = value.as_object() {
        if schema["maxProperties"]
            .as_u64()
            .is_some_and(|max| fields.len() as u64 > max)
        {
            errors.push(format!(
                "{at}: Too many: {}: must have at most {} items",
                fields.len(),
                schema["maxProperties"]
            ));
        }
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap();
            if !fields.contains_key(name) {
                errors.push(format!("{}: Required value", join(path, name)));
            }
        }
        let preserve = schema["x-kubernetes-preserve-unknown-fields"] == json!(true);
        for (name, field) in fields {
            if root && matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            let sub = join(path, name);
            if let Some(prop) = schema["properties"].get(name) {
                check_structure(prop, field, &sub, false, errors);
            } else if schema["additionalProperties"].is_object() {
                check_structure(&schema["additionalProperties"], field, &sub, false, errors);
            } else if !preserve {
                errors.push(format!("{sub}: unknown field \"{name}\""));
            }
        }
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}
