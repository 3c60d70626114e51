//! The clients' own cost (issue 22): the same writes to one reference node
//! through the built-in HTTP client (reqwest, the native call), a driver
//! process (`examples/driver/driver.py`, stdlib Python) and a client
//! component (`examples/plugins/quorum_kv_client`, HTTP over
//! wasi:sockets). Per operation: p50 / p99 latency of sequential writes
//! through one client process, and what each adds over the HTTP client's
//! p50; throughput with 8 client processes at once.

use anyhow::Context;
use chaos_core::client::{Client, Made};
use chaos_journal::journal::Journal;
use chaos_model::campaign::Campaign;
use chaos_model::history::{Outcome, Processes};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Writes timed one at a time, and per process in the throughput run.
const SEQUENTIAL: u32 = 1_000;
const PROCESSES: u32 = 8;
const PER_PROCESS: u32 = 250;

#[derive(Serialize, Debug)]
pub struct ClientRow {
    pub client: &'static str,
    pub p50_us: f64,
    pub p99_us: f64,
    /// p50 minus the HTTP client's p50.
    pub added_p50_us: f64,
    pub ops_per_s: f64,
    /// Throughput over the HTTP client's.
    pub ratio: f64,
}

/// `chaos-bench --clients-only`: measure, print, and write `--json`.
pub async fn run(args: &crate::bench::BenchArgs) -> anyhow::Result<()> {
    let root = std::env::current_dir()?;
    for need in [
        "examples/plugins/quorum_kv_client.wasm",
        "examples/driver/driver.py",
        "target/debug/quorum-kv",
    ] {
        anyhow::ensure!(
            root.join(need).exists(),
            "bench: {need} not found under {}: run from the repository root after scripts/build-plugins.sh and cargo build",
            root.display()
        );
    }
    let scratch = std::env::temp_dir().join(format!("chaos-bench-clients-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let rows = measure(&root, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    let rows = rows?;
    print!(
        "\nchaos-bench (clients) on {}\n{}",
        crate::bench::machine(),
        table(&rows)
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&rows)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

async fn measure(root: &Path, scratch: &Path) -> anyhow::Result<Vec<ClientRow>> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    let journal = Arc::new(Journal::create(
        &scratch.join("clients-state"),
        "bench-clients",
        &chaos_mechanisms::UNDO,
    )?);
    let runtime = chaos_plugin::Runtime::new()?;
    let component = Arc::new(
        runtime
            .load(&root.join("examples/plugins/quorum_kv_client.wasm"))
            .await
            .context("bench: examples/plugins/quorum_kv_client.wasm (scripts/build-plugins.sh)")?,
    );
    let kinds: [(&'static str, &str, Option<Arc<chaos_plugin::Loaded>>); 3] = [
        (
            "HTTP templates (native)",
            "examples/reference/campaign.toml",
            None,
        ),
        (
            "driver process (Python)",
            "examples/driver/campaign.toml",
            None,
        ),
        (
            "component (wasm)",
            "examples/plugins/quorum_kv_client/campaign.toml",
            Some(component),
        ),
    ];
    let mut rows: Vec<ClientRow> = Vec::new();
    for (i, (name, campaign, plugin)) in kinds.into_iter().enumerate() {
        let campaign = Campaign::load(&root.join(campaign))?;
        let dir = scratch.join(format!("clients-{i}"));
        std::fs::create_dir_all(&dir)?;
        let (mut node, port) = crate::bench::reference_node(root, &dir.join("kv"), &http).await?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let namespace = format!("bench-client-{i}");
        let client = Client::new(Made {
            campaign: &campaign,
            http: &http,
            namespace: &namespace,
            cycle: 1,
            nodes: vec![addr],
            dir: &dir,
            journal: journal.clone(),
            processes: Processes {
                writers: PROCESSES,
                readers: 0,
                nodes: 1,
            },
            plugin,
            seed: 1,
        });
        let measured = async {
            // Warm up: the driver's interpreter, the component's instance.
            for p in 0..PROCESSES {
                one(&client, p, addr, &format!("{namespace}-warm{p}")).await?;
            }
            let mut lat = Vec::with_capacity(SEQUENTIAL as usize);
            for w in 0..SEQUENTIAL {
                let t = Instant::now();
                one(&client, 0, addr, &format!("{namespace}-s{w}")).await?;
                lat.push(t.elapsed().as_secs_f64() * 1e6);
            }
            let t = Instant::now();
            let workers = (0..PROCESSES).map(|p| {
                let (client, namespace) = (client.clone(), namespace.clone());
                async move {
                    for w in 0..PER_PROCESS {
                        one(&client, p, addr, &format!("{namespace}-p{p}-{w}")).await?;
                    }
                    anyhow::Ok(())
                }
            });
            for r in futures::future::join_all(workers).await {
                r?;
            }
            let ops_per_s = f64::from(PROCESSES * PER_PROCESS) / t.elapsed().as_secs_f64();
            anyhow::Ok((crate::bench::sorted(lat), ops_per_s))
        }
        .await;
        client.close().await;
        let _ = node.kill().await;
        let _ = node.wait().await;
        let (lat, ops_per_s) = measured.with_context(|| format!("bench: the {name} client"))?;
        let p50 = crate::bench::quantile(&lat, 0.50);
        let (base_p50, base_ops) = rows
            .first()
            .map_or((p50, ops_per_s), |r| (r.p50_us, r.ops_per_s));
        rows.push(ClientRow {
            client: name,
            p50_us: p50,
            p99_us: crate::bench::quantile(&lat, 0.99),
            added_p50_us: p50 - base_p50,
            ops_per_s,
            ratio: ops_per_s / base_ops,
        });
    }
    drop(journal);
    Ok(rows)
}

/// One acknowledged write, or why not.
async fn one(client: &Client, process: u32, addr: SocketAddr, id: &str) -> anyhow::Result<()> {
    let a = client.add(process, 0, addr, id).await;
    anyhow::ensure!(a.outcome == Outcome::Ok, "write {id} was {:?}", a.outcome);
    Ok(())
}

pub fn table(rows: &[ClientRow]) -> String {
    let mut s = format!(
        "\n{:<26} {:>9} {:>9} {:>14} {:>10} {:>14}\n",
        "client (one reference node)", "p50 µs", "p99 µs", "added p50 µs", "ops/s", "vs HTTP"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<26} {:>9.0} {:>9.0} {:>14.0} {:>10.0} {:>13.0}%\n",
            r.client,
            r.p50_us,
            r.p99_us,
            r.added_p50_us,
            r.ops_per_s,
            r.ratio * 100.0
        ));
    }
    s
}
