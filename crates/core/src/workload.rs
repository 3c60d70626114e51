//! The workload: a burst of concurrent writes through the primary, each with
//! a unique id and a classified outcome, then a per-node read-back of which
//! ids each node holds.

use crate::client::{Client, ReadError};
use chaos_model::campaign::Campaign;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub use chaos_model::history::Outcome;

#[derive(Clone, Debug, Serialize)]
pub struct WriteResult {
    pub id: String,
    pub outcome: Outcome,
    /// The HTTP status, when the system answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Offsets from the burst start, microseconds.
    pub start_us: u64,
    pub latency_us: u64,
}

pub use chaos_model::burst::Progress;

pub struct Burst {
    pub results: Vec<WriteResult>,
    pub elapsed: Duration,
    /// The first body of each unexpected status, clipped, for the reasons.
    pub unexpected_bodies: Vec<(u16, String)>,
}

/// Where and what a burst writes.
pub struct Target {
    /// The node writes go through, and its port.
    pub index: u32,
    pub port: std::net::SocketAddr,
    /// One unique id per write, in issue order.
    pub ids: Arc<Vec<String>>,
    /// Where each write is recorded as an operation (process = worker).
    pub history: Option<Arc<chaos_model::history::Recorder>>,
}

/// Run the burst: one write per id through `target.port`, `concurrency` at
/// a time. `progress` is updated as each write is issued, so faults can time
/// themselves against it.
pub async fn burst(
    campaign: &Campaign,
    client: &Client,
    target: Target,
    progress: watch::Sender<Progress>,
    started: Instant,
) -> Burst {
    let Target {
        index,
        port,
        ids,
        history,
    } = target;
    let next = Arc::new(AtomicU32::new(0));
    let progress = Arc::new(progress);
    let concurrency = campaign.file.burst.concurrency.min(ids.len().max(1) as u32);
    let bodies: Arc<std::sync::Mutex<Vec<(u16, String)>>> = Arc::default();
    let mut workers = tokio::task::JoinSet::new();
    for process in 0..concurrency {
        let (client, next, ids, progress) =
            (client.clone(), next.clone(), ids.clone(), progress.clone());
        let history = history.clone();
        let bodies = bodies.clone();
        workers.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(id) = ids.get(i) else { break };
                let t0 = Instant::now();
                progress.send_modify(|p| p.issued += 1);
                let answer = client.add(process, index, port, id).await;
                if let Some(body) = answer.body {
                    let mut b = bodies.lock().unwrap_or_else(|e| e.into_inner());
                    let status = answer.status.unwrap_or(0);
                    if !b.iter().any(|(s, _)| *s == status) {
                        b.push((status, body));
                    }
                }
                let result = WriteResult {
                    id: id.clone(),
                    outcome: answer.outcome,
                    status: answer.status,
                    start_us: t0.duration_since(started).as_micros() as u64,
                    latency_us: t0.elapsed().as_micros() as u64,
                };
                if let Some(h) = &history {
                    h.push(chaos_model::history::write_op(
                        process,
                        index,
                        id,
                        result.outcome,
                        result.status,
                        result.start_us,
                        result.latency_us,
                    ));
                }
                out.push(result);
            }
            out
        });
    }
    let mut results = Vec::with_capacity(ids.len());
    while let Some(r) = workers.join_next().await {
        results.extend(r.expect("burst worker panicked"));
    }
    progress.send_modify(|p| p.done = true);
    results.sort_by_key(|r| r.start_us);
    let mut unexpected_bodies =
        std::mem::take(&mut *bodies.lock().unwrap_or_else(|e| e.into_inner()));
    unexpected_bodies.sort();
    Burst {
        results,
        elapsed: started.elapsed(),
        unexpected_bodies,
    }
}

/// [`Client::read`], recorded in `history` as a `read` by `process`: `ok` with
/// the ids seen, or `fail` with why (a read changes nothing, so an
/// unanswered one is a failure, not an unknown).
pub async fn read_recorded(
    client: &Client,
    index: u32,
    at: std::net::SocketAddr,
    (history, process): (&chaos_model::history::Recorder, u32),
) -> Result<Vec<String>, ReadError> {
    use chaos_model::history::{Kind, Op, Status};
    let invoked = Instant::now();
    let read = client.read(process, index, at).await;
    let mut op = Op::new(process, index, Kind::Read, history.us(invoked));
    op.complete_us = Some(history.us(Instant::now()));
    match &read {
        Ok(ids) => {
            op.status = Status::Ok;
            op.seen = ids.clone();
        }
        Err(e) => {
            op.status = Status::Fail;
            op.error = Some(e.to_string());
        }
    }
    history.push(op);
    read
}

/// Ids a node returned that this cycle never wrote: any is an isolation
/// failure (a namespace reused across cycles once made counts cumulative).
pub fn foreign<'a>(held: &'a [String], issued: &HashSet<&str>) -> Vec<&'a str> {
    held.iter()
        .map(String::as_str)
        .filter(|id| !issued.contains(id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_ids_are_found() {
        let held = vec!["a".to_string(), "old".to_string()];
        let issued: HashSet<&str> = ["a", "b"].into();
        assert_eq!(foreign(&held, &issued), ["old"]);
    }
}
