//! Partitions between remote hosts: a grudge becomes, on the host of each
//! node that drops traffic, one nftables table (`inet`, input hook) per
//! cycle whose rules drop TCP from the peer's host address to this node's
//! ports, and replies from the peer's ports (connections this node opened).
//! Rules match ports, never whole addresses, so the SSH sessions chaos-host
//! drives the host with are never cut. Nodes placed on one host share its
//! address: a cut between two of them is not enforced (the verdict shows it
//! unproven).

use crate::net::{CutStats, Grudge, LinkProbe, LinkStats, NodeAddr, cut_links};
use chaos_journal::journal::{Entry, Fence, Journal, RemoteUndo};
use chaos_ssh::Hosts;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The partition plumbing of one cycle on remote hosts.
pub struct RemoteNet {
    pub hosts: Arc<Hosts>,
    /// This cycle's table name, the same on every host.
    table: String,
    journal: Arc<Journal>,
    /// The cut in force, if any.
    installed: Mutex<Option<Installed>>,
    /// Links of the cut in force whose probe was held (its one SYN counted
    /// by the link's rule), told apart from the system's packets.
    probed: Mutex<std::collections::HashSet<(u32, u32)>>,
    /// Cuts made so far: each one's fence is named after its number.
    cuts: std::sync::atomic::AtomicU32,
}

/// The hosts holding the table (host index, journal seq, fence) and the
/// cut links (from, to).
type Installed = (Vec<(usize, u64, Fence)>, Vec<(u32, u32)>);

impl RemoteNet {
    pub fn new(hosts: Arc<Hosts>, table: String, journal: Arc<Journal>) -> Self {
        Self {
            hosts,
            table,
            journal,
            installed: Mutex::new(None),
            probed: Mutex::default(),
            cuts: Default::default(),
        }
    }

