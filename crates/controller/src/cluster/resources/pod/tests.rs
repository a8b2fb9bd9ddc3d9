use cnredis_api::cluster::{LogLevel, PodAntiAffinityType};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Toleration,
    TopologySpreadConstraint, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::volumes::BACKUP_CREDENTIALS_DIR;
use super::*;
use crate::cluster::resources::fixture::{ClusterBuilder, cluster};

const OPERATOR_IMAGE: &str = "ghcr.io/cnredis/cnredis:1.2.3";

fn pod_with_role(cluster: &RedisCluster, role: Option<&str>) -> Pod {
    desired_pod(&PodInputs {
        cluster,
        serial: 2,
        operator_image: OPERATOR_IMAGE,
        role,
    })
}

fn instance_pod(builder: ClusterBuilder) -> Pod {
    pod_with_role(&builder.build(), Some("replica"))
}

fn spec(pod: &Pod) -> &PodSpec {
    pod.spec.as_ref().unwrap()
}

fn server(pod: &Pod) -> &Container {
    let containers = &spec(pod).containers;
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].name, "server");
    &containers[0]
}

fn bootstrap(pod: &Pod) -> &Container {
    let init = spec(pod).init_containers.as_ref().unwrap();
    assert_eq!(init.len(), 1);
    assert_eq!(init[0].name, "bootstrap");
    &init[0]
}

fn env<'a>(pod: &'a Pod, name: &str) -> Option<&'a EnvVar> {
    server(pod).env.as_ref().unwrap().iter().find(|e| e.name == name)
}

fn env_value(pod: &Pod, name: &str) -> Option<String> {
    env(pod, name).map(|e| e.value.clone().expect("a literal value"))
}

fn volume<'a>(pod: &'a Pod, name: &str) -> Option<&'a Volume> {
    spec(pod)
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == name)
}

/// Mount path of `volume` in the server container.
fn mount_path(pod: &Pod, volume: &str) -> Option<String> {
    let mounts = server(pod).volume_mounts.as_ref().unwrap();
    mounts
        .iter()
        .find(|m| m.name == volume)
        .map(|m| m.mount_path.clone())
}

fn labels(pod: &Pod) -> &BTreeMap<String, String> {
    pod.metadata.labels.as_ref().unwrap()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// --- identity and metadata ---

#[test]
fn pod_is_named_after_its_cluster_and_serial_and_owned_by_the_cluster() {
    let pod = instance_pod(cluster("cache").namespace("prod").uid("u-7"));
    assert_eq!(pod.metadata.name.as_deref(), Some("cache-2"));
    assert_eq!(pod.metadata.namespace.as_deref(), Some("prod"));
    assert_eq!(spec(&pod).hostname.as_deref(), Some("cache-2"));
    let owners = pod.metadata.owner_references.as_ref().unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].kind, "RedisCluster");
    assert_eq!(owners[0].api_version, "redis.cnredis.io/v1");
    assert_eq!(owners[0].uid, "u-7");
    assert_eq!(owners[0].controller, Some(true));
    assert_eq!(owners[0].block_owner_deletion, Some(true));
}

#[test]
fn pod_carries_cluster_instance_and_recommended_labels() {
    let pod = instance_pod(cluster("cache"));
    let labels = labels(&pod);
    assert_eq!(labels["cnredis.io/cluster"], "cache");
    assert_eq!(labels["cnredis.io/instanceName"], "cache-2");
    assert_eq!(labels["app.kubernetes.io/name"], "cnredis");
    assert_eq!(labels["app.kubernetes.io/instance"], "cache");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "cnredis");
    assert_eq!(labels["app.kubernetes.io/component"], "database");
}

#[test]
fn role_label_is_present_only_when_a_role_is_given() {
    let cluster = cluster("cache").build();
    for role in [Some("primary"), Some("replica"), None] {
        let pod = pod_with_role(&cluster, role);
        assert_eq!(
            labels(&pod).get("cnredis.io/role").map(String::as_str),
            role,
            "{role:?}"
        );
    }
}

