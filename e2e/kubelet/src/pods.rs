//! The pods bound to this node: one worker per pod UID turns the Pod into a [`PodPlan`], runs it, keeps
//! `pods/status` in step with what the runtime reports, refreshes API-backed volumes, and carries out
//! graceful deletion (stop, final status, then the final DELETE with a UID precondition). While the node
//! is down (chaos) workers neither report nor act, exactly as a kubelet that cannot reach the API.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Probe, Secret, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher::{self, Event, watcher};
use serde_json::json;
use tokio::sync::watch;

use crate::env::{EnvSources, container_argv, container_env};
use crate::images::Images;
use crate::node::NodeConfig;
use crate::runtime::plan::{Action, ContainerPlan, MountPlan, PodPlan, ProbePlan, RestartPolicy};
use crate::runtime::{PodHandle, Runtime};
use crate::status::{StatusInputs, conditions_differ, pod_status};
use crate::volumes;

const VOLUME_REFRESH: Duration = Duration::from_secs(20);
/// In the node's state directory: the last pod IP handed out (see [`IpPool`]).
const IP_CURSOR_FILE: &str = "pod-ip-cursor";

pub struct Kubelet {
    pub client: kube::Client,
    pub node: NodeConfig,
    pub runtime: Runtime,
    pub images: Images,
    pub state_dir: PathBuf,
    /// `true` while the node is up; chaos turns it off and on.
    pub up: watch::Sender<bool>,
    ips: Mutex<IpPool>,
    workers: Mutex<HashMap<String, Worker>>,
    kubernetes_service: (String, u16),
}

struct Worker {
    namespace: String,
    name: String,
    pod: watch::Sender<Option<Pod>>,
    slots: Arc<Slots>,
    task: tokio::task::JoinHandle<()>,
}

/// What a worker holds that others (logs, chaos, power loss) need to reach.
#[derive(Default)]
struct Slots {
    handle: Mutex<Option<PodHandle>>,
    ip: Mutex<Option<Ipv4Addr>>,
}

impl Kubelet {
    pub async fn new(
        client: kube::Client,
        node: NodeConfig,
        runtime: Runtime,
        images: Images,
        state_dir: PathBuf,
        pod_cidr: (Ipv4Addr, u8),
    ) -> anyhow::Result<Arc<Self>> {
        let service = Api::<Service>::namespaced(client.clone(), "default")
            .get("kubernetes")
            .await?;
        let spec = service.spec.unwrap_or_default();
        let host = spec
            .cluster_ip
            .ok_or_else(|| anyhow!("service default/kubernetes has no cluster IP"))?;
        let port = spec
            .ports
            .unwrap_or_default()
            .first()
            .map(|p| p.port as u16)
            .unwrap_or(443);
        let ips = IpPool::new(pod_cidr).with_cursor_file(state_dir.join(IP_CURSOR_FILE));
        Ok(Arc::new(Self {
            client,
            node,
            runtime,
            images,
            state_dir,
            up: watch::Sender::new(true),
            ips: Mutex::new(ips),
            workers: Mutex::new(HashMap::new()),
            kubernetes_service: (host, port),
        }))
    }

