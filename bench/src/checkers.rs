//! `chaos-bench --checkers DIR`: the built-in `linearizable` checker
//! on every register history `DIR/*.jsonl`, through the host exactly as a
//! campaign runs it: a fresh instance per check, the history read in chunks
//! through the `history` resource, the default fuel and the 64 MiB cap.
//!
//! The histories come from the checker's native bench (`cargo run --release
//! -p linearizable --example bench -- --write DIR`), which generates them
//! from a simulated linearizable register and prints the native figures for
//! the same files: reading files keeps the generator out of the host's
//! dependencies.

use anyhow::{Context, bail};
use chaos_model::history;
use chaos_plugin::{CycleInfo, Grants, Observations, Runtime, builtins};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Run the part on every `*.jsonl` in `dir`; returns the table.
pub async fn run(dir: &Path) -> anyhow::Result<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("bench --checkers: reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!(
            "bench --checkers: no *.jsonl history in {} (write them with `cargo run --release -p linearizable --example bench -- --write {}`)",
            dir.display(),
            dir.display()
        );
    }
    let runtime = Runtime::new()?;
    let builtin = builtins::get("linearizable").context(
        "bench --checkers: no built-in linearizable (rebuild with scripts/build-plugins.sh)",
    )?;
    let mut plugin = runtime
        .load_bytes("builtin:linearizable", builtin.bytes.to_vec())
        .await?;
    plugin.authorize(Grants::new("linearizable"), vec![])?;
    let mut table = String::from(
        "| history | ops | sandbox s | ops/s | verdict | linear memory MiB |\n|---|---|---|---|---|---|\n",
    );
    for file in files {
        let h = history::read_jsonl(&file)?;
        let ops = h.ops.len();
        let observations = Observations {
            cycle: CycleInfo {
                cycle: 1,
                seed: 15,
                nodes: 3,
                primary: 0,
                writes: 0,
                params: plugin.params().to_vec(),
            },
            acked: vec![],
            quorum_not_met: vec![],
            failed: vec![],
            unexpected: vec![],
            indeterminate: vec![],
            nodes: vec![],
            // As a campaign that sets none (linearizable does not read it).
            threshold: chaos_model::campaign::DEFAULT_THRESHOLD,
            history: Arc::new(h),
        };
        let t = Instant::now();
        let verdict = plugin
            .check(&observations, Duration::from_secs(120))
            .await?;
        let secs = t.elapsed().as_secs_f64();
        let memory = verdict
            .figures
            .iter()
            .find(|(name, _)| name == "wasm_memory_mib")
            .map_or("-".to_owned(), |(_, v)| format!("{v:.1}"));
        let outcome = match verdict.outcome {
            "pass" => "pass".to_owned(),
            other => format!(
                "{other}: {}",
                verdict.reasons.first().map_or("", String::as_str)
            ),
        };
        let name = file.file_stem().unwrap_or_default().to_string_lossy();
        eprintln!("bench: {name}: {secs:.3} s");
        let _ = writeln!(
            table,
            "| {name} | {ops} | {secs:.3} | {:.0} | {outcome} | {memory} |",
            ops as f64 / secs,
        );
    }
    Ok(table)
}
