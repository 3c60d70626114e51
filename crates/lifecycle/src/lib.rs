//! The processes of the system under test: a fresh cluster per cycle.
//!
//! Each node runs in its own process group with its own data dir and port.
//! Teardown is SIGKILL of the whole group, a reap, and a check that the port
//! is free again, so nothing of cycle N reaches cycle N+1 (SIGTERM once
//! let a node hold its socket into the next cycle).

mod node;
pub mod roles;

pub use node::{ClientReady, Node, last_lines};

use anyhow::Context;
use chaos_journal::journal::Journal;
use chaos_mechanisms::clock::{ClockProbe, ClockSetup};
use chaos_mechanisms::disk::{Disk, NodeDisk};
use chaos_mechanisms::net::{CycleNet, Network};
use chaos_model::campaign::{Campaign, Vars};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The nodes of one cycle, and the network and clock plumbing they run on.
pub struct Cluster {
    pub nodes: Vec<Arc<Node>>,
    /// Each node's disk layer, mounted over its data dir (on the node's
    /// host for a remote node) when the fault class declares `disk`; else
    /// empty.
    pub disks: Vec<Arc<NodeDisk>>,
    pub net: Arc<CycleNet>,
    pub clock: Option<ClockSetup>,
}

/// How long teardown waits for a killed node's port to be free again.
const PORT_RELEASE_DEADLINE: Duration = Duration::from_secs(5);

/// What a cycle's nodes are started with.
pub struct Placement<'a> {
    pub network: &'a Network,
    pub journal: &'a Arc<Journal>,
    /// The fault under test skews clocks.
    pub skews: bool,
    /// libfaketime, when it skews clocks and ptrace is refused.
    pub faketime: Option<&'a Path>,
    /// Mount a disk layer over each data dir (the fault declares `disk`).
    pub disk: bool,
}

impl Cluster {
    /// Place the nodes on the network, create fresh data dirs under `dir`,
    /// spawn every node and wait until each answers its readiness probe. On
    /// any failure the nodes already started are torn down before the error
    /// is returned.
    pub async fn start(
        campaign: &Campaign,
        dir: &Path,
        cycle: u32,
        namespace: &str,
        http: &reqwest::Client,
        place: Placement<'_>,
    ) -> anyhow::Result<Self> {
        let sys = &campaign.file.system;
        let net = Arc::new(
            place
                .network
                .cycle(sys.nodes as usize, campaign.uses_peer_port())
                .await?,
        );
        let clock = place.skews.then(|| ClockSetup {
            files: (0..sys.nodes)
                .map(|i| {
                    place
                        .faketime
                        .map(|_| dir.join(format!("node-{i}.faketime")))
                })
                .collect(),
            fallback: chaos_mechanisms::clock::vdso::refusal(),
            probe: campaign.file.clock.probe_url.as_ref().map(|u| ClockProbe {
                url: u.clone(),
                pointer: campaign.file.clock.probe_pointer.clone(),
                header: campaign.file.clock.probe_header.clone(),
            }),
        });
        let mut cluster = Cluster {
            nodes: Vec::new(),
            disks: Vec::new(),
            net: net.clone(),
            clock: clock.clone(),
        };
        if place.disk {
            match Self::mount_disks(dir, &net, place.journal).await {
                Ok(d) => cluster.disks = d,
                Err(e) => {
                    cluster.teardown().await.ok();
                    return Err(e);
                }
            }
        }
        for (i, addr) in net.addrs.iter().enumerate() {
            match Self::spawn_one(
                campaign, dir, cycle, namespace, &place, &net, &clock, i, addr,
            ) {
                Ok(node) => cluster.nodes.push(Arc::new(node)),
                Err(e) => {
                    // Every node already started is killed, reaped and its
                    // port checked before the error is returned.
                    cluster.teardown().await.ok();
                    return Err(e);
                }
            }
        }
        if campaign.file.ready.url.is_some() {
            cluster.wait_ready(http).await?;
        }
        Ok(cluster)
    }

