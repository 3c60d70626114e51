//! Ports chosen free per cycle, and verified free again after teardown.

use anyhow::bail;
use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

/// `n` distinct ports the kernel reports free on loopback right now.
pub fn choose(n: usize) -> anyhow::Result<Vec<u16>> {
    // Hold every listener until all are chosen so the kernel cannot hand out
    // the same port twice.
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let ports = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()?;
    drop(listeners);
    for &p in &ports {
        if !is_free(p) {
            bail!("port {p} was taken between choosing and spawning; rerun");
        }
    }
    Ok(ports)
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
