//! The bypass scan's cost (issue 23): in proxy mode every partition lease
//! is watched for direct connections between nodes from its probe to its
//! heal. What one TCP table read costs with a busy table (TIME_WAIT
//! sockets left by earlier cycles), from procfs and through sock_diag (the
//! fallback and the heal's scan); what one poll of the watcher costs when
//! no node opened a socket (the common case) and when one did (the new
//! socket asked its ends through `pidfd_getfd`); and what that makes per
//! 500 ms lease at one poll every `RESCAN_EVERY`.

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
    // A watcher that has seen every socket: the poll lists fds only.
    let mut warm = bypass::Watcher::default();
    warm.poll(&nodes());
    let watcher = std::cell::RefCell::new(warm);
    let (idle_poll, _) = time(&|| watcher.borrow_mut().poll(&nodes()).len());
    // A new socket before each poll: the poll reads the table too.
    let fresh: std::cell::RefCell<Vec<(TcpStream, TcpStream)>> = Default::default();
    let (new_poll, _) = time(&|| {
        if let Ok(c) = TcpStream::connect(at)
            && let Ok((s, _)) = listener.accept()
        {
            fresh.borrow_mut().push((c, s));
        }
        watcher.borrow_mut().poll(&nodes()).len()
    });
    let every = chaos_effects::RESCAN_EVERY;
    let polls = (LEASE.as_secs_f64() / (idle_poll + every).as_secs_f64()).floor();
    println!(
        "\nBypass watch (proxy mode, every partition lease; {TIME_WAITS} TIME_WAIT + {LIVE} live connections on the host)"
    );
    println!("  {:<44} {:>10} {:>8}", "", "each", "rows");
    println!(
        "  {:<44} {:>7.0} µs {:>8}",
        "TCP table from /proc/PID/net/tcp (+tcp6)",
        procfs.as_secs_f64() * 1e6,
        procfs_rows
    );
    println!(
        "  {:<44} {:>7.0} µs {:>8}",
        "TCP table through sock_diag (held states)",
        diag.as_secs_f64() * 1e6,
        diag_rows
    );
    println!(
        "  {:<44} {:>7.0} µs",
        "one-off scan (group's fds + table)",
        scan.as_secs_f64() * 1e6
    );
    println!(
        "  {:<44} {:>7.0} µs",
        "watcher poll, no new socket (fds only)",
        idle_poll.as_secs_f64() * 1e6
    );
    println!(
        "  {:<44} {:>7.0} µs",
        "watcher poll after a new socket (asked)",
        new_poll.as_secs_f64() * 1e6
    );
    println!(
        "  per {} ms lease with no new socket: {polls:.0} polls (one every {:.2} ms), {:.1} ms of CPU ({:.0}% of one core)",
        LEASE.as_millis(),
        (idle_poll + every).as_secs_f64() * 1e3,
        polls * idle_poll.as_secs_f64() * 1e3,
        100.0 * polls * idle_poll.as_secs_f64() / LEASE.as_secs_f64()
    );
    drop(fresh);
    drop(live);
    Ok(())
}
