//! The network between nodes, and partitions as data.
//!
//! A partition is a [`Grudge`]: for each node, the nodes whose traffic it
//! drops. How a grudge is enforced depends on the [`Mode`]:
//! - `loopback`: nodes talk directly on 127.0.0.1; partitions are refused.
//! - `proxy` (no privileges): one TCP proxy per directed peer link on
//!   loopback ([`proxy`]); a grudge makes the proxy hold that link's traffic.
//! - `netns` (root): each node in its own network namespace on a bridge
//!   ([`netns`]); a grudge becomes one nftables ruleset on the bridge.

pub mod bypass;
mod degrade;
pub mod netns;
pub mod nfqueue;
pub use nfqueue::preflight as nfqueue_preflight;
mod nsthread;
pub mod proxy;
pub mod shape;
pub mod sock_diag;

use chaos_journal::journal::Journal;
pub mod ports;
pub mod remote;

use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;

pub use chaos_model::network::Mode;

/// For each node, the nodes whose traffic it drops.
pub type Grudge = Vec<Vec<u32>>;

/// Traffic from `from` to `to` is dropped under `grudge`.
pub fn blocked(grudge: &Grudge, from: u32, to: u32) -> bool {
    grudge
        .get(to as usize)
        .is_some_and(|row| row.contains(&from))
}

/// The directed links `grudge` cuts, (from, to), in order.
pub fn cut_links(grudge: &Grudge) -> Vec<(u32, u32)> {
    let mut links: Vec<(u32, u32)> = grudge
        .iter()
        .enumerate()
        .flat_map(|(to, row)| row.iter().map(move |&from| (from, to as u32)))
        .filter(|&(from, to)| from != to)
        .collect();
    links.sort_unstable();
    links.dedup();
    links
}

/// How one node is placed for one cycle.
#[derive(Clone, Debug)]
pub struct NodeAddr {
    /// The address the node listens on (`{host}` in its command).
    pub host: String,
    /// The port the node listens on (`{port}` in its command).
    pub listen_port: u16,
    /// Where chaos-host reaches it on loopback (`{port}` in client URLs).
    pub client_port: u16,
    /// A second port the node listens on, for systems with a separate peer
    /// protocol (`{peer_port}`, e.g. etcd's Raft port); 0 when unused.
    pub peer_port: u16,
    /// How this node reaches each other node, in node order without itself.
    pub peers: Vec<Peer>,
}

/// How one node reaches another.
#[derive(Clone, Debug)]
pub struct Peer {
    pub index: usize,
    pub host: String,
    /// The peer's `{port}` as this node must dial it (a proxy in `proxy` mode).
    pub port: u16,
    /// The peer's `{peer_port}` (never proxied; see [`Network::cycle`]).
    pub peer_port: u16,
}

/// The network of one campaign, shared by every cycle of it, including
/// cycles that run at the same time (`--parallel`): each cycle gets ports no
/// other running cycle holds and, in `netns` mode, a set of namespaces (hub,
/// bridge, nftables table, one namespace per node) no other running cycle
/// uses, so a partition in one cycle never touches another.
pub struct Network {
    kind: Kind,
    /// Names each remote cycle's nftables table.
    run_id: String,
    journal: Option<Arc<Journal>>,
    tables: std::sync::atomic::AtomicU64,
    /// Listen ports handed to cycles still running. Ports are chosen free,
    /// but a node binds its port only once spawned, so without this a cycle
    /// starting meanwhile could be handed the same port.
    in_use: Arc<std::sync::Mutex<std::collections::HashSet<u16>>>,
}

enum Kind {
    Loopback,
    Proxy,
    Netns(Arc<Pool>),
    Remote(Arc<chaos_ssh::Hosts>),
}

/// The namespace sets of a `netns` campaign: one per cycle running at once,
/// created up front; a set is lent to one cycle at a time.
struct Pool {
    nodes: u32,
    run_id: String,
    journal: Arc<Journal>,
    /// Sets no cycle holds.
    free: std::sync::Mutex<Vec<Arc<netns::Namespaces>>>,
    /// Every set, for `destroy`.
    all: std::sync::Mutex<Vec<Arc<netns::Namespaces>>>,
}

