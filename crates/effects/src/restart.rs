//! Restarts: SIGKILL a node's process group, keep it down for the lease,
//! then start it again with the same command, data dir and ports, and wait
//! for its readiness probe (`[ready]` deadline). The kill is verified by
//! the exit status; the restart by the probe. A node that does not come
//! back is a finding about the system (its log tail is the evidence), not a
//! harness error: the campaign goes on.

use super::{EffectRecord, Effects};
use crate::kind::Kind;
use crate::lease::Lease;
use chaos_lifecycle::Node;
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
        chaos_model::bounds::down(down_ms)?;
        let node = self.node(index)?.clone();
        if self.lease_open(Kind::Restart, index) {
            return Err(format!(
                "node {index} is already being restarted{}; wait for its lease to end",
                self.holder(Kind::Restart, index)
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
        let record = |evidence: String| {
            EffectRecord::lease(
                Kind::Restart,
                index,
                format!("SIGKILL, down {down_ms} ms, start again"),
                Some(down_ms as u64),
                start_us,
                during_burst,
                evidence,
            )
        };
        if node.remote_host().is_some() {
            // The kill of a remote node is an SSH session (hundreds of ms
            // under load): sent and confirmed in the background, so a
            // plugin restarting every node (a power failure) has them all
            // killed at about the same time, not one session apart. The
            // lease end waits for the confirmation before starting it.
            let slot = self.open(
                record(format!("pid {old} SIGKILL sent over SSH")),
                Lease::Restart {
                    killed: false,
                    kill: None,
                },
            );
            let (me, n) = (self.clone(), node.clone());
            let helper = match self.disks.get(index as usize).map(|d| &**d) {
                Some(chaos_mechanisms::disk::NodeDisk::Remote(_)) => {
                    self.disks.get(index as usize).cloned()
                }
                _ => None,
            };
            let kill = tokio::spawn(async move {
                let to = n.clone();
                let sent = tokio::task::spawn_blocking(move || match helper.as_deref() {
                    // The disk helper's session is open: the kill lands
                    // in one round trip, not a new session.
                    Some(chaos_mechanisms::disk::NodeDisk::Remote(d)) => {
                        d.kill(to.pid().as_raw()).or_else(|e| {
                            tracing::warn!("node {index}: {e}; sending SIGKILL over SSH");
                            to.signal(Signal::SIGKILL)
                        })
                    }
                    _ => to.signal(Signal::SIGKILL),
                })
                .await
                .unwrap_or(Err(nix::errno::Errno::EINTR));
                me.confirm_kill(slot, index, &n, sent, start_us).await
            });
            let kill: super::KillUnderWay =
                futures::FutureExt::shared(futures::FutureExt::boxed(async move {
                    kill.await.unwrap_or(false)
                }));
            self.kills
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(index, kill.clone());
            self.remember(slot, |lease| {
                if let Lease::Restart { kill: k, .. } = lease {
                    *k = Some(kill);
                }
            });
            self.schedule_end(slot, start_us, down_ms);
            return Ok(());
        }
        let sent = node.signal(Signal::SIGKILL);
        sent.map_err(|e| format!("SIGKILL to node {index}: {e}"))?;
        // Recorded before any await: if the plugin's call is cancelled from
        // here on, the lease still exists and the host still starts the node.
        let slot = self.open(
            record(format!("pid {old} sent SIGKILL")),
            Lease::Restart {
                killed: false,
                kill: None,
            },
        );
        if self.confirm_kill(slot, index, &node, sent, start_us).await {
            self.remember(slot, |lease| {
                if let Lease::Restart { killed, .. } = lease {
                    *killed = true;
                }
            });
        }
        self.schedule_end(slot, start_us, down_ms);
        Ok(())
    }

    /// Reap node `index` after its SIGKILL (`sent`: how sending it went),
    /// drop its unsynced data (a power cut) and record how the kill went.
    /// Whether it took hold (the node is then started again).
    async fn confirm_kill(
        &self,
        slot: usize,
        index: u32,
        node: &Arc<Node>,
        sent: nix::Result<()>,
        start_us: u64,
    ) -> bool {
        let old = node.pid();
        let failed_send = sent.err();
        let killed = match tokio::time::timeout(EXIT_DEADLINE, node.reap_killed(sent)).await {
            Ok(()) => node.exit_status(),
            Err(_) => None,
        };
        if killed.is_some() {
            self.power_cut(index).await;
        }
        let (verified, evidence) = match (killed, failed_send) {
            (Some(status), _) => (
                status.signal() == Some(Signal::SIGKILL as i32),
                format!(
                    "pid {old} {} {} µs after the signal",
                    Node::describe_exit(status),
                    self.now_us() - start_us
                ),
            ),
            (None, Some(e)) => (false, format!("SIGKILL to pid {old} failed: {e}")),
            (None, None) => (
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
        verified
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
