//! `chaos-host merge SHARD_DIR... --out DIR`: the --out dirs of the shards
//! of one campaign run (`chaos-host run --shard I/N`, see [`crate::shard`])
//! combined into one run dir, as if the campaign had run on one machine:
//! `cycles.jsonl` in cycle order, `summary.json` folded from the records by
//! the same [`ClassSummary`] a run uses, `report.html`, `junit.xml`, a
//! `run.json` without the shard (so `chaos-host report` and `replay` work on
//! the merged dir) and the shards' evidence.
//!
//! Everything is checked before anything is written: every dir is a
//! finished run; the shards agree on the campaign (sha256), plugins
//! (sha256), seed, cycles, writes, settle time, network, parameters and
//! grants and on the number of shards; every shard 1..N is there exactly
//! once; and the records cover every cycle of every class exactly once, each
//! in the shard that owns it and with the seed the unsharded run would give
//! it.

use crate::args::MergeArgs;
use crate::shard::Shard;
use crate::summary::Summary;
use anyhow::{Context, bail};
use chaos_core::metrics::{ClassSummary, Tally};
use chaos_model::seed::cycle_seed;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The fields of `run.json` every shard of one run shares, with how a
/// refusal names each.
const SAME: &[(&str, &str)] = &[
    ("campaign_sha256", "campaign (sha256)"),
    ("plugin_sha256", "plugins (sha256 by name)"),
    ("seed", "seed"),
    ("cycles", "cycles per class"),
    ("writes", "writes per cycle"),
    ("settle_ms", "settle time (settle_ms)"),
    ("net", "network mode"),
    ("param", "plugin parameters (--param)"),
    ("allow", "grants (--allow)"),
];

/// A class's records in cycle order, each with the index of the shard that
/// recorded it.
type ClassRecords = (String, Vec<(Value, usize)>);

/// One shard's --out dir, read and checked on its own.
struct ShardRun {
    dir: PathBuf,
    run: Value,
    summary: Value,
    shard: Shard,
    records: Vec<Value>,
}

impl ShardRun {
    fn read(dir: &Path) -> anyhow::Result<Self> {
        let run_json = dir.join("run.json");
        let run: Value = std::fs::read(&run_json)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .with_context(|| {
                format!(
                    "merge: {} is not a chaos-host run dir (no readable run.json); give the --out dirs of `chaos-host run --shard I/N`",
                    dir.display()
                )
            })?;
        let summary: Value = std::fs::read(dir.join("summary.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .with_context(|| {
                format!(
                    "merge: {} has no summary.json: that run did not finish; finish it with `chaos-host run --resume {}`, then merge",
                    dir.display(),
                    dir.display()
                )
            })?;
        // An unsharded run is the one shard of one.
        let shard = match &run["shard"] {
            Value::Null => Shard::WHOLE,
            v => serde_json::from_value(v.clone())
                .with_context(|| format!("merge: {}: shard {v} is not I/N", run_json.display()))?,
        };
        let jsonl = dir.join("cycles.jsonl");
        let text = std::fs::read_to_string(&jsonl)
            .with_context(|| format!("merge: reading {}", jsonl.display()))?;
        let records = text
            .lines()
            .enumerate()
            .map(|(i, line)| {
                serde_json::from_str(line).with_context(|| {
                    format!(
                        "merge: {} line {}: not a cycle record",
                        jsonl.display(),
                        i + 1
                    )
                })
            })
            .collect::<anyhow::Result<Vec<Value>>>()?;
        Ok(ShardRun {
            dir: dir.to_path_buf(),
            run,
            summary,
            shard,
            records,
        })
    }
}

