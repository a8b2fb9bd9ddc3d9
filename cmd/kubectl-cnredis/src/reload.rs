//! `reload CLUSTER`: re-read the configuration and the secrets without a restart. The cluster is
//! annotated `cnredis.io/reloadedAt`; the operator copies the annotation to every pod (the kubelet then
//! rewrites their secret volumes at once, the password and the reload's time in one atomic update) and
//! refreshes `<cluster>-app`; each instance manager applies what the files hold and reports the reload's
//! time. Parameters the server takes only at a restart are listed, with the command that applies them.

use std::collections::BTreeMap;
use std::time::Duration;

use cnredis_api::names::ANNOTATION_RELOADED_AT;
use cnredis_wire::InstanceReport;

use crate::connect::Kube;
use crate::follow::{self, Look, Outcome};
use crate::observe;

pub async fn run(kube: &Kube, name: &str, wait: Option<Duration>) -> anyhow::Result<()> {
    let cluster = observe::cluster(kube, name).await?;
    let at = follow::stamp(kube, name, ANNOTATION_RELOADED_AT).await?;
    println!("reload of {name} requested ({ANNOTATION_RELOADED_AT}={at})");
    let Some(timeout) = wait else { return Ok(()) };
    let pending_restart = std::cell::RefCell::new(BTreeMap::new());
    let look = || async {
        let mut pods = observe::pods(kube, &cluster).await?;
        pods.retain(|p| p.metadata.deletion_timestamp.is_none());
        let reports = observe::reports(kube, &pods).await?;
        let progress = Progress::of(&reports, &at);
        *pending_restart.borrow_mut() = progress.pending_restart.clone();
        Ok(Look {
            done: progress.done(),
            line: progress.line(),
        })
    };
    match follow::follow(timeout, Duration::from_millis(500), look).await? {
        Outcome::Done(seconds) => println!("{name} reloaded in {seconds:.1}s"),
        Outcome::TimedOut(last) => anyhow::bail!(
            "the reload of {name} has not completed after {}s ({last}); see `kubectl cnredis status {name}`",
            timeout.as_secs()
        ),
    }
    for (pod, parameters) in pending_restart.borrow().iter() {
        println!(
            "{pod} needs a restart to apply {}: the operator restarts it (a rolling update)",
            parameters.join(", ")
        );
    }
    Ok(())
}

/// Where the instances are with a reload.
#[derive(Debug, PartialEq)]
struct Progress {
    reloaded: Vec<String>,
    /// Instances that have not applied it yet, with what they report instead.
    waiting: Vec<(String, String)>,
    pending_restart: BTreeMap<String, Vec<String>>,
}

impl Progress {
    fn of(reports: &BTreeMap<String, Result<InstanceReport, String>>, at: &str) -> Self {
        let mut progress = Progress {
            reloaded: Vec::new(),
            waiting: Vec::new(),
            pending_restart: BTreeMap::new(),
        };
        for (pod, report) in reports {
            match report {
                Ok(report) if report.reloaded_at.as_deref() == Some(at) => {
                    progress.reloaded.push(pod.clone());
                    if !report.pending_restart.is_empty() {
                        progress
                            .pending_restart
                            .insert(pod.clone(), report.pending_restart.clone());
                    }
                }
                Ok(report) => {
                    let why = match (&report.last_error, &report.reloaded_at) {
                        (Some(error), _) => format!("last error: {error}"),
                        (None, Some(previous)) => format!("still at {previous}"),
                        (None, None) => "not reloaded yet".to_string(),
                    };
                    progress.waiting.push((pod.clone(), why));
                }
                Err(error) => progress
                    .waiting
                    .push((pod.clone(), format!("does not answer: {error}"))),
            }
        }
        progress
    }

    fn done(&self) -> bool {
        self.waiting.is_empty() && !self.reloaded.is_empty()
    }

    fn line(&self) -> String {
        let total = self.reloaded.len() + self.waiting.len();
        let mut line = format!("{}/{total} instances applied the reload", self.reloaded.len());
        for (pod, why) in &self.waiting {
            line.push_str(&format!("; {pod} {why}"));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(reloaded_at: Option<&str>, pending: &[&str]) -> Result<InstanceReport, String> {
        let mut report: InstanceReport =
            serde_json::from_str(include_str!("../tests/instance-report.json")).unwrap();
        report.reloaded_at = reloaded_at.map(str::to_string);
        report.pending_restart = pending.iter().map(|s| s.to_string()).collect();
        Ok(report)
    }

    #[test]
    fn a_reload_is_done_when_every_instance_reports_its_time() {
        let at = "2026-12-02T17:00:00Z";
        let reports = BTreeMap::from([
            ("s-1".to_string(), report(Some(at), &[])),
            ("s-2".to_string(), report(Some(at), &["databases"])),
        ]);
        let progress = Progress::of(&reports, at);
        assert!(progress.done());
        assert_eq!(progress.line(), "2/2 instances applied the reload");
        assert_eq!(
            progress.pending_restart,
            BTreeMap::from([("s-2".to_string(), vec!["databases".to_string()])])
        );
    }

    #[test]
    fn an_instance_at_an_older_reload_or_silent_keeps_it_waiting_and_says_why() {
        let at = "2026-12-02T17:00:00Z";
        let reports = BTreeMap::from([
            ("s-1".to_string(), report(Some(at), &[])),
            ("s-2".to_string(), report(Some("2026-12-01T08:00:00Z"), &[])),
            ("s-3".to_string(), Err("timed out".to_string())),
        ]);
        let progress = Progress::of(&reports, at);
        assert!(!progress.done());
        assert_eq!(
            progress.line(),
            "1/3 instances applied the reload; s-2 still at 2026-12-01T08:00:00Z; s-3 does not answer: timed out"
        );
        assert!(!Progress::of(&BTreeMap::new(), at).done());
    }
}
