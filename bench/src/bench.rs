//! `chaos-bench`: what the engine itself costs, measured, printed as a
//! table (and JSON with `--json`). Run from the repository root after
//! `scripts/build-plugins.sh` and `cargo build` (`scripts/bench.sh` does all);
//! the child runs are the `chaos-host` binary next to `chaos-bench` (or
//! `$CHAOS_HOST`, see `chaos_host.rs`).
//!
//! 1. **Plugins**: cold compile, cached load, one `inject` on a fresh
//!    instance (per-cycle instantiation), one host call.
//! 2. **Campaign** on the reference system, as a child `chaos-host run`:
//!    time per phase, harness overhead (spawn + ready + read-back + assert +
//!    teardown) as a share of the cycle, requested vs held length of every
//!    500 ms pause and partition, and the child's memory, open files and
//!    threads sampled through the run (flat, or not). `--protocol` runs seed
//!    002's 80,000 writes: 200 cycles x 100 writes x the four faults.
//! 3. **Driver**: the workload driver against one reference node, then
//!    `wrk` against the same node in the same run; the ratio of request
//!    rates.
//! 4. **Parallel cycles**: the same campaign at `--parallel` 1, 2, 4 and 8,
//!    cycles per minute of wall time (the whole child run: plugin loading,
//!    network setup, every cycle and the reports), and whether each run
//!    still passed. `--only-parallel` runs this part alone.
//! 5. **Disk layer** (root and /dev/fuse): acknowledged writes per second
//!    of one reference node on a plain data dir and on the FUSE layer, and
//!    the fdatasync of a 100-byte append, p50 / p99, on each.
//! 6. **Link faults** (proxy mode): what one link proxy adds to a one-byte
//!    round trip with no fault (p50 / p99), and how far the delay and rate
//!    a link fault gives are from what was asked: a 20 ms latency measured
//!    by round trips (p50 / p99 error), a 100 kB/s cap measured by bulk
//!    echoes, and the lease error of 300 ms link leases (applied to lifted).
//!    As root, the same through netns mode's NFQUEUE verdict loop between
//!    two namespaces. `--links-only` runs this part alone.
//! 7. **Checkers** (`--checkers DIR` runs it alone; it needs no reference
//!    system): the built-in `linearizable` on the register histories the
//!    checker's native bench generates and writes to DIR (10k and 100k ops,
//!    5 to 50 clients, 1 to 100 keys, valid and with one stale read),
//!    through the host: ops/s, verdict and the plugin's linear memory.

use anyhow::{Context, bail};
use chaos_core::workload::{self, Progress};
use chaos_effects::{Effects, Scope};
use chaos_journal::journal::Journal;
use chaos_mechanisms::net::Network;
use chaos_model::campaign::Campaign;
use chaos_plugin::{CycleInfo, Grants, Runtime};
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Cycles per fault class in the campaign part.
    #[arg(long, default_value_t = 20)]
    pub cycles: u32,
    /// ai-memory's published chaos protocol instead: 200 cycles x 100 writes x 4 faults.
    #[arg(long)]
    pub protocol: bool,
    /// Writes the driver sends to the single node.
    #[arg(long, default_value_t = 20_000)]
    pub driver_writes: u32,
    /// How long wrk runs against the same node.
    #[arg(long, default_value_t = 5)]
    pub wrk_seconds: u32,
    /// Cycles per fault class of each run in the parallel part (two
    /// classes, so twice as many cycles per run).
    #[arg(long, default_value_t = 16)]
    pub parallel_cycles: u32,
    /// Only the parallel part: cycles per minute at --parallel 1, 2, 4, 8.
    #[arg(long)]
    pub only_parallel: bool,
    /// Writes to one reference node, and appends synced, per side of the
    /// disk layer's measurement.
    #[arg(long, default_value_t = 3_000)]
    pub disk_writes: u32,
    /// Measure only the disk layer (part 5).
    #[arg(long)]
    pub disk_only: bool,
    /// Measure only the link faults (part 6).
    #[arg(long)]
    pub links_only: bool,
    /// Measure only the checkers (part 7): the built-in `linearizable` on
    /// every `*.jsonl` history in DIR (written by `cargo run --release -p
    /// linearizable --example bench -- --write DIR`).
    #[arg(long, value_name = "DIR")]
    pub checkers: Option<PathBuf>,
    /// Measure only the clients (part 8): the HTTP templates, a driver
    /// process and a client component against one reference node.
    #[arg(long)]
    pub clients_only: bool,
    /// Measure only the bypass scan of partition leases in proxy mode.
    #[arg(long)]
    pub bypass_only: bool,
    /// Measure only clock skews through the vDSO.
    #[arg(long)]
    pub skews_only: bool,
    /// Only the SSH part: the reference campaign with nodes local and on
    /// the hosts FILE lists (`[[host]]` tables, as for `run --hosts`):
    /// spawn, effect and teardown per cycle, side by side.
    #[arg(long, value_name = "FILE")]
    pub ssh_hosts: Option<PathBuf>,
    /// Cycles per fault class of each run in the SSH part.
    #[arg(long, default_value_t = 5)]
    pub ssh_cycles: u32,
    /// Also write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Serialize, Default)]
struct Figures {
    machine: String,
    plugins: Plugins,
    campaign: CampaignFigures,
    driver: Driver,
    parallel: Vec<Scaling>,
    /// None where the layer cannot be mounted (with the reason printed).
    disk: Option<DiskFigures>,
    links: Option<LinkFigures>,
    /// None where vDSO patching is refused (with the reason printed).
    skews: Option<SkewFigures>,
}

/// Clock skews through the vDSO on the reference system: how far the
/// node's probe is from the requested offset, and how long the lease held
/// against its request.
#[derive(Serialize, Default)]
struct SkewFigures {
    skews: usize,
    offset_ms: i64,
    probe_error_ms_p50: f64,
    probe_error_ms_p99: f64,
    lease_error_ms_p50: f64,
    lease_error_ms_p99: f64,
}

#[derive(Serialize)]
struct LinkFigures {
    round_trips: usize,
    /// A one-byte round trip through one link proxy minus the same round
    /// trip direct, µs (the proxy relays it twice: there and back).
    proxy_added_us_p50: f64,
    proxy_added_us_p99: f64,
    latency_requested_ms: u32,
    /// |measured delay - requested| per round trip, ms.
    latency_error_ms_p50: f64,
    latency_error_ms_p99: f64,
    bandwidth_requested: u64,
    /// Measured rate / requested - 1, over each bulk echo.
    bandwidth_error_p50: f64,
    bandwidth_error_max: f64,
    /// |held - requested| of link leases, ms (held: from the fault in
    /// force to lifted).
    lease_requested_ms: u64,
    lease_error_ms_p50: f64,
    lease_error_ms_p99: f64,
    /// The same through the NFQUEUE verdict loop (netns mode); `None`
    /// with the reason when it could not be measured here.
    netns: Result<NetnsLinkFigures, String>,
}

