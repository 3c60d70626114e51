//! `proxy` mode: one TCP proxy per directed peer link, on loopback.
//!
//! Node i's peer list names, for each peer j, the proxy of link i→j, which
//! forwards to j. A grudge holds traffic on the links it cuts: new
//! connections are accepted but not forwarded, and bytes already flowing stop
//! being relayed, in both directions a grudge names. This is what dropped
//! packets do to TCP (the sender retransmits until the cut heals), without
//! needing privileges. The client traffic of chaos-host itself never crosses
//! a proxy.
//!
//! Each link counts what it held, so a cut proves itself link by link; the
//! host's probe connections (known by their source port) are counted,
//! answered with the link's decision, and closed, never forwarded.
//!
//! A link fault ([`Links::shape`]) degrades directed links instead: every
//! relayed chunk goes through a per-connection delay queue (a reader that
//! stamps each chunk with its due instant from [`super::shape`], a writer
//! that sleeps to it), so latency delays without serialising the stream.
//! A reset link RSTs its open connections (SO_LINGER 0) and every new one
//! while the fault holds. The host measures a degraded link with an echo
//! probe: a connection the link itself answers, never forwarded, whose
//! bytes cross the same delay queues and buckets as the system's.

use super::shape::{Counts, Shaper};
use super::{CutStats, Grudge, LinkProbe, LinkStats, blocked, cut_links};
use chaos_model::contract::LinkFault;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

/// What one link held while cut.
#[derive(Default)]
struct Held {
    connections: AtomicU64,
    /// Of `connections`, the host's own probes.
    probes: AtomicU64,
    chunks: AtomicU64,
    bytes: AtomicU64,
}

