//! Restarts: SIGKILL a node's process group, keep it down for the lease,
//! then start it again with the same command, data dir and ports, and wait
//! for its readiness probe (`[ready]` deadline). The kill is verified by
//! the exit status; the restart by the probe. A node that does not come
//! back is a finding about the system (its log tail is the evidence), not a
//! harness error: the campaign goes on.

use super::{EffectRecord, Effects};
use crate::lifecycle::Node;
use nix::sys::signal::Signal;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::Duration;

/// How long a SIGKILLed node has to exit before the kill counts as not
/// taken.
const EXIT_DEADLINE: Duration = Duration::from_secs(2);

impl Effects {
    /// Kill node `index` now and start it again `down_ms` later.
    pub async fn restart(self: &Arc<Self>, index: u32, down_ms: u32) -> Result<(), String> {
        let node = self.node(index)?.clone();
        if self.lease_open("restart", index) {
            return Err(format!(
                "node {index} is already being restarted{}; wait for its lease to end",
                self.holder("restart", index)
            ));
        }
        if let Some(status) = node.exit_status() {
            return Err(format!(
                "node {index} is not running ({}); nothing to restart",
                Node::describe_exit(status)
            ));
        }
        let during_burst = self.burst_running();
        let start_us = self.now_us();
        let old = node.pid();
        node.signal(Signal::SIGKILL)
            .map_err(|e| format!("SIGKILL to node {index}: {e}"))?;
        // Recorded before any await: if the plugin's call is cancelled from
        // here on, the lease still exists and the host still starts the node.
        let slot = self.push(EffectRecord {
            kind: "restart",
            node: index,
            detail: format!("SIGKILL, down {down_ms} ms, start again"),
            requested_ms: Some(down_ms as u64),
            start_us,
            end_us: None,
            undone_us: None,
            verified: false,
            simulated: false,
            evidence: format!("pid {old} sent SIGKILL"),
            finding: None,
            plugin: None,
            during_burst,
        });
        let killed = match tokio::time::timeout(EXIT_DEADLINE, node.kill_and_reap()).await {
            Ok(()) => node.exit_status(),
            Err(_) => None,
        };
        if killed.is_some() {
            self.power_cut(index).await;
        }
        let (verified, evidence) = match killed {
            Some(status) => (
                status.signal() == Some(Signal::SIGKILL as i32),
                format!(
                    "pid {old} {} {} µs after the signal",
                    Node::describe_exit(status),
                    self.now_us() - start_us
                ),
            ),
            None => (
                false,
                format!(
                    "pid {old} still running {} ms after SIGKILL",
                    EXIT_DEADLINE.as_millis()
                ),
            ),
        };
        // Verified only once the node is also back (see `start_again`).
        self.update(slot, |r| {
            r.evidence = evidence;
            r.verified = verified;
        });
        if verified {
            self.remember(slot, |u| u.restart = true);
        }
        self.schedule_end(slot, start_us, down_ms);
        Ok(())
    }

    /// End of a restart lease: start the node and wait for its probe.
    /// Returns the evidence and whether it came back; a node that did not
    /// come back is also noted as the record's finding.
    pub(super) async fn start_again(&self, slot: usize, index: u32) -> (String, bool) {
        let node = &self.nodes[index as usize];
        let t = self.now_us();
        let pid = match node.restart() {
            Ok(pid) => pid,
            Err(e) => {
                let why = format!("node {index} could not be started again: {e:#}");
                self.update(slot, |r| r.finding = Some(why.clone()));
                return (why, false);
            }
        };
        match node.wait_ready(&self.http).await {
            Ok(()) => (
                format!(
                    "pid {pid} started, ready {} ms later",
                    (self.now_us() - t) / 1000
                ),
                true,
            ),
            Err(e) => {
                // The readiness error carries the log tail.
                let why = format!("node {index} did not come back after its restart: {e:#}");
                self.update(slot, |r| r.finding = Some(why.clone()));
                (format!("pid {pid} started, never ready"), false)
            }
        }
    }
}