#[derive(Serialize, Default)]
struct NetnsLinkFigures {
    latency_error_ms_p50: f64,
    latency_error_ms_p99: f64,
    bandwidth_error_p50: f64,
    bandwidth_error_max: f64,
    lease_error_ms_p50: f64,
    lease_error_ms_p99: f64,
}

#[derive(Serialize, Default)]
struct DiskFigures {
    writes: u32,
    plain_rps: f64,
    layer_rps: f64,
    /// 1 - layer / plain.
    throughput_lost: f64,
    plain_fsync_us_p50: f64,
    plain_fsync_us_p99: f64,
    layer_fsync_us_p50: f64,
    layer_fsync_us_p99: f64,
}

/// One run of the parallel part.
#[derive(Serialize, Default)]
struct Scaling {
    parallel: u32,
    cycles: u64,
    wall_s: f64,
    cycles_per_minute: f64,
    pass: bool,
}

/// The `--parallel` values of the parallel part.
const PARALLEL: [u32; 4] = [1, 2, 4, 8];

#[derive(Serialize, Default)]
struct Plugins {
    cold_compile_ms: f64,
    cached_load_ms: f64,
    instantiate_call_us_p50: f64,
    instantiate_call_us_p99: f64,
    host_call_ns: f64,
}

#[derive(Serialize, Default)]
struct CampaignFigures {
    classes: Vec<String>,
    cycles: usize,
    writes: u64,
    wall_s: f64,
    phase_ms_p50: Vec<(String, f64)>,
    cycle_ms_p50: f64,
    overhead_share_p50: f64,
    /// 1 - burst/fault / wall time of the whole run: everything the phases
    /// do not show too (plugin loading, records, evidence).
    overhead_share_run: f64,
    lease_error_ms_p50: f64,
    lease_error_ms_p99: f64,
    lease_error_ms_max: f64,
    leases: usize,
    rss_mib_first: f64,
    rss_mib_last: f64,
    rss_mib_max: f64,
    /// At 25, 50, 75 and 100 % of the run.
    rss_mib_quarters: Vec<f64>,
    fds_first: u64,
    fds_last: u64,
    fds_max: u64,
    threads_first: u64,
    threads_last: u64,
    threads_max: u64,
}

