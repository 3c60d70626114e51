//! Roles: which node currently leads, for systems whose leader moves (etcd).
//!
//! The campaign's `[leader]` probe is sent to every live node at once; each
//! answer names the leader it follows (`leader_pointer`) and the node itself
//! (`self_pointer`). The leader is the node whose own id is named by the most
//! answers, so a deposed leader that still believes in itself during a
//! partition loses to the majority's view.

use crate::Node;
use chaos_model::campaign::{LeaderProbe, Vars};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// One node's answer: the id of the leader it follows, and its own id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub node: u32,
    pub leader: String,
    pub own: String,
}

/// Ask every live node (a paused one costs the probe's timeout); `None` when no answering node names a node that
/// answered too (no leader elected, or the leader did not answer).
pub async fn leader(
    probe: &LeaderProbe,
    http: &reqwest::Client,
    nodes: &[Arc<Node>],
) -> Option<u32> {
    let asks = nodes
        .iter()
        .filter(|n| n.alive())
        .map(|n| ask(probe, http, n));
    let views: Vec<View> = futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    elect(&views)
}

async fn ask(probe: &LeaderProbe, http: &reqwest::Client, node: &Node) -> Option<View> {
    let vars = Vars::client(node.client, node.index);
    let method = reqwest::Method::from_bytes(probe.method.as_bytes()).ok()?;
    let mut req = http
        .request(method, vars.render(&probe.url))
        .timeout(Duration::from_millis(probe.timeout_ms));
    if let Some(body) = &probe.body {
        req = req.json(&vars.render_json(body));
    }
    let resp = req.send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let doc: serde_json::Value = resp.json().await.ok()?;
    let text = |p: &str| match doc.pointer(p)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    Some(View {
        node: node.index,
        leader: text(&probe.leader_pointer)?,
        own: text(&probe.self_pointer)?,
    })
}

/// The node whose own id the most views name as leader (ties: lowest index).
pub fn elect(views: &[View]) -> Option<u32> {
    let by_id: HashMap<&str, u32> = views.iter().map(|v| (v.own.as_str(), v.node)).collect();
    let mut votes: HashMap<u32, usize> = HashMap::new();
    for v in views {
        if let Some(&n) = by_id.get(v.leader.as_str()) {
            *votes.entry(n).or_default() += 1;
        }
    }
    votes
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(node: u32, leader: &str, own: &str) -> View {
        View {
            node,
            leader: leader.into(),
            own: own.into(),
        }
    }

    #[test]
    fn the_majority_view_wins_over_a_stale_leader() {
        // Node 0 still believes it leads; nodes 1 and 2 follow node 2.
        let views = [v(0, "a", "a"), v(1, "c", "b"), v(2, "c", "c")];
        assert_eq!(elect(&views), Some(2));
    }

    #[test]
    fn no_leader_when_none_is_named_or_it_did_not_answer() {
        assert_eq!(elect(&[]), None);
        // Both answering nodes follow "z", which did not answer.
        assert_eq!(elect(&[v(0, "z", "a"), v(1, "z", "b")]), None);
        // etcd reports leader "0" while an election is under way.
        assert_eq!(elect(&[v(0, "0", "a"), v(1, "0", "b")]), None);
    }
}
