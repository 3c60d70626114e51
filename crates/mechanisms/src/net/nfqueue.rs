//! Link faults in netns mode: each degraded directed link's packets go
//! through a verdict loop in the host, since this kernel has no `netem`.
//!
//! For every node whose outbound links a fault degrades, the host
//! 1. journals the `ip filter` table of that node's namespace (`cleanup`
//!    deletes it; it also dies with the namespace);
//! 2. starts a verdict thread inside the namespace, bound to NFQUEUE 0
//!    through the `nfq` crate (netlink in pure Rust), copying only the
//!    first bytes of each packet (its addresses and ports);
//! 3. loads one `iptables-nft-restore` (atomic) with a rule per degraded
//!    link in the OUTPUT chain: `-d <peer> -j NFQUEUE --queue-num 0
//!    --queue-bypass`, or for a reset `-p tcp -d <peer> -j REJECT
//!    --reject-with tcp-reset` (every TCP packet on the link is answered
//!    with an RST: open connections are reset at their next send, new ones
//!    refused).
//!
//! Why iptables rather than nft: this kernel has nft's `reject` but not
//! its `queue` expression, while iptables-nft's NFQUEUE target works, and
//! its rules still form an nft table that `nft` lists and deletes. Why
//! `--queue-bypass`: should the verdict loop die, packets flow instead of
//! being black-holed.
//!
//! The loop asks the link's [`Shaper`] when each packet may go (latency,
//! jitter, token bucket: the same schedule as the proxies) or whether it
//! is lost (dropped: the kernel's TCP retransmits it, as after a real
//! loss); packets of one link leave in the order they came. Packets of
//! the host's own echo probe carry [`PROBE_MARK`] (SO_MARK on its sockets;
//! an accepted socket inherits its listener's) and are counted apart from
//! the system's.
//!
//! The fault is proven only when the loop saw every packet its rules
//! queued (each rule's counter, read at the lift, against the packets the
//! loop received): a loop that died, erred, or was bypassed (its socket
//! overflowing, fail-open) leaves the lease unproven, never green.
//!
//! Install and lift of one namespace set are serialised by its lock and
//! run to the end even when the request that started them is cancelled
//! (an install whose request is gone lifts itself under that lock), so the
//! set never returns to the pool with a fault half in force.
//!
//! Lift: held packets are released at once and new ones pass, the rules
//! are read (the reset rules' counters) and flushed, each loop drains what
//! is left and closes its queue, and then the table is deleted (deleting
//! it first would make the kernel drop every packet still queued).

use super::netns::{self, Namespaces, node_addr};
use super::proxy::Measure;
use super::shape::Shaper;
use super::{Grudge, cut_links};
use chaos_journal::journal::{Entry, Journal};
use chaos_model::contract::LinkFault;
use nfq::{Message, Queue, Verdict};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The queue number in every sender namespace (numbers are per namespace).
const QUEUE: u16 = 0;
/// Bytes of each packet copied to the loop: an IPv4 header of at most 60
/// bytes and the TCP header's ports and flags after it. The kernel keeps
/// the rest.
const COPY: u16 = 80;
/// Packets the kernel may hold for the loop before it lets more pass
/// (fail-open) rather than drop them.
const MAX_QUEUED: u32 = 16_384;
/// The table iptables-nft keeps its `filter` rules in.
const TABLE: [&str; 2] = ["ip", "filter"];
/// How long the loop sleeps when nothing came and nothing is due sooner:
/// the `nfq` crate gives no descriptor to poll, so it polls the socket
/// without blocking. The loop runs only while a link fault holds.
const IDLE: Duration = Duration::from_micros(500);

/// How long a stopping loop may keep draining (packets still arriving,
/// e.g. when the flush of its rules failed) before it gives up; what it
/// leaves passes (`--queue-bypass`) and the fault is unproven.
const STOP_DEADLINE: Duration = Duration::from_millis(200);
/// The mark of the host's probe sockets ("chos").
pub const PROBE_MARK: u32 = 0x6368_6f73;