impl Pool {
    /// A new set; set 0 keeps the names of a run without `--parallel`.
    async fn grow(&self) -> anyhow::Result<Arc<netns::Namespaces>> {
        let k = self.all.lock().unwrap_or_else(|e| e.into_inner()).len();
        let id = match k {
            0 => self.run_id.clone(),
            k => format!("{}-s{k}", self.run_id),
        };
        let ns = Arc::new(netns::Namespaces::create(self.nodes, &id, self.journal.clone()).await?);
        self.all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ns.clone());
        Ok(ns)
    }

    /// A set no running cycle holds. Normally one of those made up front;
    /// should a finished cycle's set still be held (its last reference not
    /// yet dropped), a new one is made rather than waiting for it.
    async fn take(&self) -> anyhow::Result<Arc<netns::Namespaces>> {
        let free = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match free {
            Some(ns) => Ok(ns),
            None => self.grow().await,
        }
    }
}

/// What a running cycle holds of the campaign's network: given back when
/// its [`CycleNet`] is dropped.
struct Lease {
    ports: Vec<u16>,
    in_use: Arc<std::sync::Mutex<std::collections::HashSet<u16>>>,
    slot: Option<(Arc<netns::Namespaces>, Arc<Pool>)>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut in_use = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
        for p in &self.ports {
            in_use.remove(p);
            ports::release(*p);
        }
        if let Some((ns, pool)) = self.slot.take() {
            pool.free.lock().unwrap_or_else(|e| e.into_inner()).push(ns);
        }
    }
}

/// Most attempts at ports no running cycle holds before giving up.
const PORT_ATTEMPTS: usize = 100;

impl Network {
    /// The network of a campaign whose cycles run `slots` at a time.
    pub async fn create(
        mode: Mode,
        nodes: u32,
        run_id: &str,
        journal: Arc<Journal>,
        slots: usize,
        hosts: Option<Arc<chaos_ssh::Hosts>>,
    ) -> anyhow::Result<Self> {
        let for_network = journal.clone();
        let plain = |kind| Network {
            kind,
            run_id: run_id.to_string(),
            journal: Some(for_network.clone()),
            tables: Default::default(),
            in_use: Default::default(),
        };
        let kind = match (mode, hosts) {
            (_, Some(hosts)) => Kind::Remote(hosts),
            (Mode::Ssh, None) => {
                anyhow::bail!("network mode ssh: no hosts to place the nodes on ([hosts])")
            }
            (Mode::Loopback, None) => Kind::Loopback,
            (Mode::Proxy, None) => Kind::Proxy,
            (Mode::Netns, None) => {
                let pool = Arc::new(Pool {
                    nodes,
                    run_id: run_id.to_string(),
                    journal,
                    free: Default::default(),
                    all: Default::default(),
                });
                let network = plain(Kind::Netns(pool.clone()));
                for _ in 0..slots.max(1) {
                    // On failure `network` is dropped, and with it (through
                    // Namespaces' Drop) every set made so far.
                    let ns = pool.grow().await?;
                    pool.free
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(0, ns);
                }
                return Ok(network);
            }
        };
        Ok(plain(kind))
    }

    /// Plain loopback, for measurements outside a campaign.
    pub fn loopback() -> Self {
        Network {
            kind: Kind::Loopback,
            run_id: String::new(),
            journal: None,
            tables: Default::default(),
            in_use: Default::default(),
        }
    }

    /// `n` free ports no running cycle holds, reserved until the returned
    /// lease is dropped.
    fn reserve(&self, n: usize) -> anyhow::Result<Lease> {
        self.reserve_with(n, ports::choose)
    }

    /// [`Self::reserve`] with `choose` picking free ports.
    fn reserve_with(
        &self,
        n: usize,
        mut choose: impl FnMut(usize) -> anyhow::Result<Vec<u16>>,
    ) -> anyhow::Result<Lease> {
        for _ in 0..PORT_ATTEMPTS {
            let chosen = choose(n)?;
            let mut in_use = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
            if chosen.iter().any(|p| in_use.contains(p)) {
                // Claims on the ports not taken go back.
                for p in chosen.iter().filter(|p| !in_use.contains(p)) {
                    ports::release(*p);
                }
                continue;
            }
            in_use.extend(chosen.iter().copied());
            return Ok(Lease {
                ports: chosen,
                in_use: self.in_use.clone(),
                slot: None,
            });
        }
        anyhow::bail!(
            "no {n} free port(s) outside those of the cycles running now after {PORT_ATTEMPTS} attempts; run fewer cycles at once (--parallel)"
        )
    }

