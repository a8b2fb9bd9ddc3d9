//! The PVC of one instance, named like its pod: the instance's dataset, which outlives pod restarts and
//! rolling updates.

use std::collections::BTreeMap;

use cnredis_api::RedisCluster;
use cnredis_api::names::{LABEL_INSTANCE_NAME, instance_name};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::meta::{COMPONENT_DATABASE, cluster_name, owned_meta};

/// The PVC `<cluster>-<serial>`: ReadWriteOnce, `spec.storage.size` of `spec.storage.storageClass`.
///
/// Only the size can change on a live PVC; a grown `spec.storage.size` is applied as is and expands the
/// volume where the StorageClass allows it.
pub fn desired_pvc(cluster: &RedisCluster, serial: u32) -> PersistentVolumeClaim {
    let name = instance_name(cluster_name(cluster), serial);
    let mut metadata = owned_meta(cluster, name.clone(), COMPONENT_DATABASE);
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(LABEL_INSTANCE_NAME.to_string(), name);
    let storage = &cluster.spec.storage;
    PersistentVolumeClaim {
        metadata,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(storage.size.clone()),
                )])),
                limits: None,
            }),
            storage_class_name: storage.storage_class.clone(),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::resources::fixture::cluster;

    #[test]
    fn pvc_is_named_and_labelled_like_its_pod() {
        let pvc = desired_pvc(&cluster("cache").build(), 4);
        assert_eq!(pvc.metadata.name.as_deref(), Some("cache-4"));
        let labels = pvc.metadata.labels.unwrap();
        assert_eq!(labels["cnredis.io/instanceName"], "cache-4");
        assert_eq!(labels["cnredis.io/cluster"], "cache");
        assert_eq!(labels["app.kubernetes.io/component"], "database");
        assert_eq!(pvc.metadata.owner_references.unwrap()[0].name, "cache");
    }

    #[test]
    fn pvc_requests_the_spec_size_and_class_read_write_once() {
        let cases = [
            (cluster("c").build(), "1Gi", None),
            (
                cluster("c").storage("20Gi", Some("fast")).build(),
                "20Gi",
                Some("fast"),
            ),
        ];
        for (cluster, size, class) in cases {
            let spec = desired_pvc(&cluster, 1).spec.unwrap();
            assert_eq!(spec.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
            assert_eq!(
                spec.resources.unwrap().requests.unwrap()["storage"],
                Quantity(size.to_string())
            );
            assert_eq!(spec.storage_class_name.as_deref(), class);
        }
    }
}