const RUN: u8 = 0;
/// Release everything held and let new packets pass (the fault is lifting).
const PASS: u8 = 1;
const STOP: u8 = 2;

/// On reset links, how many of the host's probe connects were refused
/// (each one a SYN the REJECT rule counted).
#[derive(Default)]
struct Probes {
    refused: Mutex<HashMap<(u32, u32), u64>>,
}

/// One degraded directed link: its shaper (none on a reset link), and the
/// packets the verdict loop received for it.
#[derive(Clone)]
struct Link {
    from: u32,
    to: u32,
    shaper: Option<Arc<Shaper>>,
    seen: Arc<AtomicU64>,
}

/// A link fault in force over one cycle's namespaces. Dropping it lifts it.
pub struct Degraded {
    senders: Vec<Sender>,
    links: Vec<Link>,
    probes: Arc<Probes>,
    journal: Arc<Journal>,
    /// The namespace set's lock (see the module docs).
    lock: Arc<Mutex<()>>,
}

/// A node whose outbound links are degraded.
struct Sender {
    from: u32,
    netns: String,
    /// The journal entry of its table, until the table is deleted.
    seq: Option<u64>,
    verdicts: Option<Verdicts>,
}

/// A verdict loop: its mode and its thread (which returns what went wrong).
struct Verdicts {
    mode: Arc<AtomicU8>,
    thread: Option<std::thread::JoinHandle<String>>,
}

/// What a lifted fault did: each link (from, to, whether the system's
/// traffic met it, its figures); anything that went wrong; and why the
/// fault is not proven, if it is not (a loop died, erred or was bypassed).
pub struct Lifted {
    pub links: Vec<(u32, u32, bool, String)>,
    pub note: Option<String>,
    pub unproven: Option<String>,
}

/// What the measurement of links needs, apart from the fault's lock.
#[derive(Clone)]
pub struct Prober {
    links: Vec<Link>,
    probes: Arc<Probes>,
}

/// Whether this machine can degrade links in netns mode: the one command
/// the mechanism needs beyond `ip` and `nft`.
pub fn preflight() -> Result<(), String> {
    match std::process::Command::new("iptables-nft-restore")
        .arg("--version")
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "`iptables-nft-restore --version` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!(
            "iptables-nft-restore not found ({e}): link faults in netns mode queue packets with iptables' NFQUEUE target; install the iptables package, or pass --net proxy"
        )),
    }
}

impl Degraded {
    /// Degrade the directed links of `grudge` as `fault` says; `seed`
    /// drives jitter and loss. Returns the fault and what the mechanism
    /// showed; on an error, or when `cancelled` was set meanwhile (the
    /// request is gone), everything made is undone before it returns.
    pub fn install(
        ns: &Namespaces,
        grudge: &Grudge,
        fault: LinkFault,
        seed: u64,
        cancelled: &AtomicBool,
    ) -> Result<(Self, String), String> {
        let lock = ns.link_lock().clone();
        let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut d = Degraded {
            senders: Vec::new(),
            links: Vec::new(),
            probes: Arc::default(),
            journal: ns.journal().clone(),
            lock: lock.clone(),
        };
        match d.put_in_force(ns, grudge, fault, seed) {
            Ok(_) if cancelled.load(Ordering::Acquire) => {
                d.lift_all();
                Err("link: the request was cancelled while the fault was being installed; it was lifted at once".into())
            }
            Ok(evidence) => Ok((d, evidence)),
            Err(e) => {
                d.lift_all();
                Err(e)
            }
        }
    }

