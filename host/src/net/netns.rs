//! `netns` mode: every node in its own network namespace.
//!
//! Layout, created once per campaign and removed at its end:
//! a hub namespace `chs-<run>-hub` holds bridge `br0` (192.0.2.1/24); node i
//! lives in `chs-<run>-n<i>` with `eth0` = 192.0.2.(10+i)/24, a veth whose
//! other end is a port of the bridge. Addresses of the documentation range
//! exist only inside these namespaces. chaos-host reaches each node through a
//! forwarder listening on 127.0.0.1 whose upstream connections are opened
//! from inside the hub.
//!
//! A grudge becomes one `table bridge chaos_host`, loaded with a single
//! `nft -f` (atomic) in the hub and deleted on heal; its rule counters are
//! the evidence that packets were dropped.

use super::nsthread::NsThread;
use super::{CutStats, Grudge};
use crate::journal::{Entry, Journal};
use anyhow::{Context, bail};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

const TABLE: &str = "chaos_host";
/// Most nodes a campaign may have in this mode (192.0.2.10 .. .254).
pub const MAX_NODES: u32 = 200;

pub fn node_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 10 + i as u8)
}

pub struct Namespaces {
    hub: String,
    nodes: Vec<String>,
    journal: Arc<Journal>,
    /// Journal sequence numbers of the namespaces, for `done`.
    created: Mutex<Vec<(String, u64)>>,
    /// The journal entry of the ruleset in force.
    table: Mutex<Option<u64>>,
    hub_thread: NsThread,
    node_threads: Vec<NsThread>,
    node_files: Vec<std::fs::File>,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running `ip` (iproute2): network.mode = \"netns\" needs it installed")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn nft(netns: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns, "nft"])
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running nft in {netns}: {e} (install nftables)"))?;
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(text.as_bytes())
            .map_err(|e| format!("feeding nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for nft: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "nft {} in {netns} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Namespaces {
    pub async fn create(n: u32, run_id: &str, journal: Arc<Journal>) -> anyhow::Result<Self> {
        if !nix::unistd::geteuid().is_root() {
            bail!(
                "network.mode = \"netns\" needs root (it creates network namespaces and nftables rules); run as root or use network.mode = \"proxy\""
            );
        }
        if n > MAX_NODES {
            bail!(
                "network.mode = \"netns\" supports at most {MAX_NODES} nodes; this campaign has {n}"
            );
        }
        let hub = format!("chs-{run_id}-hub");
        let nodes: Vec<String> = (0..n).map(|i| format!("chs-{run_id}-n{i}")).collect();
        let created = Mutex::new(Vec::new());
        let add = |name: &str| -> anyhow::Result<()> {
            let seq = journal.record(Entry::Netns { name: name.into() })?;
            created
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((name.to_string(), seq));
            ip(&["netns", "add", name])
        };
        let build = || -> anyhow::Result<()> {
            add(&hub)?;
            ip(&["-n", &hub, "link", "set", "lo", "up"])?;
            ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
            ip(&["-n", &hub, "addr", "add", "192.0.2.1/24", "dev", "br0"])?;
            ip(&["-n", &hub, "link", "set", "br0", "up"])?;
            for (i, name) in nodes.iter().enumerate() {
                add(name)?;
                let v = format!("v{i}");
                let addr = format!("{}/24", node_addr(i));
                ip(&[
                    "-n", &hub, "link", "add", &v, "type", "veth", "peer", "name", "eth0", "netns",
                    name,
                ])?;
                ip(&["-n", &hub, "link", "set", &v, "master", "br0", "up"])?;
                ip(&["-n", name, "addr", "add", &addr, "dev", "eth0"])?;
                ip(&["-n", name, "link", "set", "eth0", "up"])?;
                ip(&["-n", name, "link", "set", "lo", "up"])?;
            }
            Ok(())
        };
        let undo_all = |created: &Mutex<Vec<(String, u64)>>| {
            for (name, seq) in created
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain(..)
                .rev()
            {
                crate::journal::undo(&Entry::Netns { name });
                journal.done(seq);
            }
        };
        if let Err(e) = build() {
            undo_all(&created);
            return Err(e.context("setting up network namespaces"));
        }
        let path = |name: &str| PathBuf::from("/run/netns").join(name);
        let threads = (|| -> anyhow::Result<_> {
            let hub_thread = NsThread::enter(&path(&hub))?;
            let mut node_threads = Vec::new();
            let mut node_files = Vec::new();
            for name in &nodes {
                node_threads.push(NsThread::enter(&path(name))?);
                node_files.push(
                    std::fs::File::open(path(name))
                        .with_context(|| format!("opening namespace {name}"))?,
                );
            }
            Ok((hub_thread, node_threads, node_files))
        })();
        let (hub_thread, node_threads, node_files) = match threads {
            Ok(t) => t,
            Err(e) => {
                undo_all(&created);
                return Err(e);
            }
        };
        tracing::info!(hub = %hub, nodes = n, "network namespaces ready");
        Ok(Self {
            hub,
            nodes,
            journal,
            created,
            table: Mutex::new(None),
            hub_thread,
            node_threads,
            node_files,
        })
    }

    pub fn node_fd(&self, i: usize) -> BorrowedFd<'_> {
        self.node_files[i].as_fd()
    }

    /// Load `grudge` as one ruleset, replacing any earlier one.
    pub async fn cut(&self, grudge: &Grudge) -> Result<String, String> {
        self.heal().await;
        let mut rules = String::new();
        let mut pairs = 0;
        for (to, row) in grudge.iter().enumerate() {
            for &from in row {
                rules.push_str(&format!(
                    "    ip saddr {} ip daddr {} counter drop\n",
                    node_addr(from as usize),
                    node_addr(to)
                ));
                pairs += 1;
            }
        }
        let ruleset = format!(
            "table bridge {TABLE} {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n{rules}  }}\n}}\n"
        );
        let seq = self
            .journal
            .record(Entry::Nft {
                netns: self.hub.clone(),
                table: format!("bridge {TABLE}"),
            })
            .map_err(|e| format!("{e:#}"))?;
        *self.table.lock().unwrap_or_else(|e| e.into_inner()) = Some(seq);
        let hub = self.hub.clone();
        tokio::task::block_in_place(|| nft(&hub, &["-f", "-"], Some(&ruleset)))?;
        // Read it back: the proof that the rules are in force.
        let listed =
            tokio::task::block_in_place(|| nft(&hub, &["list", "table", "bridge", TABLE], None))?;
        let in_force = listed.matches(" drop").count();
        if in_force != pairs {
            return Err(format!(
                "nftables shows {in_force} drop rule(s) in {hub}, expected {pairs}"
            ));
        }
        Ok(format!(
            "nftables table bridge {TABLE} in {hub}: {pairs} drop rule(s) loaded"
        ))
    }

    /// Delete the ruleset, returning its counters.
    pub async fn heal(&self) -> CutStats {
        let Some(seq) = self.table.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return CutStats::default();
        };
        let hub = self.hub.clone();
        let (counters, deleted) = tokio::task::spawn_blocking(move || {
            let counters = nft(&hub, &["-j", "list", "table", "bridge", TABLE], None);
            let deleted = nft(&hub, &["delete", "table", "bridge", TABLE], None);
            (counters, deleted)
        })
        .await
        .unwrap_or_else(|e| (Err(e.to_string()), Err(e.to_string())));
        self.journal.done(seq);
        let packets = counters
            .ok()
            .and_then(|j| serde_json::from_str::<serde_json::Value>(&j).ok())
            .map(|v| sum_counter_packets(&v));
        CutStats {
            superseded: false,
            installed: packets.is_some(),
            blocked: packets.unwrap_or(0),
            detail: match (packets, deleted) {
                (Some(p), Ok(_)) => format!("{p} packet(s) dropped; table deleted"),
                (None, Ok(_)) => "table deleted; its counters could not be read".into(),
                (_, Err(e)) => format!("could not delete the table: {e}"),
            },
        }
    }

    /// Delete the ruleset without reading its counters (cancelled cycles).
    pub fn heal_now(&self) {
        if let Some(seq) = self.table.lock().unwrap_or_else(|e| e.into_inner()).take() {
            crate::journal::undo(&Entry::Nft {
                netns: self.hub.clone(),
                table: format!("bridge {TABLE}"),
            });
            self.journal.done(seq);
        }
    }

    /// Wait until nothing listens on `port` inside node `i`'s namespace.
    pub async fn wait_free(&self, i: usize, port: u16, deadline: Duration) -> anyhow::Result<()> {
        let addr = SocketAddr::from((node_addr(i), port));
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let free = self.node_threads[i]
                .run(move || std::net::TcpListener::bind(addr).is_ok())
                .await
                .unwrap_or(false);
            if free {
                return Ok(());
            }
            if tokio::time::Instant::now() >= until {
                bail!(
                    "{addr} in namespace {} still held {} ms after SIGKILL and reap",
                    self.nodes[i],
                    deadline.as_millis()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Open a connection to `addr` from inside the hub.
    async fn connect(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let std_stream = self
            .hub_thread
            .run(move || -> std::io::Result<std::net::TcpStream> {
                let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .await
            .ok_or_else(|| std::io::Error::other("hub namespace thread is gone"))??;
        TcpStream::from_std(std_stream)
    }

    /// Delete the ruleset and every namespace; idempotent.
    pub async fn destroy(&self) {
        self.heal().await;
        self.delete_namespaces();
    }

    fn delete_namespaces(&self) {
        for (name, seq) in self
            .created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .rev()
        {
            crate::journal::undo(&Entry::Netns { name });
            self.journal.done(seq);
        }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.heal_now();
        self.delete_namespaces();
    }
}

fn sum_counter_packets(v: &serde_json::Value) -> u64 {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                if k == "counter" {
                    v.get("packets").and_then(|p| p.as_u64()).unwrap_or(0)
                } else {
                    sum_counter_packets(v)
                }
            })
            .sum(),
        serde_json::Value::Array(a) => a.iter().map(sum_counter_packets).sum(),
        _ => 0,
    }
}

/// One loopback listener per node, forwarding into the node's namespace.
pub struct Forwarders {
    ports: Vec<u16>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Forwarders {
    pub async fn start(ns: Arc<Namespaces>, listen_ports: &[u16]) -> anyhow::Result<Self> {
        // Built first so an error below drops it, aborting what started.
        let mut fwd = Self {
            ports: Vec::new(),
            tasks: Vec::new(),
        };
        for (i, &lp) in listen_ports.iter().enumerate() {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
            fwd.ports.push(listener.local_addr()?.port());
            let upstream = SocketAddr::from((node_addr(i), lp));
            let ns = ns.clone();
            fwd.tasks.push(tokio::spawn(async move {
                let mut conns = tokio::task::JoinSet::new();
                loop {
                    // Transient accept errors must not close the forwarder.
                    let mut client = match listener.accept().await {
                        Ok((c, _)) => c,
                        Err(e) => {
                            tracing::warn!("forwarder to node {i}: accept: {e}");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    let ns = ns.clone();
                    conns.spawn(async move {
                        if let Ok(mut up) = ns.connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                        }
                    });
                    while conns.try_join_next().is_some() {}
                }
            }));
        }
        Ok(fwd)
    }

    pub fn port(&self, i: usize) -> u16 {
        self.ports[i]
    }
}

impl Drop for Forwarders {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
