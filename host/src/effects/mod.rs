//! Effects are leases the host owns.
//!
//! A plugin asks for an effect on a node index; the host applies it, verifies
//! it took hold, records its exact start and end on the monotonic clock, and
//! undoes it when the lease ends or the cycle ends, whichever comes first.
//! Rollback never depends on plugin code. Plugins name nodes of the current
//! campaign only, never pids.

mod pause;
mod signal;

use crate::lifecycle::Node;
use crate::workload::Progress;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;

/// One effect as it happened, for the cycle record.
#[derive(Clone, Debug, Serialize)]
pub struct EffectRecord {
    pub kind: &'static str,
    pub node: u32,
    /// e.g. "SIGKILL", "SIGSTOP for 500 ms".
    pub detail: String,
    /// Requested lease length, for effects that have one.
    pub requested_ms: Option<u64>,
    /// Offsets from the burst start on the host's monotonic clock, µs.
    pub start_us: u64,
    pub end_us: Option<u64>,
    /// The host saw the effect take hold.
    pub verified: bool,
    /// What the host saw (process state, exit status).
    pub evidence: String,
    /// Applied while writes were still being issued.
    pub during_burst: bool,
}

/// The effects of one cycle.
pub struct Effects {
    nodes: Vec<Arc<Node>>,
    started: Instant,
    progress: watch::Receiver<Progress>,
    records: Mutex<Vec<EffectRecord>>,
    timers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Effects {
    pub fn new(
        nodes: Vec<Arc<Node>>,
        started: Instant,
        progress: watch::Receiver<Progress>,
    ) -> Arc<Self> {
        Arc::new(Self {
            nodes,
            started,
            progress,
            records: Mutex::new(Vec::new()),
            timers: Mutex::new(Vec::new()),
        })
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    fn burst_running(&self) -> bool {
        !self.progress.borrow().done
    }

    /// The node a plugin named, or the reason it may not name it.
    fn node(&self, index: u32) -> Result<&Arc<Node>, String> {
        self.nodes.get(index as usize).ok_or_else(|| {
            format!(
                "node {index} does not exist: this campaign has nodes 0..{}",
                self.nodes.len().saturating_sub(1)
            )
        })
    }

    fn push(&self, record: EffectRecord) -> usize {
        let mut r = self.records.lock().unwrap_or_else(|e| e.into_inner());
        r.push(record);
        r.len() - 1
    }

    fn update(&self, index: usize, f: impl FnOnce(&mut EffectRecord)) {
        if let Some(r) = self
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(index)
        {
            f(r)
        }
    }

    /// Undo every effect still in force. Called when the fault plugin is done,
    /// fails or times out, and again before teardown.
    pub fn revert_all(&self) {
        for t in self
            .timers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
        let open: Vec<usize> = self
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .enumerate()
            .filter(|(_, r)| r.end_us.is_none() && r.requested_ms.is_some())
            .map(|(i, _)| i)
            .collect();
        for i in open {
            self.end_lease(i);
        }
    }

    /// End lease `index` now (idempotent).
    fn end_lease(&self, index: usize) {
        let Some(rec) = self.records().get(index).cloned() else {
            return;
        };
        if rec.end_us.is_some() {
            return;
        }
        if rec.kind == "pause" {
            let evidence = pause::resume(&self.nodes[rec.node as usize]);
            let end = self.now_us();
            self.update(index, |r| {
                r.end_us = Some(end);
                r.evidence.push_str("; ");
                r.evidence.push_str(&evidence);
            });
        }
    }

    pub fn records(&self) -> Vec<EffectRecord> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Partitions need the network mechanisms of a later release; refused
    /// rather than faked.
    pub fn partition(&self, grudge: &[Vec<u32>]) -> Result<(), String> {
        for (i, row) in grudge.iter().enumerate() {
            self.node(i as u32)?;
            for &j in row {
                self.node(j)?;
            }
        }
        Err("partition: this chaos-host has no network mechanism (netns or proxy) yet; the fault cannot be applied".into())
    }

    /// Clock skew needs libfaketime plumbing of a later release; refused
    /// rather than simulated silently.
    pub fn clock_offset(&self, node: u32) -> Result<(), String> {
        self.node(node)?;
        Err(
            "clock-offset: this chaos-host has no clock mechanism yet; the fault cannot be applied"
                .into(),
        )
    }
}

impl Drop for Effects {
    fn drop(&mut self) {
        self.revert_all();
    }
}

/// The scheduler state letter of `pid` from /proc (R, S, T, Z, ...).
pub fn proc_state(pid: nix::unistd::Pid) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parens: the state follows the
    // last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}
