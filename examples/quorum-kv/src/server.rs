//! HTTP endpoints.

use crate::Bug;
use crate::log::{Log, Record};
use crate::replication::Replicator;
use axum::extract::{Query, State as Extract};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Clone)]
pub struct State(Arc<Inner>);

pub struct Inner {
    pub node: u32,
    /// The address this node listens on, as `/whoami` tells it.
    pub listen: std::net::SocketAddr,
    pub log: Log,
    replicator: Replicator,
    pub bug: Option<Bug>,
    /// Serialises commits: one fdatasync at a time. A replicate request
    /// waiting here is dropped if its sender goes away, which is what makes
    /// an aborted fan-out lose the write (`--bug abort-fanout`).
    commit_gate: tokio::sync::Mutex<()>,
    /// `--bug stuck-after-quorum-loss`: set by the first write that missed
    /// its quorum.
    stuck: std::sync::atomic::AtomicBool,
    /// Register mode: held by a put or cas from compare to acknowledgement.
    pub register_gate: tokio::sync::Mutex<()>,
    /// Register records are numbered per node and process start.
    register_seq: std::sync::atomic::AtomicU64,
    boot: u128,
}

impl std::ops::Deref for State {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl State {
    pub fn new(
        node: u32,
        listen: std::net::SocketAddr,
        log: Log,
        replicator: Replicator,
        bug: Option<Bug>,
    ) -> Self {
        Self(Arc::new(Inner {
            node,
            listen,
            log,
            replicator,
            bug,
            commit_gate: tokio::sync::Mutex::new(()),
            stuck: std::sync::atomic::AtomicBool::new(false),
            register_gate: tokio::sync::Mutex::new(()),
            register_seq: std::sync::atomic::AtomicU64::new(0),
            boot: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        }))
    }

    /// A record id no other register record of any node has.
    pub fn next_register_id(&self) -> String {
        let n = self
            .register_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("kv-{}-{}-{n}", self.node, self.boot)
    }

    pub fn replicator(&self) -> &Replicator {
        &self.replicator
    }

    /// Durably append `record`. Once the gate is held the append completes
    /// even if the caller is cancelled.
    pub async fn commit(&self, record: Record) -> std::io::Result<bool> {
        let _gate = self.commit_gate.lock().await;
        let state = self.clone();
        let stored = tokio::task::spawn_blocking(move || state.log.append(record))
            .await
            .map_err(std::io::Error::other)?;
        if self.bug == Some(Bug::CrashMidBurst) && self.log.len() >= 20 {
            eprintln!(
                "quorum-kv node {}: --bug crash-mid-burst: aborting",
                self.node
            );
            std::process::abort();
        }
        stored
    }
}

pub fn router(state: State) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/write", post(write))
        .route("/replicate", post(replicate))
        .route("/ids", get(ids))
        .route("/log", get(log))
        .route("/time", get(time))
        .route("/whoami", get(whoami))
        .route(
            "/kv/{key}",
            get(crate::register::get).put(crate::register::put),
        )
        .route("/kv/{key}/cas", post(crate::register::cas))
        .with_state(state)
}

async fn health(Extract(s): Extract<State>) -> Json<Value> {
    Json(json!({ "status": "ok", "node": s.node, "records": s.log.len() }))
}

async fn write(
    Extract(s): Extract<State>,
    Json(record): Json<Record>,
) -> (StatusCode, Json<Value>) {
    if record.id.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "id must not be empty" })),
        );
    }
    let stuck = s.bug == Some(Bug::StuckAfterQuorumLoss);
    if stuck && s.stuck.load(std::sync::atomic::Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "quorum not met", "id": record.id, "acks": 0 })),
        );
    }
    if let Err(e) = s.commit(record.clone()).await {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": format!("local append failed: {e}") })),
        );
    }
    let acks = s.replicator.fan_out(&record).await;
    if acks >= s.replicator.quorum() {
        (
            StatusCode::CREATED,
            Json(json!({ "id": record.id, "acks": acks })),
        )
    } else {
        if stuck {
            s.stuck.store(true, std::sync::atomic::Ordering::Release);
        }
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "quorum not met", "id": record.id, "acks": acks })),
        )
    }
}

async fn replicate(
    Extract(s): Extract<State>,
    Json(record): Json<Record>,
) -> (StatusCode, Json<Value>) {
    if s.bug == Some(Bug::LoseOne) && record.id.ends_with("-w42") {
        // The defect: an acknowledgement for a write never stored.
        return (StatusCode::OK, Json(json!({ "ok": true })));
    }
    match s.commit(record).await {
        Ok(_) => (StatusCode::OK, Json(json!({ "ok": true }))),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": e.to_string() })),
        ),
    }
}

#[derive(Deserialize)]
struct IdsQuery {
    ns: String,
}

async fn ids(Extract(s): Extract<State>, Query(q): Query<IdsQuery>) -> Json<Value> {
    if s.bug == Some(Bug::HangReads) {
        std::future::pending::<()>().await;
    }
    let ids = if s.bug == Some(Bug::StaleReads) && s.node == crate::STALE_NODE {
        s.log.ids_in_lagging(&q.ns, crate::STALE_LAG)
    } else {
        s.log.ids_in(&q.ns)
    };
    Json(json!({ "node": s.node, "ns": q.ns, "ids": ids }))
}

#[derive(Deserialize)]
struct LogQuery {
    #[serde(default)]
    after: u64,
}

/// Catch-up page size: bounded so one request stays small.
const LOG_PAGE: usize = 1000;

async fn log(Extract(s): Extract<State>, Query(q): Query<LogQuery>) -> Json<Value> {
    Json(json!(s.log.after(q.after, LOG_PAGE)))
}

/// The node's wall clock, so a clock-skew fault can be verified end to end.
async fn time() -> Json<Value> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Json(json!({ "unix_ms": now }))
}

/// Who this node is and where it really listens (what a gossip protocol
/// would spread).
async fn whoami(Extract(s): Extract<State>) -> Json<Value> {
    Json(json!({ "node": s.node, "listen": s.listen.to_string() }))
}
