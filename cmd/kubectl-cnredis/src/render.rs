//! `status` for people: one screen, from an [`Observed`], with no IO, so that recorded clusters render
//! the same on every machine (the golden tests).

use std::fmt::Write as _;

use cnredis_api::backup::BackupPhase;
use cnredis_api::cluster::InstanceStatus;
use cnredis_api::names::{FencedInstances, instance_serial};
use cnredis_wire::{InstanceReport, Role};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::table::{Table, Tone, paint};
use crate::view::{Answer, CertificateState, Observed, OperatorState, PodSummary};

/// How much to show.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub colour: bool,
    pub verbose: bool,
}

/// Events shown, newest last.
const EVENTS_SHOWN: usize = 10;
/// Backups listed, newest last.
const BACKUPS_SHOWN: usize = 5;
/// A certificate expiring sooner than this is flagged.
const CERTIFICATE_WARN_SECONDS: i64 = 14 * 86_400;

pub fn status(observed: &Observed, style: Style) -> String {
    let mut out = String::new();
    summary(&mut out, observed, style);
    instances(&mut out, observed, style);
    if style.verbose {
        configuration(&mut out, observed);
        instance_details(&mut out, observed);
    }
    conditions(&mut out, observed, style);
    backups(&mut out, observed, style);
    certificates(&mut out, observed, style);
    events(&mut out, observed, style);
    out
}

fn summary(out: &mut String, observed: &Observed, style: Style) {
    let cluster = &observed.cluster;
    let status = cluster.status.clone().unwrap_or_default();
    let now = observed.observed_at.0;
    let mut lines: Vec<(&str, String)> = Vec::new();
    lines.push((
        "Cluster",
        format!(
            "{} (namespace {})",
            cluster.name_any(),
            cluster.namespace().unwrap_or_default()
        ),
    ));
    let phase = status.phase.clone().unwrap_or_else(|| "(none yet)".into());
    lines.push(("Phase", paint(&phase, phase_tone(&phase), style.colour)));
    if let Some(reason) = &status.phase_reason {
        lines.push(("", reason.clone()));
    }
    let primary = match (&status.current_primary, &status.current_primary_timestamp) {
        (Some(primary), Some(since)) => format!("{primary} since {} ({} ago)", when(since), age(now, since)),
        (Some(primary), None) => primary.clone(),
        (None, _) => paint("none", Tone::Bad, style.colour),
    };
    lines.push(("Primary", primary));
    if let Some(target) = status
        .target_primary
        .as_ref()
        .filter(|t| Some(*t) != status.current_primary.as_ref())
    {
        lines.push((
            "Target primary",
            paint(
                &format!("{target} (switchover or failover in progress)"),
                Tone::Warn,
                style.colour,
            ),
        ));
    }
    let spec = &cluster.spec;
    lines.push((
        "Instances",
        format!(
            "{} wanted, {} exist, {} ready",
            spec.instances, status.instances, status.ready_instances
        ),
    ));
    lines.push((
        "Image",
        status.image.clone().unwrap_or_else(|| spec.image_name.clone()),
    ));
    let fencing = match fenced_instances(cluster) {
        Ok(None) => "none".to_string(),
        Ok(Some(list)) => paint(
            &format!("{list} (cnredis.io/fencedInstances)"),
            Tone::Bad,
            style.colour,
        ),
        Err(error) => paint(&format!("invalid annotation: {error}"), Tone::Bad, style.colour),
    };
    lines.push(("Fenced", fencing));
    if let Some(failing) = &status.primary_failing {
        lines.push((
            "Primary failing",
            paint(
                &format!(
                    "{} since {} ago: {} ({})",
                    failing.pod,
                    age(now, &failing.since),
                    failing.message,
                    failing.reason
                ),
                Tone::Bad,
                style.colour,
            ),
        ));
    }
    if let Some(failover) = &status.failover {
        let to = failover.to.as_deref().unwrap_or("(choosing)");
        lines.push((
            "Failover",
            paint(
                &format!(
                    "in progress: {} -> {to}, step {}, started {} ago ({})",
                    failover.from,
                    failover.step,
                    age(now, &failover.started),
                    failover.reason
                ),
                Tone::Warn,
                style.colour,
            ),
        ));
    }
    if let Some(last) = &status.last_failover {
        lines.push((
            "Last failover",
            format!(
                "{} -> {} {} ago ({}, fenced by {}); writes unavailable {} ms",
                last.from,
                last.to,
                age(now, &last.completed),
                last.reason,
                last.fence_proof,
                last.write_unavailable_ms
            ),
        ));
    }
    if let Some(switchover) = last_event(
        observed,
        &["SwitchoverCompleted", "SwitchoverFailed", "SwitchoverInterrupted"],
    ) {
        lines.push(("Last switchover", switchover));
    }
    if let Some(recovery) = &status.recovery {
        lines.push((
            "Restored from",
            format!(
                "{}/{} of cluster {} ({} keys)",
                recovery.object_store.destination_path, recovery.backup_id, recovery.cluster, recovery.keys
            ),
        ));
    }
    lines.push(("Operator", operator(&observed.operator, style)));
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 2;
    for (key, value) in lines {
        let label = if key.is_empty() {
            String::new()
        } else {
            format!("{key}:")
        };
        let _ = writeln!(out, "{label:width$}{value}");
    }
}

