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
//! `nft -f` (atomic) in the hub and deleted on heal, one rule per directed
//! pair; each rule's counter is the evidence that its link dropped packets.

use super::nsthread::NsThread;
use super::{CutStats, Grudge, LinkProbe, LinkStats};
use anyhow::{Context, bail};
use chaos_journal::journal::{Entry, Journal};
use futures::FutureExt;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const TABLE: &str = "chaos_host";
/// How long a forwarder's upstream connect may take.
const FORWARD_CONNECT: Duration = Duration::from_secs(10);
/// Most nodes a campaign may have in this mode (192.0.2.10 .. .254).
pub const MAX_NODES: u32 = 200;

pub fn node_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 10 + i as u8)
}

/// A ruleset in force: its journal entry and the directed links (from, to)
/// it cuts, one rule each.
type Ruleset = (u64, Vec<(u32, u32)>);

/// The task reading a cut's table back, and the lapses it saw.
type CutWatch = (tokio::task::AbortHandle, Arc<Mutex<Vec<String>>>);

pub struct Namespaces {
    hub: String,
    nodes: Vec<String>,
    journal: Arc<Journal>,
    /// Journal sequence numbers of the namespaces, for `done`.
    created: Mutex<Vec<(String, u64)>>,
    /// The ruleset in force.
    table: Mutex<Option<Ruleset>>,
    /// The task reading the table back while a cut is in force, and what
    /// it saw go wrong (the table gone, rules missing, traffic let through).
    watch: Mutex<Option<CutWatch>>,
    /// Links of the ruleset in force whose rule counted the host's probe
    /// (one SYN each), told apart from the system's packets at the heal.
    probed: Mutex<std::collections::HashSet<(u32, u32)>>,
    hub_thread: NsThread,
    node_threads: Vec<NsThread>,
    node_files: Vec<std::fs::File>,
    link_lock: Arc<Mutex<()>>,
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

pub fn nft(netns: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
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
                chaos_journal::journal::undo(&Entry::Netns { name }, &chaos_journal::NothingAbove);
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
            probed: Mutex::default(),
            watch: Mutex::default(),
            hub_thread,
            node_threads,
            node_files,
            link_lock: Arc::default(),
        })
    }

    pub fn node_fd(&self, i: usize) -> BorrowedFd<'_> {
        self.node_files[i].as_fd()
    }

    /// Node `i`'s namespace name (`chs-<run>-n<i>`).
    pub fn node_name(&self, i: usize) -> Option<&str> {
        self.nodes.get(i).map(String::as_str)
    }

    /// The journal of the run these namespaces belong to.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// Serialises putting a link fault in force and lifting it
    /// ([`super::nfqueue`]): both run to their end even when the request
    /// that started them is gone.
    pub fn link_lock(&self) -> &Arc<Mutex<()>> {
        &self.link_lock
    }

    /// A UDP socket bound to `addr` inside node `i`'s namespace.
    #[cfg(test)]
    pub async fn udp_in(
        &self,
        i: usize,
        addr: SocketAddr,
    ) -> std::io::Result<tokio::net::UdpSocket> {
        let made = match self.node_threads.get(i) {
            Some(t) => t
                .run(move || std::net::UdpSocket::bind(addr))
                .await
                .unwrap_or_else(|| Err(std::io::Error::other("namespace thread is gone")))?,
            None => return Err(std::io::Error::other(format!("no namespace for node {i}"))),
        };
        made.set_nonblocking(true)?;
        tokio::net::UdpSocket::from_std(made)
    }

    /// A TCP socket made inside node `i`'s namespace (where it belongs
    /// for good: binding, connecting and listening then need no thread).
    pub async fn socket_in(&self, i: usize) -> std::io::Result<TcpSocket> {
        match self.node_threads.get(i) {
            Some(t) => t
                .run(TcpSocket::new_v4)
                .await
                .unwrap_or_else(|| Err(std::io::Error::other("namespace thread is gone"))),
            None => Err(std::io::Error::other(format!("no namespace for node {i}"))),
        }
    }

    /// Load `grudge` as one ruleset, replacing any earlier one.
    pub async fn cut(&self, grudge: &Grudge) -> Result<String, String> {
        self.heal().await;
        let mut rules = String::new();
        let mut witness = String::new();
        let links = super::cut_links(grudge);
        for &(from, to) in &links {
            let (a, b) = (node_addr(from as usize), node_addr(to as usize));
            rules.push_str(&format!("    ip saddr {a} ip daddr {b} counter drop\n"));
            witness.push_str(&format!("    ip saddr {a} ip daddr {b} counter\n"));
        }
        let pairs = links.len();
        // The witness chain sees only what the cut let through: nothing,
        // while the cut holds. The drops come first of all (bridge filter
        // priority -200): with br_netfilter loaded, a chain at priority 0
        // shares its hook's slot with br_netfilter's, whose re-injected
        // packets resume after it, and some of the cut's traffic went
        // through (the witness counted it: one packet of node 2's to node 0
        // in a 500 ms cut).
        let ruleset = format!(
            "table bridge {TABLE} {{\n  chain {CUT_CHAIN} {{\n    type filter hook forward priority -200; policy accept;\n{rules}  }}\n  chain {WITNESS_CHAIN} {{\n    type filter hook forward priority 100; policy accept;\n{witness}  }}\n}}\n"
        );
        let seq = self
            .journal
            .record(Entry::Nft {
                netns: self.hub.clone(),
                table: format!("bridge {TABLE}"),
            })
            .map_err(|e| format!("{e:#}"))?;
        *self.table.lock().unwrap_or_else(|e| e.into_inner()) = Some((seq, links));
        self.probed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let hub = self.hub.clone();
        // block_in_place: no await point, so a cancelled cut leaves no load landing after heal.
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
        self.watch_cut(pairs);
        Ok(format!(
            "nftables table bridge {TABLE} in {hub}: {pairs} drop rule(s) loaded, read back every {} ms while in force",
            WATCH_EVERY.as_millis()
        ))
    }

    /// Read the table back every [`WATCH_EVERY`] until the heal: a cut
    /// that stops holding mid-lease (its table deleted or flushed by
    /// someone else, a link's traffic let through) is seen when it happens,
    /// not only by the counters at the heal.
    fn watch_cut(&self, pairs: usize) {
        let lapses: Arc<Mutex<Vec<String>>> = Arc::default();
        let (hub, into) = (self.hub.clone(), lapses.clone());
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut passed_seen = std::collections::HashSet::new();
            let mut failed = 0;
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                let listed = cut_rules(&hub).await;
                let at = started.elapsed().as_millis();
                let lapse = |text: String| {
                    into.lock().unwrap_or_else(|e| e.into_inner()).push(text);
                };
                let rules = match listed {
                    Ok(rules) => {
                        failed = 0;
                        rules
                    }
                    // One failed read (a fork refused under load) is not
                    // yet a lapse; two in a row are.
                    Err(_) if failed == 0 => {
                        failed += 1;
                        continue;
                    }
                    Err(e) => {
                        lapse(format!("at +{at} ms the table could not be read back: {e}"));
                        return;
                    }
                };
                let in_force = rules.iter().filter(|r| r.chain == CUT_CHAIN).count();
                if in_force < pairs {
                    lapse(format!(
                        "at +{at} ms only {in_force} of {pairs} drop rule(s) were in force"
                    ));
                    return;
                }
                for r in rules
                    .iter()
                    .filter(|r| r.chain == WITNESS_CHAIN && r.packets > 0)
                {
                    if passed_seen.insert((r.saddr, r.daddr)) {
                        lapse(format!(
                            "at +{at} ms traffic from {} to {} was passing the cut ({} packet(s))",
                            r.saddr.map_or("?".into(), |a| a.to_string()),
                            r.daddr.map_or("?".into(), |a| a.to_string()),
                            r.packets
                        ));
                    }
                }
            }
        });
        *self.watch.lock().unwrap_or_else(|e| e.into_inner()) = Some((task.abort_handle(), lapses));
    }

    /// Stop reading the table back: what the reads saw go wrong.
    fn stop_watch(&self) -> Vec<String> {
        match self.watch.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some((task, lapses)) => {
                task.abort();
                std::mem::take(&mut *lapses.lock().unwrap_or_else(|e| e.into_inner()))
            }
            None => Vec::new(),
        }
    }

    /// Delete the ruleset, returning its counters, link by link.
    pub async fn heal(&self) -> CutStats {
        let mut lapses = self.stop_watch();
        let Some((seq, links)) = self.table.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return CutStats::default();
        };
        let hub = self.hub.clone();
        let (counters, deleted) = tokio::task::spawn_blocking(move || {
            let counters = table_rules(&hub, "bridge", TABLE);
            let deleted = nft(&hub, &["delete", "table", "bridge", TABLE], None);
            (counters, deleted)
        })
        .await
        .unwrap_or_else(|e| (Err(e.to_string()), Err(e.to_string())));
        self.journal.done(seq);
        let Ok(rules) = counters else {
            return CutStats {
                detail: match deleted {
                    Ok(_) => "table deleted; its counters could not be read".into(),
                    Err(e) => format!("could not delete the table: {e}"),
                },
                lapses,
                ..CutStats::default()
            };
        };
        for &(from, to) in &links {
            if let Some(w) = rule_in(&rules, WITNESS_CHAIN, from, to).filter(|w| w.packets > 0) {
                lapses.push(format!(
                    "link {from}->{to} let {} packet(s) ({} bytes) through while cut",
                    w.packets, w.bytes
                ));
            }
        }
        let probed = std::mem::take(&mut *self.probed.lock().unwrap_or_else(|e| e.into_inner()));
        let links: Vec<LinkStats> = links
            .into_iter()
            .map(|(from, to)| match rule_for(&rules, from, to) {
                Some(r) => {
                    let probe = u64::from(probed.contains(&(from, to)));
                    LinkStats {
                        from,
                        to,
                        blocked: r.packets,
                        system: r.packets.saturating_sub(probe),
                        figures: format!(
                            "{} packet(s) ({} bytes, {probe} the probe's)",
                            r.packets, r.bytes
                        ),
                    }
                }
                None => LinkStats {
                    from,
                    to,
                    blocked: 0,
                    system: 0,
                    figures: "no rule listed".into(),
                },
            })
            .collect();
        let total: u64 = links.iter().map(|l| l.blocked).sum();
        let each: Vec<String> = links
            .iter()
            .map(|l| format!("{}->{} {}", l.from, l.to, l.figures))
            .collect();
        CutStats {
            superseded: false,
            installed: true,
            detail: format!(
                "{total} packet(s) dropped: {}; {}",
                each.join(", "),
                match deleted {
                    Ok(_) => "table deleted".to_string(),
                    Err(e) => format!("could not delete the table: {e}"),
                }
            ),
            links,
            lapses,
        }
    }

    /// Probe each of `targets` (from, to, the `to` node's address and
    /// listen port): a TCP connect from inside node `from`'s namespace,
    /// which the link's rule must drop. Held when the connect has not
    /// completed (no SYN-ACK, no RST) and the rule's counter has risen; the
    /// sockets are then closed, which sends nothing from SYN_SENT.
    pub async fn probe(&self, targets: &[(u32, u32, SocketAddr)]) -> Vec<LinkProbe> {
        let started = Instant::now();
        // Sockets belong to the namespace they are created in; connecting
        // them from the runtime keeps the namespace threads free.
        let mut connects = Vec::new();
        for &(from, _, addr) in targets {
            let socket = match self.node_threads.get(from as usize) {
                Some(t) => t.run(TcpSocket::new_v4).await,
                None => None,
            };
            connects.push(match socket {
                Some(Ok(s)) => Ok(Box::pin(s.connect(addr))),
                Some(Err(e)) => Err(format!("probe socket: {e}")),
                None => Err(format!("no namespace thread for node {from}")),
            });
        }
        // The first poll sends the SYN; later ones see whether it was
        // answered. A completed connect (or refusal) means the SYN got
        // through: the link is not cut.
        let mut answered: Vec<Option<String>> = vec![None; targets.len()];
        let mut poll_all = |answered: &mut Vec<Option<String>>| {
            for (i, c) in connects.iter_mut().enumerate() {
                if answered[i].is_some() {
                    continue;
                }
                match c {
                    Err(e) => answered[i] = Some(e.clone()),
                    Ok(f) => match f.as_mut().now_or_never() {
                        None => {}
                        Some(Ok(_)) => {
                            answered[i] = Some("connected: the SYN was not dropped".into())
                        }
                        Some(Err(e)) => {
                            answered[i] = Some(format!("answered ({e}): the SYN was not dropped"))
                        }
                    },
                }
            }
        };
        poll_all(&mut answered);
        let deadline = started + PROBE_DEADLINE;
        let mut counted = vec![0u64; targets.len()];
        let mut reads = 0;
        let mut read_error: Option<String>;
        loop {
            let listed = cut_rules(&self.hub).await;
            reads += 1;
            match listed {
                Ok(rules) => {
                    for (i, &(from, to, _)) in targets.iter().enumerate() {
                        counted[i] = rule_for(&rules, from, to).map_or(0, |r| r.packets);
                    }
                    read_error = None;
                }
                Err(e) => read_error = Some(e),
            }
            poll_all(&mut answered);
            let waiting = (0..targets.len()).any(|i| answered[i].is_none() && counted[i] == 0);
            if !waiting || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let took = started.elapsed().as_micros();
        drop(connects);
        {
            let mut probed = self.probed.lock().unwrap_or_else(|e| e.into_inner());
            for (i, &(from, to, _)) in targets.iter().enumerate() {
                if answered[i].is_none() && counted[i] > 0 {
                    probed.insert((from, to));
                }
            }
        }
        targets
            .iter()
            .enumerate()
            .map(|(i, &(from, to, addr))| {
                let (held, detail) = match (&answered[i], counted[i], &read_error) {
                    (Some(why), _, _) => (false, format!("connect to {addr}: {why}")),
                    (None, 0, Some(e)) => (false, format!("rule counters unreadable: {e}")),
                    (None, 0, None) => (
                        false,
                        format!(
                            "connect to {addr} pending but its rule counted nothing within {} ms",
                            PROBE_DEADLINE.as_millis()
                        ),
                    ),
                    (None, n, _) => (
                        true,
                        format!(
                            "SYN to {addr} dropped (rule counter {n}, {reads} read(s), {took} µs)"
                        ),
                    ),
                };
                LinkProbe {
                    from,
                    to,
                    held,
                    detail,
                }
            })
            .collect()
    }

    /// Delete the ruleset without reading its counters (cancelled cycles).
    pub fn heal_now(&self) {
        self.stop_watch();
        if let Some((seq, _)) = self.table.lock().unwrap_or_else(|e| e.into_inner()).take() {
            chaos_journal::journal::undo(
                &Entry::Nft {
                    netns: self.hub.clone(),
                    table: format!("bridge {TABLE}"),
                },
                &chaos_journal::NothingAbove,
            );
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
    ///
    /// Only the socket is made on the hub's thread (a socket belongs to the
    /// namespace it is created in); the connect runs on the runtime. A
    /// blocking connect on that one thread serialised every forwarder: one
    /// SYN dropped by a node's full accept queue (Python's backlog of 5)
    /// held all other connections for its 1 s retransmit, and a 2 s cut
    /// failed those needing a second one (p50 1,026 ms, p99 2,045 ms on a
    /// ThreadingHTTPServer store, against 18 ms / 525 ms in proxy mode).
    async fn connect(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let socket = self
            .hub_thread
            .run(TcpSocket::new_v4)
            .await
            .ok_or_else(|| std::io::Error::other("hub namespace thread is gone"))??;
        // Bounded so a forwarder cannot pile up connects; long enough for
        // the kernel's own SYN retransmits (1 s, 3 s, 7 s) to play out as
        // they would between real hosts.
        match tokio::time::timeout(FORWARD_CONNECT, socket.connect(addr)).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connect to {addr} from the hub: no answer in {FORWARD_CONNECT:?}"),
            )),
        }
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
            chaos_journal::journal::undo(&Entry::Netns { name }, &chaos_journal::NothingAbove);
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

/// How long a probe waits for a link's rule to count its SYN.
const PROBE_DEADLINE: Duration = Duration::from_millis(300);

/// One rule's match and counter, from `nft -j list table`.
#[derive(Debug, PartialEq, Eq)]
pub struct RuleCounter {
    /// The chain holding the rule.
    pub chain: String,
    pub saddr: Option<Ipv4Addr>,
    pub daddr: Option<Ipv4Addr>,
    pub packets: u64,
    pub bytes: u64,
}

/// Every rule of an `nft -j` listing with its `ip saddr` / `ip daddr`
/// matches and counter.
pub fn rule_counters(v: &serde_json::Value) -> Vec<RuleCounter> {
    let items = v.get("nftables").and_then(|a| a.as_array());
    items
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let rule = item.get("rule")?;
            let chain = rule.get("chain").and_then(|c| c.as_str()).unwrap_or("");
            Some((chain.to_string(), rule.get("expr")?.as_array()?))
        })
        .map(|(chain, expr)| {
            let addr = |field: &str| {
                expr.iter().find_map(|e| {
                    let m = e.get("match")?;
                    let f = m.get("left")?.get("payload")?.get("field")?.as_str()?;
                    (f == field).then(|| m.get("right")?.as_str()?.parse().ok())?
                })
            };
            let counter = expr.iter().find_map(|e| e.get("counter"));
            let num = |k: &str| counter.and_then(|c| c.get(k)?.as_u64()).unwrap_or(0);
            RuleCounter {
                chain,
                saddr: addr("saddr"),
                daddr: addr("daddr"),
                packets: num("packets"),
                bytes: num("bytes"),
            }
        })
        .collect()
}