    /// Place `n` nodes for one cycle: choose ports (two per node when
    /// `peer_ports`), start proxies or forwarders. Proxies carry `{port}`
    /// links only: systems whose peers talk on `{peer_port}` are partitioned
    /// in `netns` mode (the campaign check refuses `proxy` for them).
    pub async fn cycle(&self, n: usize, peer_ports: bool) -> anyhow::Result<CycleNet> {
        let mut lease = self.reserve(if peer_ports { 2 * n } else { n })?;
        let all = lease.ports.clone();
        let (ports, extra) = all.split_at(n);
        let peer_port = |i: usize| extra.get(i).copied().unwrap_or(0);
        // Where each node listens and how node i dials node j's `{port}`.
        let place = |host: &dyn Fn(usize) -> String,
                     client_port: &dyn Fn(usize) -> u16,
                     dial: &dyn Fn(usize, usize) -> u16|
         -> Vec<NodeAddr> {
            (0..n)
                .map(|i| NodeAddr {
                    host: host(i),
                    listen_port: ports[i],
                    client_port: client_port(i),
                    peer_port: peer_port(i),
                    peers: (0..n)
                        .filter(|&j| j != i)
                        .map(|j| Peer {
                            index: j,
                            host: host(j),
                            port: dial(i, j),
                            peer_port: peer_port(j),
                        })
                        .collect(),
                })
                .collect()
        };
        // Loopback and proxy: nodes listen on 127.0.0.1 and chaos-host talks
        // to them directly; only how a node reaches its peers differs.
        let loopback = |_: usize| "127.0.0.1".to_string();
        let direct = |i: usize| ports[i];
        let inner = match &self.kind {
            Kind::Loopback => Inner::Loopback,
            Kind::Proxy => Inner::Proxy(proxy::Links::start(ports).await?),
            Kind::Netns(pool) => {
                let ns = pool.take().await?;
                lease.slot = Some((ns.clone(), pool.clone()));
                Inner::Netns {
                    forwarders: netns::Forwarders::start(ns.clone(), ports).await?,
                    ns,
                    degraded: Default::default(),
                }
            }
            Kind::Remote(hosts) => {
                let n = self
                    .tables
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Inner::Remote(remote::RemoteNet::new(
                    hosts.clone(),
                    format!("chaos_host_{}_{n}", self.run_id),
                    self.journal
                        .clone()
                        .expect("a campaign network has a journal"),
                ))
            }
        };
        let addrs = match &inner {
            Inner::Loopback => place(&loopback, &direct, &|_, j| ports[j]),
            Inner::Proxy(links) => place(&loopback, &direct, &|i, j| links.port(i, j)),
            Inner::Netns { forwarders, .. } => place(
                &|i| netns::node_addr(i).to_string(),
                &|i| forwarders.port(i),
                &|_, j| ports[j],
            ),
            // Each node listens on its host's address; chaos-host and peers
            // dial it there.
            Inner::Remote(r) => place(&|i| r.hosts.of(i).ip.to_string(), &direct, &|_, j| ports[j]),
        };
        Ok(CycleNet {
            addrs,
            inner,
            cut: Default::default(),
            generations: Default::default(),
            shaped: Default::default(),
            replaced: Default::default(),
            _lease: lease,
        })
    }

    /// Remove namespaces; idempotent (also done on drop).
    pub async fn destroy(&self) {
        if let Kind::Netns(pool) = &self.kind {
            let all = pool.all.lock().unwrap_or_else(|e| e.into_inner()).clone();
            for ns in all {
                ns.destroy().await;
            }
        }
    }
}