fn last_event(observed: &Observed, reasons: &[&str]) -> Option<String> {
    let now = observed.observed_at.0;
    observed
        .events
        .iter()
        .rev()
        .find(|e| reasons.contains(&e.reason.as_str()))
        .map(|e| match &e.time {
            Some(time) => format!("{} ago: {}", age(now, time), e.message),
            None => e.message.clone(),
        })
}

fn operator(state: &OperatorState, style: Style) -> String {
    match state {
        OperatorState::Unknown(why) => paint(&format!("unknown ({why})"), Tone::Warn, style.colour),
        OperatorState::Pods(pods) if pods.is_empty() => paint(
            "no operator pod found: nothing will fail over, switch over or update status until it runs",
            Tone::Bad,
            style.colour,
        ),
        OperatorState::Pods(pods) => {
            let ready = pods.iter().filter(|p| p.ready).count();
            let first = &pods[0];
            let text = format!(
                "{}/{} ready in {} ({})",
                ready,
                pods.len(),
                first.namespace,
                first.image
            );
            paint(
                &text,
                if ready > 0 { Tone::Plain } else { Tone::Bad },
                style.colour,
            )
        }
    }
}

/// Every instance any source knows of, by serial.
fn instance_names(observed: &Observed) -> Vec<String> {
    let status = observed.cluster.status.clone().unwrap_or_default();
    let mut names: Vec<String> = status.instances_status.iter().map(|i| i.name.clone()).collect();
    names.extend(observed.pods.iter().map(|p| p.name.clone()));
    names.extend(observed.instances.keys().cloned());
    let cluster = observed.cluster.name_any();
    names.sort_by_key(|n| (instance_serial(&cluster, n).unwrap_or(u32::MAX), n.clone()));
    names.dedup();
    names
}

struct Row<'a> {
    name: &'a str,
    pod: Option<&'a PodSummary>,
    report: Option<&'a InstanceReport>,
    error: Option<&'a str>,
    recorded: Option<&'a InstanceStatus>,
}

fn rows<'a>(observed: &'a Observed, names: &'a [String]) -> Vec<Row<'a>> {
    let status = observed.cluster.status.as_ref();
    names
        .iter()
        .map(|name| {
            let (report, error) = match observed.instances.get(name) {
                Some(Answer::Report(report)) => (Some(report.as_ref()), None),
                Some(Answer::Error(error)) => (None, Some(error.as_str())),
                None => (None, None),
            };
            Row {
                name,
                pod: observed.pods.iter().find(|p| &p.name == name),
                report,
                error,
                recorded: status.and_then(|s| s.instances_status.iter().find(|i| &i.name == name)),
            }
        })
        .collect()
}