impl Held {
    fn reset(&self) {
        for c in [&self.connections, &self.probes, &self.chunks, &self.bytes] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// Probe connections awaited, by (from, to, the probe's source port); the
/// link answers whether it held the connection. `None`: the prober gave up
/// waiting, and the link, should it accept the connection late, still
/// closes it unforwarded (and uncounted).
type Probes = Arc<Mutex<HashMap<(u32, u32, u16), Option<oneshot::Sender<bool>>>>>;

/// How long a probe waits for its link to report it.
const PROBE_DEADLINE: Duration = Duration::from_millis(500);

/// Chunks one direction of a connection may have waiting in its delay
/// queue; a full queue stops reading, which is TCP's own back-pressure.
const QUEUE_CHUNKS: usize = 64;

/// The link faults in force: the shaper of directed link i→j at i * n + j.
#[derive(Default)]
pub struct Shaping {
    n: usize,
    links: Vec<Option<Arc<Shaper>>>,
}

impl Shaping {
    fn get(&self, from: u32, to: u32) -> Option<&Arc<Shaper>> {
        if from as usize >= self.n || to as usize >= self.n {
            return None;
        }
        self.links
            .get(from as usize * self.n + to as usize)
            .and_then(Option::as_ref)
    }

    fn resets(&self, from: u32, to: u32) -> bool {
        self.get(from, to).is_some_and(|s| s.fault.reset)
    }
}

/// Echo probes awaited, by (from, to, the probe's source port).
type Echoes = Arc<Mutex<std::collections::HashSet<(u32, u32, u16)>>>;

/// What the host's echo probe measured on one degraded link.
#[derive(Clone, Debug, Default)]
pub struct Measure {
    pub from: u32,
    pub to: u32,
    /// Round trips of one byte, µs, in order.
    pub rtt_us: Vec<u64>,
    /// Bytes/s of a bulk echo, when the link's rate is capped.
    pub throughput: Option<f64>,
    /// The link reset the probe's connection.
    pub reset: bool,
    /// Chunks of the probe the link lost (stalled), or packets the
    /// verdict loop dropped.
    pub lost: u64,
    /// `lost` counts packets (netns mode), not chunks.
    pub packets: bool,
    pub error: Option<String>,
}

pub struct Links {
    n: usize,
    /// Proxy port of link i→j at i * n + j.
    ports: Vec<u16>,
    grudge: watch::Sender<Grudge>,
    cut: AtomicBool,
    /// What link i→j held, at i * n + j.
    held: Vec<Arc<Held>>,
    probes: Probes,
    shaping: watch::Sender<Arc<Shaping>>,
    echoes: Echoes,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Links {
    /// Start a proxy for every directed link between nodes listening on
    /// `node_ports`.
    pub async fn start(node_ports: &[u16]) -> anyhow::Result<Self> {
        let n = node_ports.len();
        // Built first so an error below drops it, aborting the links
        // already started.
        let mut links = Self {
            n,
            ports: vec![0; n * n],
            grudge: watch::channel(Grudge::new()).0,
            cut: AtomicBool::new(false),
            held: (0..n * n).map(|_| Arc::new(Held::default())).collect(),
            probes: Probes::default(),
            shaping: watch::channel(Arc::new(Shaping::default())).0,
            echoes: Echoes::default(),
            tasks: Vec::new(),
        };
        for from in 0..n {
            for (to, &upstream) in node_ports.iter().enumerate() {
                if from == to {
                    continue;
                }
                let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
                links.ports[from * n + to] = listener.local_addr()?.port();
                let link = Link {
                    from: from as u32,
                    to: to as u32,
                    upstream,
                    grudge: links.grudge.subscribe(),
                    held: links.held[from * n + to].clone(),
                    held_back: links.held[to * n + from].clone(),
                    probes: links.probes.clone(),
                    shaping: links.shaping.subscribe(),
                    echoes: links.echoes.clone(),
                };
                links.tasks.push(tokio::spawn(link.serve(listener)));
            }
        }
        Ok(links)
    }

    /// Port of the proxy node `from` uses to reach node `to`.
    pub fn port(&self, from: usize, to: usize) -> u16 {
        self.ports[from * self.n + to]
    }

    pub fn cut(&self, grudge: &Grudge) -> String {
        for h in &self.held {
            h.reset();
        }
        self.grudge.send_replace(grudge.clone());
        self.cut.store(true, Ordering::Relaxed);
        let links = cut_links(grudge)
            .into_iter()
            .filter(|&(f, t)| (f as usize) < self.n && (t as usize) < self.n)
            .count();
        format!("proxy: {links} directed link(s) held")
    }

    /// Open one connection to each of `links`' proxies and wait for each
    /// link to say it held it.
    pub async fn probe(&self, links: &[(u32, u32)]) -> Vec<LinkProbe> {
        let probes = links.iter().map(|&(from, to)| async move {
            let started = Instant::now();
            let (held, detail) = match self.probe_link(from, to).await {
                Ok(true) => (true, "held".to_string()),
                Ok(false) => (false, "not held: the proxy would have forwarded it".into()),
                Err(e) => (false, e),
            };
            LinkProbe {
                from,
                to,
                held,
                detail: format!("{detail} ({} µs)", started.elapsed().as_micros()),
            }
        });
        futures::future::join_all(probes).await
    }

    async fn probe_link(&self, from: u32, to: u32) -> Result<bool, String> {
        if from as usize >= self.n || to as usize >= self.n || from == to {
            return Err(format!("no link {from}->{to}"));
        }
        let port = self.port(from as usize, to as usize);
        let socket = TcpSocket::new_v4().map_err(|e| format!("probe socket: {e}"))?;
        socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .map_err(|e| format!("probe bind: {e}"))?;
        let source = socket
            .local_addr()
            .map_err(|e| format!("probe address: {e}"))?
            .port();
        let (tx, rx) = oneshot::channel();
        let key = (from, to, source);
        self.probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, Some(tx));
        // Unregistered however this ends (a cancelled call included).
        let _unregister = Unregister(&self.probes, key);
        let answer = tokio::time::timeout(PROBE_DEADLINE, async {
            let _conn = socket
                .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
                .await
                .map_err(|e| format!("probe connect to proxy port {port}: {e}"))?;
            rx.await
                .map_err(|_| format!("proxy port {port} closed the probe unanswered"))
        })
        .await;
        answer.unwrap_or_else(|_| {
            Err(format!(
                "proxy port {port} did not report the probe within {} ms",
                PROBE_DEADLINE.as_millis()
            ))
        })
    }

    pub fn heal(&self) -> CutStats {
        if !self.cut.swap(false, Ordering::Relaxed) {
            return CutStats::default();
        }
        let grudge = self.grudge.send_replace(Grudge::new());
        let mut total = (0, 0, 0);
        let links: Vec<LinkStats> = cut_links(&grudge)
            .into_iter()
            .filter(|&(f, t)| (f as usize) < self.n && (t as usize) < self.n)
            .map(|(from, to)| {
                let h = &self.held[from as usize * self.n + to as usize];
                let c = h.connections.load(Ordering::Relaxed);
                let p = h.probes.load(Ordering::Relaxed);
                let k = h.chunks.load(Ordering::Relaxed);
                let b = h.bytes.load(Ordering::Relaxed);
                total = (total.0 + c, total.1 + k, total.2 + b);
                LinkStats {
                    from,
                    to,
                    blocked: c + k,
                    // A probe is never forwarded: it holds no chunk.
                    system: c.saturating_sub(p) + k,
                    figures: format!("{c} connection(s) ({p} probe), {k} chunk(s) ({b} bytes)"),
                }
            })
            .collect();
        let (c, k, b) = total;
        let each: Vec<String> = links
            .iter()
            .map(|l| format!("{}->{} {}", l.from, l.to, l.figures))
            .collect();
        CutStats {
            superseded: false,
            installed: true,
            detail: format!(
                "proxy held {c} new connection(s) and {k} chunk(s) ({b} bytes) on cut links: {}",
                each.join("; ")
            ),
            links,
            lapses: Vec::new(),
        }
    }
}

impl Links {
    /// Put `fault` in force on the directed links of `grudge` (replacing
    /// any link fault in force); `seed` drives jitter and loss.
    pub fn shape(&self, grudge: &Grudge, fault: LinkFault, seed: u64) -> String {
        let mut links = vec![None; self.n * self.n];
        let pairs: Vec<(u32, u32)> = cut_links(grudge)
            .into_iter()
            .filter(|&(f, t)| (f as usize) < self.n && (t as usize) < self.n)
            .collect();
        for (k, &(from, to)) in pairs.iter().enumerate() {
            links[from as usize * self.n + to as usize] = Some(Arc::new(Shaper::new(
                fault,
                seed.wrapping_add(k as u64)
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15),
            )));
        }
        self.shaping
            .send_replace(Arc::new(Shaping { n: self.n, links }));
        format!("proxy: {} directed link(s) degraded", pairs.len())
    }

    /// Lift the link fault in force; returns each degraded link (from, to)
    /// with what the system's traffic met there.
    pub fn unshape(&self) -> Vec<(u32, u32, Arc<Shaper>)> {
        let old = self.shaping.send_replace(Arc::new(Shaping::default()));
        let mut out = Vec::new();
        for from in 0..old.n as u32 {
            for to in 0..old.n as u32 {
                if let Some(s) = old.get(from, to) {
                    out.push((from, to, s.clone()));
                }
            }
        }
        out
    }

    /// Measure degraded link `from`→`to` with an echo the link answers
    /// itself: up to `pings` one-byte round trips (stopping once `budget`
    /// is spent), then, when `bulk` > 0, the time `bulk` bytes take to
    /// come back. The echo crosses this link's shaper forward and the
    /// reverse link's back, as a request and its reply on the system's
    /// connections do.
    pub async fn measure(
        &self,
        from: u32,
        to: u32,
        pings: usize,
        bulk: usize,
        budget: Duration,
    ) -> Measure {
        let mut m = Measure {
            from,
            to,
            ..Measure::default()
        };
        let lost_before = self.probe_lost(from, to);
        if let Err(e) = self.echo(from, to, pings, bulk, budget, &mut m).await {
            match e.kind() {
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof => {
                    m.reset = true
                }
                _ => m.error = Some(format!("probe of {from}->{to}: {e}")),
            }
        }
        m.lost = self.probe_lost(from, to) - lost_before;
        m
    }

    /// Chunks of the host's probes lost on link `from`→`to` and its
    /// reverse so far.
    fn probe_lost(&self, from: u32, to: u32) -> u64 {
        let shaping = self.shaping.borrow();
        [shaping.get(from, to), shaping.get(to, from)]
            .into_iter()
            .flatten()
            .map(|s| s.probe.lost.load(Ordering::Relaxed))
            .sum()
    }

    async fn echo(
        &self,
        from: u32,
        to: u32,
        pings: usize,
        bulk: usize,
        budget: Duration,
        m: &mut Measure,
    ) -> std::io::Result<()> {
        let started = Instant::now();
        if from as usize >= self.n || to as usize >= self.n || from == to {
            return Err(std::io::Error::other(format!("no link {from}->{to}")));
        }
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let key = (from, to, socket.local_addr()?.port());
        self.echoes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key);
        let port = self.port(from as usize, to as usize);
        let mut c = socket
            .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .await?;
        super::degrade::ping_and_bulk(&mut c, pings, bulk, budget, started, m).await
    }
}

