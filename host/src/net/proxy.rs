//! `proxy` mode: one TCP proxy per directed peer link, on loopback.
//!
//! Node i's peer list names, for each peer j, the proxy of link i→j, which
//! forwards to j. A grudge holds traffic on the links it cuts: new
//! connections are accepted but not forwarded, and bytes already flowing stop
//! being relayed, in both directions a grudge names. This is what dropped
//! packets do to TCP (the sender retransmits until the cut heals), without
//! needing privileges. The client traffic of chaos-host itself never crosses
//! a proxy.

use super::{CutStats, Grudge, blocked};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Default)]
struct Held {
    connections: AtomicU64,
    chunks: AtomicU64,
    bytes: AtomicU64,
}

pub struct Links {
    n: usize,
    /// Proxy port of link i→j at i * n + j.
    ports: Vec<u16>,
    grudge: watch::Sender<Grudge>,
    cut: AtomicBool,
    held: Arc<Held>,
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
            held: Arc::new(Held::default()),
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
                    held: links.held.clone(),
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
        for c in [&self.held.connections, &self.held.chunks, &self.held.bytes] {
            c.store(0, Ordering::Relaxed);
        }
        self.grudge.send_replace(grudge.clone());
        self.cut.store(true, Ordering::Relaxed);
        let links = (0..self.n as u32)
            .flat_map(|f| (0..self.n as u32).map(move |t| (f, t)))
            .filter(|&(f, t)| f != t && blocked(grudge, f, t))
            .count();
        format!("proxy: {links} directed link(s) held")
    }

    pub fn heal(&self) -> CutStats {
        if !self.cut.swap(false, Ordering::Relaxed) {
            return CutStats::default();
        }
        self.grudge.send_replace(Grudge::new());
        let c = self.held.connections.load(Ordering::Relaxed);
        let k = self.held.chunks.load(Ordering::Relaxed);
        let b = self.held.bytes.load(Ordering::Relaxed);
        CutStats {
            superseded: false,
            installed: true,
            blocked: c + k,
            detail: format!(
                "proxy held {c} new connection(s) and {k} chunk(s) ({b} bytes) on cut links"
            ),
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
    held: Arc<Held>,
}

impl Link {
    async fn serve(self, listener: TcpListener) {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            // A transient error (EMFILE, aborted handshake) must not close the
            // link for the rest of the cycle.
            let client = match listener.accept().await {
                Ok((c, _)) => c,
                Err(e) => {
                    tracing::warn!("proxy link {}->{}: accept: {e}", self.from, self.to);
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let (from, to, upstream) = (self.from, self.to, self.upstream);
            let mut grudge = self.grudge.clone();
            let held = self.held.clone();
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
                let fwd = pump(cr, uw, from, to, grudge.clone(), held.clone());
                let back = pump(ur, cw, to, from, grudge, held);
                tokio::join!(fwd, back);
            });
            while conns.try_join_next().is_some() {}
        }
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