    /// The rules and loops of [`Degraded::install`], under its lock.
    fn put_in_force(
        &mut self,
        ns: &Namespaces,
        grudge: &Grudge,
        fault: LinkFault,
        seed: u64,
    ) -> Result<String, String> {
        let d = self;
        let pairs = cut_links(grudge);
        let mut by_sender: BTreeMap<u32, Vec<Link>> = BTreeMap::new();
        for (k, &(from, to)) in pairs.iter().enumerate() {
            let shaper = (!fault.reset).then(|| {
                Arc::new(Shaper::new(
                    fault,
                    seed.wrapping_add(k as u64)
                        .wrapping_mul(0x9e37_79b9_7f4a_7c15),
                ))
            });
            let link = Link {
                from,
                to,
                shaper,
                seen: Arc::default(),
            };
            d.links.push(link.clone());
            by_sender.entry(from).or_default().push(link);
        }
        let mut said = Vec::new();
        for (from, links) in by_sender {
            let netns = ns
                .node_name(from as usize)
                .ok_or_else(|| format!("link: no namespace for node {from}"))?
                .to_string();
            let seq = d
                .journal
                .record(Entry::Nft {
                    netns: netns.clone(),
                    table: TABLE.join(" "),
                })
                .map_err(|e| format!("link: journaling {netns}'s rules: {e:#}"))?;
            d.senders.push(Sender {
                from,
                netns: netns.clone(),
                seq: Some(seq),
                verdicts: None,
            });
            // The loop listens before any rule queues a packet to it.
            if !fault.reset {
                let v = Verdicts::start(&netns, &links)?;
                if let Some(s) = d.senders.last_mut() {
                    s.verdicts = Some(v);
                }
            }
            let mut rules = String::from("*filter\n:OUTPUT ACCEPT [0:0]\n");
            for l in &links {
                let peer = node_addr(l.to as usize);
                rules.push_str(&if fault.reset {
                    format!("-A OUTPUT -p tcp -d {peer}/32 -j REJECT --reject-with tcp-reset\n")
                } else {
                    format!(
                        "-A OUTPUT -d {peer}/32 -j NFQUEUE --queue-num {QUEUE} --queue-bypass\n"
                    )
                });
            }
            rules.push_str("COMMIT\n");
            restore(&netns, &rules)?;
            // Read back: the proof that each link's rule is in force.
            let listed = read_rules(&netns)?;
            let missing: Vec<u32> = links
                .iter()
                .filter(|l| {
                    !listed
                        .iter()
                        .any(|r| r.daddr == Some(node_addr(l.to as usize)))
                })
                .map(|l| l.to)
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "link: iptables in {netns} lists no rule for the link(s) to node(s) {missing:?} after loading them"
                ));
            }
            said.push(format!(
                "{netns}: {} {} rule(s)",
                links.len(),
                if fault.reset {
                    "REJECT tcp-reset"
                } else {
                    "NFQUEUE"
                }
            ));
        }
        let how = if fault.reset {
            String::new()
        } else {
            format!("; verdict loop(s) bound to queue {QUEUE}")
        };
        Ok(format!("iptables OUTPUT {}{how}", said.join(", ")))
    }

    /// What measuring the links needs (measured without holding the
    /// fault's lock).
    pub fn prober(&self) -> Prober {
        Prober {
            links: self.links.clone(),
            probes: self.probes.clone(),
        }
    }

    /// Lift the fault; returns what the system's traffic met on each link.
    pub fn lift(mut self) -> Lifted {
        let lock = self.lock.clone();
        let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
        self.lift_all()
    }

    /// The lift, its caller holding the lock.
    fn lift_all(&mut self) -> Lifted {
        let mut problems = Vec::new();
        for s in &self.senders {
            if let Some(v) = &s.verdicts {
                v.mode.store(PASS, Ordering::Release);
            }
        }
        // Rule counters by (from, to), read before the rules go. The rules
        // are flushed, not their table deleted: deleting the chain
        // unregisters its hook, and the kernel then drops every packet
        // still queued (nfqueue's hook-drop flush), which would be a loss
        // nobody asked for. With the rules gone nothing more is queued;
        // the loops release what they hold, and only then the table goes.
        let mut counted: HashMap<(u32, u32), u64> = HashMap::new();
        // Each rule's counter: a reset link's figures, and for a queued
        // link what the loop must have received (less means bypassed).
        let mut unproven = Vec::new();
        for s in &self.senders {
            if s.seq.is_none() {
                continue;
            }
            match read_rules(&s.netns) {
                Ok(rules) => {
                    for r in rules {
                        if let Some(l) = self
                            .links
                            .iter()
                            .find(|l| l.from == s.from && r.daddr == Some(node_addr(l.to as usize)))
                        {
                            counted.insert((l.from, l.to), r.packets);
                        }
                    }
                }
                Err(e) => unproven.push(format!("its rules could not be read: {e}")),
            }
            if let Err(e) = netns::nft(
                &s.netns,
                &["flush", "chain", TABLE[0], TABLE[1], "OUTPUT"],
                None,
            ) {
                problems.push(e);
            }
        }
        for s in &mut self.senders {
            if let Some(mut v) = s.verdicts.take() {
                v.mode.store(STOP, Ordering::Release);
                match v.thread.take().map(|t| t.join()) {
                    Some(Ok(said)) if !said.is_empty() => {
                        unproven.push(format!("the verdict loop in {}: {said}", s.netns))
                    }
                    Some(Err(_)) => {
                        unproven.push(format!("the verdict loop in {} panicked", s.netns))
                    }
                    _ => {}
                }
            }
        }
        for s in &mut self.senders {
            let Some(seq) = s.seq else { continue };
            match netns::nft(&s.netns, &["delete", "table", TABLE[0], TABLE[1]], None) {
                Ok(_) => {
                    self.journal.done(seq);
                    s.seq = None;
                }
                // Left journaled: `cleanup` (or the namespace's deletion)
                // removes it.
                Err(e) => problems.push(e),
            }
        }
        self.senders.clear();
        let refused = self
            .probes
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for l in self.links.iter().filter(|l| l.shaper.is_some()) {
            let queued = counted.get(&(l.from, l.to)).copied().unwrap_or(0);
            let seen = l.seen.load(Ordering::Relaxed);
            if queued > seen {
                unproven.push(format!(
                    "{}->{}: its rule queued {queued} packet(s) and the loop received {seen}: {} passed undegraded (the loop's socket overflowed, or it was gone)",
                    l.from,
                    l.to,
                    queued - seen
                ));
            }
        }
        let links = self
            .links
            .iter()
            .map(|l| match &l.shaper {
                Some(s) => (
                    l.from,
                    l.to,
                    s.counts.touched(),
                    format!(
                        "{} (the host's probe: {})",
                        s.counts.text_of("packet"),
                        s.probe.text_of("packet")
                    ),
                ),
                None => {
                    let total = counted.get(&(l.from, l.to)).copied().unwrap_or(0);
                    let probe = refused.get(&(l.from, l.to)).copied().unwrap_or(0);
                    let system = total.saturating_sub(probe);
                    (
                        l.from,
                        l.to,
                        system > 0,
                        format!(
                            "the reset rule counted {total} packet(s), {probe} of them the host's probe: 0 lost, {system} of the system's packet(s) answered with a TCP reset"
                        ),
                    )
                }
            })
            .collect();
        Lifted {
            links,
            note: (!problems.is_empty()).then(|| problems.join("; ")),
            unproven: (!unproven.is_empty()).then(|| unproven.join("; ")),
        }
    }
}