    /// Watches the pods bound to this node, forever.
    pub async fn run(self: Arc<Self>) -> anyhow::Result<()> {
        // Whatever ran before this process started is gone, as after a reboot: start from scratch.
        self.runtime.remove_orphans(&HashSet::new()).await?;
        let pods = Api::<Pod>::all(self.client.clone());
        let config = watcher::Config::default().fields(&format!("spec.nodeName={}", self.node.name));
        let mut stream = watcher(pods, config).boxed();
        let mut listed: HashSet<String> = HashSet::new();
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Init) => listed.clear(),
                Ok(Event::InitApply(pod)) => {
                    listed.insert(pod.metadata.uid.clone().unwrap_or_default());
                    self.observe(pod);
                }
                Ok(Event::InitDone) => {
                    let gone: Vec<String> = self
                        .workers
                        .lock()
                        .unwrap()
                        .keys()
                        .filter(|uid| !listed.contains(*uid))
                        .cloned()
                        .collect();
                    gone.iter().for_each(|uid| self.forget(uid));
                }
                Ok(Event::Apply(pod)) => self.observe(pod),
                Ok(Event::Delete(pod)) => self.forget(pod.metadata.uid.as_deref().unwrap_or_default()),
                Err(err) => {
                    tracing::warn!("pod watch error (retrying): {err}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        Err(anyhow!("pod watch ended"))
    }

    fn observe(self: &Arc<Self>, pod: Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut workers = self.workers.lock().unwrap();
        if let Some(worker) = workers.get(&uid) {
            worker.pod.send_replace(Some(pod));
            return;
        }
        if !*self.up.borrow() {
            return;
        }
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or_default();
        if matches!(phase, "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none() {
            return;
        }
        let (tx, rx) = watch::channel(Some(pod.clone()));
        let slots = Arc::new(Slots::default());
        let task = tokio::spawn(Arc::clone(self).run_worker(uid.clone(), rx, Arc::clone(&slots)));
        workers.insert(
            uid,
            Worker {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                pod: tx,
                slots,
                task,
            },
        );
    }

    fn forget(&self, uid: &str) {
        if let Some(worker) = self.workers.lock().unwrap().get(uid) {
            worker.pod.send_replace(None);
        }
    }

    /// The runtime handle of a pod, for logs and chaos. A pod recreated under the same name can have
    /// two workers for a while (the old one still winding down, without a handle): the one that runs
    /// the pod is the one with a handle.
    pub fn handle(&self, namespace: &str, name: &str) -> Option<PodHandle> {
        let workers = self.workers.lock().unwrap();
        workers
            .values()
            .filter(|w| w.namespace == namespace && w.name == name)
            .find_map(|w| w.slots.handle.lock().unwrap().clone())
    }

    /// Every running pod's handle.
    pub fn handles(&self) -> Vec<PodHandle> {
        self.workers
            .lock()
            .unwrap()
            .values()
            .filter_map(|w| w.slots.handle.lock().unwrap().clone())
            .collect()
    }

    /// Power loss: every pod's processes die at once, nothing is reported; the pods run again (with new
    /// processes) when the node comes back.
    pub async fn kill_all(self: &Arc<Self>) {
        let workers: Vec<Worker> = self.workers.lock().unwrap().drain().map(|(_, w)| w).collect();
        for worker in workers {
            worker.task.abort();
            let handle = worker.slots.handle.lock().unwrap().take();
            if let Some(handle) = handle
                && let Err(err) = handle.stop(Duration::ZERO).await
            {
                tracing::warn!(pod = %worker.name, "killing pod failed: {err:#}");
            }
            if let Some(ip) = worker.slots.ip.lock().unwrap().take() {
                self.ips.lock().unwrap().release(ip);
            }
        }
    }

    /// After the node comes back: (re)start every pod bound to it.
    pub async fn resync(self: &Arc<Self>) -> anyhow::Result<()> {
        let pods = Api::<Pod>::all(self.client.clone())
            .list(&kube::api::ListParams::default().fields(&format!("spec.nodeName={}", self.node.name)))
            .await?;
        for pod in pods {
            self.observe(pod);
        }
        Ok(())
    }

    async fn run_worker(
        self: Arc<Self>,
        uid: String,
        mut pod_rx: watch::Receiver<Option<Pod>>,
        slots: Arc<Slots>,
    ) {
        let Some(pod) = pod_rx.borrow().clone() else {
            return;
        };
        let label = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        );
        let result = self.drive(&uid, &mut pod_rx, &slots).await;
        if let Err(err) = result {
            tracing::warn!(pod = %label, "pod worker ended: {err:#}");
        }
        self.workers.lock().unwrap().remove(&uid);
    }

