//! Terminating signals. A kill is verified by reaping the node and reading
//! its exit status; nothing to undo afterwards (the node stays down until
//! teardown).

use super::{EffectRecord, Effects};
use crate::kind::Kind;
use chaos_lifecycle::Node;
use nix::sys::signal::Signal;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

/// How long a signalled node has to exit before the effect counts as not
/// taken.
const EXIT_DEADLINE: Duration = Duration::from_secs(2);

impl Effects {
    pub async fn signal(&self, index: u32, sig: Signal) -> Result<(), String> {
        let node = self.node(index)?.clone();
        if let Some(status) = node.exit_status() {
            return Err(format!(
                "node {index} is not running ({}); nothing to signal",
                Node::describe_exit(status)
            ));
        }
        let during_burst = self.burst_running();
        let start_us = self.now_us();
        node.signal(sig)
            .map_err(|e| format!("{} to node {index}: {e}", sig.as_str()))?;
        let (verified, evidence) = match tokio::time::timeout(EXIT_DEADLINE, node.reap()).await {
            Ok(Ok(status)) => (
                status.signal() == Some(sig as i32),
                format!(
                    "pid {} {} {} µs after the signal",
                    node.pid(),
                    Node::describe_exit(status),
                    self.now_us() - start_us
                ),
            ),
            Ok(Err(e)) => (false, format!("reaping pid {}: {e}", node.pid())),
            Err(_) => (
                false,
                format!(
                    "pid {} still running {} ms after {}",
                    node.pid(),
                    EXIT_DEADLINE.as_millis(),
                    sig.as_str()
                ),
            ),
        };
        if verified && sig == Signal::SIGKILL {
            self.power_cut(index).await;
        }
        let end_us = self.now_us();
        self.push(EffectRecord {
            end_us: Some(end_us),
            verified,
            ..EffectRecord::lease(
                Kind::Signal,
                index,
                sig.as_str().to_string(),
                None,
                start_us,
                during_burst,
                evidence,
            )
        });
        Ok(())
    }
}
