//! What `status` observes of a cluster, in one value: the input of the renderer, and what `-o json|yaml`
//! prints. Recorded observations are the golden tests' fixtures.

use std::collections::BTreeMap;

use cnredis_api::{RedisBackup, RedisCluster, RedisScheduledBackup};
use cnredis_wire::InstanceReport;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Observed {
    /// When it was observed: every age is counted from here.
    pub observed_at: Time,
    pub cluster: RedisCluster,
    /// The cluster's pods (owned by it), by name.
    pub pods: Vec<PodSummary>,
    /// Each pod's answer to `GET /v1/status` through the API server's pod proxy.
    pub instances: BTreeMap<String, Answer>,
    pub backups: Vec<RedisBackup>,
    pub scheduled_backups: Vec<RedisScheduledBackup>,
    /// The cluster's recent Events, oldest first.
    pub events: Vec<EventLine>,
    pub operator: OperatorState,
    /// The earliest expiry of the instances' instance-API server certificates (annotation of `<pod>-api`).
    pub instance_api_certificate: CertificateState,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub enum CertificateState {
    NotAfter(Time),
    /// The Secret is not there (yet), or carries no expiry.
    Missing,
    /// It could not be read (e.g. no permission to get Secrets).
    Unknown(String),
}

/// An instance's answer, or why there is none.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub enum Answer {
    Report(Box<InstanceReport>),
    Error(String),
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodSummary {
    pub name: String,
    pub phase: String,
    pub ready: bool,
    pub deleting: bool,
    pub ip: Option<String>,
    pub node: Option<String>,
    /// Zone of the node (`topology.kubernetes.io/zone`), when it is known.
    pub zone: Option<String>,
    pub qos: Option<String>,
    /// Restarts of the instance container.
    pub restarts: i32,
    pub role_label: Option<String>,
    pub started: Option<Time>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct EventLine {
    pub time: Option<Time>,
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
}

/// The operator's pods, as far as the user may list them.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub enum OperatorState {
    Pods(Vec<OperatorPod>),
    Unknown(String),
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct OperatorPod {
    pub namespace: String,
    pub name: String,
    pub ready: bool,
    pub image: String,
}