/// Marks a probe no longer awaited when dropped (the link removes the
/// entry when it meets the connection; the map dies with the cycle's
/// links).
struct Unregister<'a>(&'a Probes, (u32, u32, u16));

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        if let Some(waiting) = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&self.1)
        {
            *waiting = None;
        }
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct Link {
    from: u32,
    to: u32,
    upstream: u16,
    grudge: watch::Receiver<Grudge>,
    /// What this link held (traffic `from` → `to`)...
    held: Arc<Held>,
    /// ...and what the reverse link held of the replies on this link's
    /// connections (traffic `to` → `from`).
    held_back: Arc<Held>,
    probes: Probes,
    shaping: watch::Receiver<Arc<Shaping>>,
    echoes: Echoes,
}

impl Link {
    async fn serve(self, listener: TcpListener) {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            // A transient error (EMFILE, aborted handshake) must not close the
            // link for the rest of the cycle.
            let client = match listener.accept().await {
                Ok((c, peer)) => {
                    if self.answer_echo(peer, &c) {
                        let (from, to, shaping) = (self.from, self.to, self.shaping.clone());
                        conns.spawn(echo(c, from, to, shaping));
                        continue;
                    }
                    if self.answer_probe(peer) {
                        continue; // dropped: a probe is never forwarded
                    }
                    if let Some(s) = self.shaping.borrow().get(self.from, self.to)
                        && s.fault.reset
                    {
                        // A reset link refuses new connections with a RST.
                        s.counts.resets.fetch_add(1, Ordering::Relaxed);
                        let _ = c.set_zero_linger();
                        continue;
                    }
                    c
                }
                Err(e) => {
                    tracing::warn!("proxy link {}->{}: accept: {e}", self.from, self.to);
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let (from, to, upstream) = (self.from, self.to, self.upstream);
            let mut grudge = self.grudge.clone();
            let held = self.held.clone();
            let held_back = self.held_back.clone();
            let shaping = self.shaping.clone();
            conns.spawn(async move {
                if blocked(&grudge.borrow(), from, to) {
                    held.connections.fetch_add(1, Ordering::Relaxed);
                }
                // A SYN into a cut link goes nowhere until the cut heals.
                if grudge.wait_for(|g| !blocked(g, from, to)).await.is_err() {
                    return;
                }
                let Ok(mut up) = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream)).await else {
                    return; // peer down: the client sees the connection close
                };
                let mut client = client;
                let _ = client.set_nodelay(true);
                let _ = up.set_nodelay(true);
                let reset = {
                    let (cr, cw) = client.split();
                    let (ur, uw) = up.split();
                    let fwd = pump(cr, uw, (from, to), grudge.clone(), held, shaping.clone());
                    let back = pump(ur, cw, (to, from), grudge, held_back, shaping.clone());
                    let mut watch = shaping;
                    tokio::select! {
                        _ = async { tokio::join!(fwd, back) } => None,
                        // A link fault with `reset` RSTs this connection.
                        Ok(s) = watch.wait_for(|s| s.resets(from, to)) => s.get(from, to).cloned(),
                    }
                };
                // The halves are dropped: the sockets close with a RST.
                if let Some(s) = reset {
                    s.counts.resets.fetch_add(1, Ordering::Relaxed);
                    let _ = client.set_zero_linger();
                    let _ = up.set_zero_linger();
                }
            });
            while conns.try_join_next().is_some() {}
        }
    }

    /// If `peer` is one of the host's echo probes of this link, to be
    /// answered by [`echo`] (or, on a reset link, reset and counted).
    fn answer_echo(&self, peer: SocketAddr, c: &TcpStream) -> bool {
        if !self
            .echoes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(self.from, self.to, peer.port()))
        {
            return false;
        }
        if let Some(s) = self.shaping.borrow().get(self.from, self.to)
            && s.fault.reset
        {
            s.probe.resets.fetch_add(1, Ordering::Relaxed);
            let _ = c.set_zero_linger();
        }
        true
    }

    /// If `peer` is one of the host's probes of this link: count it as
    /// held when the link is cut, tell the prober, and return true.
    fn answer_probe(&self, peer: SocketAddr) -> bool {
        let waiting = self
            .probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(self.from, self.to, peer.port()));
        let Some(waiting) = waiting else {
            return false;
        };
        let Some(tx) = waiting else {
            return true; // abandoned by its prober: closed, not counted
        };
        let held = blocked(&self.grudge.borrow(), self.from, self.to);
        if held {
            self.held.connections.fetch_add(1, Ordering::Relaxed);
            self.held.probes.fetch_add(1, Ordering::Relaxed);
        }
        let _ = tx.send(held);
        true
    }
}

