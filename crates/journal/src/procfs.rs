//! What chaos-host reads of a process from `/proc`: its state, process
//! group and start time (`/proc/<pid>/stat`), the libraries it maps, the
//! sockets it holds (`/proc/<pid>/fd`) and the TCP connections of its
//! network namespace (`/proc/<pid>/net/tcp`, `tcp6`). One parser for every
//! caller.
//!
//! Parsed by hand rather than with the `procfs` crate: the few fields used
//! here take a few dozen lines, and a new dependency would change the
//! lockfile every branch of this workspace builds with `--locked`.

use nix::unistd::Pid;

/// The fields of `/proc/<pid>/stat` chaos-host uses.
pub struct Stat {
    /// Scheduler state letter (R, S, T, Z, ...).
    pub state: char,
    pub pgrp: i32,
    /// Clock ticks since boot; with the pid, names one process for good.
    pub start: u64,
}

pub fn stat(pid: Pid) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parens: the fields follow the
    // last ')', starting with the state (field 3 overall).
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Pids whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    groups_members(&[pgid]).pop().unwrap_or_default()
}

/// The members of each of `pgids` (in that order), from one pass over
/// `/proc`.
pub fn groups_members(pgids: &[i32]) -> Vec<Vec<i32>> {
    let mut out = vec![Vec::new(); pgids.len()];
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for pid in dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        if let Some(s) = stat(Pid::from_raw(pid))
            && let Some(i) = pgids.iter().position(|&g| g == s.pgrp)
        {
            out[i].push(pid);
        }
    }
    out
}

/// `lib` (a substring of a mapped file's path) is mapped into `pid`.
pub fn maps_library(pid: i32, lib: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|m| m.contains(lib))
}

/// Inodes of the sockets `pid` holds open (`/proc/<pid>/fd/N` ->
/// `socket:[INODE]`). Empty if the process is gone or not ours to read.
pub fn socket_inodes(pid: i32) -> Vec<u64> {
    socket_fds(pid)
        .into_iter()
        .map(|(_, inode)| inode)
        .collect()
}

/// The sockets `pid` holds open: (fd number, inode). Empty if the process
/// is gone or not ours to read.
pub fn socket_fds(pid: i32) -> Vec<(i32, u64)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return vec![];
    };
    dir.flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            let t = target.to_str()?;
            Some((
                fd,
                t.strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse()
                    .ok()?,
            ))
        })
        .collect()
}

/// The LISTEN state as `/proc/net/tcp` numbers it
/// (include/net/tcp_states.h).
pub const TCP_LISTEN: u8 = 0x0A;

/// One line of `/proc/<pid>/net/tcp` or `tcp6`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpEntry {
    pub local: std::net::SocketAddr,
    pub remote: std::net::SocketAddr,
    pub state: u8,
    /// 0 for sockets no process holds (TIME_WAIT, orphans).
    pub inode: u64,
}

/// The TCP sockets (v4 and v6) of `pid`'s network namespace.
///
/// Each read of these files walks the kernel's whole established hash
/// table (a few ms with 262,144 buckets, whatever the sockets), so the
/// file is read in large chunks, and `tcp6` only when the namespace has
/// v6 TCP sockets at all (`sockstat6`).
pub fn tcp_table(pid: i32) -> Vec<TcpEntry> {
    let read = |f: &str| -> Option<String> {
        use std::io::Read;
        let mut text = String::with_capacity(1 << 17);
        std::fs::File::open(format!("/proc/{pid}/net/{f}"))
            .and_then(|mut file| file.read_to_string(&mut text))
            .ok()?;
        Some(text)
    };
    let v6_in_use = read("sockstat6").is_none_or(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("TCP6: inuse "))
            .is_none_or(|n| n.trim() != "0")
    });
    let mut files = vec!["tcp"];
    if v6_in_use {
        files.push("tcp6");
    }
    files
        .into_iter()
        .filter_map(read)
        .flat_map(|text| parse_tcp_table(&text))
        .collect()
}

/// Parse the text of `/proc/net/tcp` or `tcp6` (header line, then
/// `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...`);
/// lines that do not parse are skipped.
pub fn parse_tcp_table(text: &str) -> Vec<TcpEntry> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Some(TcpEntry {
                local: parse_endpoint(f.get(1)?)?,
                remote: parse_endpoint(f.get(2)?)?,
                state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                inode: f.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// `0100007F:1F90` (IPv4) or 32 hex digits `:PORT` (IPv6). The kernel
/// prints the address as native-endian 32-bit words of the network-order
/// bytes, so each word is turned back with `to_ne_bytes`; the port is
/// plain hex.
fn parse_endpoint(s: &str) -> Option<std::net::SocketAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(std::net::SocketAddr::new(ip, port))
}

/// The scheduler state letter of `pid` (R, S, T, Z, ...).
pub fn state(pid: Pid) -> Option<char> {
    stat(pid).map(|s| s.state)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on x86_64 (little-endian, as the words are printed).
    #[cfg(target_endian = "little")]
    #[test]
    fn tcp_tables_are_parsed() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:6979 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 81234 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:A028 0100007F:6979 01 00000000:00000000 00:00000000 00000000     0        0 81301 1 0000000000000000 20 4 30 10 -1\n   2: 0100007F:A02A 0100007F:6979 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000\n   3: garbage\n";
        let t = parse_tcp_table(v4);
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].local, "127.0.0.1:27001".parse().unwrap());
        assert_eq!(t[0].state, TCP_LISTEN);
        assert_eq!(t[1].local, "127.0.0.1:41000".parse().unwrap());
        assert_eq!(t[1].remote, "127.0.0.1:27001".parse().unwrap());
        assert_eq!((t[1].state, t[1].inode), (1, 81301));
        // TIME_WAIT: no process holds it.
        assert_eq!((t[2].state, t[2].inode), (0x06, 0));
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5555 1 0000000000000000 100 0 0 10 0\n   1: 0000000000000000FFFF00000100007F:A028 0000000000000000FFFF00000100007F:6979 01 00000000:00000000 00:00000000 00000000     0        0 5556 1 0000000000000000 20 4 30 10 -1\n";
        let t = parse_tcp_table(v6);
        assert_eq!(t[0].local, "[::1]:8080".parse().unwrap());
        assert_eq!(t[1].remote, "[::ffff:127.0.0.1]:27001".parse().unwrap());
    }

    #[test]
    fn own_sockets_are_found_in_the_tcp_table() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let me = std::process::id() as i32;
        let inodes = socket_inodes(me);
        let table = tcp_table(me);
        // Ours by inode: an older connection from the same ephemeral
        // port (TIME_WAIT, another process's) may be listed too.
        let mine = table
            .iter()
            .find(|e| e.local == c.local_addr().unwrap() && inodes.contains(&e.inode))
            .expect("the client socket is listed");
        assert_eq!(mine.remote, l.local_addr().unwrap());
        assert!(inodes.contains(&mine.inode));
    }

    #[test]
    fn own_stat_is_read() {
        let me = stat(Pid::this()).unwrap();
        // The main thread's state: the test harness may be waiting on us.
        assert!(me.state.is_ascii_uppercase());
        assert_eq!(me.pgrp, nix::unistd::getpgrp().as_raw());
        assert!(me.start > 0);
        assert!(group_members(me.pgrp).contains(&Pid::this().as_raw()));
    }
}