impl Drop for Degraded {
    fn drop(&mut self) {
        if !self.senders.is_empty() {
            let lock = self.lock.clone();
            let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
            self.lift_all();
        }
    }
}

impl Prober {
    /// Measure degraded link `from`→`to` with an echo of the host's own: a
    /// listener in node `to`'s namespace, a connection from node `from`'s,
    /// so the probe's packets meet the same rule and verdict loop as the
    /// system's (and, when the reverse link is degraded too, the reply
    /// meets that one).
    pub async fn measure(
        &self,
        ns: &Namespaces,
        from: u32,
        to: u32,
        pings: usize,
        bulk: usize,
        budget: Duration,
    ) -> Measure {
        let mut m = Measure {
            from,
            to,
            packets: true,
            ..Measure::default()
        };
        let lost_before = self.probe_lost(from, to);
        if let Err(e) = self.echo(ns, from, to, pings, bulk, budget, &mut m).await {
            match e.kind() {
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::UnexpectedEof => m.reset = true,
                _ => m.error = Some(format!("probe of {from}->{to}: {e}")),
            }
        }
        m.lost = self.probe_lost(from, to) - lost_before;
        m
    }

    #[allow(clippy::too_many_arguments, reason = "one probe's settings, named")]
    async fn echo(
        &self,
        ns: &Namespaces,
        from: u32,
        to: u32,
        pings: usize,
        bulk: usize,
        budget: Duration,
        m: &mut Measure,
    ) -> std::io::Result<()> {
        let started = Instant::now();
        let listener = ns.socket_in(to as usize).await?;
        mark(&listener)?;
        listener.bind(SocketAddr::from((node_addr(to as usize), 0)))?;
        let listener = listener.listen(4)?;
        let SocketAddr::V4(at) = listener.local_addr()? else {
            return Err(std::io::Error::other("echo listener is not IPv4"));
        };
        let server = Abort(tokio::spawn(async move {
            if let Ok((mut c, _)) = listener.accept().await {
                let _ = c.set_nodelay(true);
                let (mut r, mut w) = c.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        }));
        let client = ns.socket_in(from as usize).await?;
        mark(&client)?;
        let connected = tokio::time::timeout(budget, client.connect(SocketAddr::V4(at))).await;
        let mut c = match connected {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    *self
                        .probes
                        .refused
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry((from, to))
                        .or_default() += 1;
                }
                return Err(e);
            }
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connect to the echo at {at}: no answer in {budget:?}"),
                ));
            }
        };
        let r = super::degrade::ping_and_bulk(&mut c, pings, bulk, budget, started, m).await;
        drop(server);
        r
    }

    /// Packets of the host's probes dropped on `from`→`to` (its own link
    /// only: the reverse link's probe runs at the same time).
    fn probe_lost(&self, from: u32, to: u32) -> u64 {
        self.links
            .iter()
            .filter(|l| (l.from, l.to) == (from, to))
            .filter_map(|l| l.shaper.as_ref())
            .map(|s| s.probe.lost.load(Ordering::Relaxed))
            .sum()
    }
}