/// Serve one of the host's echo probes of link `from`→`to`: what it
/// sends comes back, through the link's shaper one way and the reverse
/// link's the other (counted as the probe's, not the system's). A reset
/// link closed it already (zero linger set, dropped here).
async fn echo(mut c: TcpStream, from: u32, to: u32, shaping: watch::Receiver<Arc<Shaping>>) {
    if shaping.borrow().resets(from, to) {
        return;
    }
    let _ = c.set_nodelay(true);
    let (r, w) = c.split();
    // Forward through this link's shaper into a loop back through the
    // reverse link's: two delay queues in series, as a request and its reply.
    let (tx, mut rx) = mpsc::channel::<(Option<Instant>, Vec<u8>)>(QUEUE_CHUNKS);
    let fwd = async {
        shaped_reader(r, (from, to), &shaping, None, &tx, true).await;
        drop(tx);
    };
    let (btx, brx) = mpsc::channel::<(Option<Instant>, Vec<u8>)>(QUEUE_CHUNKS);
    let turn = async {
        let mut after = Instant::now();
        while let Some((due, bytes)) = rx.recv().await {
            if let Some(d) = due {
                tokio::time::sleep_until(d.into()).await;
            }
            let now = Instant::now();
            let shaper = shaping.borrow().get(to, from).cloned();
            let due = shaper.map(|s| {
                after = s.due(now, bytes.len(), after, Some(&s.probe));
                after
            });
            if btx.send((due, bytes)).await.is_err() {
                break;
            }
        }
        drop(btx);
    };
    tokio::join!(fwd, turn, writer(w, brx));
}

