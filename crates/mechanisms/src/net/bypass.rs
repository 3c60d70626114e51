//! Proxy bypass: node processes talking to each other directly.
//!
//! In `proxy` mode a cut holds only the traffic that goes through
//! chaos-host's proxies. A system that learns its peers' real addresses (from
//! gossip, a membership list, a redirect) dials them directly, and a
//! "partition" then cuts nothing. This finds such connections: every socket
//! held by a process of a node's group (`/proc/PID/fd`) is matched against
//! the TCP table of the nodes' namespace (`/proc/PID/net/tcp`, `tcp6`); a
//! connection whose one end belongs to node i and whose other end is node
//! j's listen port (or a socket of node j) never crossed a proxy, since
//! proxies are chaos-host's own sockets.

use chaos_journal::procfs::{self, TCP_LISTEN, TcpEntry};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

/// One node as the scan needs it.
pub struct NodeSockets {
    pub index: usize,
    /// Its process group (the leader's pid).
    pub pgid: i32,
    /// The ports it listens on (`{port}`, and `{peer_port}` when used).
    pub ports: Vec<u16>,
}

/// A direct connection between two nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bypass {
    /// The node that dialled, its process and its end of the connection.
    pub from: usize,
    pub pid: i32,
    pub local: SocketAddr,
    /// The node dialled and the port it was reached on.
    pub to: usize,
    pub port: u16,
}

impl std::fmt::Display for Bypass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "bypass: node {} pid {} {} -> node {}'s port {} directly, not through the proxy",
            self.from, self.pid, self.local, self.to, self.port
        )
    }
}

/// `found` for a record: the first connection of each (from, to) pair in
/// full, and how many more that pair had.
pub fn summary(found: &[Bypass]) -> Vec<String> {
    let mut pairs: Vec<(usize, usize)> = found.iter().map(|b| (b.from, b.to)).collect();
    pairs.sort_unstable();
    pairs.dedup();
    pairs
        .into_iter()
        .filter_map(|(from, to)| {
            let mut of_pair = found.iter().filter(|b| (b.from, b.to) == (from, to));
            let first = of_pair.next()?;
            let more = of_pair.count();
            Some(if more == 0 {
                first.to_string()
            } else {
                format!("{first} (and {more} more such connection(s))")
            })
        })
        .collect()
}

/// Direct connections between the nodes' processes right now.
pub fn scan(nodes: &[NodeSockets]) -> Vec<Bypass> {
    let mut owners = HashMap::new();
    let mut table_pid = None;
    let pgids: Vec<i32> = nodes.iter().map(|n| n.pgid).collect();
    for (n, members) in nodes.iter().zip(procfs::groups_members(&pgids)) {
        for pid in members {
            table_pid.get_or_insert(pid);
            for inode in procfs::socket_inodes(pid) {
                owners.insert(inode, (n.index, pid));
            }
        }
    }
    // Every node shares one namespace in proxy mode: one table serves all.
    let Some(pid) = table_pid else {
        return vec![];
    };
    find(&table_of(pid), &owners, nodes)
}

/// A bypass scan for the whole of a lease, cheap enough to run every few
/// ms: each [`Watcher::poll`] lists the sockets the nodes' processes hold
/// (`/proc/PID/fd`, well under a millisecond) and looks only at those it
/// has not seen before. A system that opens a connection per request holds
/// it a few ms, and a new socket is the first sign of one; a TCP table read
/// (2-30 ms on a loaded host with thousands of TIME_WAIT sockets) would see
/// it closed already. So a new socket's ends are asked of the socket
/// itself: a duplicate of it taken with `pidfd_getfd` (the nodes are
/// chaos-host's children), `getpeername` on it, and closed at once. Where
/// the kernel refuses that (no pidfd, ptrace rules), the TCP table is read
/// instead.
#[derive(Default)]
pub struct Watcher {
    pgids: Vec<i32>,
    /// (node index, pid) of the groups' processes, refreshed every
    /// [`MEMBERS_EVERY`] (a node may fork).
    members: Vec<(usize, i32)>,
    members_at: Option<std::time::Instant>,
    known: HashSet<u64>,
    /// A pidfd per member, opened on first use (None: refused).
    pidfds: HashMap<i32, Option<std::os::fd::OwnedFd>>,
    /// Polls made, sockets asked directly, and table reads.
    pub polls: u64,
    pub asked: u64,
    pub reads: u64,
}