/// The network of one cycle.
pub struct CycleNet {
    pub addrs: Vec<NodeAddr>,
    inner: Inner,
    /// Generation of the cut in force (0: none). Cuts and heals are
    /// serialised by this lock, and a heal names the cut it ends, so ending
    /// an old lease never lifts a newer partition.
    cut: tokio::sync::Mutex<u64>,
    generations: std::sync::atomic::AtomicU64,
    /// Generation of the link fault in force (0: none), as `cut` is for
    /// partitions; numbered from `generations` too.
    shaped: tokio::sync::Mutex<u64>,
    /// What each cut replaced by a later one held until then, by
    /// generation, for its own lease's end to judge.
    replaced: std::sync::Mutex<std::collections::HashMap<u64, CutStats>>,
    /// Dropped last (fields drop in order): the ports and namespace set go
    /// back only once the proxies or forwarders above are gone.
    _lease: Lease,
}

enum Inner {
    Loopback,
    Proxy(proxy::Links),
    Netns {
        ns: Arc<netns::Namespaces>,
        /// Kept for the cycle: dropping it stops the forwarders.
        forwarders: netns::Forwarders,
        /// The link fault in force (its rules and verdict loops); lifted
        /// when taken out or dropped, so the namespace set goes back to
        /// the pool clean.
        degraded: std::sync::Mutex<Option<nfqueue::Degraded>>,
    },
    Remote(remote::RemoteNet),
}

/// What a partition did, read when it is healed.
#[derive(Debug, Default)]
pub struct CutStats {
    /// The mechanism confirmed the cut was in force.
    pub installed: bool,
    /// A later partition replaced this one before its lease ended.
    pub superseded: bool,
    /// Each cut directed link with what it blocked.
    pub links: Vec<LinkStats>,
    pub detail: String,
    /// What showed the cut not holding while it should have (read during
    /// the lease or at the heal): a table gone, rules missing, a link's
    /// traffic let through. Any is enough to leave the cut unproven.
    pub lapses: Vec<String>,
}

/// What one cut directed link blocked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub from: u32,
    pub to: u32,
    /// Packets dropped by its rule (netns) or connections + chunks held by
    /// its proxy (proxy); the host's own probe counts too.
    pub blocked: u64,
    /// Of `blocked`, the system's own: the host's probe apart (its one
    /// connection in proxy mode; its one SYN in netns and ssh modes, since
    /// the probe gives up after 300 ms, before the first retransmit at 1 s).
    pub system: u64,
    /// The figures behind `blocked`, e.g. "3 packet(s) (180 bytes)".
    pub figures: String,
}

impl CutStats {
    /// Whether the cut proved itself and was met by the system, over a
    /// lease held `held_ms`: installed; each cut directed link blocked
    /// something (a link that carried no traffic proves nothing, which is
    /// why the host probes each one); and the system's own traffic was
    /// blocked on at least one cut link (a cut the system never tried to
    /// cross tested nothing, however well it held the probe). The evidence
    /// names each link with its figures, and the links without any.
    /// Nothing may show the cut lapsing ([`CutStats::lapses`]).
    /// A superseded cut read at its replacement is judged the same way on
    /// what it held until then; one whose counters were never read is not
    /// verified.
    pub fn verdict(&self, held_ms: u64) -> (bool, String) {
        if !self.installed {
            // Never read (or its read failed): nothing shows it held.
            let mut text = self.detail.clone();
            if !self.lapses.is_empty() {
                text.push_str(&format!(
                    "; the cut did not hold: {}",
                    self.lapses.join("; ")
                ));
            }
            return (false, text);
        }
        let idle: Vec<String> = self
            .links
            .iter()
            .filter(|l| l.blocked == 0)
            .map(|l| format!("{}->{}", l.from, l.to))
            .collect();
        let mut text = self.detail.clone();
        if self.superseded {
            text.insert_str(0, "replaced by a later partition; until then ");
        }
        let system: u64 = self.links.iter().map(|l| l.system).sum();
        if self.links.is_empty() {
            text.push_str("; no cut link was reported");
        } else if !idle.is_empty() {
            text.push_str(&format!(
                "; no evidence on link(s) {}: nothing was seen blocked there",
                idle.join(", ")
            ));
        } else if system == 0 && self.lapses.is_empty() {
            text.push_str(&format!(
                "; the system sent nothing across the cut in {held_ms} ms: none of its own traffic on {} cut link(s), only the host's probe met it",
                self.links.len()
            ));
        }
        if !self.lapses.is_empty() {
            text.push_str(&format!(
                "; the cut did not hold: {}",
                self.lapses.join("; ")
            ));
        }
        (
            !self.links.is_empty() && idle.is_empty() && self.lapses.is_empty() && system > 0,
            text,
        )
    }