/// The rules of table `family name` in namespace `netns`, with their
/// counters (blocking: one `nft -j list table`).
pub fn table_rules(netns: &str, family: &str, name: &str) -> Result<Vec<RuleCounter>, String> {
    let listed = nft(netns, &["-j", "list", "table", family, name], None)?;
    let v: serde_json::Value = serde_json::from_str(&listed)
        .map_err(|e| format!("reading the rules of {family} {name} in {netns}: {e}"))?;
    Ok(rule_counters(&v))
}

/// [`table_rules`] of the cut's table in `hub`, off the runtime.
async fn cut_rules(hub: &str) -> Result<Vec<RuleCounter>, String> {
    let hub = hub.to_string();
    tokio::task::spawn_blocking(move || table_rules(&hub, "bridge", TABLE))
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
}

/// The rule that cuts traffic from node `from` to node `to`.
fn rule_for(rules: &[RuleCounter], from: u32, to: u32) -> Option<&RuleCounter> {
    rule_in(rules, CUT_CHAIN, from, to)
}

/// The rule of `chain` matching traffic from node `from` to node `to`.
fn rule_in<'a>(
    rules: &'a [RuleCounter],
    chain: &str,
    from: u32,
    to: u32,
) -> Option<&'a RuleCounter> {
    let (s, d) = (node_addr(from as usize), node_addr(to as usize));
    rules
        .iter()
        .find(|r| r.chain == chain && r.saddr == Some(s) && r.daddr == Some(d))
}

