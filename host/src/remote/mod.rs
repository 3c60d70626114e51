//! Nodes on remote hosts over SSH (`[hosts]` in the campaign, or
//! `--hosts FILE`).
//!
//! chaos-host stays the control node (Jepsen's model): it opens one OpenSSH
//! ControlMaster per host through the `openssh` crate (the system's `ssh`,
//! so the operator's agent, `~/.ssh/config` and known_hosts apply) and runs
//! every command on a host as a session over that master. On each host run
//! the node's process group (started with `setsid`, its pid written to a
//! file), its data dir (the same path as locally) and every effect: signals,
//! pause, restart, and partitions as one nftables table per cycle between
//! host addresses ([`nft`]). Clock skew and drift run there too: chaos-host
//! uploads its own binary once per host per run (journaled, removed at the
//! end) and runs its `clock-lease` helper over SSH for each lease
//! ([`crate::effects::clock`]). Disk faults too: the same binary's
//! `disk-layer` helper mounts each node's FUSE layer there and serves the
//! disk leases over its SSH session ([`disk`]). Writes, reads and probes
//! go from chaos-host to the host addresses over the real network.
//!
//! Everything done on a host is journaled with the host
//! ([`crate::journal::Entry::Remote`]) before it is done, so `chaos-host
//! cleanup` and the next run reach the host again (a plain `ssh`, no
//! master) and kill the recorded groups, delete the recorded tables and
//! remove the uploaded binaries.

pub mod bench;
pub mod clock;
pub mod disk;
mod host;
pub mod nft;

pub use host::Host;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One host as the campaign (or `--hosts FILE`) lists it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Shown in messages and records; defaults to the address.
    #[serde(default)]
    pub name: String,
    /// IP address or DNS name; writes, reads and peers use it.
    pub address: String,
    #[serde(default = "default_user")]
    pub user: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Private key file (relative to the file that lists the host); none:
    /// the keys of the operator's ssh-agent and ssh config.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// known_hosts file to check the host key against (strictly); none:
    /// the operator's own.
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// Node indexes placed on this host; when no host names any, nodes go
    /// round robin (node i on host i mod hosts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<u32>,
}

fn default_user() -> String {
    "root".into()
}

fn default_port() -> u16 {
    22
}

/// `[hosts]` in a campaign, or the whole of a `--hosts` file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostsSection {
    /// `[[hosts.host]]` in a campaign, `[[host]]` in a hosts file.
    #[serde(default)]
    pub host: Vec<HostSpec>,
}

/// Validated hosts and where each node goes, before any connection.
#[derive(Clone, Debug)]
pub struct Layout {
    pub hosts: Vec<HostSpec>,
    /// Each host's address, resolved once.
    pub ips: Vec<IpAddr>,
    /// Node index -> host index.
    pub placement: Vec<usize>,
}

impl HostSpec {
    /// `user@address:port`, for messages.
    pub fn target(&self) -> String {
        format!("{}@{}:{}", self.user, self.address, self.port)
    }

    /// How to reach it by hand, for the fix in error messages.
    pub fn ssh_hint(&self) -> String {
        let key = self
            .key
            .as_ref()
            .map(|k| format!(" -i {}", k.display()))
            .unwrap_or_default();
        format!(
            "ssh -p {}{key} {}@{} true",
            self.port, self.user, self.address
        )
    }
}

