//! Which instance takes a backup: by default the most advanced healthy replica (the primary's latency is
//! spared), else the primary; with `target: primary`, the primary only. Never an instance that is not
//! ready, is fenced, restarted empty, is loading, or a replica whose link to the primary is down (its
//! data would be stale by an unknown amount).

use cnredis_api::common::BackupTarget;
use cnredis_instance_client::wire::Role;

use crate::cluster::plan::Observed;

/// The chosen instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub pod: String,
    pub role: Role,
    pub offset: i64,
}

/// The instance to back up, or why none can be (one reason per instance, for the user).
pub fn choose(
    instances: &[Observed],
    current_primary: Option<&str>,
    target: BackupTarget,
) -> Result<Choice, String> {
    let mut reasons = Vec::new();
    let mut replicas = Vec::new();
    let mut primary = None;
    for instance in instances {
        match unfit(instance, current_primary) {
            Some(why) => reasons.push(format!("{}: {why}", instance.name)),
            None => {
                let report = instance.report.as_ref().expect("fit instances answered");
                let choice = Choice {
                    pod: instance.name.clone(),
                    role: report.role,
                    offset: report.replication.offset,
                };
                if report.role == Role::Primary {
                    primary = Some(choice);
                } else {
                    replicas.push(choice);
                }
            }
        }
    }
    // The most advanced replica; the lowest name among equals, so that repeated choices agree.
    replicas.sort_by(|a, b| b.offset.cmp(&a.offset).then_with(|| a.pod.cmp(&b.pod)));
    let chosen = match target {
        BackupTarget::PreferReplica => replicas.into_iter().next().or(primary),
        BackupTarget::Primary => primary,
    };
    chosen.ok_or_else(|| {
        let wanted = match target {
            BackupTarget::PreferReplica => "no healthy replica or primary to back up",
            BackupTarget::Primary => "the primary cannot be backed up (target: primary)",
        };
        if reasons.is_empty() {
            format!("{wanted}: the cluster has no instance")
        } else {
            format!("{wanted}: {}", reasons.join("; "))
        }
    })
}

fn unfit(instance: &Observed, current_primary: Option<&str>) -> Option<String> {
    let Some(pod) = &instance.pod else {
        return Some("no pod".to_string());
    };
    if pod.terminating {
        return Some("its pod is being deleted".to_string());
    }
    if !pod.backup_credentials {
        return Some(
            "its pod does not mount the object store credentials yet (the rolling update after spec.backup was set replaces it)"
                .to_string(),
        );
    }
    let Some(report) = instance.report.as_ref().filter(|r| r.answered) else {
        return Some("its instance manager or server does not answer".to_string());
    };
    if report.fenced {
        return Some("fenced".to_string());
    }
    if report.empty_after_restart || report.restarted_primary {
        return Some("restarted without its dataset, awaiting failover".to_string());
    }
    if report.persistence.loading {
        return Some("loading its dataset".to_string());
    }
    if !report.ready {
        return Some("not ready".to_string());
    }
    match report.role {
        Role::Primary if current_primary == Some(instance.name.as_str()) => None,
        Role::Primary => Some("serves as primary but is not the cluster's primary".to_string()),
        Role::Replica if report.replication.link.as_deref() == Some("up") => None,
        Role::Replica => Some(format!(
            "its replication link is {}",
            report.replication.link.as_deref().unwrap_or("unknown")
        )),
        Role::Unknown => Some("its role is unknown".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::plan::PodFacts;
    use cnredis_instance_client::wire::InstanceReport;

    fn instance(name: &str, role: Role, offset: i64) -> Observed {
        let mut report: InstanceReport = crate::cluster::report_fixture::report(role);
        report.pod = name.to_string();
        report.replication.offset = offset;
        report.replication.link = (role == Role::Replica).then(|| "up".to_string());
        Observed {
            name: name.to_string(),
            serial: 0,
            pod: Some(PodFacts {
                ready: true,
                backup_credentials: true,
                ..PodFacts::default()
            }),
            pvc: true,
            report: Some(report),
            outdated: false,
        }
    }

    fn with(mut instance: Observed, change: impl FnOnce(&mut InstanceReport)) -> Observed {
        change(instance.report.as_mut().unwrap());
        instance
    }

    #[test]
    fn the_most_advanced_healthy_replica_is_preferred() {
        let instances = [
            instance("c-1", Role::Primary, 100),
            instance("c-2", Role::Replica, 90),
            instance("c-3", Role::Replica, 95),
        ];
        let choice = choose(&instances, Some("c-1"), BackupTarget::PreferReplica).unwrap();
        assert_eq!(
            (choice.pod.as_str(), choice.role, choice.offset),
            ("c-3", Role::Replica, 95)
        );
        let primary = choose(&instances, Some("c-1"), BackupTarget::Primary).unwrap();
        assert_eq!(primary.pod, "c-1");
    }

    #[test]
    fn unfit_replicas_leave_the_primary() {
        let instances = [
            instance("c-1", Role::Primary, 100),
            with(instance("c-2", Role::Replica, 99), |r| r.fenced = true),
            with(instance("c-3", Role::Replica, 98), |r| {
                r.replication.link = Some("down".to_string())
            }),
            with(instance("c-4", Role::Replica, 97), |r| {
                r.persistence.loading = true
            }),
            with(instance("c-5", Role::Replica, 96), |r| r.answered = false),
        ];
        let choice = choose(&instances, Some("c-1"), BackupTarget::PreferReplica).unwrap();
        assert_eq!(choice.pod, "c-1");
    }

    #[test]
    fn no_fit_instance_says_why_for_each() {
        let instances = [
            with(instance("c-1", Role::Primary, 100), |r| r.fenced = true),
            with(instance("c-2", Role::Replica, 90), |r| r.ready = false),
            Observed {
                pod: None,
                ..instance("c-3", Role::Replica, 0)
            },
        ];
        let why = choose(&instances, Some("c-1"), BackupTarget::PreferReplica).unwrap_err();
        assert_eq!(
            why,
            "no healthy replica or primary to back up: c-1: fenced; c-2: not ready; c-3: no pod"
        );
        // A replica never stands in for the primary.
        let only_replicas = [instance("c-2", Role::Replica, 90)];
        assert!(choose(&only_replicas, Some("c-1"), BackupTarget::Primary).is_err());
        // A pod that serves as primary without being the cluster's primary is not backed up.
        let stray = [instance("c-9", Role::Primary, 100)];
        assert!(choose(&stray, Some("c-1"), BackupTarget::PreferReplica).is_err());
    }

    #[test]
    fn a_pod_without_the_credentials_waits_for_the_rolling_update() {
        let mut old = instance("c-2", Role::Replica, 100);
        old.pod.as_mut().unwrap().backup_credentials = false;
        let choice = choose(
            &[old.clone(), instance("c-3", Role::Replica, 90)],
            Some("c-1"),
            BackupTarget::PreferReplica,
        );
        assert_eq!(choice.unwrap().pod, "c-3");
        let why = choose(&[old], Some("c-1"), BackupTarget::PreferReplica).unwrap_err();
        assert!(
            why.contains("c-2: its pod does not mount the object store credentials yet"),
            "{why}"
        );
    }
}
