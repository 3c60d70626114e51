//! Register mode: `GET /kv/{key}`, `PUT /kv/{key}` (`{"value": V}`) and
//! `POST /kv/{key}/cas` (`{"expected": E, "new": N}`; 409 when the key
//! does not hold E). A put or cas is a record of the log like a write:
//! appended, fanned out, acknowledged once W nodes hold it (503 when not:
//! it may still land), and applied to a node's registers as it stores it.
//!
//! Correct: every put and cas on a node runs under one lock from its
//! compare to its acknowledgement, so operations sent to one node are
//! linearizable. `--bug lost-update`: a cas reads the value when its
//! request arrives, before it waits for the lock, and compares against that
//! (a read-modify-write on a stale read), so two concurrent cas with the
//! same expected value both succeed and one update is lost.

use crate::Bug;
use crate::log::{REGISTER_NS, Record};
use crate::server::State;
use axum::Json;
use axum::extract::{Path, State as Extract};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

pub async fn get(Extract(s): Extract<State>, Path(key): Path<String>) -> (StatusCode, Json<Value>) {
    let value = if s.bug == Some(Bug::StaleReads) && s.node == crate::STALE_NODE {
        s.log.register_lagging(&key, crate::STALE_LAG)
    } else {
        s.log.register(&key)
    };
    match value {
        Some(v) => (StatusCode::OK, Json(json!({ "key": key, "value": v }))),
        None => (StatusCode::NOT_FOUND, Json(json!({ "key": key }))),
    }
}

#[derive(Deserialize)]
pub struct Put {
    value: String,
}

pub async fn put(
    Extract(s): Extract<State>,
    Path(key): Path<String>,
    Json(p): Json<Put>,
) -> (StatusCode, Json<Value>) {
    let _gate = s.register_gate.lock().await;
    store(&s, &key, &p.value).await
}

#[derive(Deserialize)]
pub struct Cas {
    expected: String,
    new: String,
}

pub async fn cas(
    Extract(s): Extract<State>,
    Path(key): Path<String>,
    Json(c): Json<Cas>,
) -> (StatusCode, Json<Value>) {
    // The defect: the value is read when the request arrives, before the
    // lock, and not read again once it is held: a read-modify-write on a
    // stale read. Every cas queued behind another on the same key compares
    // against the value from before it.
    let stale = (s.bug == Some(Bug::LostUpdate)).then(|| s.log.register(&key));
    let _gate = s.register_gate.lock().await;
    let current = stale.unwrap_or_else(|| s.log.register(&key));
    if current.as_deref() != Some(c.expected.as_str()) {
        return (
            StatusCode::CONFLICT,
            Json(json!({ "key": key, "value": current, "expected": c.expected })),
        );
    }
    store(&s, &key, &c.new).await
}

/// Append `key = value` and replicate it like a write.
async fn store(s: &State, key: &str, value: &str) -> (StatusCode, Json<Value>) {
    let record = Record {
        id: s.next_register_id(),
        ns: REGISTER_NS.into(),
        value: json!({ "key": key, "value": value }),
    };
    if let Err(e) = s.commit(record.clone()).await {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": format!("local append failed: {e}") })),
        );
    }
    let acks = s.replicator().fan_out(&record).await;
    if acks >= s.replicator().quorum() {
        (
            StatusCode::OK,
            Json(json!({ "key": key, "value": value, "acks": acks })),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "quorum not met", "acks": acks })),
        )
    }
}