fn instances(out: &mut String, observed: &Observed, style: Style) {
    let names = instance_names(observed);
    let current_primary = observed
        .cluster
        .status
        .as_ref()
        .and_then(|s| s.current_primary.clone());
    let mut table = Table::new(vec![
        "NAME", "ROLE", "STATUS", "OFFSET", "LAG", "LINK", "KEYS", "MEMORY", "NODE", "QOS", "NOTES",
    ]);
    for row in rows(observed, &names) {
        let (role, role_tone) = role(&row, current_primary.as_deref());
        let (state, state_tone) = state(&row);
        let replication = row.report.map(|r| &r.replication);
        let offset = match (row.report, row.recorded.and_then(|r| r.replication_offset)) {
            (Some(report), _) => report.replication.offset.to_string(),
            (None, Some(offset)) => format!("{offset} (last seen)"),
            (None, None) => "-".into(),
        };
        let lag = match replication {
            Some(r) if row.report.is_some_and(|rep| rep.role == Role::Replica) => {
                format!("{} B, {}s", r.lag_bytes.unwrap_or(0), r.lag_seconds.unwrap_or(0))
            }
            _ => "-".into(),
        };
        // Behind in bytes, or silent for longer than the bound a promotion accepts.
        let lag_bound = i64::from(observed.cluster.spec.failover.max_sync_replica_lag_seconds);
        let lag_tone = match replication {
            Some(r) if r.lag_bytes.unwrap_or(0) > 0 || r.lag_seconds.unwrap_or(0) > lag_bound => Tone::Warn,
            _ => Tone::Plain,
        };
        let (link, link_tone) = match replication.and_then(|r| r.link.clone()) {
            Some(link) if link == "up" => (link, Tone::Good),
            Some(link) => (link, Tone::Bad),
            None => ("-".into(), Tone::Plain),
        };
        let keys = match (row.report, row.recorded.and_then(|r| r.keys)) {
            (Some(report), _) => report.dataset.keys.to_string(),
            (None, Some(keys)) => format!("{keys} (last seen)"),
            (None, None) => "-".into(),
        };
        let memory = row.report.map_or("-".into(), |r| {
            let max = match r.dataset.maxmemory_bytes {
                0 => "no limit".to_string(),
                max => bytes(max),
            };
            format!("{} / {max}", bytes(r.dataset.used_memory_bytes))
        });
        let node = row.pod.and_then(|p| p.node.clone()).map_or("-".into(), |node| {
            match row.pod.and_then(|p| p.zone.clone()) {
                Some(zone) => format!("{node} ({zone})"),
                None => node,
            }
        });
        let qos = row.pod.and_then(|p| p.qos.clone()).unwrap_or_else(|| "-".into());
        let (notes, notes_tone) = notes(&row);
        table.row(vec![
            (row.name.to_string(), Tone::Plain),
            (role, role_tone),
            (state, state_tone),
            (offset, Tone::Plain),
            (lag, lag_tone),
            (link, link_tone),
            (keys, Tone::Plain),
            (memory, Tone::Plain),
            (node, Tone::Plain),
            (qos, Tone::Plain),
            (notes, notes_tone),
        ]);
    }
    let _ = writeln!(out, "\nInstances");
    if table.is_empty() {
        let _ = writeln!(out, "  none yet");
    } else {
        out.push_str(&table.render(style.colour));
    }
}

fn role(row: &Row<'_>, current_primary: Option<&str>) -> (String, Tone) {
    match row.report.map(|r| r.role) {
        Some(Role::Primary) if current_primary == Some(row.name) => ("primary".into(), Tone::Good),
        // A server that says primary while the cluster records another one: isolated or not yet demoted.
        Some(Role::Primary) => ("primary (not current)".into(), Tone::Bad),
        Some(Role::Replica) => ("replica".into(), Tone::Plain),
        Some(Role::Unknown) => ("unknown".into(), Tone::Warn),
        None => match row.recorded {
            Some(recorded) => (format!("{} (last seen)", recorded.role), Tone::Dim),
            None => ("-".into(), Tone::Dim),
        },
    }
}

fn state(row: &Row<'_>) -> (String, Tone) {
    let Some(pod) = row.pod else {
        return ("no pod".into(), Tone::Bad);
    };
    if pod.deleting {
        return ("pod terminating".into(), Tone::Bad);
    }
    if pod.phase != "Running" {
        return (format!("pod {}", pod.phase), Tone::Warn);
    }
    match (row.report, row.error) {
        (Some(report), _) if !report.answered => ("server down".into(), Tone::Bad),
        (Some(report), _) if report.fenced => ("fenced".into(), Tone::Bad),
        (Some(report), _) if report.persistence.loading => ("loading".into(), Tone::Warn),
        (Some(report), _) if report.ready => ("ready".into(), Tone::Good),
        (Some(_), _) => ("not ready".into(), Tone::Warn),
        (None, Some(_)) => ("not answering".into(), Tone::Bad),
        (None, None) => ("unknown".into(), Tone::Warn),
    }
}

