//! What every reconcile shares: the client, the operator's CA and instance-API client, the image the
//! instance pods bootstrap from, metrics and the event recorder.

use cnredis_instance_client::InstanceClient;
use cnredis_pki::CertificateAuthority;
use kube::Client;
use kube::runtime::events::Recorder;

use crate::metrics::Metrics;

pub struct Context {
    pub client: Client,
    /// Image whose `cnredis` binary the init container of every instance pod copies.
    pub operator_image: String,
    pub ca: CertificateAuthority,
    /// Authenticated with the operator's client certificate, issued by `ca`.
    pub instance_api: InstanceClient,
    pub metrics: Metrics,
    pub recorder: Recorder,
}
