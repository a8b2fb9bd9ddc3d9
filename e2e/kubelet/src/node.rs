//! The Node object of this kubelet: registration (labels, addresses, capacity, node info), the node
//! Lease renewed every 10 s, and the Ready condition. Both stop while the node is "down" (chaos), which
//! is what makes the node lifecycle controller mark it NotReady and evict its pods.

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::status::rfc3339;

pub const KUBELET_VERSION: &str = "v1.35.4";
const FIELD_MANAGER: &str = "cnredis-kubelet";
const LEASE_SECONDS: i32 = 40;
const RENEW_EVERY: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub name: String,
    pub zone: String,
    pub ip: Ipv4Addr,
    pub api_port: u16,
}

/// Creates or updates the Node and its status.
pub async fn register(client: &kube::Client, node: &NodeConfig) -> anyhow::Result<()> {
    let nodes = Api::<Node>::all(client.clone());
    let object = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": {
                "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/zone": node.zone,
            }
        }
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    nodes
        .patch(&node.name, &params, &Patch::Apply(&object))
        .await
        .with_context(|| format!("registering node {}", node.name))?;
    patch_status(client, node, true).await
}

/// The node's `spec.podCIDR`, once node IPAM has assigned it.
pub async fn wait_for_pod_cidr(
    client: &kube::Client,
    name: &str,
    deadline: Duration,
) -> anyhow::Result<(Ipv4Addr, u8)> {
    let nodes = Api::<Node>::all(client.clone());
    let start = std::time::Instant::now();
    loop {
        let node = nodes.get(name).await?;
        if let Some(cidr) = node.spec.and_then(|s| s.pod_cidr) {
            return parse_cidr(&cidr).ok_or_else(|| anyhow!("node {name} has an invalid podCIDR {cidr:?}"));
        }
        if start.elapsed() > deadline {
            return Err(anyhow!(
                "node {name} got no podCIDR within {deadline:?}: is kube-controller-manager running with --allocate-node-cidrs?"
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub fn parse_cidr(cidr: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, bits) = cidr.split_once('/')?;
    Some((ip.parse().ok()?, bits.parse().ok().filter(|b| *b <= 32)?))
}

/// Renews the Lease and the Ready condition while the node is up; runs forever.
pub async fn heartbeat(client: kube::Client, node: NodeConfig, up: tokio::sync::watch::Receiver<bool>) {
    loop {
        if *up.borrow() {
            if let Err(err) = renew_lease(&client, &node).await {
                tracing::warn!(node = %node.name, "renewing the node lease failed: {err:#}");
            }
            if let Err(err) = patch_status(&client, &node, false).await {
                tracing::warn!(node = %node.name, "updating node status failed: {err:#}");
            }
        }
        tokio::time::sleep(RENEW_EVERY).await;
    }
}

async fn renew_lease(client: &kube::Client, node: &NodeConfig) -> anyhow::Result<()> {
    let leases = Api::<Lease>::namespaced(client.clone(), "kube-node-lease");
    let now = k8s_openapi::jiff::Timestamp::now();
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": { "name": node.name },
        "spec": {
            "holderIdentity": node.name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        }
    });
    leases
        .patch(
            &node.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&lease),
        )
        .await?;
    Ok(())
}

async fn patch_status(client: &kube::Client, node: &NodeConfig, first: bool) -> anyhow::Result<()> {
    let nodes = Api::<Node>::all(client.clone());
    let now = rfc3339(SystemTime::now());
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({ "type": kind, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": now })
    };
    let mut conditions = vec![
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        condition(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ];
    if !first {
        // Keep the transition times the API server has: they change only when a status changes. (A node
        // may GET its Node but not the nodes/status subresource.)
        if let Some(existing) = nodes.get(&node.name).await?.status.and_then(|s| s.conditions) {
            for c in &mut conditions {
                if let Some(old) = existing
                    .iter()
                    .find(|o| o.type_ == c["type"] && o.status == c["status"])
                    && let Some(t) = &old.last_transition_time
                {
                    c["lastTransitionTime"] = json!(t.0.to_string());
                }
            }
        }
    }
    let capacity = json!({ "cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "50Gi" });
    let status = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": node.name },
        "status": {
            "addresses": [ { "type": "InternalIP", "address": node.ip.to_string() }, { "type": "Hostname", "address": node.name } ],
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": conditions,
            "daemonEndpoints": { "kubeletEndpoint": { "Port": node.api_port } },
            "nodeInfo": {
                "architecture": "amd64", "bootID": node.name, "containerRuntimeVersion": "cnredis-e2e://0.1.0",
                "kernelVersion": kernel_version(), "kubeProxyVersion": KUBELET_VERSION, "kubeletVersion": KUBELET_VERSION,
                "machineID": node.name, "operatingSystem": "linux", "osImage": "cnredis local cluster", "systemUUID": node.name,
            }
        }
    });
    nodes
        .patch_status(
            &node.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&status),
        )
        .await
        .with_context(|| format!("patching status of node {}", node.name))?;
    Ok(())
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_cidrs_parse() {
        assert_eq!(
            parse_cidr("10.244.1.0/24"),
            Some((Ipv4Addr::new(10, 244, 1, 0), 24))
        );
        assert_eq!(parse_cidr("10.244.1.0/33"), None);
        assert_eq!(parse_cidr("fd00::/64"), None);
    }
}