/// The chain whose rules drop the cut links' traffic.
const CUT_CHAIN: &str = "forward";
/// The chain behind it (a later priority on the same hook) whose rules only
/// count the cut links' traffic: whatever reaches it passed the cut.
const WITNESS_CHAIN: &str = "witness";
/// How often the table is read back while a cut is in force.
const WATCH_EVERY: Duration = Duration::from_millis(100);

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A connect that hangs on one node (its accept queue full, so its SYNs
    /// are dropped) must not hold a connect to another node: forwarders
    /// share the hub. Before the fix they queued behind one blocking
    /// connect on the hub's thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connect_stuck_on_one_node_does_not_hold_another() {
        let state = tempfile::tempdir().unwrap();
        let journal =
            Arc::new(Journal::create(state.path(), "fwd", &chaos_journal::NothingAbove).unwrap());
        let run = format!("t{}", std::process::id());
        let ns = Arc::new(Namespaces::create(2, &run, journal).await.unwrap());
        let listen = |i: usize, backlog: u32| {
            let ns = ns.clone();
            async move {
                let socket = ns.node_threads[i]
                    .run(TcpSocket::new_v4)
                    .await
                    .unwrap()
                    .unwrap();
                socket.bind(SocketAddr::from((node_addr(i), 0))).unwrap();
                socket.listen(backlog).unwrap()
            }
        };
        // Node 0 never accepts: fill its queue until a connect hangs.
        let full = listen(0, 1).await;
        let full_addr = full.local_addr().unwrap();
        let mut held = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_millis(300), ns.connect(full_addr)).await {
                Ok(c) => held.push(c.unwrap()),
                Err(_) => break,
            }
            assert!(held.len() < 64, "node 0's accept queue never filled");
        }
        let stuck = {
            let ns = ns.clone();
            tokio::spawn(async move { ns.connect(full_addr).await })
        };
        // Node 1 accepts at once.
        let open = listen(1, 128).await;
        let open_addr = open.local_addr().unwrap();
        let reached = tokio::time::timeout(Duration::from_secs(5), ns.connect(open_addr))
            .await
            .expect("the connect to node 1 waited for node 0's");
        reached.unwrap();
        assert!(
            !stuck.is_finished(),
            "node 0's connect ended before node 1's was made: connects were serialised"
        );
        stuck.abort();
        drop((held, full, open));
        ns.destroy().await;
    }

    #[test]
    fn rule_counters_are_read_per_directed_pair() {
        // `nft -j list table bridge chaos_host` (nftables 1.0.6), two rules.
        let listed = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "bridge", "name": "chaos_host", "handle": 1}}, {"chain": {"family": "bridge", "table": "chaos_host", "name": "forward", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}, {"rule": {"family": "bridge", "table": "chaos_host", "chain": "forward", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "192.0.2.10"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "192.0.2.11"}}, {"counter": {"packets": 7, "bytes": 420}}, {"drop": null}]}}, {"rule": {"family": "bridge", "table": "chaos_host", "chain": "forward", "handle": 3, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "192.0.2.11"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "192.0.2.10"}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}}]}"#;
        let rules = rule_counters(&serde_json::from_str(listed).unwrap());
        assert_eq!(rules.len(), 2);
        let r = rule_for(&rules, 0, 1).unwrap();
        assert_eq!((r.packets, r.bytes), (7, 420));
        assert_eq!(rule_for(&rules, 1, 0).unwrap().packets, 0);
        assert!(rule_for(&rules, 0, 2).is_none());
    }
}