// --- pod-level settings ---

#[test]
fn pod_runs_as_the_instance_service_account_with_its_token() {
    let pod = instance_pod(cluster("cache"));
    assert_eq!(spec(&pod).service_account_name.as_deref(), Some("cache-instance"));
    assert_eq!(spec(&pod).automount_service_account_token, Some(true));
    assert_eq!(spec(&pod).enable_service_links, Some(false));
}

#[test]
fn pod_level_settings_come_from_the_spec() {
    let pod = instance_pod(
        cluster("c")
            .stop_delay_seconds(120)
            .priority_class("db-critical")
            .image_pull_secret("registry"),
    );
    let settings = spec(&pod);
    assert_eq!(settings.termination_grace_period_seconds, Some(120));
    assert_eq!(settings.priority_class_name.as_deref(), Some("db-critical"));
    assert_eq!(settings.image_pull_secrets.as_ref().unwrap()[0].name, "registry");

    let defaults = instance_pod(cluster("c"));
    assert_eq!(spec(&defaults).termination_grace_period_seconds, Some(30));
    assert_eq!(spec(&defaults).priority_class_name, None);
    assert_eq!(spec(&defaults).image_pull_secrets, None);
}

#[test]
fn pod_runs_as_the_engine_user_with_the_runtime_default_seccomp_profile() {
    let security = spec(&instance_pod(cluster("c")))
        .security_context
        .clone()
        .unwrap();
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.run_as_user, Some(999));
    assert_eq!(security.run_as_group, Some(999));
    assert_eq!(security.fs_group, Some(999));
    assert_eq!(security.seccomp_profile.unwrap().type_, "RuntimeDefault");
}

#[test]
fn containers_have_no_privilege_and_a_read_only_root() {
    let pod = instance_pod(cluster("c"));
    for container in [bootstrap(&pod), server(&pod)] {
        let security = container.security_context.clone().unwrap();
        assert_eq!(
            security.allow_privilege_escalation,
            Some(false),
            "{}",
            container.name
        );
        assert_eq!(
            security.read_only_root_filesystem,
            Some(true),
            "{}",
            container.name
        );
        assert_eq!(security.run_as_non_root, Some(true), "{}", container.name);
        assert_eq!(security.capabilities.unwrap().drop, Some(strings(&["ALL"])));
    }
}

// --- containers ---

#[test]
fn bootstrap_copies_the_operator_binary_into_the_controller_volume() {
    let pod = instance_pod(cluster("c"));
    let bootstrap = bootstrap(&pod);
    assert_eq!(bootstrap.image.as_deref(), Some(OPERATOR_IMAGE));
    assert_eq!(
        bootstrap.command,
        Some(strings(&[
            "/usr/local/bin/cnredis",
            "bootstrap",
            "/controller/cnredis"
        ]))
    );
    let mounts = bootstrap.volume_mounts.as_ref().unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(
        (mounts[0].name.as_str(), mounts[0].mount_path.as_str()),
        ("controller", "/controller")
    );
    assert_eq!(mount_path(&pod, "controller").as_deref(), Some("/controller"));
}

#[test]
fn bootstrap_requests_equal_its_limits_so_a_pod_can_be_guaranteed() {
    let pod = instance_pod(cluster("c"));
    let resources = bootstrap(&pod).resources.clone().unwrap();
    let requests = resources.requests.unwrap();
    assert_eq!(Some(&requests), resources.limits.as_ref());
    assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
}