/// How often a watcher lists the processes of the nodes' groups again.
const MEMBERS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// What asking one socket of a node gave.
enum Ends {
    /// A connected TCP socket's local and remote ends.
    Connected(SocketAddr, SocketAddr),
    /// A stream socket not connected yet (between `socket()` and the
    /// handshake's end): asked again at the next poll.
    NotYet,
    /// A listener, a datagram or non-IP socket: never a bypass.
    Never,
}

/// Ask socket `fd` of the process behind `pidfd` for its ends, through a
/// duplicate of it (closed on return); Err when the kernel refuses the
/// duplicate (or the fd is gone).
fn ends_of(pidfd: &std::os::fd::OwnedFd, fd: i32) -> std::io::Result<Ends> {
    use rustix::net::sockopt;
    use rustix::process::{PidfdGetfdFlags, pidfd_getfd};
    let dup = pidfd_getfd(pidfd, fd, PidfdGetfdFlags::empty())?;
    if sockopt::socket_type(&dup).ok() != Some(rustix::net::SocketType::STREAM)
        || sockopt::socket_acceptconn(&dup).unwrap_or(true)
    {
        return Ok(Ends::Never);
    }
    let (Ok(Some(peer)), Ok(local)) = (
        rustix::net::getpeername(&dup),
        rustix::net::getsockname(&dup),
    ) else {
        return Ok(Ends::NotYet);
    };
    Ok(
        match (SocketAddr::try_from(local), SocketAddr::try_from(peer)) {
            (Ok(l), Ok(r)) => Ends::Connected(l, r),
            _ => Ends::Never,
        },
    )
}

impl Watcher {
    /// One poll: the bypasses among the sockets the nodes opened since the
    /// last poll (the first poll sees every socket as new).
    pub fn poll(&mut self, nodes: &[NodeSockets]) -> Vec<Bypass> {
        self.polls += 1;
        let pgids: Vec<i32> = nodes.iter().map(|n| n.pgid).collect();
        if pgids != self.pgids || self.members_at.is_none_or(|t| t.elapsed() >= MEMBERS_EVERY) {
            self.members = nodes
                .iter()
                .zip(procfs::groups_members(&pgids))
                .flat_map(|(n, pids)| pids.into_iter().map(move |p| (n.index, p)))
                .collect();
            self.members_at = Some(std::time::Instant::now());
            self.pgids = pgids;
            let alive: HashSet<i32> = self.members.iter().map(|&(_, p)| p).collect();
            self.pidfds.retain(|p, _| alive.contains(p));
        }
        let listener = |port: u16| nodes.iter().find(|n| n.ports.contains(&port));
        let mut found = Vec::new();
        let mut unasked = false;
        let mut owners = HashMap::new();
        for &(index, pid) in &self.members.clone() {
            for (fd, inode) in procfs::socket_fds(pid) {
                owners.insert(inode, (index, pid));
                if !self.known.insert(inode) {
                    continue;
                }
                let pidfd = self.pidfds.entry(pid).or_insert_with(|| {
                    rustix::process::Pid::from_raw(pid).and_then(|p| {
                        rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
                    })
                });
                let Some(pidfd) = pidfd else {
                    unasked = true;
                    continue;
                };
                match ends_of(pidfd, fd) {
                    Ok(Ends::Connected(local, remote)) => {
                        self.asked += 1;
                        if let Some(to) = listener(remote.port()).filter(|n| n.index != index)
                            && remote.ip().is_loopback_or_mapped()
                        {
                            found.push(Bypass {
                                from: index,
                                pid,
                                local,
                                to: to.index,
                                port: remote.port(),
                            });
                        }
                    }
                    // Connecting still: new again to the next poll.
                    Ok(Ends::NotYet) => {
                        self.known.remove(&inode);
                    }
                    Ok(Ends::Never) => self.asked += 1,
                    // Gone already, or refused: the table may still show it.
                    Err(_) => unasked = true,
                }
            }
        }
        if unasked && let Some(&(_, pid)) = self.members.first() {
            self.reads += 1;
            for b in find(&table_of(pid), &owners, nodes) {
                if !found.iter().any(|f| (f.local, f.to) == (b.local, b.to)) {
                    found.push(b);
                }
            }
        }
        found
    }
}

