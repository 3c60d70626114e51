//! What the bypass scans of one partition lease saw (proxy mode), kept
//! with the lease and read at its end; the scanning is the partition's
//! (`partition.rs`).

use chaos_mechanisms::net::bypass::Bypass;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The scans of one partition lease for direct connections between nodes
/// (proxy mode), from its probe to its heal.
pub(crate) struct BypassWatch {
    pub stop: Arc<AtomicBool>,
    pub thread: Option<std::thread::JoinHandle<Watched>>,
}

#[derive(Default)]
pub(crate) struct Watched {
    /// Polls of the nodes' sockets, new sockets asked their ends, and TCP
    /// table reads (where a socket could not be asked).
    pub polls: u64,
    pub asked: u64,
    pub reads: u64,
    /// Time spent polling and reading.
    pub busy_us: u64,
    pub max_us: u64,
    /// Each connection once (dialling node, its end, node dialled), with
    /// the lease time it was first seen at.
    pub found: Vec<(Bypass, u64)>,
}

impl BypassWatch {
    /// Stop scanning: what the scans saw (evidence) and whether they found
    /// no bypass.
    /// Joined: its thread holds clones of the nodes, dropped before this
    /// returns.
    pub(crate) fn stop(mut self) -> (String, bool) {
        self.stop.store(true, Ordering::Relaxed);
        let Some(Ok(w)) = self.thread.take().map(|t| t.join()) else {
            // A watch that died proves nothing about the lease.
            return (
                "bypass watch failed mid-lease (its thread panicked): direct connections were not watched".into(),
                false,
            );
        };
        let mut text = format!(
            "bypass watched all lease: {} poll(s) of the nodes' sockets, {} new socket(s) asked their ends, {} TCP table read(s), {} µs in all (max {} µs)",
            w.polls, w.asked, w.reads, w.busy_us, w.max_us
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
            if *at == 0 {
                text.push_str(&format!("; at the cut, {b}"));
            } else {
                text.push_str(&format!("; during the lease, at +{at} ms, {b}"));
            }
            if more > 0 {
                text.push_str(&format!(" (and {more} more such connection(s))"));
            }
        }
        (text, w.found.is_empty())
    }
}
