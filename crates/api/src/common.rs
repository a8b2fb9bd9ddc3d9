//! Types several resources share: object-store locations and credentials, references to clusters.

use k8s_openapi::api::core::v1::SecretKeySelector;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where backups are written: an S3-compatible bucket and prefix.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStore {
    /// Bucket and prefix backups are written under, as an `s3://bucket/path` URL.
    #[x_kube(validation = Rule::new("self.matches('^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$')")
        .message("destinationPath must be an s3:// URL naming a bucket, such as s3://backups/cnredis"))]
    #[schemars(length(max = 1024))]
    pub destination_path: String,
    /// Endpoint of an S3-compatible service (`http://` or `https://`); empty means AWS S3.
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')")
        .message("endpointURL must start with http:// or https://"))]
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "endpointURL")]
    #[schemars(length(max = 1024))]
    pub endpoint_url: Option<String>,
    /// Secret key holding the PEM bundle of the CA that signs an `https://` endpoint's certificate, for a
    /// store with a private CA; trusted in addition to the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "endpointCA")]
    pub endpoint_ca: Option<SecretKeySelector>,
    /// Region of the bucket; S3-compatible services usually accept the default.
    #[serde(default = "default_region")]
    #[schemars(length(min = 1, max = 64))]
    pub region: String,
    /// Credentials, read from Secrets in the cluster's namespace.
    pub s3_credentials: S3Credentials,
}

fn default_region() -> String {
    "us-east-1".to_string()
}

/// Static S3 credentials taken from Secret keys.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct S3Credentials {
    /// Secret key holding the access key ID.
    pub access_key_id: SecretKeySelector,
    /// Secret key holding the secret access key.
    pub secret_access_key: SecretKeySelector,
    /// Secret key holding a session token, for temporary credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<SecretKeySelector>,
}

/// Reference to a RedisCluster in the same namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ClusterReference {
    /// Name of the RedisCluster.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
}

/// Which instance a backup is taken from.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum BackupTarget {
    /// The most up-to-date healthy replica, else the primary: the primary's latency is spared.
    #[default]
    PreferReplica,
    /// Always the primary: the freshest data.
    Primary,
}