#[test]
fn server_runs_the_instance_manager_in_the_engine_image() {
    let pod = instance_pod(
        cluster("c")
            .image("valkey/valkey:9.1")
            .image_pull_policy("Always"),
    );
    let container = server(&pod);
    assert_eq!(container.image.as_deref(), Some("valkey/valkey:9.1"));
    assert_eq!(container.image_pull_policy.as_deref(), Some("Always"));
    assert_eq!(
        container.command,
        Some(strings(&["/controller/cnredis", "instance", "run"]))
    );
    assert_eq!(container.args, None);

    let defaults = instance_pod(cluster("c"));
    assert_eq!(
        server(&defaults).image.as_deref(),
        Some(cnredis_api::cluster::DEFAULT_IMAGE)
    );
    assert_eq!(server(&defaults).image_pull_policy, None);
}

#[test]
fn server_learns_its_identity_from_the_downward_api() {
    let pod = instance_pod(cluster("cache"));
    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_IP", "status.podIP"),
    ] {
        let source = env(&pod, name).unwrap().value_from.clone().unwrap();
        assert_eq!(source.field_ref.unwrap().field_path, field, "{name}");
    }
    assert_eq!(env_value(&pod, "CNREDIS_CLUSTER_NAME").as_deref(), Some("cache"));
}

#[test]
fn server_env_names_the_pod_directories_and_json_logs() {
    let pod = instance_pod(cluster("c"));
    for (name, value) in [
        ("CNREDIS_DATA_DIR", "/data"),
        ("CNREDIS_RUN_DIR", "/controller/run"),
        ("CNREDIS_API_TLS_DIR", "/etc/cnredis/instance-api"),
        ("CNREDIS_LOG_FORMAT", "json"),
        ("CNREDIS_LOG_LEVEL", "info"),
    ] {
        assert_eq!(env_value(&pod, name).as_deref(), Some(value), "{name}");
    }
}

#[test]
fn log_level_env_follows_the_spec() {
    let cases = [
        (LogLevel::Error, "error"),
        (LogLevel::Warn, "warn"),
        (LogLevel::Info, "info"),
        (LogLevel::Debug, "debug"),
        (LogLevel::Trace, "trace"),
    ];
    for (level, expected) in cases {
        let pod = instance_pod(cluster("c").log_level(level));
        assert_eq!(env_value(&pod, "CNREDIS_LOG_LEVEL").as_deref(), Some(expected));
    }
}

#[test]
fn secrets_reach_the_pod_only_as_volumes() {
    let pod = instance_pod(cluster("c").tls("c-tls"));
    for container in [bootstrap(&pod), server(&pod)] {
        assert_eq!(container.env_from, None, "{}", container.name);
        for var in container.env.iter().flatten() {
            let secret_ref = var.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref());
            assert!(secret_ref.is_none(), "{} reads a secret", var.name);
        }
    }
    // The password file is named, the password is not.
    assert_eq!(
        env_value(&pod, "CNREDIS_PASSWORD_FILE").as_deref(),
        Some("/etc/cnredis/auth/password")
    );
}

#[test]
fn backup_credentials_are_optional_projected_files_where_the_instance_manager_reads_them() {
    assert_eq!(
        BACKUP_CREDENTIALS_DIR,
        format!(
            "{}/{}",
            cnredis_api::names::OBJECT_STORE_CREDENTIALS_DIR,
            cnredis_api::names::BACKUP_CREDENTIALS
        )
    );
    assert!(volume(&instance_pod(cluster("c")), "object-store-backup").is_none());
    let pod = instance_pod(cluster("c").backup());
    let projected = volume(&pod, "object-store-backup")
        .unwrap()
        .projected
        .clone()
        .unwrap();
    let files: Vec<(String, String, String, Option<bool>)> = projected
        .sources
        .unwrap()
        .into_iter()
        .map(|source| {
            let secret = source.secret.unwrap();
            let item = secret.items.unwrap().remove(0);
            (secret.name, item.key, item.path, secret.optional)
        })
        .collect();
    let file = |key: &str, path: &str| ("s3".to_string(), key.to_string(), path.to_string(), Some(true));
    assert_eq!(
        files,
        [file("id", "ACCESS_KEY_ID"), file("key", "SECRET_ACCESS_KEY")]
    );
    assert_eq!(
        mount_path(&pod, "object-store-backup").as_deref(),
        Some(BACKUP_CREDENTIALS_DIR)
    );
}