impl Layout {
    /// Check `section` (read from `file`) for `nodes` nodes: at least one
    /// host, names unique, key files present, every node placed once.
    /// Relative key and known_hosts paths are resolved against `file`'s dir.
    pub fn new(section: &HostsSection, file: &Path, nodes: u32) -> anyhow::Result<Self> {
        let what = file.display();
        if section.host.is_empty() {
            bail!(
                "{what}: [hosts] lists no host; add one [[hosts.host]] (or [[host]] in a --hosts file) with an address per machine"
            );
        }
        let dir = file.parent().unwrap_or(Path::new("."));
        let mut hosts = section.host.clone();
        let mut ips = Vec::new();
        for (k, h) in hosts.iter_mut().enumerate() {
            if h.name.is_empty() {
                h.name = h.address.clone();
            }
            for p in [&mut h.key, &mut h.known_hosts].into_iter().flatten() {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
            if let Some(k) = &h.key
                && !k.is_file()
            {
                bail!(
                    "{what}: host {} key {}: no such file (give the private key ssh should use, or drop `key` to use your ssh-agent)",
                    h.name,
                    k.display()
                );
            }
            let ip = (h.address.as_str(), h.port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .map(|a| a.ip())
                .with_context(|| {
                    format!(
                        "{what}: host {} address {:?} does not resolve (give an IP address or a name this machine resolves)",
                        h.name, h.address
                    )
                })?;
            if hosts_named(&section.host, &h.name, k) {
                bail!(
                    "{what}: two hosts are named {:?}; give each a distinct name",
                    h.name
                );
            }
            ips.push(ip);
        }
        let placement = place(&hosts, nodes).with_context(|| what.to_string())?;
        Ok(Self {
            hosts,
            ips,
            placement,
        })
    }
}

/// Another host before position `k` has this name.
fn hosts_named(all: &[HostSpec], name: &str, k: usize) -> bool {
    all[..k]
        .iter()
        .any(|h| h.name == name || (h.name.is_empty() && h.address == name))
}

/// Node index -> host index: as the hosts' `nodes` lists say, or round
/// robin when none says.
fn place(hosts: &[HostSpec], nodes: u32) -> anyhow::Result<Vec<usize>> {
    if hosts.iter().all(|h| h.nodes.is_empty()) {
        return Ok((0..nodes as usize).map(|i| i % hosts.len()).collect());
    }
    let mut placement = vec![None; nodes as usize];
    for (k, h) in hosts.iter().enumerate() {
        for &n in &h.nodes {
            let Some(slot) = placement.get_mut(n as usize) else {
                bail!(
                    "host {} nodes: node {n} does not exist (system.nodes = {nodes}: nodes 0..{})",
                    h.name,
                    nodes.saturating_sub(1)
                );
            };
            if let Some(other) = slot.replace(k) {
                bail!(
                    "node {n} is placed on both host {} and host {}; list it under one",
                    hosts[other].name,
                    h.name
                );
            }
        }
    }
    placement
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            p.with_context(|| {
                format!(
                    "node {i} is on no host: list it in one host's `nodes`, or drop every `nodes` for round robin"
                )
            })
        })
        .collect()
}

/// Read a `--hosts FILE`.
pub fn read_file(path: &Path) -> anyhow::Result<HostsSection> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --hosts {}", path.display()))?;
    toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("--hosts {}: {}", path.display(), e.to_string().trim()))
}

/// The connected hosts of a run and where each node goes.
pub struct Hosts {
    pub hosts: Vec<Arc<Host>>,
    pub placement: Vec<usize>,
}

