//! Pauses: SIGSTOP for a lease, SIGCONT when it ends. Verified by the
//! process state `T` in /proc while the lease holds.

use super::{EffectRecord, Effects};
use crate::kind::Kind;
use crate::lease::Lease;
use nix::sys::signal::Signal;
use std::sync::Arc;
use std::time::Duration;

/// How long the host waits to see the stopped state.
const STATE_DEADLINE: Duration = Duration::from_millis(200);

impl Effects {
    pub async fn pause(self: &Arc<Self>, index: u32, ms: u32) -> Result<(), String> {
        chaos_model::bounds::lease("pause", ms)?;
        let node = self.node(index)?.clone();
        if !node.alive() {
            return Err(format!("node {index} is not running; nothing to pause"));
        }
        // One pause per node at a time: the first lease's SIGCONT would end
        // the second early.
        if self.lease_open(Kind::Pause, index) {
            return Err(format!(
                "node {index} is already paused{}; one pause per node at a time: wait for its lease to end",
                self.holder(Kind::Pause, index)
            ));
        }
        let during_burst = self.burst_running();
        // Journaled before the stop, so a SIGKILLed chaos-host's next run (or
        // `chaos-host cleanup`) continues the process.
        let seq = self
            .journal
            .record(node.stopped_entry())
            .map_err(|e| format!("{e:#}"))?;
        let start_us = self.now_us();
        if let Err(e) = node.signal(Signal::SIGSTOP) {
            self.journal.done(seq);
            return Err(format!("SIGSTOP to node {index}: {e}"));
        }
        // Recorded before any await: if the plugin's call is cancelled from
        // here on, the lease still exists and the host still ends it.
        let slot = self.open(
            EffectRecord::lease(
                Kind::Pause,
                index,
                format!("SIGSTOP for {ms} ms"),
                Some(ms as u64),
                start_us,
                during_burst,
                format!("pid {} sent SIGSTOP", node.pid()),
            ),
            Lease::Pause { journal: seq },
        );
        let mut state = node.state();
        let until = tokio::time::Instant::now() + STATE_DEADLINE;
        while state != Some('T') && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(1)).await;
            state = node.state();
        }
        let evidence = format!(
            "pid {} state {} after SIGSTOP",
            node.pid(),
            state.map_or("gone".to_string(), |c| c.to_string())
        );
        self.update(slot, |r| {
            r.verified = state == Some('T');
            r.evidence = evidence;
        });
        self.schedule_end(slot, start_us, ms);
        Ok(())
    }
}