/// The auth volume's sources: (secret name, key, path) of the password, and the downward-API file.
fn auth_sources(pod: &Pod) -> ((String, String, String), (String, String)) {
    let sources = volume(pod, "auth")
        .unwrap()
        .projected
        .clone()
        .unwrap()
        .sources
        .unwrap();
    assert_eq!(sources.len(), 2, "{sources:?}");
    let secret = sources[0].secret.clone().unwrap();
    let item = secret.items.unwrap().remove(0);
    let downward = sources[1].downward_api.clone().unwrap().items.unwrap().remove(0);
    (
        (secret.name, item.key, item.path),
        (downward.path, downward.field_ref.unwrap().field_path),
    )
}

#[test]
fn password_file_and_auth_volume_exist_only_with_auth() {
    let with_auth = instance_pod(cluster("cache"));
    let (password, reloaded_at) = auth_sources(&with_auth);
    assert_eq!(
        password,
        (
            "cache-auth".to_string(),
            "password".to_string(),
            "password".to_string()
        )
    );
    // Written by the kubelet in the same atomic update as the password: the reload's proof.
    assert_eq!(
        reloaded_at,
        (
            "reloaded-at".to_string(),
            "metadata.annotations['cnredis.io/reloadedAt']".to_string()
        )
    );
    assert_eq!(
        mount_path(&with_auth, "auth").as_deref(),
        Some("/etc/cnredis/auth")
    );

    let without = instance_pod(cluster("cache").auth_disabled());
    assert!(volume(&without, "auth").is_none());
    assert!(mount_path(&without, "auth").is_none());
    assert!(env(&without, "CNREDIS_PASSWORD_FILE").is_none());
}

#[test]
fn auth_volume_mounts_the_secret_the_user_names() {
    let pod = instance_pod(cluster("cache").auth_secret("from-vault"));
    assert_eq!(auth_sources(&pod).0.0, "from-vault");
}

#[test]
fn memory_limit_env_is_set_only_with_a_memory_limit() {
    let cases = [
        ("no resources", cluster("c"), false),
        (
            "requests only",
            cluster("c").resources(&[("memory", "1Gi")], &[]),
            false,
        ),
        (
            "cpu limit only",
            cluster("c").resources(&[], &[("cpu", "1")]),
            false,
        ),
        (
            "memory limit",
            cluster("c").resources(&[("memory", "1Gi")], &[("memory", "1Gi")]),
            true,
        ),
    ];
    for (case, builder, expected) in cases {
        let pod = instance_pod(builder);
        let var = env(&pod, "CNREDIS_MEMORY_LIMIT");
        assert_eq!(var.is_some(), expected, "{case}");
        if let Some(var) = var {
            let field = var.value_from.clone().unwrap().resource_field_ref.unwrap();
            assert_eq!(field.resource, "limits.memory");
            assert_eq!(field.container_name.as_deref(), Some("server"));
            assert_eq!(field.divisor, Some(Quantity("1".to_string())));
        }
    }
}

#[test]
fn server_tls_volume_and_env_exist_only_with_spec_tls() {
    let with_tls = instance_pod(cluster("c").tls("c-server-cert"));
    let tls = volume(&with_tls, "server-tls").unwrap().secret.clone().unwrap();
    assert_eq!(tls.secret_name.as_deref(), Some("c-server-cert"));
    assert_eq!(
        mount_path(&with_tls, "server-tls").as_deref(),
        Some("/etc/cnredis/tls")
    );
    assert_eq!(
        env_value(&with_tls, "CNREDIS_SERVER_TLS_DIR").as_deref(),
        Some("/etc/cnredis/tls")
    );

    let without = instance_pod(cluster("c"));
    assert!(volume(&without, "server-tls").is_none());
    assert!(env(&without, "CNREDIS_SERVER_TLS_DIR").is_none());
}