    /// The system's own traffic the cut blocked, over every link.
    pub fn system(&self) -> u64 {
        self.links.iter().map(|l| l.system).sum()
    }
}

/// What the host's probe of one cut link saw, right after the cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkProbe {
    pub from: u32,
    pub to: u32,
    /// The probe was held (proxy) or its SYN dropped by the link's rule
    /// (netns), and never reached the peer.
    pub held: bool,
    pub detail: String,
}

impl CycleNet {
    pub fn mode(&self) -> Mode {
        match self.inner {
            Inner::Loopback => Mode::Loopback,
            Inner::Proxy(_) => Mode::Proxy,
            Inner::Netns { .. } => Mode::Netns,
            Inner::Remote(_) => Mode::Ssh,
        }
    }

    /// The remote host node `i` runs on, if any.
    pub fn remote_host(&self, i: usize) -> Option<Arc<chaos_ssh::Host>> {
        match &self.inner {
            Inner::Remote(r) => Some(r.hosts.of(i).clone()),
            _ => None,
        }
    }

    /// Where chaos-host reaches node `i`'s client port.
    pub fn client_addr(&self, i: usize) -> SocketAddr {
        let a = &self.addrs[i];
        match &self.inner {
            Inner::Remote(r) => SocketAddr::new(r.hosts.of(i).ip, a.client_port),
            _ => SocketAddr::from(([127, 0, 0, 1], a.client_port)),
        }
    }

