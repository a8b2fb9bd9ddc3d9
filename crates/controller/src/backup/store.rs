//! Where a cluster's backups are stored and with which credentials: the object-store location the
//! instance managers and the operator use, and the access keys read from the user's Secret.

use cnredis_api::common::ObjectStore as StoreSpec;
use cnredis_api::names::BACKUP_CREDENTIALS;
use cnredis_instance_client::objects::{self, Credentials};
use cnredis_instance_client::wire::StoreLocation;
use k8s_openapi::api::core::v1::{Secret, SecretKeySelector};
use kube::Api;

use crate::context::Context;

/// `s3://bucket/prefix` as the instance manager's store location (credentials: the cluster's own).
pub fn store_location(store: &StoreSpec) -> Result<StoreLocation, String> {
    objects::location(
        &store.destination_path,
        store.endpoint_url.clone(),
        &store.region,
        BACKUP_CREDENTIALS,
    )
}

pub async fn read_credentials(
    ctx: &Context,
    namespace: &str,
    store: &StoreSpec,
) -> Result<Credentials, String> {
    let credentials = &store.s3_credentials;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let read = |selector: SecretKeySelector| {
        let secrets = secrets.clone();
        async move {
            let secret = secrets
                .get_opt(&selector.name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("Secret {} does not exist", selector.name))?;
            let value = secret
                .data
                .and_then(|data| data.get(&selector.key).cloned())
                .ok_or_else(|| format!("Secret {} has no key {}", selector.name, selector.key))?;
            String::from_utf8(value.0)
                .map(|text| text.trim().to_string())
                .map_err(|_| format!("Secret {} key {} is not text", selector.name, selector.key))
        }
    };
    Ok(Credentials {
        access_key_id: read(credentials.access_key_id.clone()).await?,
        secret_access_key: read(credentials.secret_access_key.clone()).await?,
        session_token: match &credentials.session_token {
            Some(selector) => Some(read(selector.clone()).await?),
            None => None,
        },
        ca_bundle: match &store.endpoint_ca {
            Some(selector) => Some(read(selector.clone()).await?),
            None => None,
        },
    })
}