#[test]
fn instance_api_certificate_of_the_instance_is_always_mounted() {
    for builder in [cluster("cache"), cluster("cache").auth_disabled()] {
        let pod = instance_pod(builder);
        let secret = volume(&pod, "instance-api").unwrap().secret.clone().unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("cache-2-api"));
        assert_eq!(
            mount_path(&pod, "instance-api").as_deref(),
            Some("/etc/cnredis/instance-api")
        );
    }
}

#[test]
fn data_volume_is_the_pvc_named_like_the_pod() {
    let pod = instance_pod(cluster("cache"));
    let claim = volume(&pod, "data")
        .unwrap()
        .persistent_volume_claim
        .clone()
        .unwrap();
    assert_eq!(claim.claim_name, "cache-2");
    assert_eq!(mount_path(&pod, "data").as_deref(), Some("/data"));
    assert!(volume(&pod, "tmp").unwrap().empty_dir.is_some());
    assert_eq!(mount_path(&pod, "tmp").as_deref(), Some("/tmp"));
}

#[test]
fn every_volume_is_mounted_and_every_mount_has_a_volume() {
    let pod = instance_pod(cluster("c").tls("t"));
    let mut volumes: Vec<_> = spec(&pod)
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect();
    let mut mounts: Vec<_> = server(&pod)
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.name.clone())
        .collect();
    volumes.sort();
    mounts.sort();
    assert_eq!(volumes, mounts);
    assert_eq!(
        volumes,
        ["auth", "controller", "data", "instance-api", "server-tls", "tmp"]
    );
}

#[test]
fn secret_volumes_are_read_only_and_not_world_readable() {
    let pod = instance_pod(cluster("c").tls("t"));
    for volume in spec(&pod).volumes.iter().flatten() {
        let mount = server(&pod)
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == volume.name)
            .unwrap();
        let mode = match (&volume.secret, &volume.projected) {
            (Some(secret), _) => secret.default_mode,
            (_, Some(projected)) => projected.default_mode,
            (None, None) => {
                assert_eq!(mount.read_only, None, "{}", volume.name);
                continue;
            }
        };
        assert_eq!(mode, Some(0o440), "{}", volume.name);
        assert_eq!(mount.read_only, Some(true), "{}", volume.name);
    }
}

#[test]
fn server_exposes_redis_api_and_metrics_ports() {
    let ports: Vec<_> = server(&instance_pod(cluster("c")))
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        [
            ("redis".to_string(), 6379),
            ("api".to_string(), 8000),
            ("metrics".to_string(), 9121)
        ]
    );
}

#[test]
fn probes_ask_the_instance_api_over_https() {
    let pod = instance_pod(cluster("c"));
    let cases = [
        (
            "readiness",
            server(&pod).readiness_probe.clone(),
            "/readyz",
            (2, 2, 3),
        ),
        (
            "liveness",
            server(&pod).liveness_probe.clone(),
            "/healthz",
            (10, 5, 6),
        ),
    ];
    for (which, probe, path, (period, timeout, failures)) in cases {
        let probe = probe.unwrap();
        let http = probe.http_get.unwrap();
        assert_eq!(http.path.as_deref(), Some(path), "{which}");
        assert_eq!(http.port, IntOrString::Int(8000), "{which}");
        assert_eq!(http.scheme.as_deref(), Some("HTTPS"), "{which}");
        assert_eq!(
            (
                probe.period_seconds,
                probe.timeout_seconds,
                probe.failure_threshold
            ),
            (Some(period), Some(timeout), Some(failures)),
            "{which}"
        );
    }
    assert_eq!(server(&pod).startup_probe, None);
}

#[test]
fn server_resources_are_exactly_the_users() {
    let guaranteed = cluster("c").resources(
        &[("cpu", "2"), ("memory", "4Gi")],
        &[("cpu", "2"), ("memory", "4Gi")],
    );
    let user = guaranteed.build();
    let pod = pod_with_role(&user, None);
    assert_eq!(server(&pod).resources, user.spec.resources);

    assert_eq!(
        server(&pod_with_role(&cluster("c").build(), None)).resources,
        None
    );
}