/// Merge; true when every class of the merged run passed.
pub fn merge(args: &MergeArgs) -> anyhow::Result<bool> {
    let shards = args
        .dirs
        .iter()
        .map(|d| ShardRun::read(d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let out = std::path::absolute(&args.out).unwrap_or_else(|_| args.out.clone());
    for s in &shards {
        if std::path::absolute(&s.dir).is_ok_and(|d| d == out) {
            bail!(
                "merge --out {}: it is one of the shard dirs; write the merged run somewhere else",
                args.out.display()
            );
        }
    }
    let shards = check_same_run(shards)?;
    let merged = check_records(&shards)?;
    write(&shards, merged, &args.out)
}

/// The shards are of one run, and are all of its shards once each; in
/// shard order.
fn check_same_run(mut shards: Vec<ShardRun>) -> anyhow::Result<Vec<ShardRun>> {
    let first = &shards[0];
    for s in &shards[1..] {
        for (field, what) in SAME {
            if first.run[field] != s.run[field] {
                bail!(
                    "merge: {} and {} are not shards of one run: their {what} differ ({} vs {} in run.json `{field}`); merge only the shards of one `chaos-host run --shard I/N` with the same arguments",
                    first.dir.display(),
                    s.dir.display(),
                    first.run[field],
                    s.run[field]
                );
            }
        }
        if first.shard.count != s.shard.count {
            bail!(
                "merge: {} and {} are not shards of one run: their shard counts differ ({} is shard {}, {} is shard {})",
                first.dir.display(),
                s.dir.display(),
                first.dir.display(),
                first.shard,
                s.dir.display(),
                s.shard
            );
        }
    }
    shards.sort_by_key(|s| s.shard);
    for pair in shards.windows(2) {
        if pair[0].shard == pair[1].shard {
            bail!(
                "merge: {} and {} are both shard {} (overlapping shards); give each shard's dir once",
                pair[0].dir.display(),
                pair[1].dir.display(),
                pair[0].shard
            );
        }
    }
    let count = shards[0].shard.count;
    let missing: Vec<String> = (1..=count)
        .filter(|i| !shards.iter().any(|s| s.shard.index == *i))
        .map(|index| Shard { index, count }.to_string())
        .collect();
    if !missing.is_empty() {
        let have: Vec<String> = shards
            .iter()
            .map(|s| format!("{} from {}", s.shard, s.dir.display()))
            .collect();
        bail!(
            "merge: shard {} {} missing (have {}); add the missing shard's dir, or run it with `chaos-host run --shard I/N` and the same arguments",
            missing.join(", "),
            if missing.len() == 1 { "is" } else { "are" },
            have.join(", ")
        );
    }
    Ok(shards)
}

/// Every cycle of every class exactly once, in the shard owning it, with
/// the unsharded run's seed; the records by class (in the run's class
/// order), then cycle.
fn check_records(shards: &[ShardRun]) -> anyhow::Result<Vec<ClassRecords>> {
    let first = &shards[0];
    let seed = first.run["seed"]
        .as_u64()
        .with_context(|| format!("merge: {}/run.json: no seed", first.dir.display()))?;
    let cycles = first.run["cycles"]
        .as_u64()
        .with_context(|| format!("merge: {}/run.json: no cycles", first.dir.display()))?
        as u32;
    let classes: Vec<String> = first.summary["classes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["fault"].as_str().map(str::to_string))
        .collect();
    let mut by_class: BTreeMap<String, BTreeMap<u32, (Value, usize)>> = BTreeMap::new();
    for (k, s) in shards.iter().enumerate() {
        for r in &s.records {
            let (Some(class), Some(n)) = (r["class"].as_str(), r["cycle"].as_u64()) else {
                bail!(
                    "merge: {}/cycles.jsonl: a line without class or cycle",
                    s.dir.display()
                );
            };
            let n = n as u32;
            if !classes.iter().any(|c| c == class) {
                bail!(
                    "merge: {}/cycles.jsonl: class {class} is not a class of the run (it has: {})",
                    s.dir.display(),
                    classes.join(", ")
                );
            }
            if n == 0 || n > cycles || !s.shard.owns(n) {
                bail!(
                    "merge: {}/cycles.jsonl: cycle {n} of {class} does not belong to shard {} of a run of {cycles} cycle(s)",
                    s.dir.display(),
                    s.shard
                );
            }
            let want = cycle_seed(seed, class, n);
            if r["seed"].as_u64() != Some(want) {
                bail!(
                    "merge: {}/cycles.jsonl: cycle {n} of {class} has seed {}, not {want} as the run's seed {seed} gives it",
                    s.dir.display(),
                    r["seed"]
                );
            }
            if by_class
                .entry(class.to_string())
                .or_default()
                .insert(n, (r.clone(), k))
                .is_some()
            {
                bail!("merge: cycle {n} of {class} is recorded twice (overlapping shards)",);
            }
        }
    }
    let mut merged = Vec::new();
    for class in classes {
        let got = by_class.remove(&class).unwrap_or_default();
        if let Some(n) = (1..=cycles).find(|n| !got.contains_key(n)) {
            let owner = shards
                .iter()
                .find(|s| s.shard.owns(n))
                .expect("every shard is present");
            bail!(
                "merge: cycle {n} of {class} is not recorded in {} (shard {}), which owns it; finish that shard with `chaos-host run --resume {}`",
                owner.dir.display(),
                owner.shard,
                owner.dir.display()
            );
        }
        merged.push((class, got.into_values().collect()));
    }
    Ok(merged)
}

/// Write the merged run into `out`; true when it passed.
fn write(shards: &[ShardRun], merged: Vec<ClassRecords>, out: &Path) -> anyhow::Result<bool> {
    let first = &shards[0];
    // Every summary.json chaos-host writes has it: no default here.
    let threshold = first.summary["threshold"]
        .as_f64()
        .with_context(|| format!("merge: {}/summary.json: no threshold", first.dir.display()))?;
    let mut lines = String::new();
    let mut classes = Vec::new();
    let mut evidence = Vec::new();
    let mut histories = Vec::new();
    for (class, records) in merged {
        let plugin = first.summary["classes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["fault"] == class.as_str())
            .and_then(|c| c["plugin"].as_str())
            .map(str::to_string);
        let mut summary = ClassSummary::new(&class, plugin, threshold);
        for (mut r, k) in records {
            let tally: Tally = serde_json::from_value(r.clone())
                .with_context(|| format!("merge: {}: a cycle record", shards[k].dir.display()))?;
            summary.add(&tally)?;
            // The evidence moves with the record.
            if r["evidence"].is_string() {
                let rel = Path::new("evidence")
                    .join(&class)
                    .join(format!("cycle-{}", tally.cycle));
                let from = shards[k].dir.join(&rel);
                if from.is_dir() {
                    r["evidence"] = Value::String(out.join(&rel).display().to_string());
                    evidence.push((from, out.join(&rel)));
                }
            }
            // So does the history (`history/<class>/cycle-<n>/`): the
            // merged dir exports and checks like an unsharded one.
            if let Some(recorded) = r["history"].as_str().map(PathBuf::from) {
                let rel: PathBuf = {
                    let tail: Vec<_> = recorded.components().rev().take(4).collect();
                    tail.into_iter().rev().collect()
                };
                let from = shards[k].dir.join(&rel);
                if rel.starts_with("history") && from.is_file() {
                    r["history"] = Value::String(out.join(&rel).display().to_string());
                    if let Some((from, to)) = from.parent().zip(out.join(&rel).parent()) {
                        histories.push((from.to_path_buf(), to.to_path_buf()));
                    }
                }
            }
            lines.push_str(&serde_json::to_string(&r)?);
            lines.push('\n');
        }
        summary.finish();
        classes.push(summary);
    }
    let network = match first.summary["network"].as_str() {
        Some("netns") => "netns",
        Some("proxy") => "proxy",
        _ => "loopback",
    };
    let summary = Summary {
        pass: classes.iter().all(|c| c.pass),
        campaign: first.summary["campaign"].as_str().unwrap_or("").to_string(),
        system: first.summary["system"].as_str().unwrap_or("").to_string(),
        seed: first.summary["seed"].as_u64().unwrap_or_default(),
        run_id: shards
            .iter()
            .filter_map(|s| s.summary["run_id"].as_str())
            .collect::<Vec<_>>()
            .join("+"),
        threshold,
        cycles_per_class: first.run["cycles"].as_u64().unwrap_or_default() as u32,
        writes_per_cycle: first.run["writes"].as_u64().unwrap_or_default() as u32,
        // The shards ran side by side: the merged run took as long as the
        // slowest.
        wall_ms: shards
            .iter()
            .filter_map(|s| s.summary["wall_ms"].as_u64())
            .max()
            .unwrap_or_default(),
        network,
        parallel: shards
            .iter()
            .filter_map(|s| s.summary["parallel"].as_u64())
            .max()
            .unwrap_or(1) as u32,
        shard: None,
        merged: shards
            .iter()
            .map(|s| {
                format!(
                    "shard {} from {} (run {})",
                    s.shard,
                    s.dir.display(),
                    s.summary["run_id"].as_str().unwrap_or("?")
                )
            })
            .collect(),
        classes,
    };
    let mut run = first.run.clone();
    run["shard"] = Value::Null;
    run["out"] = Value::String(out.display().to_string());

    std::fs::create_dir_all(out)
        .with_context(|| format!("merge: creating --out {}", out.display()))?;
    for (what, copies) in [("evidence", &evidence), ("history", &histories)] {
        let stale = out.join(what);
        if stale.exists() {
            std::fs::remove_dir_all(&stale)
                .with_context(|| format!("merge: clearing {}", stale.display()))?;
        }
        for (from, to) in copies {
            copy_dir(from, to).with_context(|| {
                format!(
                    "merge: copying {what} {} to {}",
                    from.display(),
                    to.display()
                )
            })?;
        }
    }
    write_atomic(&out.join("cycles.jsonl"), lines.as_bytes())?;
    write_atomic(&out.join("run.json"), &serde_json::to_vec_pretty(&run)?)?;
    write_atomic(
        &out.join("summary.json"),
        &serde_json::to_vec_pretty(&summary)?,
    )?;
    crate::report::write_files(out)?;
    print!("{}", crate::report::table(&summary));
    for line in &summary.merged {
        println!("merged: {line}");
    }
    println!(
        "results: {} (report.html, junit.xml, cycles.jsonl, summary.json)",
        out.display()
    );
    Ok(summary.pass)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("merge: writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("merge: writing {}", path.display()))?;
    Ok(())
}
