//! Readiness: poll a node's probe until it answers 2xx, it exits, or the
//! deadline passes. A node that does not come up is a harness error carrying
//! its log tail, never a silent skip.

use super::Node;
use anyhow::bail;
use std::sync::Arc;
use std::time::Duration;

const POLL: Duration = Duration::from_millis(20);
const LOG_TAIL_LINES: usize = 20;

pub async fn wait(
    http: &reqwest::Client,
    node: Arc<Node>,
    url: String,
    deadline: Duration,
) -> anyhow::Result<()> {
    let until = tokio::time::Instant::now() + deadline;
    let mut last;
    loop {
        if let Some(status) = node.exit_status() {
            bail!(
                "node {} {} before becoming ready (probe {url}); log tail:\n{}",
                node.index,
                Node::describe_exit(status),
                node.log_tail(LOG_TAIL_LINES)
            );
        }
        match http.get(&url).timeout(Duration::from_secs(1)).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("status {}", r.status()),
            Err(e) => last = format!("{e}"),
        }
        if tokio::time::Instant::now() >= until {
            bail!(
                "node {} not ready within {} ms (ready.url {url}: {last}); log tail:\n{}",
                node.index,
                deadline.as_millis(),
                node.log_tail(LOG_TAIL_LINES)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
