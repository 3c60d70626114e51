//! Readiness: poll a node's probe (its `[ready] url` answering 2xx, or the
//! client's `ready`) until it says yes, the node exits, or the deadline
//! passes. A node that does not come up is a harness error carrying
//! its log tail, never a silent skip.

use super::Node;
use anyhow::bail;
use std::sync::Arc;
use std::time::Duration;

const POLL: Duration = Duration::from_millis(20);
const LOG_TAIL_LINES: usize = 20;

/// Asks whether a node may serve, through the campaign's client (a driver
/// process's `ready`), for campaigns without `[ready] url`. Implemented
/// above this layer, by the client.
pub trait ClientReady: Send + Sync {
    /// `Err((why, false))`: not yet, ask again; `Err((why, true))`: the
    /// client itself is broken (its driver exited or answered garbage),
    /// and asking again cannot help.
    fn ready(&self, node: u32) -> futures::future::BoxFuture<'_, Result<(), (String, bool)>>;
}

/// How a node is asked.
pub enum Probe {
    Url(String),
    Client(Arc<dyn ClientReady>),
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Url(url) => write!(f, "ready.url {url}"),
            Probe::Client(_) => f.write_str("the client's ready"),
        }
    }
}

pub async fn wait(
    http: &reqwest::Client,
    node: Arc<Node>,
    probe: Probe,
    deadline: Duration,
) -> anyhow::Result<()> {
    let until = tokio::time::Instant::now() + deadline;
    let mut last;
    loop {
        if let Some(status) = node.exit_status() {
            bail!(
                "node {} {} before becoming ready (probe: {probe}); log tail:\n{}",
                node.index,
                Node::describe_exit(status),
                node.log_tail(LOG_TAIL_LINES)
            );
        }
        match &probe {
            Probe::Url(url) => match http.get(url).timeout(Duration::from_secs(1)).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("status {}", r.status()),
                Err(e) => last = format!("{e}"),
            },
            Probe::Client(c) => match tokio::time::timeout(
                until.saturating_duration_since(tokio::time::Instant::now()),
                c.ready(node.index),
            )
            .await
            .unwrap_or_else(|_| Err(("no answer before the deadline".into(), false)))
            {
                Ok(()) => return Ok(()),
                Err((e, true)) => bail!(
                    "node {}: the client cannot ask whether it is ready: {e}",
                    node.index
                ),
                Err((e, false)) => last = e,
            },
        }
        if tokio::time::Instant::now() >= until {
            bail!(
                "node {} not ready within {} ms ({probe}: {last}); log tail:\n{}",
                node.index,
                deadline.as_millis(),
                node.log_tail(LOG_TAIL_LINES)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