/// The TCP table of `pid`'s namespace: through sock_diag when it is this
/// process's (proxy mode; much cheaper), else from procfs.
fn table_of(pid: i32) -> Vec<TcpEntry> {
    let ns = |p: &str| {
        std::fs::metadata(format!("/proc/{p}/ns/net"))
            .ok()
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                (m.dev(), m.ino())
            })
    };
    let ours = ns("self");
    if ours.is_some()
        && ours == ns(&pid.to_string())
        && let Ok(table) = super::sock_diag::tcp_connections()
    {
        return table;
    }
    procfs::tcp_table(pid)
}

/// The direct connections in `table`, given which node process holds each
/// socket inode (`owners`). Pure, for tests.
pub fn find(
    table: &[TcpEntry],
    owners: &HashMap<u64, (usize, i32)>,
    nodes: &[NodeSockets],
) -> Vec<Bypass> {
    let listener = |port: u16| nodes.iter().find(|n| n.ports.contains(&port));
    let live = |e: &&TcpEntry| e.state != TCP_LISTEN && e.inode != 0;
    // Each socket by its (local, remote) ends, to find a connection's other
    // end.
    let by_ends: HashMap<(SocketAddr, SocketAddr), &TcpEntry> = table
        .iter()
        .filter(live)
        .map(|e| ((e.local, e.remote), e))
        .collect();
    // Each connection once, by its dialling end.
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    for e in table.iter().filter(live) {
        let Some(&(owner, pid)) = owners.get(&e.inode) else {
            continue;
        };
        // Node `owner` dialled another node's listen port.
        if let Some(to) = listener(e.remote.port()).filter(|n| n.index != owner)
            && e.remote.ip().is_loopback_or_mapped()
            && seen.insert((e.local, e.remote))
        {
            found.push(Bypass {
                from: owner,
                pid,
                local: e.local,
                to: to.index,
                port: e.remote.port(),
            });
        }
        // Node `owner` accepted, on its listen port, a connection whose
        // other end another node holds (seen from the accepting side, for a
        // dialling process outside its node's group, say).
        if listener(e.local.port()).is_some_and(|n| n.index == owner)
            && let Some(peer) = by_ends.get(&(e.remote, e.local))
            && let Some(&(from, from_pid)) = owners.get(&peer.inode)
            && from != owner
            && seen.insert((e.remote, e.local))
        {
            found.push(Bypass {
                from,
                pid: from_pid,
                local: e.remote,
                to: owner,
                port: e.local.port(),
            });
        }
    }
    found
}

trait Loopback {
    fn is_loopback_or_mapped(&self) -> bool;
}