    /// Wait until every node is ready (see [`Node::wait_ready`]); on a
    /// failure the cluster is torn down before the error is returned.
    /// Without `[ready] url`, after [`Node::set_client_ready`].
    pub async fn wait_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let probes = self.nodes.iter().map(|n| n.wait_ready(http));
        // Join all probes (no early exit, so none is left running).
        let results = futures::future::join_all(probes).await;
        if let Some(err) = results.into_iter().find_map(Result::err) {
            self.teardown().await.ok();
            return Err(err);
        }
        Ok(())
    }

    /// A disk layer over each node's data dir `dir/node-I` (backed by
    /// `dir/node-I.disk`): here, or on the node's host by the uploaded
    /// helper, all at once (each remote one costs an SSH session). On a
    /// failure the layers already mounted are unmounted.
    async fn mount_disks(
        dir: &Path,
        net: &CycleNet,
        journal: &Arc<Journal>,
    ) -> anyhow::Result<Vec<Arc<NodeDisk>>> {
        // Absolute: the helper runs from another directory, and `cleanup`
        // finds the journaled path from any.
        let dir = std::path::absolute(dir)?;
        let mounts = (0..net.addrs.len()).map(|i| {
            let (backing, mount) = (
                dir.join(format!("node-{i}.disk")),
                dir.join(format!("node-{i}")),
            );
            let (journal, host) = (journal.clone(), net.remote_host(i));
            tokio::task::spawn_blocking(move || -> anyhow::Result<NodeDisk> {
                let Some(host) = host else {
                    return Disk::mount(&backing, &mount, Some(journal)).map(NodeDisk::Local);
                };
                let bin = host.helper(&journal).map_err(anyhow::Error::msg)?;
                chaos_mechanisms::disk::remote::RemoteDisk::mount(
                    &host, &bin, &backing, &mount, journal,
                )
                .map(NodeDisk::Remote)
                .map_err(|e| anyhow::anyhow!("node {i}: {e}"))
            })
        });
        let mut disks = Vec::new();
        let mut first_err = None;
        for r in futures::future::join_all(mounts).await {
            match r.map_err(anyhow::Error::from).and_then(|r| r) {
                Ok(d) => disks.push(Arc::new(d)),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => {
                for d in &disks {
                    d.unmount().ok();
                }
                Err(e)
            }
            None => Ok(disks),
        }
    }

    /// Fresh data dir, clock file and process for node `i`.
    #[allow(clippy::too_many_arguments)]
    fn spawn_one(
        campaign: &Campaign,
        dir: &Path,
        cycle: u32,
        namespace: &str,
        place: &Placement<'_>,
        net: &CycleNet,
        clock: &Option<ClockSetup>,
        i: usize,
        addr: &chaos_mechanisms::net::NodeAddr,
    ) -> anyhow::Result<Node> {
        let sys = &campaign.file.system;
        let data_dir = dir.join(format!("node-{i}"));
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let peer_url = |p: &chaos_mechanisms::net::Peer| {
            Vars::default()
                .with("port", p.port.to_string())
                .with("peer_port", p.peer_port.to_string())
                .with("host", p.host.as_str())
                .with("index", p.index.to_string())
                .render(&sys.peer_url)
        };
        let peers: Vec<String> = addr.peers.iter().map(peer_url).collect();
        // The whole membership as this node sees it, itself included.
        let own = chaos_mechanisms::net::Peer {
            index: i,
            host: addr.host.clone(),
            port: addr.listen_port,
            peer_port: addr.peer_port,
        };
        let mut cluster: Vec<&chaos_mechanisms::net::Peer> = addr.peers.iter().collect();
        cluster.insert(i, &own);
        let cluster: Vec<String> = cluster.into_iter().map(peer_url).collect();
        let vars = Vars::default()
            .with("index", i.to_string())
            .with("port", addr.listen_port.to_string())
            .with("peer_port", addr.peer_port.to_string())
            .with("host", addr.host.as_str())
            .with("peers", peers.join(&sys.peer_separator))
            .with("cluster", cluster.join(&sys.peer_separator))
            .with("data_dir", data_dir.to_string_lossy().into_owned())
            .with("namespace", namespace)
            .with("cycle", cycle.to_string());
        let mut extra_env = Vec::new();
        if let (Some(lib), Some(c)) = (place.faketime, &clock)
            && let Some(Some(file)) = c.files.get(i)
        {
            chaos_mechanisms::clock::set_offset(file, 0)
                .with_context(|| format!("creating {}", file.display()))?;
            extra_env = chaos_mechanisms::clock::env(lib, file);
        }
        let client = net.client_addr(i);
        let ready_url = campaign.file.ready.url.as_ref().map(|url| {
            Vars::client(client, i as u32)
                .with("namespace", namespace)
                .with("cycle", cycle.to_string())
                .render(url)
        });
        Node::spawn(
            campaign,
            node::Spawn {
                index: i as u32,
                port: addr.client_port,
                vars: &vars,
                log_path: &dir.join(format!("node-{i}.log")),
                netns: net.netns_fd(i),
                env: extra_env,
                journal: place.journal.clone(),
                ready_url,
                client,
                remote: net.remote_host(i).map(|h| (h, data_dir.clone())),
            },
        )
    }

    /// SIGKILL every node's process group, reap it, and confirm its port is
    /// free. Safe to call more than once.
    pub async fn teardown(&mut self) -> anyhow::Result<()> {
        for node in &self.nodes {
            node.kill_and_reap().await;
        }
        // Cut links and clocks go with the nodes; the disk layers once no
        // node holds a file open in them.
        self.net.heal_now();
        // Remote layers each wait for a round trip: all at once.
        let unmounts = self.disks.iter().map(|d| {
            let d = d.clone();
            tokio::task::spawn_blocking(move || d.unmount())
        });
        for r in futures::future::join_all(unmounts).await {
            r??;
        }
        for node in &self.nodes {
            self.net
                .wait_free(node.index as usize, PORT_RELEASE_DEADLINE)
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
