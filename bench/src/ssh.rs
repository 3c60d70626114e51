//! The SSH part of `chaos-bench` (`--ssh-hosts FILE`): what placing
//! nodes on remote hosts costs per cycle against local placement. The same
//! reference campaign (a pause class and a partition class) runs as a child
//! `chaos-host run` twice: nodes local (`netns` as root, so partitions are
//! nftables too; else `proxy`), then on the hosts FILE lists; per run, the
//! p50 of spawn (start: spawn + ready), teardown, how long each pause and
//! partition held beyond its lease (apply + verify + undo), and the cycle.

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

#[derive(Serialize, Debug)]
pub struct Row {
    pub placement: String,
    pub cycles: usize,
    pub start_ms_p50: f64,
    pub teardown_ms_p50: f64,
    pub pause_over_ms_p50: f64,
    pub partition_over_ms_p50: f64,
    pub cycle_ms_p50: f64,
}

fn p50(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Run the reference campaign locally and on `hosts`; one row each.
pub async fn measure(
    root: &Path,
    scratch: &Path,
    hosts: &Path,
    cycles: u32,
) -> anyhow::Result<Vec<Row>> {
    let kv = root.join("target/debug/quorum-kv");
    let text = std::fs::read_to_string(root.join("examples/reference/campaign.toml"))?
        .replace("../../target/debug/quorum-kv", &kv.to_string_lossy())
        .replace("http://127.0.0.1:{port}", "http://{host}:{port}");
    let campaign = scratch.join("ssh-campaign.toml");
    std::fs::write(&campaign, text)?;
    let local = if nix::unistd::geteuid().is_root() {
        "netns"
    } else {
        "proxy"
    };
    let mut rows = Vec::new();
    for (label, extra) in [
        (
            format!("local ({local})"),
            vec!["--net".to_string(), local.to_string()],
        ),
        (
            format!("ssh ({})", hosts.display()),
            vec!["--hosts".to_string(), hosts.to_string_lossy().into_owned()],
        ),
    ] {
        eprintln!("bench: nodes {label}");
        let out = scratch.join(format!("ssh-out-{}", rows.len()));
        let status = tokio::process::Command::new(crate::chaos_host::binary()?)
            .arg("run")
            .arg("--campaign")
            .arg(&campaign)
            .args([
                "--cycles",
                &cycles.to_string(),
                "--writes",
                "100",
                "--seed",
                "16",
            ])
            .args(&extra)
            .arg("--plugin")
            .arg(root.join("plugins/drop_random_acks.wasm"))
            .arg("--plugin")
            .arg(root.join("plugins/partition_minority.wasm"))
            .arg("--out")
            .arg(&out)
            .env("CHAOS_LOG", "warn")
            .env("RUST_BACKTRACE", "0")
            .stdout(std::process::Stdio::null())
            .status()
            .await
            .context("starting chaos-host run")?;
        if !status.success() {
            bail!(
                "bench: the reference campaign with nodes {label} exited with {status}: it should pass"
            );
        }
        let records: Vec<Value> = std::fs::read_to_string(out.join("cycles.jsonl"))?
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        let phase = |r: &Value, p: &str| r["phases_ms"][p].as_f64().unwrap_or(0.0);
        let over = |kind: &str| {
            p50(records
                .iter()
                .flat_map(|r| r["effects"].as_array().cloned().unwrap_or_default())
                .filter(|e| e["kind"] == kind)
                .filter_map(|e| {
                    let held = (e["undone_us"].as_f64()? - e["start_us"].as_f64()?) / 1e3;
                    Some(held - e["requested_ms"].as_f64()?)
                })
                .collect())
        };
        rows.push(Row {
            placement: label,
            cycles: records.len(),
            start_ms_p50: p50(records.iter().map(|r| phase(r, "start")).collect()),
            teardown_ms_p50: p50(records.iter().map(|r| phase(r, "teardown")).collect()),
            pause_over_ms_p50: over("pause"),
            partition_over_ms_p50: over("partition"),
            cycle_ms_p50: p50(records
                .iter()
                .map(|r| {
                    ["start", "fault", "converge", "assert", "teardown"]
                        .iter()
                        .map(|p| phase(r, p))
                        .sum()
                })
                .collect()),
        });
    }
    Ok(rows)
}

/// The rows as a markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "\n| nodes | cycles | spawn + ready p50 | teardown p50 | pause beyond lease p50 | partition beyond lease p50 | cycle p50 |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {:.0} ms | {:.0} ms | {:.1} ms | {:.1} ms | {:.0} ms |\n",
            r.placement,
            r.cycles,
            r.start_ms_p50,
            r.teardown_ms_p50,
            r.pause_over_ms_p50,
            r.partition_over_ms_p50,
            r.cycle_ms_p50
        ));
    }
    s
}