#[derive(Serialize, Default)]
struct Driver {
    writes: u32,
    driver_rps: f64,
    /// CPU the driver (all of chaos-bench) spent per write, µs.
    driver_cpu_us_per_write: f64,
    wrk_rps: Option<f64>,
    ratio: Option<f64>,
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.checkers {
        print!("{}", crate::checkers::run(dir).await?);
        return Ok(());
    }
    let root = std::env::current_dir()?;
    for need in [
        "examples/reference/campaign.toml",
        "plugins/drop_random_acks.wasm",
        "tests/guests/bench_calls.wasm",
        "target/debug/quorum-kv",
    ] {
        if !root.join(need).exists() {
            bail!(
                "bench: {need} not found under {}: run from the repository root after scripts/build-plugins.sh and cargo build (scripts/bench.sh does both)",
                root.display()
            );
        }
    }
    // Every part but these runs `chaos-host run` children: a missing
    // binary is one error before anything is measured.
    if !(args.links_only || args.disk_only) {
        crate::chaos_host::binary()?;
    }
    let scratch = std::env::temp_dir().join(format!("chaos-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    if let Some(hosts) = &args.ssh_hosts {
        let rows = crate::ssh::measure(&root, &scratch, hosts, args.ssh_cycles).await;
        let _ = std::fs::remove_dir_all(&scratch);
        let rows = rows?;
        print!(
            "\nchaos-bench (nodes on SSH hosts vs local) on {}\n{}",
            machine(),
            crate::ssh::table(&rows)
        );
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_vec_pretty(&rows)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        return Ok(());
    }
    let result = measure(args, &root, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    let figures = result?;
    print!("{}", table(&figures, args.disk_only || args.skews_only));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&figures)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

async fn measure(args: &BenchArgs, root: &Path, scratch: &Path) -> anyhow::Result<Figures> {
    if args.only_parallel {
        eprintln!("bench: parallel cycles");
        return Ok(Figures {
            machine: machine(),
            parallel: parallel_scaling(args, root, scratch).await?,
            ..Figures::default()
        });
    }
    if args.links_only {
        eprintln!("bench: link faults");
        return Ok(Figures {
            machine: machine(),
            links: Some(link_faults().await?),
            ..Figures::default()
        });
    }
    if args.skews_only {
        let why = chaos_mechanisms::clock::vdso::refusal();
        if let Some(why) = why {
            bail!("bench --skews-only: {why}");
        }
        return Ok(Figures {
            machine: machine(),
            skews: Some(clock_skews(root, scratch).await?),
            ..Figures::default()
        });
    }
    if args.disk_only {
        chaos_mechanisms::disk::available()
            .map_err(|why| anyhow::anyhow!("bench --disk-only: {why}"))?;
        return Ok(Figures {
            machine: machine(),
            disk: Some(disk_layer(args, root, scratch).await?),
            ..Figures::default()
        });
    }
    eprintln!("bench: plugins");
    let plugins = plugin_costs(root, scratch).await?;
    eprintln!("bench: campaign on the reference system");
    let campaign = campaign_run(args, root, scratch).await?;
    eprintln!("bench: driver and wrk against one reference node");
    let driver = driver_vs_wrk(args, root, scratch).await?;
    eprintln!("bench: parallel cycles");
    let parallel = parallel_scaling(args, root, scratch).await?;
    let disk = match chaos_mechanisms::disk::available() {
        Ok(()) => {
            eprintln!("bench: the disk layer, one reference node with and without it");
            Some(disk_layer(args, root, scratch).await?)
        }
        Err(why) => {
            eprintln!("bench: disk layer not measured: {why}");
            None
        }
    };
    eprintln!("bench: link faults");
    let links = Some(link_faults().await?);
    let skews = match chaos_mechanisms::clock::vdso::refusal() {
        None => {
            eprintln!("bench: clock skews through the vDSO");
            Some(clock_skews(root, scratch).await?)
        }
        Some(why) => {
            eprintln!("bench: clock skews not measured: {why}");
            None
        }
    };
    Ok(Figures {
        machine: machine(),
        plugins,
        campaign,
        driver,
        parallel,
        disk,
        links,
        skews,
    })
}

/// Part 6: a link proxy in front of an echo server, bare and degraded.
/// `n` one-byte round trips over `c` to an echo, µs each.
async fn round_trips(mut c: tokio::net::TcpStream, n: usize) -> anyhow::Result<Vec<f64>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    c.set_nodelay(true)?;
    let mut b = [0u8; 1];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        c.write_all(b"x").await?;
        c.read_exact(&mut b).await?;
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(out)
}

/// Echo every connection `listener` accepts, until aborted.
async fn serve_echo(listener: tokio::net::TcpListener) {
    while let Ok((mut c, _)) = listener.accept().await {
        tokio::spawn(async move {
            let _ = c.set_nodelay(true);
            let (mut r, mut w) = c.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
    }
}

/// Link leases measured per mode, and their length.
const LEASES: usize = 10;
const LEASE: Duration = Duration::from_millis(300);

/// |held - [`LEASE`]|, ms.
fn lease_error_ms(held: Duration) -> f64 {
    (held.as_secs_f64() - LEASE.as_secs_f64()).abs() * 1e3
}

/// Part 6 in netns mode: two namespaces, an echo server in node 1's, round
/// trips from node 0's through the verdict loop degrading link 0->1.
async fn netns_link_faults(latency_ms: u32, rate: u64) -> anyhow::Result<NetnsLinkFigures> {
    use chaos_mechanisms::net::netns::{Namespaces, node_addr};
    use chaos_mechanisms::net::nfqueue::Degraded;
    use chaos_model::contract::LinkFault;
    let state = std::env::temp_dir().join(format!("chaos-bench-links-{}", std::process::id()));
    std::fs::create_dir_all(&state)?;
    let run = format!("bl{}", std::process::id() % 100_000);
    let journal = Arc::new(chaos_journal::journal::Journal::create(
        &state,
        &run,
        &chaos_mechanisms::UNDO,
    )?);
    let ns = Arc::new(Namespaces::create(2, &run, journal).await?);
    let figures = async {
        let listener = ns.socket_in(1).await?;
        listener.bind(std::net::SocketAddr::from((node_addr(1), 0)))?;
        let listener = listener.listen(16)?;
        let echo = listener.local_addr()?;
        let server = tokio::spawn(serve_echo(listener));
        let pings = |n: usize| {
            let ns = ns.clone();
            async move { round_trips(ns.socket_in(0).await?.connect(echo).await?, n).await }
        };
        let base = quantile(&sorted(pings(500).await?), 0.5);
        let fault = LinkFault {
            latency_ms,
            jitter_ms: 0,
            loss: 0.0,
            bandwidth: None,
            reset: false,
        };
        let one_way = vec![vec![], vec![0]];
        let install = |fault: LinkFault| {
            let (ns, grudge) = (ns.clone(), one_way.clone());
            async move {
                tokio::task::spawn_blocking(move || {
                    Degraded::install(&ns, &grudge, fault, 1, &Default::default())
                })
                .await?
                .map(|(d, _)| d)
                .map_err(anyhow::Error::msg)
            }
        };
        let lift = |d: Degraded| async move { tokio::task::spawn_blocking(move || d.lift()).await };
        let d = install(fault).await?;
        let delayed = pings(100).await?;
        lift(d).await?;
        let error = sorted(
            delayed
                .iter()
                .map(|us| ((us - base) / 1000.0 - f64::from(latency_ms)).abs())
                .collect(),
        );
        let d = install(LinkFault {
            latency_ms: 0,
            bandwidth: Some(rate),
            ..fault
        })
        .await?;
        let mut rates = Vec::new();
        for _ in 0..5 {
            let m = d
                .prober()
                .measure(&ns, 0, 1, 0, (rate / 4) as usize, Duration::from_secs(5))
                .await;
            if let Some(t) = m.throughput {
                rates.push(t / rate as f64 - 1.0);
            }
        }
        lift(d).await?;
        let mut lease = Vec::new();
        for _ in 0..LEASES {
            let d = install(fault).await?;
            let held = Instant::now();
            tokio::time::sleep(LEASE).await;
            lift(d).await?;
            lease.push(lease_error_ms(held.elapsed()));
        }
        server.abort();
        let rates = sorted(rates);
        anyhow::Ok(NetnsLinkFigures {
            latency_error_ms_p50: quantile(&error, 0.5),
            latency_error_ms_p99: quantile(&error, 0.99),
            bandwidth_error_p50: quantile(&rates, 0.5),
            bandwidth_error_max: rates
                .iter()
                .copied()
                .fold(0.0, |a: f64, b| if b.abs() > a.abs() { b } else { a }),
            lease_error_ms_p50: quantile(&sorted(lease.clone()), 0.5),
            lease_error_ms_p99: quantile(&sorted(lease), 0.99),
        })
    }
    .await;
    ns.destroy().await;
    let _ = std::fs::remove_dir_all(&state);
    figures
}

async fn link_faults() -> anyhow::Result<LinkFigures> {
    use chaos_mechanisms::net::proxy::Links;
    use chaos_model::contract::LinkFault;
    const ROUND_TRIPS: usize = 5000;
    const LATENCY_MS: u32 = 20;
    const DELAYED: usize = 100;
    const RATE: u64 = 100_000;
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let echo_port = echo.local_addr()?.port();
    let server = tokio::spawn(serve_echo(echo));
    // Node 0 (nothing listens: only its links' proxies matter) and node 1,
    // the echo server; link 0->1 is the one measured.
    let links = Links::start(&[0, echo_port]).await?;
    let via = links.port(0, 1);
    let pings = |port: u16, n: usize| async move {
        round_trips(
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await?,
            n,
        )
        .await
    };
    // Interleaved in rounds so drift in machine load hits both alike.
    let (mut direct, mut proxied) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        direct.extend(pings(echo_port, ROUND_TRIPS / 10).await?);
        proxied.extend(pings(via, ROUND_TRIPS / 10).await?);
    }
    let (direct, proxied) = (sorted(direct), sorted(proxied));
    let base = quantile(&direct, 0.5);
    let fault = LinkFault {
        latency_ms: LATENCY_MS,
        jitter_ms: 0,
        loss: 0.0,
        bandwidth: None,
        reset: false,
    };
    let one_way = vec![vec![], vec![0]];
    links.shape(&one_way, fault, 1);
    let delayed = pings(via, DELAYED).await?;
    let error = sorted(
        delayed
            .iter()
            .map(|us| ((us - base) / 1000.0 - f64::from(LATENCY_MS)).abs())
            .collect(),
    );
    links.shape(
        &one_way,
        LinkFault {
            latency_ms: 0,
            bandwidth: Some(RATE),
            ..fault
        },
        1,
    );
    let mut rates = Vec::new();
    for _ in 0..5 {
        let m = links
            .measure(0, 1, 0, (RATE / 4) as usize, Duration::from_secs(5))
            .await;
        if let Some(t) = m.throughput {
            rates.push(t / RATE as f64 - 1.0);
        }
    }
    links.unshape();
    let mut lease = Vec::new();
    for _ in 0..LEASES {
        links.shape(&one_way, fault, 1);
        let held = Instant::now();
        tokio::time::sleep(LEASE).await;
        links.unshape();
        lease.push(lease_error_ms(held.elapsed()));
    }
    server.abort();
    let rates = sorted(rates);
    let netns = if nix::unistd::geteuid().is_root() {
        match chaos_mechanisms::net::nfqueue::preflight() {
            Ok(()) => netns_link_faults(LATENCY_MS, RATE)
                .await
                .map_err(|e| format!("{e:#}")),
            Err(e) => Err(e),
        }
    } else {
        Err("not root: netns mode needs root".into())
    };
    Ok(LinkFigures {
        lease_requested_ms: LEASE.as_millis() as u64,
        lease_error_ms_p50: quantile(&sorted(lease.clone()), 0.5),
        lease_error_ms_p99: quantile(&sorted(lease), 0.99),
        netns,
        round_trips: ROUND_TRIPS,
        proxy_added_us_p50: quantile(&proxied, 0.5) - base,
        proxy_added_us_p99: quantile(&proxied, 0.99) - quantile(&direct, 0.99),
        latency_requested_ms: LATENCY_MS,
        latency_error_ms_p50: quantile(&error, 0.5),
        latency_error_ms_p99: quantile(&error, 0.99),
        bandwidth_requested: RATE,
        bandwidth_error_p50: quantile(&rates, 0.5),
        bandwidth_error_max: rates
            .iter()
            .copied()
            .fold(0.0, |a: f64, b| if b.abs() > a.abs() { b } else { a }),
    })
}

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let kb: u64 = t.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb as f64 / 1024.0 / 1024.0)
        })
        .unwrap_or(0.0);
    format!(
        "{} cores, {cpu}, {mem:.0} GiB, dev profile (chaos-host, chaos-bench and dependencies at opt-level 2)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}

pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

pub(crate) fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// Cold compile, cached load, per-call instantiation and host-call cost.
async fn plugin_costs(root: &Path, scratch: &Path) -> anyhow::Result<Plugins> {
    let kill = root.join("plugins/kill_primary_mid_write.wasm");
    let cache = scratch.join("cache");
    let t = Instant::now();
    Runtime::with_cache_dir(Some(cache.clone()))?
        .load(&kill)
        .await?;
    let cold = t.elapsed();
    let runtime = Runtime::with_cache_dir(Some(cache))?;
    let t = Instant::now();
    runtime.load(&kill).await?;
    let cached = t.elapsed();

    let guest = root.join("tests/guests/bench_calls.wasm");
    let state = scratch.join("state");
    let journal = Arc::new(Journal::create(&state, "bench", &chaos_mechanisms::UNDO)?);
    let net = Arc::new(Network::loopback().cycle(0, false).await?);
    let (_progress_tx, progress_rx) = tokio::sync::watch::channel(Progress::default());
    let effects = Effects::new(
        Scope {
            nodes: vec![],
            disks: vec![],
            net,
            journal: journal.clone(),
            http: reqwest::Client::new(),
            clock: None,
            leader: None,
        },
        Instant::now(),
        progress_rx,
    );
    let with_calls = |calls: i64| {
        let runtime = &runtime;
        let guest = guest.clone();
        async move {
            let mut p = runtime.load(&guest).await?;
            p.authorize(
                Grants::new("bench_calls"),
                vec![("calls".into(), toml::Value::Integer(calls))],
            )?;
            anyhow::Ok(p)
        }
    };
    let info = |p: &chaos_plugin::Loaded| CycleInfo {
        cycle: 1,
        seed: 1,
        nodes: 0,
        primary: 0,
        writes: 0,
        params: p.params().to_vec(),
    };
    let deadline = Duration::from_secs(60);
    let empty = with_calls(0).await?;
    let mut per_call = Vec::new();
    for _ in 0..2_000 {
        let t = Instant::now();
        let (r, _) = empty
            .inject(
                &info(&empty),
                effects.clone(),
                chaos_effects::SetUp::unwatched(),
                deadline,
            )
            .await;
        per_call.push(t.elapsed().as_secs_f64() * 1e6);
        r?;
    }
    let per_call = sorted(per_call);
    const CALLS: i64 = 1_000_000;
    let busy = with_calls(CALLS).await?;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let (r, _) = busy
            .inject(
                &info(&busy),
                effects.clone(),
                chaos_effects::SetUp::unwatched(),
                deadline,
            )
            .await;
        r?;
        best = best.min(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(effects);
    if let Ok(j) = Arc::try_unwrap(journal) {
        j.close();
    }
    Ok(Plugins {
        cold_compile_ms: cold.as_secs_f64() * 1e3,
        cached_load_ms: cached.as_secs_f64() * 1e3,
        instantiate_call_us_p50: quantile(&per_call, 0.5),
        instantiate_call_us_p99: quantile(&per_call, 0.99),
        host_call_ns: (best - quantile(&per_call, 0.5)) * 1e3 / CALLS as f64,
    })
}

/// Resource use of a process, from /proc.
fn sample(pid: u32) -> Option<(f64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((field("VmRSS:")? as f64 / 1024.0, fds, field("Threads:")?))
}

async fn campaign_run(
    args: &BenchArgs,
    root: &Path,
    scratch: &Path,
) -> anyhow::Result<CampaignFigures> {
    let faults: &[&str] = if args.protocol {
        &[
            "kill_primary_mid_write",
            "partition_minority",
            "drop_random_acks",
            "clock_skew_peer",
        ]
    } else {
        &["drop_random_acks", "partition_minority"]
    };
    let (cycles, writes) = if args.protocol {
        (200, 100)
    } else {
        (args.cycles, 100)
    };
    let out = scratch.join("out");
    let mut cmd = tokio::process::Command::new(crate::chaos_host::binary()?);
    cmd.arg("run")
        .arg("--campaign")
        .arg(root.join("examples/reference/campaign.toml"))
        .args(["--cycles", &cycles.to_string()])
        .args(["--writes", &writes.to_string()])
        .arg("--out")
        .arg(&out)
        .env("CHAOS_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .env("CHAOS_STATE_DIR", scratch.join("run-state"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    for f in faults {
        cmd.arg("--plugin")
            .arg(root.join(format!("plugins/{f}.wasm")));
    }
    let started = Instant::now();
    let mut child = cmd.spawn().context("starting chaos-host run")?;
    let pid = child.id().context("child has no pid")?;
    let mut samples = Vec::new();
    let status = loop {
        tokio::select! {
            s = child.wait() => break s?,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                if let Some(s) = sample(pid) {
                    samples.push(s);
                }
            }
        }
    };
    let wall = started.elapsed();
    if !status.success() {
        bail!("bench campaign exited with {status}: the reference system should pass");
    }
    let text = std::fs::read_to_string(out.join("cycles.jsonl"))?;
    let records: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let phases = ["start", "burst", "fault", "converge", "assert", "teardown"];
    let phase = |r: &Value, p: &str| r["phases_ms"][p].as_f64().unwrap_or(0.0);
    let mut phase_ms = Vec::new();
    for p in phases {
        phase_ms.push((
            p.to_string(),
            quantile(&sorted(records.iter().map(|r| phase(r, p)).collect()), 0.5),
        ));
    }
    // The burst overlaps the fault; a cycle is start + fault + converge +
    // assert + teardown. What is not the experiment (burst, fault) is the
    // harness's: converge counts whole, though a slow system's wait for
    // its own catch-up is in it (on the correct reference it is one read).
    let cycle = |r: &Value| {
        ["start", "fault", "converge", "assert", "teardown"]
            .iter()
            .map(|p| phase(r, p))
            .sum::<f64>()
    };
    let overhead = |r: &Value| {
        ["start", "converge", "assert", "teardown"]
            .iter()
            .map(|p| phase(r, p))
            .sum::<f64>()
            / cycle(r).max(1.0)
    };
    let mut errors = Vec::new();
    for r in &records {
        for e in r["effects"].as_array().into_iter().flatten() {
            // Held from just before it was applied until its undo was done.
            let end = e["undone_us"].as_f64().or_else(|| e["end_us"].as_f64());
            let (Some(req), Some(end)) = (e["requested_ms"].as_f64(), end) else {
                continue;
            };
            if e["kind"] == "pause" || e["kind"] == "partition" {
                let held_ms = (end - e["start_us"].as_f64().unwrap_or(end)) / 1e3;
                errors.push((held_ms - req).abs());
            }
        }
    }
    let errors = sorted(errors);
    // Skip the first tenth: start-up allocations are not growth.
    let steady = &samples[samples.len() / 10..];
    let max_of = |f: &dyn Fn(&(f64, u64, u64)) -> f64| steady.iter().map(f).fold(0.0, f64::max);
    let first = steady.first().copied().unwrap_or_default();
    let last = steady.last().copied().unwrap_or_default();
    Ok(CampaignFigures {
        classes: faults.iter().map(|s| s.to_string()).collect(),
        cycles: records.len(),
        writes: records
            .iter()
            .map(|r| r["writes"].as_u64().unwrap_or(0))
            .sum(),
        wall_s: wall.as_secs_f64(),
        phase_ms_p50: phase_ms,
        cycle_ms_p50: quantile(&sorted(records.iter().map(cycle).collect()), 0.5),
        overhead_share_p50: quantile(&sorted(records.iter().map(overhead).collect()), 0.5),
        overhead_share_run: 1.0
            - records.iter().map(|r| phase(r, "fault")).sum::<f64>() / 1e3 / wall.as_secs_f64(),
        lease_error_ms_p50: quantile(&errors, 0.5),
        lease_error_ms_p99: quantile(&errors, 0.99),
        lease_error_ms_max: errors.last().copied().unwrap_or(0.0),
        leases: errors.len(),
        rss_mib_first: first.0,
        rss_mib_last: last.0,
        rss_mib_max: max_of(&|s| s.0),
        rss_mib_quarters: (1..=4)
            .filter_map(|q| {
                samples
                    .get((samples.len() * q / 4).saturating_sub(1))
                    .map(|s| s.0)
            })
            .collect(),
        fds_first: first.1,
        fds_last: last.1,
        fds_max: max_of(&|s| s.1 as f64) as u64,
        threads_first: first.2,
        threads_last: last.2,
        threads_max: max_of(&|s| s.2 as f64) as u64,
    })
}

/// 20 cycles of clock_skew_peer (-45 s for 500 ms) on the reference system:
/// each skew's probe reading against the requested offset (the probe's own
/// round trip included), and its lease's hold against the request.
async fn clock_skews(root: &Path, scratch: &Path) -> anyhow::Result<SkewFigures> {
    const OFFSET_MS: i64 = -45_000;
    let out = scratch.join("skews");
    let status = tokio::process::Command::new(crate::chaos_host::binary()?)
        .arg("run")
        .arg("--campaign")
        .arg(root.join("examples/reference/campaign.toml"))
        .args(["--cycles", "20", "--writes", "60"])
        .arg("--plugin")
        .arg(root.join("plugins/clock_skew_peer.wasm"))
        .args(["--param", &format!("clock_skew_peer.offset_ms={OFFSET_MS}")])
        .arg("--out")
        .arg(&out)
        .env("CHAOS_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .env("CHAOS_STATE_DIR", scratch.join("skew-state"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .context("starting chaos-host run")?;
    if !status.success() {
        bail!("bench clock skews exited with {status}: the reference system should pass");
    }
    let text = std::fs::read_to_string(out.join("cycles.jsonl"))?;
    let (mut probe, mut lease) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let r: Value = serde_json::from_str(line)?;
        for e in r["effects"].as_array().into_iter().flatten() {
            let ev = e["evidence"].as_str().unwrap_or_default();
            // "...; node clock probe: -45001 ms from the host's (rtt 1 ms, ..."
            let seen = ev
                .split("node clock probe: ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse::<i64>().ok());
            if let Some(seen) = seen {
                probe.push((seen - OFFSET_MS).abs() as f64);
            }
            if let (Some(req), Some(start), Some(end)) = (
                e["requested_ms"].as_f64(),
                e["start_us"].as_f64(),
                e["undone_us"].as_f64(),
            ) {
                lease.push(((end - start) / 1e3 - req).abs());
            }
        }
    }
    let (probe, lease) = (sorted(probe), sorted(lease));
    Ok(SkewFigures {
        skews: probe.len(),
        offset_ms: OFFSET_MS,
        probe_error_ms_p50: quantile(&probe, 0.5),
        probe_error_ms_p99: quantile(&probe, 0.99),
        lease_error_ms_p50: quantile(&lease, 0.5),
        lease_error_ms_p99: quantile(&lease, 0.99),
    })
}

/// The reference campaign (a pause and a partition class, 100 writes per
/// cycle) as a child `chaos-host run` at each `--parallel` of [`PARALLEL`]:
/// cycles per minute of the child's wall time.
async fn parallel_scaling(
    args: &BenchArgs,
    root: &Path,
    scratch: &Path,
) -> anyhow::Result<Vec<Scaling>> {
    let mut figures = Vec::new();
    for k in PARALLEL {
        let out = scratch.join(format!("parallel-{k}"));
        let mut cmd = tokio::process::Command::new(crate::chaos_host::binary()?);
        cmd.arg("run")
            .arg("--campaign")
            .arg(root.join("examples/reference/campaign.toml"))
            .args(["--cycles", &args.parallel_cycles.to_string()])
            .args(["--writes", "100"])
            .args(["--parallel", &k.to_string()])
            .args(["--seed", "16"])
            .arg("--out")
            .arg(&out)
            .env("CHAOS_LOG", "warn")
            .env("RUST_BACKTRACE", "0")
            .env("CHAOS_STATE_DIR", scratch.join("parallel-state"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        for f in ["drop_random_acks", "partition_minority"] {
            cmd.arg("--plugin")
                .arg(root.join(format!("plugins/{f}.wasm")));
        }
        let started = Instant::now();
        let status = cmd.status().await.context("starting chaos-host run")?;
        let wall = started.elapsed().as_secs_f64();
        // 1: a class failed (still a measured run); anything else is not.
        if !matches!(status.code(), Some(0 | 1)) {
            bail!("bench: chaos-host run --parallel {k} exited with {status}");
        }
        let cycles = std::fs::read_to_string(out.join("cycles.jsonl"))?
            .lines()
            .count() as u64;
        eprintln!("bench: --parallel {k}: {cycles} cycles in {wall:.1} s");
        figures.push(Scaling {
            parallel: k,
            cycles,
            wall_s: wall,
            cycles_per_minute: cycles as f64 * 60.0 / wall,
            pass: status.success(),
        });
    }
    Ok(figures)
}

/// The driver, then wrk, against one reference node (W=1, no peers).
async fn driver_vs_wrk(args: &BenchArgs, root: &Path, scratch: &Path) -> anyhow::Result<Driver> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    let (mut node, port) = reference_node(root, &scratch.join("kv"), &http).await?;
    let campaign = Campaign::load(&root.join("examples/reference/campaign.toml"))?;
    // The node's own speed drifts as its log grows (fdatasync per write), so
    // the two clients take turns, twice each, on the same node.
    let (mut driver_s, mut driver_cpu, mut wrk_sum, mut wrk_runs) = (0.0, 0.0, 0.0, 0);
    for round in 0..2 {
        let ids: Arc<Vec<String>> = Arc::new(
            (0..args.driver_writes)
                .map(|i| format!("bench-driver-r{round}-w{i}"))
                .collect(),
        );
        let (tx, _rx) = tokio::sync::watch::channel(Progress::default());
        let target = workload::Target {
            index: 0,
            port: ([127, 0, 0, 1], port).into(),
            ids,
            history: None,
        };
        let client = chaos_core::client::Client::http(&campaign, &http, "bench-driver", 1)
            .context("the reference campaign has [write]")?;
        let cpu0 = own_cpu_us();
        let burst = workload::burst(&campaign, &client, target, tx, Instant::now()).await;
        driver_cpu += own_cpu_us() - cpu0;
        driver_s += burst.elapsed.as_secs_f64();
        let ok = burst
            .results
            .iter()
            .filter(|r| r.outcome == workload::Outcome::Ok)
            .count();
        if ok != args.driver_writes as usize {
            bail!(
                "bench: only {ok} of {} driver writes were acknowledged",
                args.driver_writes
            );
        }
        if let Some(w) = wrk(
            port,
            campaign.file.burst.concurrency,
            args.wrk_seconds,
            round,
            scratch,
        )
        .await?
        {
            wrk_sum += w;
            wrk_runs += 1;
        }
    }
    let writes = 2.0 * args.driver_writes as f64;
    let driver_rps = writes / driver_s;
    let wrk_rps = (wrk_runs > 0).then(|| wrk_sum / wrk_runs as f64);
    let _ = node.kill().await;
    Ok(Driver {
        writes: args.driver_writes,
        driver_rps,
        driver_cpu_us_per_write: driver_cpu / writes,
        wrk_rps,
        ratio: wrk_rps.map(|w| driver_rps / w),
    })
}

/// One reference node (quorum 1) on `data`, ready; and its port.
pub(crate) async fn reference_node(
    root: &Path,
    data: &Path,
    http: &reqwest::Client,
) -> anyhow::Result<(tokio::process::Child, u16)> {
    let port = chaos_mechanisms::net::ports::choose(1)?[0];
    let node = tokio::process::Command::new(root.join("target/debug/quorum-kv"))
        .args(["--node", "0", "--quorum", "1", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting quorum-kv")?;
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let url = format!("http://127.0.0.1:{port}/health");
        if http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok((node, port));
        }
        if Instant::now() > until {
            bail!("bench: quorum-kv on port {port} not ready in 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The disk layer's cost: the same node and the same appends on a plain
/// dir and on the layer (no fault set: what every disk campaign pays).
async fn disk_layer(args: &BenchArgs, root: &Path, scratch: &Path) -> anyhow::Result<DiskFigures> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    let campaign = Campaign::load(&root.join("examples/reference/campaign.toml"))?;
    let journal = Arc::new(Journal::create(
        &scratch.join("disk-state"),
        "bench-disk",
        &chaos_mechanisms::UNDO,
    )?);
    let mut f = DiskFigures {
        writes: args.disk_writes,
        ..DiskFigures::default()
    };
    for layered in [false, true] {
        let side = if layered { "layer" } else { "plain" };
        let dir = scratch.join(format!("disk-{side}"));
        let disk = if layered {
            Some(chaos_mechanisms::disk::Disk::mount(
                &dir.join("backing"),
                &dir.join("data"),
                Some(journal.clone()),
            )?)
        } else {
            None
        };
        let data = dir.join("data");
        std::fs::create_dir_all(&data)?;
        let measured = async {
            let (mut node, port) = reference_node(root, &data.join("kv"), &http).await?;
            let ids: Arc<Vec<String>> = Arc::new(
                (0..args.disk_writes)
                    .map(|i| format!("bench-disk-{side}-w{i}"))
                    .collect(),
            );
            let (tx, _rx) = tokio::sync::watch::channel(Progress::default());
            let target = workload::Target {
                index: 0,
                port: ([127, 0, 0, 1], port).into(),
                ids,
                history: None,
            };
            let client = chaos_core::client::Client::http(&campaign, &http, "bench-disk", 1)
                .context("the reference campaign has [write]")?;
            let burst = workload::burst(&campaign, &client, target, tx, Instant::now()).await;
            let _ = node.kill().await;
            let _ = node.wait().await;
            let ok = burst
                .results
                .iter()
                .filter(|r| r.outcome == workload::Outcome::Ok)
                .count();
            let rps = ok as f64 / burst.elapsed.as_secs_f64();
            let path = data.join("appends");
            let n = args.disk_writes;
            let syncs = tokio::task::spawn_blocking(move || fsync_times(&path, n)).await??;
            anyhow::Ok((rps, syncs))
        }
        .await;
        if let Some(d) = &disk {
            d.unmount()?;
        }
        let (rps, syncs) = measured?;
        let (p50, p99) = (quantile(&syncs, 0.5), quantile(&syncs, 0.99));
        if layered {
            (f.layer_rps, f.layer_fsync_us_p50, f.layer_fsync_us_p99) = (rps, p50, p99);
        } else {
            (f.plain_rps, f.plain_fsync_us_p50, f.plain_fsync_us_p99) = (rps, p50, p99);
        }
    }
    if let Ok(j) = Arc::try_unwrap(journal) {
        j.close();
    }
    f.throughput_lost = 1.0 - f.layer_rps / f.plain_rps;
    Ok(f)
}

/// `n` appends of 100 bytes to `path`, each fdatasync'd; the syncs' times
/// in µs, sorted.
fn fsync_times(path: &Path, n: u32) -> std::io::Result<Vec<f64>> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let line = [b'x'; 100];
    let mut times = Vec::with_capacity(n as usize);
    for _ in 0..n {
        file.write_all(&line)?;
        let t = Instant::now();
        file.sync_data()?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(sorted(times))
}

/// CPU time (user + system) this process has used, µs.
fn own_cpu_us() -> f64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .map(|u| {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 * 1e6 + tv.tv_usec() as f64;
            t(u.user_time()) + t(u.system_time())
        })
        .unwrap_or(0.0)
}

/// wrk with as many connections as the driver has writers, each request a
/// write with an id of its own (per round, thread and request: a repeated id
/// is answered without an fdatasync and would flatter wrk); `None` when wrk
/// is not installed.
async fn wrk(
    port: u16,
    connections: u32,
    secs: u32,
    round: u32,
    scratch: &Path,
) -> anyhow::Result<Option<f64>> {
    let script = scratch.join("write.lua");
    std::fs::write(
        &script,
        r#"local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  round = args[1]
  counter = 0
end
request = function()
  counter = counter + 1
  local body = string.format('{"id":"bench-wrk-r%s-t%d-%d","ns":"bench-wrk","value":"x"}', round, tid, counter)
  return wrk.format("POST", "/write", {["Content-Type"] = "application/json"}, body)
end
"#,
    )?;
    let out = match tokio::process::Command::new("wrk")
        .args(["-t", "2", "-c", &connections.to_string(), "-d"])
        .arg(format!("{secs}s"))
        .arg("-s")
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--")
        .arg(round.to_string())
        .output()
        .await
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("bench: wrk not installed (apt-get install wrk); no comparison");
            return Ok(None);
        }
        Err(e) => return Err(e).context("running wrk"),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    if let Some(l) = text.lines().find(|l| l.contains("Non-2xx")) {
        bail!(
            "bench: wrk's writes were not all acknowledged ({}):\n{text}",
            l.trim()
        );
    }
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("wrk printed no Requests/sec:\n{text}"))?;
    Ok(Some(rps))
}

/// The parallel part: one row per `--parallel`.
fn scaling_table(rows: &[Scaling]) -> String {
    let Some(base) = rows.first() else {
        return String::new();
    };
    let mut s = String::from(
        "\n| --parallel | cycles | wall | cycles / minute | vs 1 | verdict |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {:.1} s | {:.1} | {:.2}x | {} |\n",
            r.parallel,
            r.cycles,
            r.wall_s,
            r.cycles_per_minute,
            r.cycles_per_minute / base.cycles_per_minute,
            if r.pass { "pass" } else { "FAIL" }
        ));
    }
    s
}

fn table(f: &Figures, disk_only: bool) -> String {
    if let (0, Some(l)) = (f.campaign.cycles, &f.links) {
        let mut s = format!(
            "\nchaos-bench (link faults) on {}\n\n| figure | measured | target |\n|---|---|---|\n",
            f.machine
        );
        link_rows(&mut s, l);
        return s;
    }
    if f.campaign.cycles == 0 && !disk_only {
        return format!(
            "\nchaos-bench (parallel cycles) on {}\n{}",
            f.machine,
            scaling_table(&f.parallel)
        );
    }
    let p = &f.plugins;
    let c = &f.campaign;
    let d = &f.driver;
    let mark = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut s = format!("\nchaos-bench on {}\n\n", f.machine);
    s.push_str("| figure | measured | target |\n|---|---|---|\n");
    if disk_only {
        if f.disk.is_some() {
            disk_rows(&mut s, f.disk.as_ref());
        }
        skew_rows(&mut s, f.skews.as_ref(), f.disk.is_none());
        return s;
    }
    s.push_str(&format!(
        "| plugin cold compile | {:.1} ms | - |\n| plugin cached load | {:.1} ms | - |\n",
        p.cold_compile_ms, p.cached_load_ms
    ));
    s.push_str(&format!(
        "| per-cycle instantiation + call (p50 / p99) | {:.1} / {:.1} µs | < 100 µs: {} |\n",
        p.instantiate_call_us_p50,
        p.instantiate_call_us_p99,
        mark(p.instantiate_call_us_p50 < 100.0)
    ));
    s.push_str(&format!(
        "| host call | {:.0} ns | < 1 µs: {} |\n",
        p.host_call_ns,
        mark(p.host_call_ns < 1000.0)
    ));
    s.push_str(&format!(
        "| 500 ms lease error, {} leases (p50 / p99 / max) | {:.2} / {:.2} / {:.2} ms | p99 < 2 ms: {} |\n",
        c.leases,
        c.lease_error_ms_p50,
        c.lease_error_ms_p99,
        c.lease_error_ms_max,
        mark(c.lease_error_ms_p99 < 2.0)
    ));
    s.push_str(&format!(
        "| harness overhead per cycle (p50; whole run, wall-clock) | {:.1} % of {:.0} ms; {:.1} % | < 10 %: {} |\n",
        c.overhead_share_p50 * 100.0,
        c.cycle_ms_p50,
        c.overhead_share_run * 100.0,
        mark(c.overhead_share_p50 < 0.10 && c.overhead_share_run < 0.10)
    ));
    match (d.wrk_rps, d.ratio) {
        (Some(w), Some(r)) => s.push_str(&format!(
            "| driver vs wrk, one node | {:.0} vs {:.0} req/s = {:.0} % ({:.0} µs CPU per write) | ≥ 80 %: {} |\n",
            d.driver_rps,
            w,
            r * 100.0,
            d.driver_cpu_us_per_write,
            mark(r >= 0.8)
        )),
        _ => s.push_str(&format!(
            "| driver, one node | {:.0} req/s (wrk not installed) | - |\n",
            d.driver_rps
        )),
    }
    s.push_str(&format!(
        "| campaign wall time | {:.1} s for {} cycles, {} writes ({}) | - |\n",
        c.wall_s,
        c.cycles,
        c.writes,
        c.classes.join(", ")
    ));
    s.push_str(&format!(
        "| chaos-host memory (steady: first / last / max; at 25/50/75/100 % of the run) | {:.1} / {:.1} / {:.1} MiB; {} | flat |\n",
        c.rss_mib_first,
        c.rss_mib_last,
        c.rss_mib_max,
        c.rss_mib_quarters
            .iter()
            .map(|r| format!("{r:.1}"))
            .collect::<Vec<_>>()
            .join(" / ")
    ));
    s.push_str(&format!(
        "| open files (first / last / max) | {} / {} / {} | flat |\n| threads (first / last / max) | {} / {} / {} | flat |\n",
        c.fds_first, c.fds_last, c.fds_max, c.threads_first, c.threads_last, c.threads_max
    ));
    disk_rows(&mut s, f.disk.as_ref());
    if let Some(l) = &f.links {
        link_rows(&mut s, l);
    }
    skew_rows(&mut s, f.skews.as_ref(), true);
    let phases: Vec<String> = c
        .phase_ms_p50
        .iter()
        .map(|(p, v)| format!("{p} {v:.0}"))
        .collect();
    s.push_str(&format!("\nphase p50, ms: {}\n", phases.join(", ")));
    s.push_str(&scaling_table(&f.parallel));
    s
}

/// The link faults' rows of the table.
fn link_rows(s: &mut String, l: &LinkFigures) {
    let mark = |ok: bool| if ok { "met" } else { "MISSED" };
    s.push_str(&format!(
        "| link proxy, no fault: added to a 1-byte round trip, {} round trips (p50 / p99) | {:.1} / {:.1} µs | p99 < 100 µs: {} |\n",
        l.round_trips,
        l.proxy_added_us_p50,
        l.proxy_added_us_p99,
        mark(l.proxy_added_us_p99 < 100.0)
    ));
    s.push_str(&format!(
        "| link fault latency {} ms: error of the delay given (p50 / p99) | {:.2} / {:.2} ms | - |\n",
        l.latency_requested_ms, l.latency_error_ms_p50, l.latency_error_ms_p99
    ));
    s.push_str(&format!(
        "| link fault bandwidth {} B/s: measured vs asked (p50 / worst) | {:+.1} / {:+.1} % | - |\n",
        l.bandwidth_requested,
        l.bandwidth_error_p50 * 100.0,
        l.bandwidth_error_max * 100.0
    ));
    s.push_str(&format!(
        "| link lease {} ms (proxy): error of the time held, {LEASES} leases (p50 / p99) | {:.2} / {:.2} ms | - |\n",
        l.lease_requested_ms, l.lease_error_ms_p50, l.lease_error_ms_p99
    ));
    match &l.netns {
        Ok(n) => s.push_str(&format!(
            "| netns (NFQUEUE verdict loop) latency {} ms: error of the delay given (p50 / p99) | {:.2} / {:.2} ms | - |\n| netns bandwidth {} B/s: measured vs asked (p50 / worst) | {:+.1} / {:+.1} % | - |\n| link lease {} ms (netns): error of the time held, {LEASES} leases (p50 / p99) | {:.2} / {:.2} ms | - |\n",
            l.latency_requested_ms,
            n.latency_error_ms_p50,
            n.latency_error_ms_p99,
            l.bandwidth_requested,
            n.bandwidth_error_p50 * 100.0,
            n.bandwidth_error_max * 100.0,
            l.lease_requested_ms,
            n.lease_error_ms_p50,
            n.lease_error_ms_p99
        )),
        Err(why) => s.push_str(&format!("| link faults in netns mode | not measured: {why} | - |\n")),
    }
}

/// The clock skew rows of the table (`say_none`: a row when not measured).
fn skew_rows(s: &mut String, skews: Option<&SkewFigures>, say_none: bool) {
    let mark = |ok: bool| if ok { "met" } else { "MISSED" };
    match skews {
        Some(k) => s.push_str(&format!(
            "| clock skew {:+} ms via the vDSO, {} skews: node probe vs requested (p50 / p99) | {:.0} / {:.0} ms | within the probe tolerance 250 ms: {} |\n| clock skew lease held vs requested 500 ms (p50 / p99) | {:.2} / {:.2} ms | - |\n",
            k.offset_ms,
            k.skews,
            k.probe_error_ms_p50,
            k.probe_error_ms_p99,
            mark(k.probe_error_ms_p99 < 250.0),
            k.lease_error_ms_p50,
            k.lease_error_ms_p99
        )),
        None if say_none => s.push_str("| clock skew | not measured (vDSO patching refused) | - |\n"),
        None => {}
    }
}

/// The disk layer's rows of the table.
fn disk_rows(s: &mut String, disk: Option<&DiskFigures>) {
    let mark = |ok: bool| if ok { "met" } else { "MISSED" };
    match disk {
        Some(k) => s.push_str(&format!(
            "| disk layer, one node, {} writes: acked writes/s plain vs layer | {:.0} vs {:.0} = {:.1} % lost | ≤ 20 %: {} |\n| fdatasync of a 100-byte append, p50 / p99: plain vs layer | {:.0} / {:.0} vs {:.0} / {:.0} µs | - |\n",
            k.writes,
            k.plain_rps,
            k.layer_rps,
            k.throughput_lost * 100.0,
            mark(k.throughput_lost <= 0.20),
            k.plain_fsync_us_p50,
            k.plain_fsync_us_p99,
            k.layer_fsync_us_p50,
            k.layer_fsync_us_p99
        )),
        None => s.push_str("| disk layer | not measured (needs root and /dev/fuse) | - |\n"),
    }
}
