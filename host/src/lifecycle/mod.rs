//! The processes of the system under test: a fresh cluster per cycle.
//!
//! Each node runs in its own process group with its own data dir and port.
//! Teardown is SIGKILL of the whole group, a reap, and a check that the port
//! is free again, so nothing of cycle N reaches cycle N+1 (seed 000: SIGTERM
//! let a node hold its socket into the next cycle).

mod node;
mod ports;
mod ready;

pub use node::Node;

use crate::campaign::{Campaign, Vars};
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The nodes of one cycle.
pub struct Cluster {
    pub nodes: Vec<Arc<Node>>,
}

/// How long teardown waits for a killed node's port to be free again.
const PORT_RELEASE_DEADLINE: Duration = Duration::from_secs(5);

impl Cluster {
    /// Choose ports, create fresh data dirs under `dir`, spawn every node and
    /// wait until each answers its readiness probe. On any failure the nodes
    /// already started are torn down before the error is returned.
    pub async fn start(
        campaign: &Campaign,
        dir: &Path,
        cycle: u32,
        namespace: &str,
        http: &reqwest::Client,
    ) -> anyhow::Result<Self> {
        let sys = &campaign.file.system;
        let ports = ports::choose(sys.nodes as usize)?;
        let peer_url = |i: usize| {
            Vars::default()
                .with("port", ports[i].to_string())
                .with("index", i.to_string())
                .render(&sys.peer_url)
        };
        let mut cluster = Cluster { nodes: Vec::new() };
        for (i, &port) in ports.iter().enumerate() {
            let data_dir = dir.join(format!("node-{i}"));
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let peers: Vec<String> = (0..ports.len()).filter(|&j| j != i).map(peer_url).collect();
            let vars = Vars::default()
                .with("index", i.to_string())
                .with("port", port.to_string())
                .with("peers", peers.join(&sys.peer_separator))
                .with("data_dir", data_dir.to_string_lossy().into_owned())
                .with("namespace", namespace)
                .with("cycle", cycle.to_string());
            let spawned = Node::spawn(
                campaign,
                i as u32,
                port,
                &vars,
                &dir.join(format!("node-{i}.log")),
            );
            match spawned {
                Ok(node) => cluster.nodes.push(Arc::new(node)),
                Err(e) => {
                    cluster.teardown().await.ok();
                    return Err(e);
                }
            }
        }
        let probes = cluster.nodes.iter().map(|n| {
            let url = Vars::default()
                .with("port", n.port.to_string())
                .with("index", n.index.to_string())
                .with("namespace", namespace)
                .with("cycle", cycle.to_string())
                .render(&campaign.file.ready.url);
            ready::wait(
                http,
                n.clone(),
                url,
                Duration::from_millis(campaign.file.ready.deadline_ms),
            )
        });
        // Join all probes (no early exit, so none is left running).
        let results = futures::future::join_all(probes).await;
        if let Some(err) = results.into_iter().find_map(Result::err) {
            cluster.teardown().await.ok();
            return Err(err);
        }
        Ok(cluster)
    }

    /// SIGKILL every node's process group, reap it, and confirm its port is
    /// free. Safe to call more than once.
    pub async fn teardown(&mut self) -> anyhow::Result<()> {
        for node in &self.nodes {
            node.kill_and_reap().await;
        }
        for node in &self.nodes {
            ports::wait_free(node.port, PORT_RELEASE_DEADLINE)
                .await
                .with_context(|| format!("node {} after teardown", node.index))?;
        }
        Ok(())
    }
}

impl Drop for Cluster {
    /// A cycle cancelled mid-way (Ctrl-C, SIGTERM) still kills every process
    /// group; tokio reaps the leaders. After `teardown` this finds nothing.
    fn drop(&mut self) {
        for node in &self.nodes {
            if node.alive() {
                let _ = node.signal(nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}