fn notes(row: &Row<'_>) -> (String, Tone) {
    let mut notes: Vec<String> = Vec::new();
    let mut tone = Tone::Plain;
    if let Some(error) = row.error {
        notes.push(error.to_string());
        tone = Tone::Bad;
    }
    if let Some(report) = row.report {
        if !report.fence_reasons.is_empty() {
            notes.push(format!("refuses writes: {}", report.fence_reasons.join(", ")));
            tone = Tone::Bad;
        }
        if !report.pending_restart.is_empty() {
            notes.push(format!("pending restart: {}", report.pending_restart.join(", ")));
            if tone == Tone::Plain {
                tone = Tone::Warn;
            }
        }
        if let Some(restore) = &report.restore {
            notes.push(match &restore.error {
                Some(error) => format!("restore failed: {error}"),
                None => format!("restore: {}", restore.step),
            });
        }
        if let Some(error) = &report.last_error {
            notes.push(error.clone());
            tone = Tone::Bad;
        }
    } else if let Some(message) = row.recorded.and_then(|r| r.message.as_ref()) {
        notes.push(message.clone());
    }
    if let Some(pod) = row.pod.filter(|p| p.restarts > 0) {
        notes.push(format!("{} container restarts", pod.restarts));
    }
    (notes.join("; "), tone)
}

fn configuration(out: &mut String, observed: &Observed) {
    let spec = &observed.cluster.spec;
    let _ = writeln!(out, "\nConfiguration");
    let mut table = Table::new(vec!["SETTING", "VALUE"]);
    let mut add = |k: &str, v: String| table.row(vec![(k.to_string(), Tone::Plain), (v, Tone::Plain)]);
    add("mode", format!("{:?}", spec.mode).to_lowercase());
    add(
        "persistence",
        format!(
            "{:?}, appendfsync {:?}",
            spec.persistence.mode, spec.persistence.append_fsync
        )
        .to_lowercase(),
    );
    add(
        "storage",
        format!(
            "{} ({})",
            spec.storage.size,
            spec.storage.storage_class.as_deref().unwrap_or("default class")
        ),
    );
    add(
        "maxmemory",
        format!(
            "{}% of the memory limit, policy {:?}",
            spec.memory.maxmemory_percent, spec.memory.policy
        )
        .to_lowercase(),
    );
    add(
        "failover",
        format!(
            "delay {}s, minSyncReplicas {}, maxSyncReplicaLag {}s, primary lease {}s, stale reads {}s",
            spec.failover.delay_seconds,
            spec.failover.min_sync_replicas,
            spec.failover.max_sync_replica_lag_seconds,
            spec.failover.primary_lease_seconds,
            spec.failover.max_stale_read_seconds
        ),
    );
    add(
        "auth",
        if spec.auth.enabled {
            "enabled".into()
        } else {
            "disabled".into()
        },
    );
    add(
        "tls",
        spec.tls
            .as_ref()
            .map_or("disabled".into(), |t| format!("secret {}", t.secret_name)),
    );
    if let Some(backup) = &spec.backup {
        add(
            "backups to",
            format!(
                "{} ({}), retention {}",
                backup.object_store.destination_path,
                backup.object_store.endpoint_url.as_deref().unwrap_or("AWS S3"),
                backup.retention_policy.as_deref().unwrap_or("none")
            ),
        );
    }
    for (name, value) in &spec.parameters {
        add(name, value.clone());
    }
    out.push_str(&table.render(false));
}

fn instance_details(out: &mut String, observed: &Observed) {
    let _ = writeln!(out, "\nInstance details");
    let mut table = Table::new(vec![
        "NAME",
        "ENGINE",
        "MANAGER",
        "UPTIME",
        "SERVER RESTARTS",
        "PERSISTENCE",
        "LEASE",
        "REPLICATION ID",
    ]);
    for (name, answer) in &observed.instances {
        let Answer::Report(report) = answer else { continue };
        let persistence = &report.persistence;
        let mut saved = persistence.mode.clone();
        if persistence.rdb_last_save_time > 0 {
            let last = Timestamp::from_second(persistence.rdb_last_save_time).map_or("?".into(), |t| {
                format!("last save {} ago", age(observed.observed_at.0, &Time(t)))
            });
            let _ = write!(saved, ", {last}");
        }
        if !persistence.rdb_last_bgsave_ok || !persistence.aof_last_write_ok {
            saved.push_str(", LAST WRITE FAILED");
        }
        table.row(vec![
            (name.clone(), Tone::Plain),
            (
                format!("{} {}", report.engine, report.engine_version),
                Tone::Plain,
            ),
            (report.manager_version.clone(), Tone::Plain),
            (seconds(report.server_uptime_seconds), Tone::Plain),
            (report.server_restarts.to_string(), Tone::Plain),
            (saved, Tone::Plain),
            (format!("{:?}", report.lease).to_lowercase(), Tone::Plain),
            (report.replication.replication_id.clone(), Tone::Plain),
        ]);
    }
    out.push_str(&table.render(false));
}