/// Mark a probe socket as the host's ([`PROBE_MARK`]).
fn mark(socket: &tokio::net::TcpSocket) -> std::io::Result<()> {
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::Mark, &PROBE_MARK)
        .map_err(std::io::Error::from)
}

/// A task aborted when dropped.
struct Abort(tokio::task::JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Load `rules` (an iptables-restore text) in namespace `netns`, replacing
/// its filter table.
fn restore(netns: &str, rules: &str) -> Result<(), String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns, "iptables-nft-restore"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("link: running iptables-nft-restore in {netns}: {e}"))?;
    if let Some(mut w) = child.stdin.take() {
        w.write_all(rules.as_bytes())
            .map_err(|e| format!("link: feeding iptables-nft-restore: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("link: waiting for iptables-nft-restore: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "link: iptables-nft-restore in {netns} failed: {} (the kernel needs NFQUEUE and REJECT support: xt_NFQUEUE, nfnetlink_queue; or pass --net proxy)",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The rules of `netns`'s filter table with their counters.
fn read_rules(netns: &str) -> Result<Vec<netns::RuleCounter>, String> {
    netns::table_rules(netns, TABLE[0], TABLE[1]).map_err(|e| format!("link: {e}"))
}

impl Verdicts {
    /// Start the verdict loop of namespace `netns` for `links` (all from
    /// one sender); returns once it is bound to the queue.
    fn start(netns: &str, links: &[Link]) -> Result<Self, String> {
        let path = std::path::PathBuf::from("/run/netns").join(netns);
        let file = std::fs::File::open(&path)
            .map_err(|e| format!("link: opening namespace {}: {e}", path.display()))?;
        let shapers: Vec<Queued> = links
            .iter()
            .filter_map(|l| {
                Some(Queued {
                    to: node_addr(l.to as usize),
                    shaper: l.shaper.clone()?,
                    seen: l.seen.clone(),
                })
            })
            .collect();
        let mode = Arc::new(AtomicU8::new(RUN));
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let thread = {
            let mode = mode.clone();
            let name = netns.to_string();
            std::thread::Builder::new()
                .name(format!("nfqueue {netns}"))
                .spawn(move || {
                    let netns = name;
                    let opened = nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| format!("entering namespace {netns}: {e}"))
                        .and_then(|()| open_queue(&netns));
                    match opened {
                        Ok(q) => {
                            let _ = ready_tx.send(Ok(()));
                            run(q, &shapers, &mode)
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            String::new()
                        }
                    }
                })
                .map_err(|e| format!("link: starting the verdict loop for {netns}: {e}"))?
        };
        let mut v = Verdicts {
            mode,
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(v),
            Ok(Err(e)) => {
                v.thread.take().map(|t| t.join());
                Err(format!("link: {e}"))
            }
            Err(_) => Err(format!("link: the verdict loop for {netns} died")),
        }
    }
}

/// Open queue [`QUEUE`] in the calling thread's namespace.
fn open_queue(netns: &str) -> Result<Queue, String> {
    let fail = |what: &str, e: std::io::Error| {
        format!(
            "{what} NFQUEUE {QUEUE} in {netns}: {e} (the kernel needs nfnetlink_queue; or pass --net proxy)"
        )
    };
    let mut q = Queue::open().map_err(|e| fail("opening", e))?;
    q.bind(QUEUE).map_err(|e| fail("binding", e))?;
    q.set_copy_range(QUEUE, COPY)
        .map_err(|e| fail("setting the copy range of", e))?;
    // A queue overflowing lets packets through rather than drop them: the
    // loss a user asked for is the only loss there is.
    q.set_fail_open(QUEUE, true)
        .map_err(|e| fail("setting fail-open on", e))?;
    q.set_queue_max_len(QUEUE, MAX_QUEUED)
        .map_err(|e| fail("sizing", e))?;
    q.set_nonblocking(true);
    Ok(q)
}

/// A queued link, as its verdict loop sees it.
struct Queued {
    to: Ipv4Addr,
    shaper: Arc<Shaper>,
    /// Packets received for it, in any mode.
    seen: Arc<AtomicU64>,
}

/// The verdict loop: until told to stop, take each queued packet, decide
/// when it goes (or that it is lost), and give verdicts when due. Returns
/// what went wrong, if anything (empty when nothing did).
fn run(mut q: Queue, links: &[Queued], mode: &AtomicU8) -> String {
    // Per link, the system's packets [0] and the probe's [1] each leave in
    // the order they came, apart: the probe pays from a bucket of its own,
    // and queued behind the system's packets it would measure their wait.
    let mut held: Vec<[VecDeque<(Instant, Message)>; 2]> =
        links.iter().map(|_| Default::default()).collect();
    let mut after = vec![[Instant::now(); 2]; links.len()];
    let mut errors = Errors::default();
    let mut quiet = 0;
    let mut stopping: Option<Instant> = None;
    loop {
        let m = mode.load(Ordering::Acquire);
        let now = Instant::now();
        for h in held.iter_mut().flatten() {
            while h.front().is_some_and(|(due, _)| m != RUN || *due <= now) {
                if let Some((_, msg)) = h.pop_front() {
                    give(&mut q, msg, Verdict::Accept, &mut errors);
                }
            }
        }
        let mut got = false;
        loop {
            let msg = match q.recv() {
                Ok(msg) => msg,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    errors.note(format!("receiving: {e}"));
                    break;
                }
            };
            got = true;
            let link = Header::parse(msg.get_payload())
                .and_then(|h| Some((links.iter().position(|l| l.to == h.dst)?, h)));
            if let Some((i, _)) = &link {
                links[*i].seen.fetch_add(1, Ordering::Relaxed);
            }
            let Some((i, h)) = link.filter(|_| m == RUN) else {
                give(&mut q, msg, Verdict::Accept, &mut errors);
                continue;
            };
            let s = &links[i].shaper;
            let probe = msg.get_nfmark() == PROBE_MARK;
            let counts = if probe { &s.probe } else { &s.counts };
            // The probe's handshake is not what it measures: a lost SYN
            // would cost the kernel's 1 s retransmit, most of a lease.
            let may_lose = !(probe && h.syn);
            let now = Instant::now();
            let k = usize::from(probe);
            match s.packet_due(now, h.len, after[i][k], counts, may_lose) {
                None => give(&mut q, msg, Verdict::Drop, &mut errors),
                // Nothing held before it: it goes now.
                Some(due) if due <= now && held[i][k].is_empty() => {
                    after[i][k] = due;
                    give(&mut q, msg, Verdict::Accept, &mut errors);
                }
                Some(due) => {
                    after[i][k] = due;
                    held[i][k].push_back((due, msg));
                }
            }
        }
        if m == STOP {
            // Done once the queue has been found empty twice, a
            // millisecond apart (a packet queued as the rules were flushed
            // still gets its verdict); bounded, should packets keep coming.
            let since = *stopping.get_or_insert_with(Instant::now);
            if !got && held.iter().flatten().all(VecDeque::is_empty) {
                quiet += 1;
                if quiet >= 2 {
                    return errors.text();
                }
            } else {
                quiet = 0;
            }
            if since.elapsed() > STOP_DEADLINE {
                errors.note(format!(
                    "packets still arriving {} ms after it was told to stop (were its rules flushed?)",
                    STOP_DEADLINE.as_millis()
                ));
                return errors.text();
            }
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        if !got {
            let next = held
                .iter()
                .flatten()
                .filter_map(|h| h.front().map(|(d, _)| *d))
                .min();
            let wait = next.map_or(IDLE, |d| {
                d.saturating_duration_since(Instant::now()).min(IDLE)
            });
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
    }
}

fn give(q: &mut Queue, mut msg: Message, verdict: Verdict, errors: &mut Errors) {
    msg.set_verdict(verdict);
    if let Err(e) = q.verdict(msg) {
        errors.note(format!("verdict: {e}"));
    }
}

/// Errors of a verdict loop: how many, and the first.
#[derive(Default)]
struct Errors {
    count: u64,
    first: Option<String>,
}

impl Errors {
    fn note(&mut self, e: String) {
        self.count += 1;
        self.first.get_or_insert(e);
    }

    fn text(&self) -> String {
        match &self.first {
            Some(e) => format!("{} error(s), the first: {e}", self.count),
            None => String::new(),
        }
    }
}

/// What the loop reads of a packet: its destination, length, and whether
/// it opens a TCP connection.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    dst: Ipv4Addr,
    /// The whole packet's length (the IPv4 total length), bytes.
    len: usize,
    /// A TCP segment with SYN set (a handshake's first two packets).
    syn: bool,
}

impl Header {
    fn parse(p: &[u8]) -> Option<Self> {
        if p.len() < 20 || p[0] >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(p[0] & 0x0f) * 4;
        let first_fragment = u16::from_be_bytes([p[6], p[7]]) & 0x1fff == 0;
        let syn = p[9] == 6 && first_fragment && p.get(ihl + 13).is_some_and(|f| f & 0x02 != 0);
        Some(Self {
            dst: Ipv4Addr::new(p[16], p[17], p[18], p[19]),
            len: usize::from(u16::from_be_bytes([p[2], p[3]])),
            syn,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 TCP SYN from 192.0.2.10:40000 to 192.0.2.11:8080, 60 bytes.
    fn syn() -> Vec<u8> {
        let mut p = vec![0u8; 80];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&60u16.to_be_bytes());
        p[6] = 0x40; // don't fragment
        p[9] = 6;
        p[12..16].copy_from_slice(&[192, 0, 2, 10]);
        p[16..20].copy_from_slice(&[192, 0, 2, 11]);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&8080u16.to_be_bytes());
        p[33] = 0x02; // SYN
        p
    }

    /// A packet the loop holds when the fault is lifted is released, not
    /// dropped: lifting first has the loop release what it holds, flushes
    /// the rules, lets the loop drain, and only then deletes the table
    /// (deleting it with packets still queued makes the kernel drop them;
    /// with that order the loop's verdicts then fail and this test fails).
    /// UDP, so no retransmit could hide a drop.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_packet_held_at_the_lift_is_released_not_dropped() {
        let state = tempfile::tempdir().unwrap();
        let journal =
            Arc::new(Journal::create(state.path(), "lift", &chaos_journal::NothingAbove).unwrap());
        let run = format!("q{}", std::process::id() % 100_000);
        let ns = Arc::new(Namespaces::create(2, &run, journal).await.unwrap());
        let udp = |i: usize| {
            let ns = ns.clone();
            async move {
                ns.udp_in(i, SocketAddr::from((node_addr(i), 0)))
                    .await
                    .unwrap()
            }
        };
        let (rx, tx) = (udp(1).await, udp(0).await);
        let to = rx.local_addr().unwrap();
        let fault = LinkFault {
            latency_ms: 5_000,
            jitter_ms: 0,
            loss: 0.0,
            bandwidth: None,
            reset: false,
        };
        let grudge = vec![vec![], vec![0]];
        let d = {
            let (ns, grudge) = (ns.clone(), grudge.clone());
            tokio::task::spawn_blocking(move || {
                Degraded::install(&ns, &grudge, fault, 1, &AtomicBool::new(false))
            })
            .await
            .unwrap()
            .unwrap()
            .0
        };
        let sent = Instant::now();
        tx.send_to(b"held", to).await.unwrap();
        // Held: nothing arrives while the fault holds.
        let mut buf = [0u8; 16];
        let early = tokio::time::timeout(Duration::from_millis(300), rx.recv_from(&mut buf)).await;
        assert!(early.is_err(), "the datagram was not held");
        let lifted = tokio::task::spawn_blocking(move || d.lift()).await.unwrap();
        assert_eq!(lifted.unproven, None, "{:?}", lifted.note);
        let got = tokio::time::timeout(Duration::from_secs(2), rx.recv_from(&mut buf))
            .await
            .expect("the held datagram was dropped at the lift")
            .unwrap();
        assert_eq!(&buf[..got.0], b"held");
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "released at the lift, not at its due time"
        );
        ns.destroy().await;
    }

    #[test]
    fn headers_are_read_from_the_copied_bytes() {
        let h = Header::parse(&syn()).unwrap();
        assert_eq!(
            h,
            Header {
                dst: Ipv4Addr::new(192, 0, 2, 11),
                len: 60,
                syn: true,
            }
        );
        let mut ack = syn();
        ack[33] = 0x10;
        assert!(!Header::parse(&ack).unwrap().syn);
        // A later fragment opens nothing; IPv6 and runts are not read.
        let mut frag = syn();
        frag[6..8].copy_from_slice(&0x0010u16.to_be_bytes());
        assert!(!Header::parse(&frag).unwrap().syn);
        let mut v6 = syn();
        v6[0] = 0x60;
        assert_eq!(Header::parse(&v6), None);
        assert_eq!(Header::parse(&syn()[..19]), None);
    }
}