    /// The ruleset for the host whose nodes drop `links`.
    fn ruleset(&self, links: &[(u32, u32)], addrs: &[NodeAddr]) -> String {
        let ports = |i: u32| {
            let a = &addrs[i as usize];
            [a.listen_port, a.peer_port]
                .into_iter()
                .filter(|&p| p != 0)
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut rules = String::new();
        for &(from, to) in links {
            let ip = self.hosts.of(from as usize).ip;
            for (dir, p) in [("dport", ports(to)), ("sport", ports(from))] {
                rules.push_str(&format!(
                    "    ip saddr {ip} tcp {dir} {{ {p} }} counter drop comment \"link {from} {to}\"\n"
                ));
            }
        }
        format!(
            "table inet {t} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n{rules}  }}\n}}\n",
            t = self.table
        )
    }

    /// Put `grudge` in force (replacing an earlier cut).
    pub async fn cut(&self, grudge: &Grudge, addrs: &[NodeAddr]) -> Result<String, String> {
        self.heal().await;
        self.probed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let links = cut_links(grudge);
        let mut by_host: BTreeMap<usize, Vec<(u32, u32)>> = BTreeMap::new();
        for &(from, to) in &links {
            by_host
                .entry(self.hosts.placement[to as usize])
                .or_default()
                .push((from, to));
        }
        let mut held = Vec::new();
        let mut shown = Vec::new();
        let n = self.cuts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for (k, host_links) in by_host {
            let host = self.hosts.hosts[k].clone();
            let (h, j) = (host.clone(), self.journal.clone());
            let dir = tokio::task::spawn_blocking(move || h.run_dir(&j))
                .await
                .map_err(|e| e.to_string())??;
            let fence = Fence {
                dir,
                name: format!("{}-cut{n}", self.table),
            };
            let seq = self
                .journal
                .record(Entry::Remote {
                    host: host.spec.clone(),
                    undo: RemoteUndo::Nft {
                        table: format!("inet {}", self.table),
                        fence: Some(fence.clone()),
                    },
                })
                .map_err(|e| format!("{e:#}"))?;
            held.push((k, seq, fence.clone()));
            *self.installed.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((held.clone(), links.clone()));
            // Fenced: if chaos-host dies mid-call, this may still run on
            // the host after `cleanup`; it then does nothing.
            let script = format!(
                "{} <<'CHAOS_EOF'\n{}CHAOS_EOF\n",
                chaos_ssh::fenced(
                    &fence.dir,
                    &fence.name,
                    &format!("nft -f - && nft list table inet {}", self.table)
                ),
                self.ruleset(&host_links, addrs),
            );
            let listed = tokio::task::spawn_blocking(move || host.run(&script))
                .await
                .map_err(|e| e.to_string())??;
            let in_force = listed.matches(" drop").count();
            if in_force != 2 * host_links.len() {
                return Err(format!(
                    "nftables on host {} shows {in_force} drop rule(s), expected {}",
                    self.hosts.hosts[k].spec.name,
                    2 * host_links.len()
                ));
            }
            shown.push(format!(
                "{} ({in_force} rule(s))",
                self.hosts.hosts[k].spec.name
            ));
        }
        Ok(format!(
            "nftables table inet {} on host(s) {}",
            self.table,
            shown.join(", ")
        ))
    }

    /// Try each cut link from the `from` node's host: a TCP connect to the
    /// `to` node's port that must not complete (its SYN is dropped and the
    /// rule counts it).
    pub async fn probe(&self, links: &[(u32, u32)], addrs: &[NodeAddr]) -> Vec<LinkProbe> {
        let mut by_host: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for &(from, to) in links {
            let ip = self.hosts.of(to as usize).ip;
            let port = addrs[to as usize].listen_port;
            by_host
                .entry(self.hosts.placement[from as usize])
                .or_default()
                .push(format!(
                    "(timeout 0.3 bash -c 'exec 3<>/dev/tcp/{ip}/{port}' 2>/dev/null && echo '{from} {to} open' || echo '{from} {to} held') &"
                ));
        }
        let runs = by_host.into_iter().map(|(k, probes)| {
            let host = self.hosts.hosts[k].clone();
            let script = format!("{}\nwait", probes.join("\n"));
            tokio::task::spawn_blocking(move || host.run(&script))
        });
        let mut out = Vec::new();
        for r in futures::future::join_all(runs).await {
            let text = match r {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => e,
                Err(e) => e.to_string(),
            };
            for line in text.lines() {
                let w: Vec<&str> = line.split_whitespace().collect();
                if let [f, t, verdict] = w[..]
                    && let (Ok(from), Ok(to)) = (f.parse(), t.parse())
                {
                    out.push(LinkProbe {
                        from,
                        to,
                        held: verdict == "held",
                        detail: format!("connect from host of node {from}: {verdict}"),
                    });
                }
            }
        }
        out.sort_by_key(|p| (p.from, p.to));
        // Held for 300 ms, before the first SYN retransmit (1 s): one
        // packet on the link's rule.
        self.probed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(out.iter().filter(|p| p.held).map(|p| (p.from, p.to)));
        out
    }

    /// Delete the tables, returning their counters link by link.
    pub async fn heal(&self) -> CutStats {
        let Some((held, links)) = self
            .installed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return CutStats::default();
        };
        let t = self.table.clone();
        let runs = held.iter().map(|(k, _, fence)| {
            let host = self.hosts.hosts[*k].clone();
            // Fenced: a cut whose call was cancelled here while its ssh
            // command still ran there lands before this, or never.
            let script = chaos_ssh::fence(
                &fence.dir,
                &fence.name,
                &format!("nft list table inet {t}; nft delete table inet {t}"),
            );
            tokio::task::spawn_blocking(move || host.run(&script))
        });
        let mut counts: BTreeMap<(u32, u32), u64> = BTreeMap::new();
        let mut errors = Vec::new();
        for ((_, seq, _), r) in held.iter().zip(futures::future::join_all(runs).await) {
            match r {
                Ok(Ok(text)) => {
                    self.journal.done(*seq);
                    for (link, packets) in counters(&text) {
                        *counts.entry(link).or_default() += packets;
                    }
                }
                Ok(Err(e)) => errors.push(e),
                Err(e) => errors.push(e.to_string()),
            }
        }
        let probed = std::mem::take(&mut *self.probed.lock().unwrap_or_else(|e| e.into_inner()));
        let links: Vec<LinkStats> = links
            .into_iter()
            .map(|(from, to)| {
                let blocked = counts.get(&(from, to)).copied().unwrap_or(0);
                let probe = u64::from(probed.contains(&(from, to)));
                LinkStats {
                    from,
                    to,
                    blocked,
                    system: blocked.saturating_sub(probe),
                    figures: format!("{blocked} packet(s) ({probe} the probe's)"),
                }
            })
            .collect();
        let each: Vec<String> = links
            .iter()
            .map(|l| format!("{}->{} {}", l.from, l.to, l.figures))
            .collect();
        CutStats {
            installed: true,
            superseded: false,
            detail: format!(
                "dropped on the hosts: {}; {}",
                each.join(", "),
                if errors.is_empty() {
                    "tables deleted".to_string()
                } else {
                    format!("could not delete: {}", errors.join("; "))
                }
            ),
            links,
            lapses: Vec::new(),
        }
    }

    /// Delete the tables without reading them (cancelled cycles).
    pub fn heal_now(&self) {
        let Some((held, _)) = self
            .installed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        for (k, seq, fence) in held {
            let h = &self.hosts.hosts[k];
            // The cut may still be in flight (its task cancelled, its ssh
            // call not): fenced, it finishes first or never.
            let delete = format!(
                "if nft list table inet {t} >/dev/null 2>&1; then nft delete table inet {t}; fi",
                t = self.table
            );
            if h.run(&chaos_ssh::fence(&fence.dir, &fence.name, &delete))
                .is_ok()
            {
                self.journal.done(seq);
            }
        }
    }
}

/// Packets per link from `nft list table` text (rules commented
/// `link FROM TO`).
fn counters(text: &str) -> Vec<((u32, u32), u64)> {
    text.lines()
        .filter_map(|l| {
            let packets = l.split("packets ").nth(1)?.split_whitespace().next()?;
            let link = l.split("comment \"link ").nth(1)?;
            let mut w = link.trim_end_matches('"').split_whitespace();
            let from = w.next()?.parse().ok()?;
            let to = w.next()?.trim_end_matches('"').parse().ok()?;
            Some(((from, to), packets.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_by_link_comment() {
        let text = "table inet t {\n\tchain input {\n\t\tip saddr 192.0.2.11 tcp dport { 4000 } counter packets 3 bytes 180 drop comment \"link 0 1\"\n\t\tip saddr 192.0.2.11 tcp sport { 4001 } counter packets 0 bytes 0 drop comment \"link 0 1\"\n\t}\n}\n";
        assert_eq!(counters(text), vec![((0, 1), 3), ((0, 1), 0)]);
    }
}
