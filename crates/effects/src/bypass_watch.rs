//! What the bypass scans of one partition lease saw (proxy mode), kept
//! with the lease and read at its end; the scanning is the partition's
//! (`partition.rs`).

use chaos_mechanisms::net::bypass::Bypass;
use std::sync::{Arc, Mutex};

/// The scans of one partition lease for direct connections between nodes
/// (proxy mode), from its probe to its heal.
pub(crate) struct BypassWatch {
    pub task: tokio::task::AbortHandle,
    pub seen: Arc<Mutex<Watched>>,
}

#[derive(Default)]
pub(crate) struct Watched {
    pub scans: u32,
    pub total_us: u64,
    pub max_us: u64,
    /// Each connection once (dialling node, its end, node dialled), with
    /// the lease time it was first seen at.
    pub found: Vec<(Bypass, u64)>,
}

impl BypassWatch {
    /// Stop scanning: what the scans saw (evidence) and whether they found
    /// no bypass.
    pub(crate) fn stop(self) -> (String, bool) {
        self.task.abort();
        let w = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = format!(
            "bypass rescanned {} time(s) during the lease (mean {} µs, max {} µs per scan)",
            w.scans,
            w.total_us / u64::from(w.scans.max(1)),
            w.max_us
        );
        // The first connection of each (from, to) pair in full.
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        for (b, at) in &w.found {
            if pairs.contains(&(b.from, b.to)) {
                continue;
            }
            pairs.push((b.from, b.to));
            let more = w
                .found
                .iter()
                .filter(|(o, _)| (o.from, o.to) == (b.from, b.to))
                .count()
                - 1;
            text.push_str(&format!("; during the lease, at +{at} ms, {b}"));
            if more > 0 {
                text.push_str(&format!(" (and {more} more such connection(s))"));
            }
        }
        (text, w.found.is_empty())
    }
}