    async fn drive(
        &self,
        uid: &str,
        pod_rx: &mut watch::Receiver<Option<Pod>>,
        slots: &Slots,
    ) -> anyhow::Result<()> {
        let Some(mut pod) = pod_rx.borrow_and_update().clone() else {
            return Ok(());
        };
        if pod.metadata.deletion_timestamp.is_some() {
            return self.finish_deletion(&pod).await;
        }
        // A pod started again (kubelet restart, node power loss) keeps the IP its status records when it
        // is still free: Services and clients keep working, as with a real kubelet's sandbox.
        let recorded = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok());
        let ip = {
            let mut ips = self.ips.lock().unwrap();
            match recorded.filter(|ip| ips.claim(*ip)) {
                Some(ip) => ip,
                None => ips
                    .allocate()
                    .ok_or_else(|| anyhow!("no free pod IP on {}", self.node.name))?,
            }
        };
        *slots.ip.lock().unwrap() = Some(ip);
        let result = self.run_pod(uid, &mut pod, ip, pod_rx, &slots.handle).await;
        if let Some(ip) = slots.ip.lock().unwrap().take() {
            self.ips.lock().unwrap().release(ip);
        }
        result
    }

    async fn run_pod(
        &self,
        uid: &str,
        pod: &mut Pod,
        ip: Ipv4Addr,
        pod_rx: &mut watch::Receiver<Option<Pod>>,
        slot: &Mutex<Option<PodHandle>>,
    ) -> anyhow::Result<()> {
        let start_time = SystemTime::now();
        let pod_dir = self.state_dir.join("pods").join(uid);
        let mut up_rx = self.up.subscribe();
        // Volumes and referenced objects may not exist yet: retry until they do or the pod goes away.
        let plan = loop {
            match self.plan(pod, ip, &pod_dir).await {
                Ok(plan) => break plan,
                Err(err) => {
                    let message = format!("{err:#}");
                    tracing::info!(pod = ?pod.metadata.name, "cannot start yet: {message}");
                    self.event(pod, "Warning", "FailedMount", &message).await;
                    self.patch_status(pod, &json!({ "phase": "Pending", "hostIP": self.node.ip.to_string(),
                        "containerStatuses": pod.spec.as_ref().map(|s| s.containers.iter().map(|c| json!({
                            "name": c.name, "ready": false, "restartCount": 0, "image": c.image, "imageID": "",
                            "state": { "waiting": { "reason": "ContainerCreating", "message": message } } })).collect::<Vec<_>>()) }))
                        .await;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        changed = pod_rx.changed() => {
                            if changed.is_err() { return Ok(()) }
                            let latest = pod_rx.borrow_and_update().clone();
                            match latest {
                                None => return Ok(()),
                                Some(p) if p.metadata.deletion_timestamp.is_some() => return self.finish_deletion(&p).await,
                                Some(p) => *pod = p,
                            }
                        }
                    }
                }
            }
        };
        let restart_policy = plan.restart_policy;
        let mut hosts_plan = plan.clone();
        let handle = self.runtime.start(plan).await.context("starting the pod")?;
        *slot.lock().unwrap() = Some(handle.clone());
        let mut state_rx = handle.state();
        let mut refresh = tokio::time::interval(VOLUME_REFRESH);
        refresh.tick().await;
        loop {
            tokio::select! {
                changed = state_rx.changed() => {
                    if changed.is_err() { break }
                    if *self.up.borrow() {
                        let state = state_rx.borrow_and_update().clone();
                        let status = pod_status(&StatusInputs {
                            pod, state: &state, restart_policy, pod_ip: &ip.to_string(), host_ip: &self.node.ip.to_string(),
                            start_time, now: SystemTime::now(),
                        });
                        self.patch_status(pod, &status).await;
                    }
                }
                changed = pod_rx.changed() => {
                    let latest = if changed.is_err() { None } else { pod_rx.borrow_and_update().clone() };
                    match latest {
                        None => {
                            // Force-deleted from the API: stop at once.
                            handle.stop(Duration::ZERO).await?;
                            return Ok(());
                        }
                        Some(p) => {
                            // As upstream's kubelet: a pod whose metadata changed has its volumes
                            // rewritten at once (downward-API files follow annotations and labels).
                            let metadata_changed = p.metadata.annotations != pod.metadata.annotations
                                || p.metadata.labels != pod.metadata.labels;
                            *pod = p;
                            if metadata_changed && pod.metadata.deletion_timestamp.is_none() && *self.up.borrow()
                                && let Err(err) = volumes::refresh(&self.client, pod, &pod_dir).await
                            {
                                tracing::warn!(pod = ?pod.metadata.name, "refreshing volumes failed: {err:#}");
                            }
                            if pod.metadata.deletion_timestamp.is_none() && *self.up.borrow() {
                                let state = state_rx.borrow().clone();
                                let status = pod_status(&StatusInputs {
                                    pod, state: &state, restart_policy, pod_ip: &ip.to_string(), host_ip: &self.node.ip.to_string(),
                                    start_time, now: SystemTime::now(),
                                });
                                if conditions_differ(pod, &status) {
                                    self.patch_status(pod, &status).await;
                                }
                            }
                            if pod.metadata.deletion_timestamp.is_some() {
                                while !*self.up.borrow() {
                                    if up_rx.changed().await.is_err() { return Ok(()) }
                                }
                                let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(30).max(0) as u64;
                                handle.stop(Duration::from_secs(grace)).await?;
                                let state = handle.state().borrow().clone();
                                let status = pod_status(&StatusInputs {
                                    pod, state: &state, restart_policy, pod_ip: &ip.to_string(), host_ip: &self.node.ip.to_string(),
                                    start_time, now: SystemTime::now(),
                                });
                                self.patch_status(pod, &status).await;
                                return self.finish_deletion(pod).await;
                            }
                        }
                    }
                }
                _ = up_rx.changed() => {
                    if *self.up.borrow() {
                        // Back up: report the current state at once.
                        state_rx.mark_changed();
                    }
                }
                _ = refresh.tick() => {
                    if *self.up.borrow() {
                        if let Err(err) = volumes::refresh(&self.client, pod, &pod_dir).await {
                            tracing::warn!(pod = ?pod.metadata.name, "refreshing volumes failed: {err:#}");
                        }
                        if let Err(err) = self.refresh_hosts(&mut hosts_plan, &pod_dir).await {
                            tracing::warn!(pod = ?pod.metadata.name, "refreshing /etc/hosts failed: {err:#}");
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Rewrites the pod's `/etc/hosts` in place (it is bind-mounted as a file, so a rename would not reach
    /// the containers) when the set of Services changed.
    async fn refresh_hosts(&self, plan: &mut PodPlan, pod_dir: &std::path::Path) -> anyhow::Result<()> {
        let services = Api::<Service>::all(self.client.clone())
            .list(&Default::default())
            .await?
            .items;
        let hosts = service_hosts(&services, &plan.namespace);
        if hosts != plan.hosts {
            plan.hosts = hosts;
            std::fs::write(pod_dir.join("hosts"), crate::runtime::hosts_file_content(plan))?;
        }
        Ok(())
    }

    /// The last step of graceful deletion: DELETE with grace 0 and the pod's UID as precondition, so a
    /// new pod of the same name is never deleted by mistake.
    async fn finish_deletion(&self, pod: &Pod) -> anyhow::Result<()> {
        let api = Api::<Pod>::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api
            .delete(pod.metadata.name.as_deref().unwrap_or_default(), &params)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    async fn patch_status(&self, pod: &Pod, status: &serde_json::Value) {
        let api = Api::<Pod>::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let patch = Patch::Strategic(json!({ "status": status }));
        if let Err(err) = api
            .patch_status(
                pod.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &patch,
            )
            .await
        {
            tracing::warn!(pod = ?pod.metadata.name, "patching pod status failed: {err}");
        }
    }

    async fn event(&self, pod: &Pod, kind: &str, reason: &str, message: &str) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let now = crate::status::rfc3339(SystemTime::now());
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": { "generateName": format!("{}.", pod.metadata.name.as_deref().unwrap_or("pod")), "namespace": ns },
            "involvedObject": { "apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name, "namespace": ns, "uid": pod.metadata.uid },
            "reason": reason, "message": message, "type": kind, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "source": { "component": "kubelet", "host": self.node.name },
        });
        let api = Api::<k8s_openapi::api::core::v1::Event>::namespaced(self.client.clone(), ns);
        let event: k8s_openapi::api::core::v1::Event = match serde_json::from_value(event) {
            Ok(e) => e,
            Err(_) => return,
        };
        if let Err(err) = api.create(&PostParams::default(), &event).await {
            tracing::debug!("creating event failed: {err}");
        }
    }

    /// Everything the runtime needs, resolved: volumes on disk, environment, images, probes.
    async fn plan(&self, pod: &Pod, ip: Ipv4Addr, pod_dir: &std::path::Path) -> anyhow::Result<PodPlan> {
        let spec = pod.spec.as_ref().ok_or_else(|| anyhow!("pod has no spec"))?;
        let paths = volumes::prepare(&self.client, pod, pod_dir).await?;
        let services = Api::<Service>::all(self.client.clone())
            .list(&Default::default())
            .await?
            .items;
        let sources = self.env_sources(pod, ip, &services).await?;
        let pod_security = spec.security_context.as_ref();
        let build = |c: &Container| -> anyhow::Result<ContainerPlan> {
            let env = container_env(pod, c, &sources).with_context(|| format!("container {:?}", c.name))?;
            let image = c.image.clone().unwrap_or_default();
            let (image_root, defaults) = match self.images.resolve(&image) {
                Some(rule) => rule,
                None => (
                    self.state_dir
                        .join("unknown-images")
                        .join(image.replace('/', "_")),
                    Default::default(),
                ),
            };
            let mut argv = container_argv(c, &env);
            if c.command.as_ref().is_none_or(|v| v.is_empty()) {
                let tail: Vec<String> = if c.args.as_ref().is_some_and(|a| !a.is_empty()) {
                    argv
                } else {
                    defaults.cmd.clone()
                };
                argv = defaults.entrypoint.iter().cloned().chain(tail).collect();
            }
            let security = c.security_context.as_ref();
            let ports: BTreeMap<String, u16> = c
                .ports
                .iter()
                .flatten()
                .filter_map(|p| Some((p.name.clone()?, p.container_port as u16)))
                .collect();
            let probe = |p: &Option<Probe>| p.as_ref().map(|p| probe_plan(p, &ports)).transpose();
            Ok(ContainerPlan {
                name: c.name.clone(),
                image_root,
                image,
                argv,
                env,
                working_dir: c.working_dir.clone().map(PathBuf::from),
                mounts: c
                    .volume_mounts
                    .iter()
                    .flatten()
                    .map(|m| {
                        let base = paths.get(&m.name).ok_or_else(|| {
                            anyhow!("container {:?} mounts unknown volume {:?}", c.name, m.name)
                        })?;
                        let host_path = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                            Some(sub) => {
                                let p = base.join(sub);
                                if !p.exists() {
                                    std::fs::create_dir_all(&p)?;
                                }
                                p
                            }
                            None => base.clone(),
                        };
                        Ok(MountPlan {
                            host_path,
                            container_path: PathBuf::from(&m.mount_path),
                            read_only: m.read_only.unwrap_or(false),
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?,
                run_as_user: security
                    .and_then(|s| s.run_as_user)
                    .or(pod_security.and_then(|s| s.run_as_user))
                    .map(|u| u as u32),
                run_as_group: security
                    .and_then(|s| s.run_as_group)
                    .or(pod_security.and_then(|s| s.run_as_group))
                    .map(|g| g as u32),
                read_only_root: security
                    .and_then(|s| s.read_only_root_filesystem)
                    .unwrap_or(false),
                startup_probe: probe(&c.startup_probe)?,
                liveness_probe: probe(&c.liveness_probe)?,
                readiness_probe: probe(&c.readiness_probe)?,
                pre_stop: c
                    .lifecycle
                    .as_ref()
                    .and_then(|l| l.pre_stop.as_ref())
                    .map(|h| {
                        handler_action(
                            h.exec.as_ref().and_then(|e| e.command.clone()),
                            h.http_get
                                .as_ref()
                                .map(|g| (&g.port, g.path.clone(), g.scheme.clone())),
                            h.tcp_socket.as_ref().map(|t| &t.port),
                            &ports,
                        )
                    })
                    .transpose()?,
            })
        };
        Ok(PodPlan {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            hostname: spec
                .hostname
                .clone()
                .or_else(|| pod.metadata.name.clone())
                .unwrap_or_default(),
            ip,
            hosts: service_hosts(&services, pod.metadata.namespace.as_deref().unwrap_or("default")),
            init_containers: spec
                .init_containers
                .iter()
                .flatten()
                .map(build)
                .collect::<anyhow::Result<_>>()?,
            containers: spec.containers.iter().map(build).collect::<anyhow::Result<_>>()?,
            restart_policy: match spec.restart_policy.as_deref() {
                Some("Never") => RestartPolicy::Never,
                Some("OnFailure") => RestartPolicy::OnFailure,
                _ => RestartPolicy::Always,
            },
            termination_grace: Duration::from_secs(
                spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64,
            ),
        })
    }

    /// The Secrets and ConfigMaps the containers' environment refers to.
    async fn env_sources(&self, pod: &Pod, ip: Ipv4Addr, services: &[Service]) -> anyhow::Result<EnvSources> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let spec = pod.spec.as_ref();
        let service_links = if spec.and_then(|s| s.enable_service_links) == Some(false) {
            Vec::new()
        } else {
            services
                .iter()
                .filter(|svc| svc.metadata.namespace.as_deref() == Some(ns))
                .filter_map(|svc| {
                    let spec = svc.spec.as_ref()?;
                    let ip = spec
                        .cluster_ip
                        .clone()
                        .filter(|ip| ip != "None" && !ip.is_empty())?;
                    let port = spec.ports.as_ref()?.first()?.port as u16;
                    Some((svc.metadata.name.clone()?, ip, port))
                })
                .collect()
        };
        let containers = spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten().chain(s.containers.iter()));
        let mut secret_names = HashSet::new();
        let mut config_map_names = HashSet::new();
        for c in containers {
            for from in c.env_from.iter().flatten() {
                if let Some(s) = &from.secret_ref {
                    secret_names.insert(s.name.clone());
                }
                if let Some(m) = &from.config_map_ref {
                    config_map_names.insert(m.name.clone());
                }
            }
            for var in c.env.iter().flatten() {
                if let Some(from) = &var.value_from {
                    if let Some(s) = &from.secret_key_ref {
                        secret_names.insert(s.name.clone());
                    }
                    if let Some(m) = &from.config_map_key_ref {
                        config_map_names.insert(m.name.clone());
                    }
                }
            }
        }
        let mut sources = EnvSources {
            pod_ip: ip.to_string(),
            host_ip: self.node.ip.to_string(),
            kubernetes_service: self.kubernetes_service.clone(),
            service_links,
            ..EnvSources::default()
        };
        for name in secret_names {
            if let Some(secret) = Api::<Secret>::namespaced(self.client.clone(), ns)
                .get_opt(&name)
                .await?
            {
                let data = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect();
                sources.secrets.insert(name, data);
            }
        }
        for name in config_map_names {
            if let Some(cm) = Api::<ConfigMap>::namespaced(self.client.clone(), ns)
                .get_opt(&name)
                .await?
            {
                sources.config_maps.insert(name, cm.data.unwrap_or_default());
            }
        }
        Ok(sources)
    }
}

/// The local cluster runs no DNS server: every Service with a cluster IP is written into each pod's
/// `/etc/hosts` under its DNS names (`name.ns.svc.cluster.local`, `name.ns.svc`, `name.ns`, and `name`
/// for the pod's own namespace).
pub fn service_hosts(services: &[Service], pod_namespace: &str) -> Vec<(Ipv4Addr, Vec<String>)> {
    let mut hosts: Vec<(Ipv4Addr, Vec<String>)> = services
        .iter()
        .filter_map(|svc| {
            let ip: Ipv4Addr = svc.spec.as_ref()?.cluster_ip.as_ref()?.parse().ok()?;
            let (name, ns) = (svc.metadata.name.as_deref()?, svc.metadata.namespace.as_deref()?);
            let mut names = vec![
                format!("{name}.{ns}.svc.cluster.local"),
                format!("{name}.{ns}.svc"),
                format!("{name}.{ns}"),
            ];
            if ns == pod_namespace {
                names.push(name.to_string());
            }
            Some((ip, names))
        })
        .collect();
    hosts.sort();
    hosts
}

fn resolve_port(port: &IntOrString, ports: &BTreeMap<String, u16>) -> anyhow::Result<u16> {
    match port {
        IntOrString::Int(p) => Ok(*p as u16),
        IntOrString::String(name) => ports
            .get(name)
            .copied()
            .ok_or_else(|| anyhow!("named port {name:?} not found in the container's ports")),
    }
}

fn handler_action(
    exec: Option<Vec<String>>,
    http: Option<(&IntOrString, Option<String>, Option<String>)>,
    tcp: Option<&IntOrString>,
    ports: &BTreeMap<String, u16>,
) -> anyhow::Result<Action> {
    if let Some(argv) = exec {
        return Ok(Action::Exec(argv));
    }
    if let Some((port, path, scheme)) = http {
        return Ok(Action::HttpGet {
            port: resolve_port(port, ports)?,
            path: path.unwrap_or_else(|| "/".into()),
            https: scheme.as_deref() == Some("HTTPS"),
        });
    }
    if let Some(port) = tcp {
        return Ok(Action::TcpSocket {
            port: resolve_port(port, ports)?,
        });
    }
    Err(anyhow!("a probe or hook needs one of exec, httpGet, tcpSocket"))
}

/// A probe with upstream's defaults (period 10 s, timeout 1 s, success 1, failure 3).
fn probe_plan(probe: &Probe, ports: &BTreeMap<String, u16>) -> anyhow::Result<ProbePlan> {
    let seconds = |v: Option<i32>, default: i32| Duration::from_secs(v.unwrap_or(default).max(0) as u64);
    Ok(ProbePlan {
        action: handler_action(
            probe.exec.as_ref().and_then(|e| e.command.clone()),
            probe
                .http_get
                .as_ref()
                .map(|g| (&g.port, g.path.clone(), g.scheme.clone())),
            probe.tcp_socket.as_ref().map(|t| &t.port),
            ports,
        )?,
        initial_delay: seconds(probe.initial_delay_seconds, 0),
        period: seconds(probe.period_seconds, 10),
        timeout: seconds(probe.timeout_seconds, 1),
        success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
        failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
    })
}

/// Pod IPs of this node: `.2` to `.254` of its podCIDR, handed out round-robin as real CNIs do: the next
/// free address after the last one handed out, wrapping around, so that a recreated pod gets a new
/// address (a stale IP held anywhere then points at nothing, as in a real cluster, instead of at the
/// successor). The last address handed out survives a kubelet restart in `cursor_file`.
pub struct IpPool {
    base: u32,
    size: u32,
    used: HashSet<u32>,
    /// Offset where the next search starts: the one after the last address handed out.
    next: u32,
    cursor_file: Option<PathBuf>,
}

/// `.0` is the network, `.1` is left free (a gateway's address in real clusters).
const FIRST_POD_OFFSET: u32 = 2;

impl IpPool {
    /// A pool whose cursor lives in memory only.
    pub fn new((network, bits): (Ipv4Addr, u8)) -> Self {
        let size = if bits >= 31 { 0 } else { 1u32 << (32 - bits) };
        Self {
            base: u32::from(network),
            size,
            used: HashSet::new(),
            next: FIRST_POD_OFFSET,
            cursor_file: None,
        }
    }

    /// Keeps the last address handed out in `path` (the address as text), resuming after the one found
    /// there. A missing, unreadable or foreign (another podCIDR's) address starts at `.2`.
    pub fn with_cursor_file(mut self, path: PathBuf) -> Self {
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(last) = text.trim().parse::<Ipv4Addr>()
            && let Some(offset) = self.offset(last)
        {
            self.next = self.after(offset);
        }
        self.cursor_file = Some(path);
        self
    }

    /// How many addresses the pool holds: `.2` up to, not including, the broadcast address.
    fn capacity(&self) -> u32 {
        self.size.saturating_sub(FIRST_POD_OFFSET + 1)
    }

    /// `ip`'s offset when it is one of the pool's addresses.
    fn offset(&self, ip: Ipv4Addr) -> Option<u32> {
        let offset = u32::from(ip).wrapping_sub(self.base);
        (FIRST_POD_OFFSET..FIRST_POD_OFFSET + self.capacity())
            .contains(&offset)
            .then_some(offset)
    }

    /// The offset after `offset`, wrapping from the last address to the first.
    fn after(&self, offset: u32) -> u32 {
        FIRST_POD_OFFSET + (offset + 1 - FIRST_POD_OFFSET) % self.capacity().max(1)
    }

    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let capacity = self.capacity();
        let offset = (0..capacity)
            .map(|i| FIRST_POD_OFFSET + (self.next - FIRST_POD_OFFSET + i) % capacity)
            .find(|o| !self.used.contains(o))?;
        self.used.insert(offset);
        self.next = self.after(offset);
        let ip = Ipv4Addr::from(self.base + offset);
        if let Some(path) = &self.cursor_file
            && let Err(e) = write_atomically(path, &format!("{ip}\n"))
        {
            // Only the order after a restart suffers: it resumes after an older address (or at `.2`).
            tracing::warn!(path = %path.display(), "could not record the last pod IP handed out: {e:#}");
        }
        Some(ip)
    }

    /// Takes `ip` if it belongs to the pool and is free (a restarted pod keeping its address). The
    /// round-robin cursor stays where it is.
    pub fn claim(&mut self, ip: Ipv4Addr) -> bool {
        self.offset(ip).is_some_and(|o| self.used.insert(o))
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&(u32::from(ip).wrapping_sub(self.base)));
    }
}

/// Writes `content` to a temporary file beside `path`, then renames it over `path`: a crash leaves the
/// old content or the new, never a torn file.
fn write_atomically(path: &std::path::Path, content: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_resolve_by_their_dns_names_and_short_names_only_in_their_namespace() {
        let svc = |name: &str, ns: &str, ip: &str| -> Service {
            serde_json::from_value(
                json!({ "metadata": { "name": name, "namespace": ns }, "spec": { "clusterIP": ip } }),
            )
            .unwrap()
        };
        let services = vec![
            svc("db-leader", "app", "10.96.0.20"),
            svc("other", "team", "10.96.0.30"),
            svc("headless", "app", "None"),
        ];
        let hosts = service_hosts(&services, "app");
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[0].0, Ipv4Addr::new(10, 96, 0, 20));
        assert!(
            hosts[0]
                .1
                .contains(&"db-leader.app.svc.cluster.local".to_string())
        );
        assert!(hosts[0].1.contains(&"db-leader".to_string()));
        assert!(
            !hosts[1].1.contains(&"other".to_string()),
            "short names only within the namespace"
        );
        assert!(hosts[1].1.contains(&"other.team.svc".to_string()));
    }

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 244, 1, last)
    }

    #[test]
    fn ip_pool_hands_out_round_robin_and_does_not_reuse_a_released_address_at_once() {
        let mut pool = IpPool::new((ip(0), 24));
        assert_eq!(pool.allocate(), Some(ip(2)));
        assert_eq!(pool.allocate(), Some(ip(3)));
        pool.release(ip(2));
        assert_eq!(
            pool.allocate(),
            Some(ip(4)),
            "a recreated pod must not get its predecessor's address"
        );
    }

    #[test]
    fn ip_pool_wraps_around_skipping_addresses_in_use() {
        // .2 to .6: .0 is the network, .1 stays free, .7 is the broadcast address.
        let mut pool = IpPool::new((ip(0), 29));
        let first: Vec<_> = (0..4).map(|_| pool.allocate()).collect();
        assert_eq!(first, [Some(ip(2)), Some(ip(3)), Some(ip(4)), Some(ip(5))]);
        pool.release(ip(2));
        pool.release(ip(4));
        assert_eq!(pool.allocate(), Some(ip(6)), "the last address before wrapping");
        assert_eq!(
            pool.allocate(),
            Some(ip(2)),
            "wrapped around to the first address"
        );
        assert_eq!(pool.allocate(), Some(ip(4)), ".3 is in use: skipped");
        assert_eq!(pool.allocate(), None, "full");
        pool.release(ip(5));
        assert_eq!(
            pool.allocate(),
            Some(ip(5)),
            "the only free address, though just released"
        );
    }

    #[test]
    fn ip_pool_resumes_after_the_last_address_it_handed_out_before_a_restart() {
        let dir = std::env::temp_dir().join(format!("cnredis-ip-pool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cursor = dir.join(IP_CURSOR_FILE);
        let _ = std::fs::remove_file(&cursor);

        let mut pool = IpPool::new((ip(0), 24)).with_cursor_file(cursor.clone());
        assert_eq!(pool.allocate(), Some(ip(2)), "no cursor yet: starts at .2");
        assert_eq!(pool.allocate(), Some(ip(3)));
        assert_eq!(std::fs::read_to_string(&cursor).unwrap(), "10.244.1.3\n");

        // A restarted kubelet: its pods reclaim their addresses, new ones continue after the cursor.
        let mut restarted = IpPool::new((ip(0), 24)).with_cursor_file(cursor.clone());
        assert!(restarted.claim(ip(3)));
        assert_eq!(
            restarted.allocate(),
            Some(ip(4)),
            ".2 was freed before the restart"
        );

        // Another podCIDR (the cluster was recreated): the recorded address is not the pool's.
        let mut other = IpPool::new((Ipv4Addr::new(10, 244, 2, 0), 24)).with_cursor_file(cursor.clone());
        assert_eq!(other.allocate(), Some(Ipv4Addr::new(10, 244, 2, 2)));

        // The last address wraps the cursor around.
        std::fs::write(&cursor, "10.244.1.254\n").unwrap();
        let mut wrapped = IpPool::new((ip(0), 24)).with_cursor_file(cursor);
        assert_eq!(wrapped.allocate(), Some(ip(2)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ip_pool_lets_a_restarted_pod_reclaim_its_free_address_only() {
        let mut pool = IpPool::new((ip(0), 24));
        assert!(pool.claim(Ipv4Addr::new(10, 244, 1, 9)));
        assert!(!pool.claim(Ipv4Addr::new(10, 244, 1, 9)), "already taken");
        assert!(!pool.claim(Ipv4Addr::new(10, 244, 2, 9)), "another node's range");
        assert!(!pool.claim(Ipv4Addr::new(10, 244, 1, 255)), "broadcast");
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(10, 244, 1, 2)));
    }

    #[test]
    fn ip_pool_runs_out_before_the_broadcast_address() {
        let mut pool = IpPool::new((Ipv4Addr::new(10, 244, 1, 0), 29));
        let all: Vec<_> = std::iter::from_fn(|| pool.allocate()).collect();
        assert_eq!(all.first(), Some(&Ipv4Addr::new(10, 244, 1, 2)));
        assert_eq!(all.last(), Some(&Ipv4Addr::new(10, 244, 1, 6)));
    }

    #[test]
    fn probes_get_upstream_defaults_and_named_ports_resolve() {
        let probe: Probe =
            serde_json::from_value(json!({ "httpGet": { "port": "api", "path": "/readyz" } })).unwrap();
        let ports = [("api".to_string(), 8000)].into();
        let plan = probe_plan(&probe, &ports).unwrap();
        assert_eq!(
            plan.action,
            Action::HttpGet {
                port: 8000,
                path: "/readyz".into(),
                https: false
            }
        );
        assert_eq!(
            (
                plan.period,
                plan.timeout,
                plan.success_threshold,
                plan.failure_threshold
            ),
            (Duration::from_secs(10), Duration::from_secs(1), 1, 3)
        );
        let unknown: Probe = serde_json::from_value(json!({ "tcpSocket": { "port": "nope" } })).unwrap();
        assert!(probe_plan(&unknown, &ports).is_err());
    }
}
