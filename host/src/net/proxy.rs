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

use super::{CutStats, Grudge, LinkProbe, LinkStats, blocked, cut_links};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch};

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

pub struct Links {
    n: usize,
    /// Proxy port of link i→j at i * n + j.
    ports: Vec<u16>,
    grudge: watch::Sender<Grudge>,
    cut: AtomicBool,
    /// What link i→j held, at i * n + j.
    held: Vec<Arc<Held>>,
    probes: Probes,
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
        }
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
}

impl Link {
    async fn serve(self, listener: TcpListener) {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            // A transient error (EMFILE, aborted handshake) must not close the
            // link for the rest of the cycle.
            let client = match listener.accept().await {
                Ok((c, peer)) => {
                    if self.answer_probe(peer) {
                        continue; // dropped: a probe is never forwarded
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
            conns.spawn(async move {
                if blocked(&grudge.borrow(), from, to) {
                    held.connections.fetch_add(1, Ordering::Relaxed);
                }
                // A SYN into a cut link goes nowhere until the cut heals.
                if grudge.wait_for(|g| !blocked(g, from, to)).await.is_err() {
                    return;
                }
                let Ok(up) = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream)).await else {
                    return; // peer down: the client sees the connection close
                };
                let _ = client.set_nodelay(true);
                let _ = up.set_nodelay(true);
                let (cr, cw) = client.into_split();
                let (ur, uw) = up.into_split();
                let fwd = pump(cr, uw, from, to, grudge.clone(), held);
                let back = pump(ur, cw, to, from, grudge, held_back);
                tokio::join!(fwd, back);
            });
            while conns.try_join_next().is_some() {}
        }
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

/// Relay bytes from `r` to `w` (traffic `from` → `to`), holding them while
/// the grudge cuts that direction.
async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    from: u32,
    to: u32,
    mut grudge: watch::Receiver<Grudge>,
    held: Arc<Held>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if blocked(&grudge.borrow(), from, to) {
            held.chunks.fetch_add(1, Ordering::Relaxed);
            held.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        if grudge.wait_for(|g| !blocked(g, from, to)).await.is_err() {
            break;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_probe_is_held_counted_on_its_link_and_never_forwarded() {
        let up0 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let up1 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let ports = [
            up0.local_addr().unwrap().port(),
            up1.local_addr().unwrap().port(),
        ];
        let links = Links::start(&ports).await.unwrap();
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
}