fn conditions(out: &mut String, observed: &Observed, style: Style) {
    let status = observed.cluster.status.clone().unwrap_or_default();
    if status.conditions.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nConditions");
    let mut table = Table::new(vec!["TYPE", "STATUS", "AGE", "REASON", "MESSAGE"]);
    for condition in &status.conditions {
        let healthy = match condition.type_.as_str() {
            // True means trouble for these.
            "Failover" => condition.status != "True",
            _ => condition.status == "True",
        };
        table.row(vec![
            (condition.type_.clone(), Tone::Plain),
            (
                condition.status.clone(),
                if healthy { Tone::Good } else { Tone::Warn },
            ),
            (
                age(observed.observed_at.0, &condition.last_transition_time),
                Tone::Plain,
            ),
            (condition.reason.clone(), Tone::Plain),
            (condition.message.clone(), Tone::Plain),
        ]);
    }
    out.push_str(&table.render(style.colour));
}

fn backups(out: &mut String, observed: &Observed, style: Style) {
    let status = observed.cluster.status.clone().unwrap_or_default();
    let now = observed.observed_at.0;
    let configured = observed.cluster.spec.backup.is_some();
    let _ = writeln!(out, "\nBackups");
    if !configured && observed.backups.is_empty() && observed.scheduled_backups.is_empty() {
        let _ = writeln!(out, "  not configured (spec.backup)");
        return;
    }
    let last_ok = status
        .last_successful_backup
        .as_ref()
        .map(|t| format!("{} ({} ago)", when(t), age(now, t)));
    let _ = writeln!(
        out,
        "  Last successful: {}",
        last_ok.unwrap_or_else(|| paint("never", Tone::Warn, style.colour))
    );
    if let Some(failed) = &status.last_failed_backup {
        let newer = status
            .last_successful_backup
            .as_ref()
            .is_none_or(|ok| ok.0 < failed.0);
        let text = format!("{} ({} ago)", when(failed), age(now, failed));
        let _ = writeln!(
            out,
            "  Last failed:     {}",
            paint(&text, if newer { Tone::Bad } else { Tone::Plain }, style.colour)
        );
    }
    for schedule in &observed.scheduled_backups {
        let s = schedule.status.clone().unwrap_or_default();
        let next = match (schedule.spec.suspend, &s.next_schedule_time) {
            (true, _) => "suspended".to_string(),
            (false, Some(next)) => format!("next {} (in {})", when(next), age(next.0, &observed.observed_at)),
            (false, None) => "next not computed yet".to_string(),
        };
        let _ = writeln!(
            out,
            "  Schedule {} \"{}\": {next}",
            schedule.name_any(),
            schedule.spec.schedule
        );
    }
    let mut recent: Vec<_> = observed.backups.iter().collect();
    recent.sort_by_key(|b| b.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let skip = recent.len().saturating_sub(BACKUPS_SHOWN);
    let mut table = Table::new(vec![
        "BACKUP", "PHASE", "INSTANCE", "STARTED", "DURATION", "SIZE", "MESSAGE",
    ]);
    for backup in recent.into_iter().skip(skip) {
        let s = backup.status.clone().unwrap_or_default();
        let (phase, tone) = match s.phase {
            Some(BackupPhase::Completed) => ("completed", Tone::Good),
            Some(BackupPhase::Failed) => ("failed", Tone::Bad),
            Some(BackupPhase::Running) => ("running", Tone::Warn),
            Some(BackupPhase::Pending) | None => ("pending", Tone::Warn),
        };
        let duration = match (&s.started_at, &s.stopped_at) {
            (Some(start), Some(stop)) => {
                seconds(u64::try_from(stop.0.as_second() - start.0.as_second()).unwrap_or(0))
            }
            _ => "-".into(),
        };
        table.row(vec![
            (backup.name_any(), Tone::Plain),
            (phase.to_string(), tone),
            (s.instance.clone().unwrap_or_else(|| "-".into()), Tone::Plain),
            (
                s.started_at
                    .as_ref()
                    .map_or("-".into(), |t| format!("{} ago", age(now, t))),
                Tone::Plain,
            ),
            (duration, Tone::Plain),
            (
                s.size_bytes
                    .map_or("-".into(), |b| bytes(u64::try_from(b).unwrap_or(0))),
                Tone::Plain,
            ),
            (s.error.clone().unwrap_or_default(), Tone::Plain),
        ]);
    }
    if !table.is_empty() {
        out.push_str(&indent(&table.render(style.colour)));
    }
}

fn certificates(out: &mut String, observed: &Observed, style: Style) {
    let _ = writeln!(out, "\nCertificates");
    let text = match &observed.instance_api_certificate {
        CertificateState::NotAfter(time) => {
            let left = time.0.as_second() - observed.observed_at.0.as_second();
            let tone = if left < CERTIFICATE_WARN_SECONDS {
                Tone::Warn
            } else {
                Tone::Plain
            };
            let expiry = if left > 0 {
                format!(
                    "expires {} (in {}; renewed by the operator)",
                    when(time),
                    age(time.0, &observed.observed_at)
                )
            } else {
                format!(
                    "EXPIRED {} ({} ago)",
                    when(time),
                    age(observed.observed_at.0, time)
                )
            };
            paint(&expiry, if left > 0 { tone } else { Tone::Bad }, style.colour)
        }
        CertificateState::Missing => "not issued yet".to_string(),
        CertificateState::Unknown(why) => format!("unknown ({why})"),
    };
    let _ = writeln!(out, "  Instance API: {text}");
}

fn events(out: &mut String, observed: &Observed, style: Style) {
    let _ = writeln!(out, "\nEvents");
    if observed.events.is_empty() {
        let _ = writeln!(out, "  none");
        return;
    }
    let skip = observed.events.len().saturating_sub(EVENTS_SHOWN);
    let mut table = Table::new(vec!["AGE", "TYPE", "REASON", "MESSAGE"]);
    for event in observed.events.iter().skip(skip) {
        let tone = if event.type_ == "Warning" {
            Tone::Warn
        } else {
            Tone::Plain
        };
        let count = if event.count > 1 {
            format!(" (x{})", event.count)
        } else {
            String::new()
        };
        table.row(vec![
            (
                event
                    .time
                    .as_ref()
                    .map_or("-".into(), |t| age(observed.observed_at.0, t)),
                Tone::Plain,
            ),
            (event.type_.clone(), tone),
            (event.reason.clone(), Tone::Plain),
            (format!("{}{count}", event.message), Tone::Plain),
        ]);
    }
    out.push_str(&indent(&table.render(style.colour)));
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// A time to the second, in UTC.
fn when(time: &Time) -> String {
    time.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// kubectl-style age of `then` seen at `now`: `45s`, `12m`, `5h`, `3d`.
/// How a cluster's phase is coloured, in `status` and in the list of clusters alike.
pub fn phase_tone(phase: &str) -> Tone {
    match phase {
        "Healthy" => Tone::Good,
        p if p.to_lowercase().contains("fail") => Tone::Bad,
        _ => Tone::Warn,
    }
}

/// The instances `cnredis.io/fencedInstances` fences (as the annotation lists them; `None` for none), or
/// why the annotation cannot be read.
pub fn fenced_instances(cluster: &cnredis_api::RedisCluster) -> Result<Option<String>, String> {
    let annotation = cluster
        .annotations()
        .get(cnredis_api::names::ANNOTATION_FENCED_INSTANCES)
        .map(String::as_str);
    FencedInstances::parse(annotation)
        .map(|fenced| fenced.to_annotation())
        .map_err(|error| error.to_string())
}

pub fn age(now: Timestamp, then: &Time) -> String {
    seconds(u64::try_from(now.as_second() - then.0.as_second()).unwrap_or(0))
}

pub fn seconds(s: u64) -> String {
    match s {
        0..120 => format!("{s}s"),
        120..7_200 => format!("{}m", s / 60),
        7_200..172_800 => format!("{}h", s / 3_600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Binary units with one decimal: `512 B`, `1.5 KiB`, `2.0 GiB`.
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut value = b as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests;