/// Relay bytes from `r` to `w` (traffic `dir` = (from, to)), holding them
/// while the grudge cuts that direction and delaying them as the link
/// fault of that direction says.
async fn pump<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    r: R,
    w: W,
    dir: (u32, u32),
    grudge: watch::Receiver<Grudge>,
    held: Arc<Held>,
    shaping: watch::Receiver<Arc<Shaping>>,
) {
    let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
    let read = async {
        shaped_reader(r, dir, &shaping, Some((grudge, held)), &tx, false).await;
        drop(tx);
    };
    tokio::join!(read, writer(w, rx));
}

/// Read chunks from `r` and queue each with its due instant (none when
/// the direction is not degraded), holding while `cut` says so.
async fn shaped_reader<R: AsyncRead + Unpin>(
    mut r: R,
    (from, to): (u32, u32),
    shaping: &watch::Receiver<Arc<Shaping>>,
    mut cut: Option<(watch::Receiver<Grudge>, Arc<Held>)>,
    tx: &mpsc::Sender<(Option<Instant>, Vec<u8>)>,
    probe: bool,
) {
    const MAX: usize = 16 * 1024;
    let mut buf = vec![0u8; MAX];
    let mut after = Instant::now();
    loop {
        let limit = shaping
            .borrow()
            .get(from, to)
            .map_or(MAX, |s| s.chunk_limit(MAX));
        let n = match r.read(&mut buf[..limit]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((grudge, held)) = &mut cut {
            if blocked(&grudge.borrow(), from, to) {
                held.chunks.fetch_add(1, Ordering::Relaxed);
                held.bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            if grudge.wait_for(|g| !blocked(g, from, to)).await.is_err() {
                break;
            }
        }
        let now = Instant::now();
        let shaper = shaping.borrow().get(from, to).cloned();
        let due = shaper.map(|s| {
            let counts: &Counts = if probe { &s.probe } else { &s.counts };
            after = s.due(now, n, after, Some(counts));
            after
        });
        if tx.send((due, buf[..n].to_vec())).await.is_err() {
            break;
        }
    }
}

/// Write queued chunks to `w`, each once it is due; shut `w` down when
/// the queue closes.
async fn writer<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::Receiver<(Option<Instant>, Vec<u8>)>,
) {
    while let Some((due, bytes)) = rx.recv().await {
        if let Some(d) = due {
            tokio::time::sleep_until(d.into()).await;
        }
        if w.write_all(&bytes).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two nodes' listeners and the proxies between them.
    async fn two_nodes() -> (TcpListener, TcpListener, Links) {
        let up0 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let up1 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let ports = [
            up0.local_addr().unwrap().port(),
            up1.local_addr().unwrap().port(),
        ];
        let links = Links::start(&ports).await.unwrap();
        (up0, up1, links)
    }

    #[tokio::test]
    async fn a_probe_is_held_counted_on_its_link_and_never_forwarded() {
        let (up0, up1, links) = two_nodes().await;
        // Node 0 drops node 1's traffic: only link 1->0 is cut.
        links.cut(&vec![vec![1], vec![]]);
        let probed = links.probe(&[(1, 0), (0, 1)]).await;
        assert!(probed[0].held, "{probed:?}");
        assert!(!probed[1].held, "an uncut link does not hold: {probed:?}");
        let stats = links.heal();
        assert_eq!(stats.links.len(), 1);
        let l = &stats.links[0];
        assert_eq!((l.from, l.to, l.blocked), (1, 0, 1), "{l:?}");
        assert!(l.figures.contains("(1 probe)"), "{l:?}");
        // The probe is the host's: none of the system's traffic met the cut.
        assert_eq!(l.system, 0, "{l:?}");
        let (verified, text) = stats.verdict(500);
        assert!(
            !verified && text.contains("the system sent nothing"),
            "{text}"
        );
        // Neither probe reached a node: the first connection node 0 and
        // node 1 accept is a real one, carrying its byte.
        for (from, to, up) in [(1, 0, &up0), (0, 1, &up1)] {
            let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, links.port(from, to)))
                .await
                .unwrap();
            c.write_all(b"x").await.unwrap();
            let (mut s, _) = up.accept().await.unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await.unwrap();
            assert_eq!(&b, b"x");
        }
    }

    /// A connection of the system's own held by the cut counts as the
    /// system's, apart from the probe's, and the cut is then verified.
    #[tokio::test]
    async fn a_held_system_connection_counts_apart_from_the_probe() {
        let (_up0, _up1, links) = two_nodes().await;
        links.cut(&vec![vec![1], vec![]]);
        assert!(links.probe(&[(1, 0)]).await[0].held);
        // Node 1 dials node 0 through its proxy while cut: held.
        let _system = TcpStream::connect((Ipv4Addr::LOCALHOST, links.port(1, 0)))
            .await
            .unwrap();
        let held = &links.held[links.n];
        for _ in 0..10_000 {
            if held.connections.load(Ordering::Relaxed) == 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
        let stats = links.heal();
        let l = &stats.links[0];
        assert_eq!((l.blocked, l.system), (2, 1), "{l:?}");
        let (verified, text) = stats.verdict(500);
        assert!(verified, "{text}");
    }
}