impl Loopback for std::net::IpAddr {
    /// Nodes listen on 127.0.0.1 in proxy mode; a v6 socket reaches them as
    /// ::ffff:127.0.0.1.
    fn is_loopback_or_mapped(&self) -> bool {
        match self {
            std::net::IpAddr::V4(a) => a.is_loopback(),
            std::net::IpAddr::V6(a) => {
                a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(local: &str, remote: &str, state: u8, inode: u64) -> TcpEntry {
        TcpEntry {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            state,
            inode,
        }
    }

    fn nodes() -> Vec<NodeSockets> {
        (0..3)
            .map(|i| NodeSockets {
                index: i,
                pgid: 100 + i as i32,
                ports: vec![27000 + i as u16],
            })
            .collect()
    }

    #[test]
    fn direct_connections_are_found_and_proxied_ones_are_not() {
        let table = [
            // Listeners.
            entry("127.0.0.1:27000", "0.0.0.0:0", TCP_LISTEN, 1),
            entry("127.0.0.1:27002", "0.0.0.0:0", TCP_LISTEN, 3),
            // Node 0 -> proxy port 39000 (chaos-host's socket 50), proxy ->
            // node 2: through the proxy.
            entry("127.0.0.1:41000", "127.0.0.1:39000", 1, 10),
            entry("127.0.0.1:39000", "127.0.0.1:41000", 1, 50),
            entry("127.0.0.1:41500", "127.0.0.1:27002", 1, 51),
            entry("127.0.0.1:27002", "127.0.0.1:41500", 1, 30),
            // chaos-host's client -> node 2: its own traffic.
            entry("127.0.0.1:42000", "127.0.0.1:27002", 1, 52),
            entry("127.0.0.1:27002", "127.0.0.1:42000", 1, 31),
            // Node 0 -> node 2 directly: both ends are node sockets.
            entry("127.0.0.1:43000", "127.0.0.1:27002", 1, 11),
            entry("127.0.0.1:27002", "127.0.0.1:43000", 1, 32),
            // A closed direct connection: no inode, nobody to blame.
            entry("127.0.0.1:43100", "127.0.0.1:27002", 6, 0),
        ];
        let owners: HashMap<u64, (usize, i32)> = [
            (1, (0, 100)),
            (3, (2, 102)),
            (10, (0, 100)),
            (11, (0, 100)),
            (30, (2, 102)),
            (31, (2, 102)),
            (32, (2, 102)),
        ]
        .into();
        let found = find(&table, &owners, &nodes());
        assert_eq!(
            found,
            vec![Bypass {
                from: 0,
                pid: 100,
                local: "127.0.0.1:43000".parse().unwrap(),
                to: 2,
                port: 27002,
            }]
        );
        assert_eq!(
            found[0].to_string(),
            "bypass: node 0 pid 100 127.0.0.1:43000 -> node 2's port 27002 directly, not through the proxy"
        );
    }

    #[test]
    fn a_connection_to_a_non_loopback_address_is_found_from_the_accepting_side() {
        // Node 2 ignored `{host}` and listens on every address; node 1
        // dialled the machine's own LAN address, which the dialling side
        // alone cannot tell from a remote host.
        let table = [
            entry("10.1.2.3:44000", "10.1.2.3:27002", 1, 20),
            entry("10.1.2.3:27002", "10.1.2.3:44000", 1, 33),
        ];
        let owners: HashMap<u64, (usize, i32)> = [(33, (2, 102)), (20, (1, 201))].into();
        let found = find(&table, &owners, &nodes());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].from, found[0].pid, found[0].to, found[0].port),
            (1, 201, 2, 27002)
        );
        assert_eq!(found[0].local, "10.1.2.3:44000".parse().unwrap());
    }

    #[test]
    fn bypasses_are_summed_up_per_pair() {
        let b = |from, port, to| Bypass {
            from,
            pid: 100,
            local: SocketAddr::from(([127, 0, 0, 1], port)),
            to,
            port: 27000 + to as u16,
        };
        let s = summary(&[
            b(0, 41000, 2),
            b(0, 41001, 1),
            b(0, 41002, 2),
            b(0, 41003, 2),
        ]);
        assert_eq!(
            s,
            vec![
                "bypass: node 0 pid 100 127.0.0.1:41001 -> node 1's port 27001 directly, not through the proxy".to_string(),
                "bypass: node 0 pid 100 127.0.0.1:41000 -> node 2's port 27002 directly, not through the proxy (and 2 more such connection(s))".to_string(),
            ]
        );
    }

    #[test]
    fn a_node_talking_to_itself_is_not_a_bypass() {
        let table = [
            entry("127.0.0.1:45000", "127.0.0.1:27001", 1, 40),
            entry("127.0.0.1:27001", "127.0.0.1:45000", 1, 41),
        ];
        let owners: HashMap<u64, (usize, i32)> = [(40, (1, 101)), (41, (1, 101))].into();
        assert!(find(&table, &owners, &nodes()).is_empty());
    }

    #[test]
    fn own_process_scan_runs() {
        // This test's own group holds sockets but no node listens: nothing.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let n = [NodeSockets {
            index: 0,
            pgid: nix::unistd::getpgrp().as_raw(),
            ports: vec![l.local_addr().unwrap().port()],
        }];
        assert!(scan(&n).is_empty());
    }
}