// --- scheduling ---

#[test]
fn anti_affinity_follows_the_spec() {
    let cases = [
        (PodAntiAffinityType::Preferred, Some(100), false),
        (PodAntiAffinityType::Required, None, true),
    ];
    for (kind, preferred_weight, required) in cases {
        let pod = instance_pod(
            cluster("cache")
                .anti_affinity(kind)
                .topology_key("topology.kubernetes.io/zone"),
        );
        let anti = spec(&pod).affinity.clone().unwrap().pod_anti_affinity.unwrap();
        let preferred = anti.preferred_during_scheduling_ignored_during_execution;
        assert_eq!(
            preferred.as_ref().map(|terms| terms[0].weight),
            preferred_weight,
            "{kind:?}"
        );
        let term = match (
            preferred,
            anti.required_during_scheduling_ignored_during_execution,
        ) {
            (Some(mut terms), None) if !required => terms.remove(0).pod_affinity_term,
            (None, Some(mut terms)) if required => terms.remove(0),
            other => panic!("{kind:?}: unexpected anti-affinity {other:?}"),
        };
        assert_eq!(term.topology_key, "topology.kubernetes.io/zone");
        assert_eq!(
            term.label_selector.unwrap().match_labels.unwrap(),
            BTreeMap::from([("cnredis.io/cluster".to_string(), "cache".to_string())])
        );
    }
}

#[test]
fn anti_affinity_defaults_to_preferred_per_host() {
    let pod = instance_pod(cluster("cache"));
    let anti = spec(&pod).affinity.clone().unwrap().pod_anti_affinity.unwrap();
    let terms = anti.preferred_during_scheduling_ignored_during_execution.unwrap();
    assert_eq!(terms[0].pod_affinity_term.topology_key, "kubernetes.io/hostname");
}

#[test]
fn disabled_anti_affinity_without_node_affinity_leaves_no_affinity() {
    let pod = instance_pod(cluster("c").anti_affinity(PodAntiAffinityType::Disabled));
    assert_eq!(spec(&pod).affinity, None);
}

#[test]
fn node_placement_comes_from_the_spec_as_given() {
    let node_affinity = NodeAffinity {
        required_during_scheduling_ignored_during_execution: Some(NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm {
                match_expressions: Some(vec![NodeSelectorRequirement {
                    key: "disk".to_string(),
                    operator: "In".to_string(),
                    values: Some(strings(&["ssd"])),
                }]),
                match_fields: None,
            }],
        }),
        ..NodeAffinity::default()
    };
    let toleration = Toleration {
        key: Some("dedicated".to_string()),
        operator: Some("Equal".to_string()),
        value: Some("redis".to_string()),
        effect: Some("NoSchedule".to_string()),
        toleration_seconds: None,
    };
    let spread = TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "topology.kubernetes.io/zone".to_string(),
        when_unsatisfiable: "ScheduleAnyway".to_string(),
        ..TopologySpreadConstraint::default()
    };
    let pod = instance_pod(
        cluster("c")
            .anti_affinity(PodAntiAffinityType::Disabled)
            .node_selector("pool", "db")
            .node_affinity(node_affinity.clone())
            .toleration(toleration.clone())
            .topology_spread(spread.clone()),
    );
    let spec = spec(&pod);
    assert_eq!(
        spec.node_selector,
        Some(BTreeMap::from([("pool".to_string(), "db".to_string())]))
    );
    let affinity = spec.affinity.clone().unwrap();
    assert_eq!(affinity.node_affinity, Some(node_affinity));
    assert_eq!(affinity.pod_anti_affinity, None);
    assert_eq!(spec.tolerations, Some(vec![toleration]));
    assert_eq!(spec.topology_spread_constraints, Some(vec![spread]));
}

