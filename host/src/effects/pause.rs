//! Pauses: SIGSTOP for a lease, SIGCONT when it ends. Verified by the
//! process state `T` in /proc while the lease holds.

use super::{EffectRecord, Effects, proc_state};
use crate::lifecycle::Node;
use nix::sys::signal::Signal;
use std::sync::Arc;
use std::time::Duration;

/// How long the host waits to see the stopped state.
const STATE_DEADLINE: Duration = Duration::from_millis(200);

impl Effects {
    pub async fn pause(self: &Arc<Self>, index: u32, ms: u32) -> Result<(), String> {
        let node = self.node(index)?.clone();
        if !node.alive() {
            return Err(format!("node {index} is not running; nothing to pause"));
        }
        let during_burst = self.burst_running();
        let start_us = self.now_us();
        node.signal(Signal::SIGSTOP)
            .map_err(|e| format!("SIGSTOP to node {index}: {e}"))?;
        let mut state = proc_state(node.pid);
        let until = tokio::time::Instant::now() + STATE_DEADLINE;
        while state != Some('T') && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(1)).await;
            state = proc_state(node.pid);
        }
        let verified = state == Some('T');
        let evidence = format!(
            "pid {} state {} after SIGSTOP",
            node.pid,
            state.map_or("gone".to_string(), |c| c.to_string())
        );
        let slot = self.push(EffectRecord {
            kind: "pause",
            node: index,
            detail: format!("SIGSTOP for {ms} ms"),
            requested_ms: Some(ms as u64),
            start_us,
            end_us: None,
            verified,
            evidence,
            during_burst,
        });
        let me = Arc::downgrade(self);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms as u64)
            - Duration::from_micros(self.now_us().saturating_sub(start_us));
        let timer = tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            if let Some(effects) = me.upgrade() {
                effects.end_lease(slot);
            }
        });
        self.timers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(timer);
        Ok(())
    }
}

/// SIGCONT the node and report its state afterwards.
pub(super) fn resume(node: &Node) -> String {
    match node.signal(Signal::SIGCONT) {
        Ok(()) => format!(
            "SIGCONT; state {} after",
            proc_state(node.pid).map_or("gone".to_string(), |c| c.to_string())
        ),
        Err(e) => format!("SIGCONT failed: {e}"),
    }
}