    /// The namespace node `i` must be spawned in, if any.
    pub fn netns_fd(&self, i: usize) -> Option<BorrowedFd<'_>> {
        match &self.inner {
            Inner::Netns { ns, .. } => Some(ns.node_fd(i)),
            _ => None,
        }
    }

    /// Put `grudge` in force (replacing any earlier one); returns its
    /// generation and what the mechanism reported.
    pub async fn partition(&self, grudge: &Grudge) -> Result<(u64, String), String> {
        let mut current = self.cut.lock().await;
        if *current != 0 {
            // Read before it goes: what the replaced cut held is its
            // lease's evidence.
            let held = self.lift().await;
            self.replaced
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(*current, held);
        }
        let installed = match &self.inner {
            Inner::Loopback => Err(
                "partition: nodes run on plain loopback, where traffic cannot be cut; set network.mode = \"proxy\" (no privileges) or \"netns\" (root) in the campaign, or pass --net".into(),
            ),
            Inner::Proxy(links) => Ok(links.cut(grudge)),
            Inner::Netns { ns, .. } => ns.cut(grudge).await,
            Inner::Remote(r) => r.cut(grudge, &self.addrs).await,
        };
        let generation = self
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        *current = generation;
        installed.map(|e| (generation, e))
    }

    /// Probe each directed link cut generation `generation` holds, so that
    /// a link without traffic of its own still shows evidence: in proxy
    /// mode a connection to the link's proxy, which must be held (and is
    /// never forwarded); in netns mode a TCP connect from inside the `from`
    /// node's namespace to the `to` node's listen port, which must not
    /// complete while the link's rule counter rises. Nothing reaches the
    /// system under test when the cut holds: a dropped SYN, a connection
    /// the proxy closes. Empty when that cut is no longer in force.
    pub async fn probe(&self, generation: u64, grudge: &Grudge) -> Vec<LinkProbe> {
        // Held across the probe so a heal or a new cut waits for it.
        let current = self.cut.lock().await;
        if *current != generation {
            return vec![];
        }
        let links = cut_links(grudge);
        match &self.inner {
            Inner::Loopback => vec![],
            Inner::Proxy(p) => p.probe(&links).await,
            Inner::Netns { ns, .. } => {
                let targets = links
                    .iter()
                    .map(|&(from, to)| {
                        let a = &self.addrs[to as usize];
                        (
                            from,
                            to,
                            SocketAddr::from((netns::node_addr(to as usize), a.listen_port)),
                        )
                    })
                    .collect::<Vec<_>>();
                ns.probe(&targets).await
            }
            Inner::Remote(r) => r.probe(&links, &self.addrs).await,
        }
    }

    /// Lift cut `generation` (any cut when `None`); returns what it did
    /// while in force.
    pub async fn heal(&self, generation: Option<u64>) -> CutStats {
        let mut current = self.cut.lock().await;
        if let Some(g) = generation
            && *current != g
        {
            let read = self
                .replaced
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&g);
            return match read {
                Some(held) => CutStats {
                    superseded: true,
                    ..held
                },
                None => CutStats {
                    superseded: true,
                    detail: "replaced by a later partition before its lease ended".into(),
                    ..CutStats::default()
                },
            };
        }
        *current = 0;
        self.lift().await
    }

    /// Lift the cut in force, reading its counters.
    async fn lift(&self) -> CutStats {
        match &self.inner {
            Inner::Loopback => CutStats::default(),
            Inner::Proxy(links) => links.heal(),
            Inner::Netns { ns, .. } => ns.heal().await,
            Inner::Remote(r) => r.heal().await,
        }
    }

    /// Lift the partition at once, without waiting (cancelled cycles).
    pub fn heal_now(&self) {
        match &self.inner {
            Inner::Loopback => {}
            Inner::Proxy(links) => {
                links.heal();
            }
            Inner::Netns { ns, .. } => ns.heal_now(),
            Inner::Remote(r) => r.heal_now(),
        }
    }

    /// Wait until node `i`'s listen ports (`{port}`, and `{peer_port}` when
    /// used) are free where it listens.
    pub async fn wait_free(&self, i: usize, deadline: Duration) -> anyhow::Result<()> {
        let a = &self.addrs[i];
        for port in [a.listen_port, a.peer_port] {
            if port == 0 {
                continue;
            }
            match &self.inner {
                Inner::Netns { ns, .. } => ns.wait_free(i, port, deadline).await?,
                Inner::Remote(r) => {
                    let host = r.hosts.of(i).clone();
                    tokio::task::spawn_blocking(move || host.wait_free(port, deadline))
                        .await?
                        .map_err(anyhow::Error::msg)?
                }
                _ => ports::wait_free(port, deadline).await?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link that blocked `blocked` packets, the host's probe's one SYN
    /// among them.
    fn link(from: u32, to: u32, blocked: u64) -> LinkStats {
        LinkStats {
            from,
            to,
            blocked,
            system: blocked.saturating_sub(1),
            figures: format!("{blocked} packet(s)"),
        }
    }

    fn stats(links: Vec<LinkStats>) -> CutStats {
        CutStats {
            installed: true,
            superseded: false,
            detail: "dropped: ".to_string()
                + &links
                    .iter()
                    .map(|l| format!("{}->{} {}", l.from, l.to, l.figures))
                    .collect::<Vec<_>>()
                    .join(", "),
            links,
            lapses: Vec::new(),
        }
    }

    /// Two cycles starting at once are never handed the same port, even
    /// when the free-port chooser offers it twice (it is free until the
    /// first cycle's node binds it); a finished cycle's ports are free
    /// for the next.
    #[test]
    fn running_cycles_never_share_a_port() {
        let net = Network::loopback();
        let mut offers = vec![
            vec![20_001, 20_002],
            vec![20_001, 20_002],
            vec![20_003, 20_004],
        ]
        .into_iter();
        let mut choose = |_| Ok(offers.next().unwrap());
        let a = net.reserve_with(2, &mut choose).unwrap();
        let b = net.reserve_with(2, &mut choose).unwrap();
        assert_eq!(a.ports, vec![20_001, 20_002]);
        assert_eq!(b.ports, vec![20_003, 20_004]);
        drop(a);
        let c = net.reserve_with(2, |_| Ok(vec![20_001, 20_002])).unwrap();
        assert_eq!(c.ports, vec![20_001, 20_002]);
        let e = net
            .reserve_with(2, |_| Ok(vec![20_003, 20_005]))
            .err()
            .expect("20003 is held by b")
            .to_string();
        assert!(e.contains("--parallel"), "{e}");
    }

    #[test]
    fn cut_links_are_directed_pairs() {
        // isolate(0) of three nodes: 0 drops 1 and 2, 1 and 2 drop 0.
        let g: Grudge = vec![vec![1, 2], vec![0], vec![0]];
        assert_eq!(cut_links(&g), vec![(0, 1), (0, 2), (1, 0), (2, 0)]);
        // One way: node 2 drops node 1's traffic only.
        assert_eq!(cut_links(&vec![vec![], vec![], vec![1]]), vec![(1, 2)]);
    }

    #[test]
    fn a_grudge_with_an_idle_link_is_not_verified() {
        // Plenty blocked in total, but 2->0 showed nothing: not proof that
        // 2->0 was cut.
        let s = stats(vec![
            link(0, 1, 40),
            link(0, 2, 35),
            link(1, 0, 12),
            link(2, 0, 0),
        ]);
        let (verified, text) = s.verdict(500);
        assert!(!verified, "{text}");
        assert!(text.contains("0->1 40 packet(s)"), "{text}");
        assert!(text.contains("no evidence on link(s) 2->0"), "{text}");
    }

    #[test]
    fn a_grudge_whose_every_link_shows_evidence_is_verified() {
        let s = stats(vec![
            link(0, 1, 1),
            link(0, 2, 3),
            link(1, 0, 1),
            link(2, 0, 2),
        ]);
        let (verified, text) = s.verdict(500);
        assert!(verified, "{text}");
        assert!(!text.contains("no evidence"), "{text}");
        assert!(!text.contains("sent nothing"), "{text}");
        assert!(text.contains("2->0 2 packet(s)"), "{text}");
    }

    #[test]
    fn a_cut_never_installed_or_without_links_is_not_verified() {
        let mut s = stats(vec![link(0, 1, 5)]);
        s.installed = false;
        assert!(!s.verdict(500).0);
        let s = stats(vec![]);
        let (verified, text) = s.verdict(500);
        assert!(!verified);
        assert!(text.contains("no cut link"), "{text}");
    }

    #[test]
    fn a_cut_whose_counters_were_never_read_is_not_verified() {
        let s = CutStats {
            superseded: true,
            detail: "replaced".into(),
            lapses: vec!["at +100 ms the table could not be read back".into()],
            ..CutStats::default()
        };
        let (verified, text) = s.verdict(500);
        assert!(!verified, "{text}");
        assert!(text.contains("the cut did not hold: at +100 ms"), "{text}");
    }

    /// The issue-23 case: every link held the host's probe, and the system
    /// sent nothing across (it dialled around the cut, or was quiet).
    #[test]
    fn a_cut_that_held_only_the_probe_is_not_verified() {
        let s = stats(vec![
            link(0, 1, 1),
            link(0, 2, 1),
            link(1, 0, 1),
            link(2, 0, 1),
        ]);
        let (verified, text) = s.verdict(500);
        assert!(!verified, "{text}");
        assert!(
            text.contains("the system sent nothing across the cut in 500 ms"),
            "{text}"
        );
        // One link with the system's own traffic is enough.
        let s = stats(vec![
            link(0, 1, 3),
            link(0, 2, 1),
            link(1, 0, 1),
            link(2, 0, 1),
        ]);
        assert!(s.verdict(500).0);
    }

    /// Traffic let through mid-lease unproves a cut whatever its counters.
    #[test]
    fn a_cut_that_lapsed_is_not_verified() {
        let mut s = stats(vec![link(0, 1, 30), link(1, 0, 20)]);
        s.lapses
            .push("link 0->1 let 4 packet(s) (240 bytes) through while cut".into());
        let (verified, text) = s.verdict(500);
        assert!(!verified, "{text}");
        assert!(
            text.contains("the cut did not hold: link 0->1 let 4 packet(s)"),
            "{text}"
        );
    }

    /// A cut replaced by a later one is judged on what it held until then.
    #[test]
    fn a_superseded_cut_read_at_its_replacement_is_judged_on_it() {
        let mut s = stats(vec![link(0, 1, 1)]);
        s.superseded = true;
        let (verified, text) = s.verdict(200);
        assert!(!verified, "{text}");
        assert!(
            text.starts_with("replaced by a later partition; until then"),
            "{text}"
        );
    }
}
