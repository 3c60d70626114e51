//! The bypass scan's cost (issue 23): in proxy mode every partition lease
//! is rescanned for direct connections between nodes from its probe to its
//! heal. What one scan costs with a busy TCP table (TIME_WAIT sockets left
//! by earlier cycles), read from procfs and through sock_diag, and what
//! that makes per 500 ms lease under the rescan rule (pause = max(5 ms,
//! 4 × the scan)).

use chaos_mechanisms::net::bypass::{self, NodeSockets};
use std::time::{Duration, Instant};

/// TIME_WAIT sockets made before measuring: a CI machine mid-suite holds
/// thousands.
const TIME_WAITS: usize = 3_000;
/// Live connections held by "nodes" while measuring.
const LIVE: usize = 50;
const SCANS: u32 = 200;
const LEASE: Duration = Duration::from_millis(500);

pub fn run() -> anyhow::Result<()> {
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let at = listener.local_addr()?;
    // The dialler closes first: its end stays in TIME_WAIT.
    for _ in 0..TIME_WAITS {
        let c = TcpStream::connect(at)?;
        let (s, _) = listener.accept()?;
        drop(c);
        drop(s);
    }
    let mut live = Vec::new();
    for _ in 0..LIVE {
        let c = TcpStream::connect(at)?;
        let (s, _) = listener.accept()?;
        live.push((c, s));
    }
    let me = std::process::id() as i32;
    let time = |f: &dyn Fn() -> usize| {
        let started = Instant::now();
        let mut rows = 0;
        for _ in 0..SCANS {
            rows = f();
        }
        (started.elapsed() / SCANS, rows)
    };
    let (procfs, procfs_rows) = time(&|| chaos_journal::procfs::tcp_table(me).len());
    let (diag, diag_rows) = time(&|| {
        chaos_mechanisms::net::sock_diag::tcp_connections()
            .map(|t| t.len())
            .unwrap_or(0)
    });
    // A whole scan: this process as a node group listening on `at`.
    let pgid = nix::unistd::getpgrp().as_raw();
    let nodes = || {
        vec![NodeSockets {
            index: 0,
            pgid,
            ports: vec![at.port()],
        }]
    };
    let (scan, _) = time(&|| bypass::scan(&nodes()).len());
    let pause = (scan * chaos_effects::RESCAN_FACTOR).max(chaos_effects::RESCAN_MIN);
    let per_lease = (LEASE.as_secs_f64() / (scan + pause).as_secs_f64()).floor();
    println!(
        "\nBypass scan (proxy mode, every partition lease; {TIME_WAITS} TIME_WAIT + {LIVE} live connections on the host)"
    );
    println!("  {:<34} {:>10} {:>8}", "", "per read", "rows");
    println!(
        "  {:<34} {:>7.0} µs {:>8}",
        "/proc/PID/net/tcp (+tcp6)",
        procfs.as_secs_f64() * 1e6,
        procfs_rows
    );
    println!(
        "  {:<34} {:>7.0} µs {:>8}",
        "sock_diag (held states only)",
        diag.as_secs_f64() * 1e6,
        diag_rows
    );
    println!(
        "  {:<34} {:>7.0} µs",
        "whole scan (fds of the group too)",
        scan.as_secs_f64() * 1e6
    );
    println!(
        "  per {} ms lease: {per_lease:.0} scans, one every {:.1} ms, {:.1} ms of CPU ({:.0}% of one core)",
        LEASE.as_millis(),
        (scan + pause).as_secs_f64() * 1e3,
        per_lease * scan.as_secs_f64() * 1e3,
        100.0 * per_lease * scan.as_secs_f64() / LEASE.as_secs_f64()
    );
    drop(live);
    Ok(())
}
