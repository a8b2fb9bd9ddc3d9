//! `install generate`: the install manifest (`manifests/install.yaml`, rendered from the Helm chart and
//! built into the plugin) for another namespace, image, watch scope or replica count.

use serde_json::{Value, json};

/// The manifest this plugin version ships.
const INSTALL_YAML: &str = include_str!("../../../manifests/install.yaml");
const DEFAULT_NAMESPACE: &str = "cnredis-system";

pub struct InstallOptions {
    /// Namespace of the operator.
    pub namespace: String,
    /// Operator image; also what instance pods copy the instance manager from.
    pub image: Option<String>,
    /// Namespaces the operator watches; empty means all.
    pub watch_namespaces: Vec<String>,
    pub replicas: u32,
}

pub fn generate(options: &InstallOptions) -> anyhow::Result<String> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(INSTALL_YAML)?;
    let mut out = String::new();
    for mut document in documents {
        if document.is_null() {
            continue;
        }
        adjust(&mut document, options);
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&document)?);
    }
    Ok(out)
}

fn adjust(document: &mut Value, options: &InstallOptions) {
    let kind = document["kind"].as_str().unwrap_or_default().to_string();
    if kind == "Namespace" {
        document["metadata"]["name"] = json!(options.namespace);
    }
    if document["metadata"]["namespace"] == json!(DEFAULT_NAMESPACE) {
        document["metadata"]["namespace"] = json!(options.namespace);
    }
    if let Some(subjects) = document.get_mut("subjects").and_then(Value::as_array_mut) {
        for subject in subjects {
            if subject["namespace"] == json!(DEFAULT_NAMESPACE) {
                subject["namespace"] = json!(options.namespace);
            }
        }
    }
    if kind != "Deployment" {
        return;
    }
    document["spec"]["replicas"] = json!(options.replicas);
    let Some(container) = document["spec"]["template"]["spec"]["containers"].get_mut(0) else {
        return;
    };
    if let Some(image) = &options.image {
        container["image"] = json!(image);
        if let Some(env) = container["env"].as_array_mut() {
            for var in env.iter_mut().filter(|v| v["name"] == "CNREDIS_OPERATOR_IMAGE") {
                var["value"] = json!(image);
            }
        }
    }
    if !options.watch_namespaces.is_empty()
        && let Some(args) = container["args"].as_array_mut()
    {
        args.retain(|a| !a.as_str().is_some_and(|a| a.starts_with("--watch-namespaces")));
        args.push(json!(format!(
            "--watch-namespaces={}",
            options.watch_namespaces.join(",")
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn documents(yaml: &str) -> Vec<Value> {
        serde_saphyr::from_multiple(yaml).unwrap()
    }

    #[test]
    fn the_defaults_reproduce_the_shipped_manifest() {
        let generated = generate(&InstallOptions {
            namespace: DEFAULT_NAMESPACE.into(),
            image: None,
            watch_namespaces: vec![],
            replicas: 1,
        })
        .unwrap();
        let shipped: Vec<Value> = documents(INSTALL_YAML)
            .into_iter()
            .filter(|d| !d.is_null())
            .collect();
        let generated = documents(&generated);
        assert_eq!(generated.len(), shipped.len());
        for (generated, shipped) in generated.iter().zip(&shipped) {
            assert!(
                generated == shipped,
                "{} {} differs",
                shipped["kind"],
                shipped["metadata"]["name"]
            );
        }
    }

    #[test]
    fn namespace_image_scope_and_replicas_reach_every_object() {
        let generated = generate(&InstallOptions {
            namespace: "ops".into(),
            image: Some("registry.example/cnredis:0.2.0".into()),
            watch_namespaces: vec!["apps".into(), "cache".into()],
            replicas: 2,
        })
        .unwrap();
        assert!(!generated.contains(DEFAULT_NAMESPACE), "{generated}");
        let docs = documents(&generated);
        let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
        assert_eq!(deployment["metadata"]["namespace"], "ops");
        assert_eq!(deployment["spec"]["replicas"], 2);
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "registry.example/cnredis:0.2.0");
        assert!(
            container["env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["value"] == "registry.example/cnredis:0.2.0")
        );
        assert!(
            container["args"]
                .as_array()
                .unwrap()
                .contains(&json!("--watch-namespaces=apps,cache"))
        );
        let binding = docs.iter().find(|d| d["kind"] == "ClusterRoleBinding").unwrap();
        assert_eq!(binding["subjects"][0]["namespace"], "ops");
        assert!(
            docs.iter()
                .any(|d| d["kind"] == "Namespace" && d["metadata"]["name"] == "ops")
        );
    }
}