#[test]
fn no_scheduling_fields_are_set_that_the_user_did_not_ask_for() {
    let pod = instance_pod(cluster("c"));
    let spec = spec(&pod);
    assert_eq!(spec.node_selector, None);
    assert_eq!(spec.tolerations, None);
    assert_eq!(spec.topology_spread_constraints, None);
    assert_eq!(spec.affinity.clone().unwrap().node_affinity, None);
}

// --- determinism and the spec hash ---

#[test]
fn building_twice_gives_equal_pods() {
    let cluster = cluster("c")
        .instances(3)
        .tls("t")
        .resources(&[], &[("memory", "1Gi")])
        .build();
    assert_eq!(
        pod_with_role(&cluster, Some("primary")),
        pod_with_role(&cluster, Some("primary"))
    );
}

#[test]
fn pod_is_annotated_with_the_hash_of_its_spec() {
    let pod = instance_pod(cluster("c"));
    let annotation = &pod.metadata.annotations.as_ref().unwrap()["cnredis.io/podSpecHash"];
    assert_eq!(annotation, &pod_spec_hash(&pod));
    assert_eq!(annotation.len(), 16);
    assert!(annotation.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn spec_hash_ignores_the_role_label() {
    let cluster = cluster("c").build();
    let hashes: Vec<_> = [Some("primary"), Some("replica"), None]
        .into_iter()
        .map(|role| pod_with_role(&cluster, role).metadata.annotations.unwrap())
        .collect();
    assert_eq!(hashes[0], hashes[1]);
    assert_eq!(hashes[1], hashes[2]);
}

#[test]
fn spec_hash_changes_with_what_a_rolling_update_must_roll_out() {
    let base = pod_spec_hash(&instance_pod(cluster("c")));
    let changes = [
        ("image", cluster("c").image("redis:7.2")),
        ("resources", cluster("c").resources(&[("cpu", "1")], &[])),
        ("memory limit", cluster("c").resources(&[], &[("memory", "2Gi")])),
        ("tls", cluster("c").tls("t")),
        ("auth", cluster("c").auth_disabled()),
        ("log level", cluster("c").log_level(LogLevel::Debug)),
        ("grace period", cluster("c").stop_delay_seconds(60)),
        (
            "anti-affinity",
            cluster("c").anti_affinity(PodAntiAffinityType::Required),
        ),
    ];
    for (what, builder) in changes {
        assert_ne!(pod_spec_hash(&instance_pod(builder)), base, "{what}");
    }
    let other_operator = desired_pod(&PodInputs {
        cluster: &cluster("c").build(),
        serial: 2,
        operator_image: "ghcr.io/cnredis/cnredis:1.2.4",
        role: Some("replica"),
    });
    assert_ne!(pod_spec_hash(&other_operator), base, "operator image");
}

#[test]
fn a_restart_asked_for_on_the_cluster_changes_the_hash_once() {
    let restarted = |at: &str| {
        let mut cluster = cluster("c").build();
        cluster
            .metadata
            .annotations
            .get_or_insert_default()
            .insert("cnredis.io/restartedAt".into(), at.into());
        pod_with_role(&cluster, Some("replica"))
    };
    let base = pod_spec_hash(&instance_pod(cluster("c")));
    let first = restarted("2026-12-02T06:00:00Z");
    assert_eq!(
        first.annotations()["cnredis.io/restartedAt"],
        "2026-12-02T06:00:00Z"
    );
    assert_ne!(first.annotations()["cnredis.io/podSpecHash"], base);
    assert_eq!(
        restarted("2026-12-02T06:00:00Z").annotations(),
        first.annotations()
    );
    assert_ne!(
        restarted("2026-12-02T07:00:00Z").annotations()["cnredis.io/podSpecHash"],
        first.annotations()["cnredis.io/podSpecHash"]
    );
}

#[test]
fn spec_hash_is_fnv1a_64() {
    // Reference values of the FNV-1a 64-bit hash.
    assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
}
