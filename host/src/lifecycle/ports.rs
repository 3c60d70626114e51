//! Ports chosen free per cycle, and verified free again after teardown.

use anyhow::bail;
use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

/// `n` distinct ports free on loopback right now, chosen below the kernel's
/// ephemeral range: a port there is never handed to some other process's
/// outgoing connection while the node is down, so "still held after
/// teardown" always means a listener of ours.
pub fn choose(n: usize) -> anyhow::Result<Vec<u16>> {
    let (lo, _) = ephemeral_range();
    let floor: u16 = 10_000;
    if lo <= floor + 1_000 {
        return choose_ephemeral(n);
    }
    let span = lo - floor;
    let start = rand::random_range(0..span);
    // Hold every listener until all are chosen so no port is picked twice.
    let mut held = Vec::new();
    for k in 0..span {
        if held.len() == n {
            break;
        }
        let port = floor + (start + k) % span;
        if let Ok(l) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            held.push(l);
        }
    }
    if held.len() < n {
        bail!(
            "only {} free ports below {lo} on loopback; {n} needed",
            held.len()
        );
    }
    Ok(held
        .iter()
        .filter_map(|l| l.local_addr().ok().map(|a| a.port()))
        .collect())
}

/// The kernel's ephemeral port range (defaults when unreadable).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut it = t.split_whitespace().map(|x| x.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// Fallback when the ephemeral range starts too low: let the kernel pick.
fn choose_ephemeral(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok(listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()?)
}

/// True when a listener can bind `port` on loopback (std sets SO_REUSEADDR,
/// so sockets in TIME_WAIT do not count as taken, as for the node itself).
pub fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Wait until `port` is free, or fail naming it.
pub async fn wait_free(port: u16, deadline: Duration) -> anyhow::Result<()> {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if is_free(port) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= until {
            bail!(
                "port {port} still held {} ms after SIGKILL and reap: another process owns it",
                deadline.as_millis()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chosen_ports_are_distinct_free_and_below_the_ephemeral_range() {
        let (lo, _) = ephemeral_range();
        let ports = choose(16).unwrap();
        let mut sorted = ports.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 16);
        for p in ports {
            assert!(
                p < lo || lo <= 11_000,
                "{p} is in the ephemeral range from {lo}"
            );
            assert!(is_free(p));
        }
    }
}
