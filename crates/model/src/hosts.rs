//! Remote hosts as the campaign's `[hosts]` (or a `--hosts FILE`) lists
//! them, validated into a [`Layout`] before any connection.

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

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
}
