//! The pod network (e2e/README.md): a network namespace, a veth pair whose pod end is `eth0` holding the
//! pod IP as `/32`, a default route through the link-local gateway answered by proxy ARP on the host end,
//! and a host `/32` route back. The host state this relies on (forwarding, proxy ARP on the host end) is
//! set here, pod by pod, so that the runtime works on a fresh machine without `e2e/cluster.sh up` first.

use anyhow::Context;

use super::host::{self, Tools};
use super::layout::SandboxRecord;

/// The gateway every pod routes through; no host owns it, proxy ARP on the host veth answers for it.
const GATEWAY: &str = "169.254.1.1";

/// Creates the namespace, veth, addresses and routes. On failure, removes what it made.
pub async fn create(tools: &Tools, sandbox: &SandboxRecord) -> anyhow::Result<()> {
    let result = create_steps(tools, sandbox).await;
    if result.is_err() {
        destroy(tools, sandbox).await;
    }
    result
}

async fn create_steps(tools: &Tools, sb: &SandboxRecord) -> anyhow::Result<()> {
    enable_forwarding().await?;
    let ip = &tools.ip;
    let ns = sb.netns.as_str();
    let veth = sb.host_veth.as_str();
    let pod_addr = format!("{}/32", sb.ip);
    host::run(ip, &["netns", "add", ns]).await?;
    host::run(
        ip,
        &[
            "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ],
    )
    .await?;
    host::run(ip, &["-n", ns, "link", "set", "lo", "up"]).await?;
    host::run(ip, &["-n", ns, "addr", "add", &pod_addr, "dev", "eth0"]).await?;
    host::run(ip, &["-n", ns, "link", "set", "eth0", "up"]).await?;
    host::run(
        ip,
        &[
            "-n", ns, "route", "add", "default", "via", GATEWAY, "dev", "eth0", "onlink",
        ],
    )
    .await?;
    // The host answers the pod's ARP for the gateway (proxy ARP) and routes what the pod sends: both
    // need forwarding on this device. New devices inherit it from `net.ipv4.ip_forward=1` (via
    // `conf.default.forwarding`), but a host may have that default turned off on its own.
    for knob in ["forwarding", "proxy_arp"] {
        write_sysctl(&format!("/proc/sys/net/ipv4/conf/{veth}/{knob}")).await?;
    }
    host::run(ip, &["link", "set", veth, "up"]).await?;
    host::run(ip, &["route", "replace", &pod_addr, "dev", veth]).await?;
    Ok(())
}

/// Turns on `net.ipv4.ip_forward` unless it is on already: a machine boots with it off, and without it
/// the host neither forwards pod traffic nor answers proxy ARP, so a pod cannot reach anything, not even
/// the host (readiness probes and tests from the host time out).
async fn enable_forwarding() -> anyhow::Result<()> {
    const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
    let current = tokio::fs::read_to_string(IP_FORWARD)
        .await
        .with_context(|| format!("reading {IP_FORWARD}"))?;
    if current.trim() == "1" {
        return Ok(());
    }
    tracing::info!("turning on net.ipv4.ip_forward: pods route through this host");
    write_sysctl(IP_FORWARD)
        .await
        .context("pods need net.ipv4.ip_forward=1")
}

/// Sets a boolean sysctl to 1.
async fn write_sysctl(path: &str) -> anyhow::Result<()> {
    tokio::fs::write(path, b"1")
        .await
        .with_context(|| format!("writing 1 to {path}"))
}

/// Removes the namespace (which takes the veth pair and the host route with it) and, should the pair
/// outlive it, the host veth. Missing pieces are fine; failures are logged, not returned, so teardown
/// always gets as far as it can.
pub async fn destroy(tools: &Tools, sb: &SandboxRecord) {
    if sb.netns_path().exists()
        && let Err(e) = host::run(&tools.ip, &["netns", "delete", &sb.netns]).await
    {
        tracing::warn!(netns = %sb.netns, error = %e, "could not delete the pod network namespace");
    }
    if host_veth_exists(sb)
        && let Err(e) = host::run(&tools.ip, &["link", "delete", &sb.host_veth]).await
    {
        tracing::warn!(veth = %sb.host_veth, error = %e, "could not delete the host veth");
    }
    // The blackhole of a pod stopped while cut off (see `cut`).
    let pod_route = format!("{}/32", sb.ip);
    let blackhole = host::run(
        &tools.ip,
        &["route", "show", "exact", &pod_route, "type", "blackhole"],
    )
    .await;
    if blackhole.is_ok_and(|routes| !routes.trim().is_empty())
        && let Err(e) = host::run(&tools.ip, &["route", "delete", "blackhole", &pod_route]).await
    {
        tracing::warn!(route = %pod_route, error = %e, "could not delete the pod's blackhole route");
    }
}

pub fn host_veth_exists(sb: &SandboxRecord) -> bool {
    std::path::Path::new("/sys/class/net")
        .join(&sb.host_veth)
        .exists()
}

/// Takes the host end down: no packet passes either way until [`restore`]. The host route becomes a
/// blackhole first: without it, the kernel would send the host's packets for the pod IP out through
/// the default route once the link-down removes the veth route.
pub fn cut(tools: &Tools, sb: &SandboxRecord) -> anyhow::Result<()> {
    host::run_blocking(
        &tools.ip,
        &["route", "replace", "blackhole", &format!("{}/32", sb.ip)],
    )?;
    host::run_blocking(&tools.ip, &["link", "set", &sb.host_veth, "down"])?;
    Ok(())
}

/// Brings the host end back up and puts the host route back in place of the blackhole.
pub fn restore(tools: &Tools, sb: &SandboxRecord) -> anyhow::Result<()> {
    host::run_blocking(&tools.ip, &["link", "set", &sb.host_veth, "up"])?;
    host::run_blocking(
        &tools.ip,
        &["route", "replace", &format!("{}/32", sb.ip), "dev", &sb.host_veth],
    )?;
    Ok(())
}