impl Hosts {
    /// Open one master connection per host and check each can run its
    /// nodes: `programs` holds each node's program. Any failure is one
    /// error naming the host and the fix; masters already open are closed.
    pub async fn connect(layout: &Layout, programs: &[PathBuf]) -> anyhow::Result<Self> {
        let connects = layout
            .hosts
            .iter()
            .zip(&layout.ips)
            .map(|(h, ip)| Host::connect(h.clone(), *ip));
        let mut hosts = Vec::new();
        let mut first_err = None;
        // All at once: an unreachable host costs one connect timeout, not one
        // per host.
        for r in futures::future::join_all(connects).await {
            match r {
                Ok(h) => hosts.push(Arc::new(h)),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        for (k, host) in hosts.iter().enumerate() {
            let mine: Vec<&PathBuf> = layout
                .placement
                .iter()
                .zip(programs)
                .filter(|(p, _)| **p == k)
                .map(|(_, prog)| prog)
                .collect();
            host.check(&mine).await?;
        }
        Ok(Self {
            hosts,
            placement: layout.placement.clone(),
        })
    }

    /// The host node `i` runs on.
    pub fn of(&self, i: usize) -> &Arc<Host> {
        &self.hosts[self.placement[i]]
    }

    /// Upload the helper (clock leases, disk layers) to every host, all at
    /// once, before the first cycle (a lease then does not wait for the
    /// upload). A host where it fails keeps the reason, which its skews
    /// record; returned too, so disk faults can refuse the run.
    pub async fn install_helpers(&self, journal: &Arc<crate::journal::Journal>) -> Vec<String> {
        let runs = self.hosts.iter().map(|h| {
            let (h, j) = (h.clone(), journal.clone());
            tokio::task::spawn_blocking(move || {
                h.helper(&j)
                    .err()
                    .map(|e| format!("host {}: no chaos-host helper: {e}", h.spec.name))
            })
        });
        let mut failed = Vec::new();
        for r in futures::future::join_all(runs).await {
            if let Ok(Some(e)) = r {
                tracing::warn!("{e}");
                failed.push(e);
            }
        }
        failed
    }

    /// Why some host cannot carry a disk layer (not root, no /dev/fuse),
    /// every such host named; checked before anything is written.
    pub async fn disk_preflight(&self) -> Result<(), String> {
        let runs = self.hosts.iter().map(|h| {
            let h = h.clone();
            tokio::task::spawn_blocking(move || disk::preflight(&h))
        });
        let why: Vec<String> = futures::future::join_all(runs)
            .await
            .into_iter()
            .filter_map(|r| r.map_err(|e| e.to_string()).and_then(|r| r).err())
            .collect();
        if why.is_empty() {
            Ok(())
        } else {
            Err(why.join("; "))
        }
    }

    /// Remove the uploaded helpers (the run's end).
    pub async fn remove_helpers(&self, journal: &Arc<crate::journal::Journal>) {
        let runs = self.hosts.iter().map(|h| {
            let (h, j) = (h.clone(), journal.clone());
            tokio::task::spawn_blocking(move || {
                if let Err(e) = h.remove_helper(&j) {
                    tracing::warn!("host {}: removing the helper: {e}", h.spec.name);
                }
            })
        });
        futures::future::join_all(runs).await;
    }
}

/// Quote `s` as one word for a POSIX shell, always in single quotes.
/// Hand-written (one line): the `shell-escape` crate `openssh` uses would
/// do too, but leaves safe words bare, and scripts here quote every path.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, nodes: Vec<u32>) -> HostSpec {
        HostSpec {
            name: name.into(),
            address: "127.0.0.1".into(),
            user: "root".into(),
            port: 22,
            key: None,
            known_hosts: None,
            nodes,
        }
    }

    #[test]
    fn nodes_go_round_robin_unless_placed() {
        let rr = place(&[host("a", vec![]), host("b", vec![])], 3).unwrap();
        assert_eq!(rr, vec![0, 1, 0]);
        let placed = place(&[host("a", vec![2]), host("b", vec![0, 1])], 3).unwrap();
        assert_eq!(placed, vec![1, 1, 0]);
    }

    #[test]
    fn a_node_placed_twice_or_nowhere_is_refused() {
        let e = place(&[host("a", vec![0, 1]), host("b", vec![1])], 2).unwrap_err();
        assert!(format!("{e:#}").contains("node 1 is placed on both host a and host b"));
        let e = place(&[host("a", vec![0])], 2).unwrap_err();
        assert!(format!("{e:#}").contains("node 1 is on no host"));
        let e = place(&[host("a", vec![0, 5])], 2).unwrap_err();
        assert!(format!("{e:#}").contains("node 5 does not exist"));
    }

    #[test]
    fn a_missing_key_file_names_the_host() {
        let mut h = host("db1", vec![]);
        h.key = Some("no-such-key".into());
        let e = Layout::new(
            &HostsSection { host: vec![h] },
            Path::new("/tmp/c/campaign.toml"),
            1,
        )
        .unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("host db1 key /tmp/c/no-such-key: no such file"),
            "{e}"
        );
    }

    #[test]
    fn only_chaos_host_upload_dirs_are_removed_by_the_journal() {
        assert!(host::is_helper_dir("/tmp/chaos-host-a1b2c3-h0"));
        for bad in [
            "/",
            "/tmp",
            "/tmp/chaos-host-",
            "/tmp/chaos-host-x/../../etc",
            "/tmp/chaos-host-a b",
            "/home/chaos-host-x",
        ] {
            assert!(!host::is_helper_dir(bad), "{bad}");
        }
    }

    #[test]
    fn quote_survives_single_quotes() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
