//! The pod network (e2e/README.md): a network namespace, a veth pair whose pod end is `eth0` holding the
//! pod IP as `/32`, a default route through the link-local gateway answered by proxy ARP on the host end,
//! and a host `/32` route back.

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
    let proxy_arp = format!("/proc/sys/net/ipv4/conf/{veth}/proxy_arp");
    tokio::fs::write(&proxy_arp, b"1")
        .await
        .with_context(|| format!("writing {proxy_arp}"))?;
    host::run(ip, &["link", "set", veth, "up"]).await?;
    host::run(ip, &["route", "replace", &pod_addr, "dev", veth]).await?;
    Ok(())
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
