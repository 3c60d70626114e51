//! Ports chosen free per cycle, and verified free again after teardown.
//!
//! Free is not enough when several chaos-host processes share a machine
//! (parallel test jobs, campaigns side by side): two may pick one port
//! before either node binds it. So a chosen port is also claimed with an
//! exclusive `flock` on one of [`SLOTS`] lock files in the temp dir (port
//! modulo the slot count: a bounded set of files), held until the cycle
//! gives its ports back ([`release`]); another process skips it meanwhile.
//! A lock dies with its process, so a killed chaos-host claims nothing.

use anyhow::bail;
use nix::fcntl::{Flock, FlockArg};
use std::collections::HashMap;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;
use std::time::Duration;

/// How many lock files ports are spread over.
const SLOTS: u16 = 1024;

/// This process's claims, by port (a slot is claimed by at most one port
/// of this process: a second flock on it would fail like another's).
static CLAIMS: Mutex<Option<HashMap<u16, Flock<std::fs::File>>>> = Mutex::new(None);

/// Claim `port` against other chaos-host processes on this machine; false
/// when one holds its slot (or this process does, for another port).
fn claim(port: u16) -> bool {
    let dir = std::env::temp_dir().join("chaos-host-ports");
    if std::fs::create_dir_all(&dir).is_err() {
        // No place for claims: fall back to free-only.
        return true;
    }
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join((port % SLOTS).to_string()))
    else {
        return true;
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            CLAIMS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(HashMap::new)
                .insert(port, lock);
            true
        }
        Err(_) => false,
    }
}

/// Give back the claim on `port` (none held: nothing to do).
pub fn release(port: u16) {
    if let Some(claims) = CLAIMS.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        claims.remove(&port);
    }
}

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
        if let Ok(l) = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            && claim(port)
        {
            held.push(l);
        }
    }
    if held.len() < n {
        for l in &held {
            if let Ok(a) = l.local_addr() {
                release(a.port());
            }
        }
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

    /// A claimed port is skipped by another process until released: the
    /// claim is a flock, which another open file description of the slot
    /// (as another process has) cannot take.
    #[test]
    fn a_claimed_port_is_refused_to_another_claimant_until_released() {
        let port = choose(1).unwrap()[0];
        let slot = std::env::temp_dir()
            .join("chaos-host-ports")
            .join((port % SLOTS).to_string());
        let other = std::fs::OpenOptions::new().write(true).open(&slot).unwrap();
        let other = match Flock::lock(other, FlockArg::LockExclusiveNonblock) {
            Ok(_) => panic!("port {port}'s slot was not locked by its claim"),
            Err((file, _)) => file,
        };
        release(port);
        assert!(
            Flock::lock(other, FlockArg::LockExclusiveNonblock).is_ok(),
            "port {port}'s slot still locked after release"
        );
    }

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
