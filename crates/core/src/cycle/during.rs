//! Reads during the cycle (`[read] during_ms`): while the burst, the fault
//! and the recovery run, each client has a reader that reads the cycle's
//! ids from the nodes in turn (round-robin over every live node, not only
//! the primary) every `during_ms`, each read recorded in the history with
//! the ids it saw. A read-back after settle only sees where the system
//! ended; these see what clients were served on the way (stale reads,
//! writes that vanish for a while).

use crate::workload;
use chaos_lifecycle::Node;
use chaos_model::history::{Processes, Recorder};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Read every `every` until `stop` turns true. Reader `r` starts at node
/// `r` so that concurrent readers spread over the nodes from the first
/// tick.
pub async fn read_while(
    client: &crate::client::Client,
    nodes: &[Arc<Node>],
    (history, processes): (&Recorder, Processes),
    every: Duration,
    stop: watch::Receiver<bool>,
) {
    let readers = (0..processes.readers).map(|r| {
        let mut stop = stop.clone();
        async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut turn = r as usize;
            loop {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    _ = tick.tick() => {}
                }
                // The next live node in turn; a dead one is skipped (its
                // death is judged on its own).
                let Some(node) = (0..nodes.len())
                    .map(|k| &nodes[(turn + k) % nodes.len()])
                    .find(|n| n.alive())
                else {
                    continue;
                };
                turn = node.index as usize + 1;
                let read = workload::read_recorded(
                    client,
                    node.index,
                    node.client,
                    (history, processes.reader(r)),
                );
                // A read in flight when the cycle moves on is dropped
                // unrecorded rather than holding the cycle up.
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    _ = read => {}
                }
            }
        }
    });
    futures::future::join_all(readers).await;
}
