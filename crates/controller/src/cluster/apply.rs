//! Writing a cluster's objects: server-side apply under the operator's one field manager, and the error
//! a reconcile (or a part of it) ends with.

use cnredis_api::names::FIELD_MANAGER;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};

use crate::credentials::CredentialsError;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Credentials(#[from] CredentialsError),
    #[error("{0}")]
    Serialize(#[from] serde_json::Error),
    #[error("RedisCluster has no namespace")]
    NoNamespace,
    #[error("{0}")]
    InvalidSpec(String),
}

impl ReconcileError {
    /// Label of the error in metrics and the reason of its Event.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kube(_) => "KubernetesApi",
            Self::Credentials(_) => "Credentials",
            Self::Serialize(_) => "Serialization",
            Self::NoNamespace => "NoNamespace",
            Self::InvalidSpec(_) => "InvalidSpec",
        }
    }
}

pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Server-side apply under the one field manager.
pub async fn apply<K>(client: &kube::Client, namespace: &str, object: &K) -> Result<(), kube::Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = object.meta().name.clone().unwrap_or_default();
    api.patch(&name, &apply_params(), &Patch::Apply(object)).await?;
    Ok(())
}
