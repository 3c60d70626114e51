//! `chaos-host replay OUT --class NAME --cycle N`: rerun one recorded cycle
//! with its recorded seed, the run's parameters and the same plugins (a
//! changed plugin or campaign is refused), into `OUT/replay/NAME-cycle-N/`,
//! and print its verdict beside the recorded one. Plugins draw every
//! decision from the seed (host `random`, WASI random), so the fault does
//! the same thing; the system under test may not, which is what a replay
//! tells apart.

use crate::args::{ReplayArgs, RunArgs};
use anyhow::{Context, bail};
use chaos_model::seed::cycle_seed;
use serde_json::Value;
use std::path::Path;

/// Replay; true when the recorded status is reproduced.
pub async fn replay(args: &ReplayArgs) -> anyhow::Result<bool> {
    let (class, n) = (args.class.as_str(), args.cycle);
    if let Some(why) = chaos_model::campaign::class_name_problem(class) {
        bail!("--class {why}");
    }
    let recorded = recorded(&args.dir, class, n)?;
    let mut plan = RunArgs::saved(&args.dir)?;
    let seed = cycle_seed(plan.seed, class, n);
    if recorded["seed"].as_u64() != Some(seed) {
        bail!(
            "cycle {n} of {class} in {}: recorded seed {} is not the seed this chaos-host derives ({seed}); it was recorded by another version, so it cannot be replayed exactly",
            args.dir.display(),
            recorded["seed"]
        );
    }
    let out = args.dir.join("replay").join(format!("{class}-cycle-{n}"));
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    plan.out = out.clone();
    plan.only = Some((class.to_string(), n));
    eprintln!(
        "chaos-host: replaying cycle {n} of {class} from {} (seed {seed}) into {}",
        args.dir.display(),
        out.display()
    );
    let runtime = chaos_plugin::Runtime::new()?;
    crate::run::run(&plan, &runtime).await?;
    let replayed = recorded_in(&out, class, n)?;
    let same = replayed["status"] == recorded["status"];
    println!("cycle {n} of {class}, seed {seed}:");
    for (what, r) in [("recorded", &recorded), ("replayed", &replayed)] {
        println!(
            "  {what}: {} (ok={} lost_acked={}); effects: {}",
            r["status"].as_str().unwrap_or("?"),
            r["ok"],
            r["lost_acked"],
            effects(r)
        );
        for reason in r["reasons"].as_array().into_iter().flatten() {
            println!("    {}", reason.as_str().unwrap_or_default());
        }
    }
    println!(
        "{}",
        if same {
            "verdict reproduced"
        } else {
            "verdict NOT reproduced: the system under test behaved differently under the same fault schedule"
        }
    );
    Ok(same)
}

/// The effects of a cycle record, one phrase each.
fn effects(r: &Value) -> String {
    let list: Vec<String> = r["effects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{} node {} {}",
                e["kind"].as_str().unwrap_or("?"),
                e["node"],
                e["detail"].as_str().unwrap_or("")
            )
        })
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join("; ")
    }
}

/// The record of cycle `n` of `class` in `dir/cycles.jsonl`.
fn recorded(dir: &Path, class: &str, n: u32) -> anyhow::Result<Value> {
    recorded_in(dir, class, n).with_context(|| format!("replay {}", dir.display()))
}

fn recorded_in(dir: &Path, class: &str, n: u32) -> anyhow::Result<Value> {
    let path = dir.join("cycles.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (is this a chaos-host --out dir?)",
            path.display()
        )
    })?;
    let mut classes = std::collections::BTreeSet::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["class"] == class && v["cycle"].as_u64() == Some(n as u64) {
            return Ok(v);
        }
        if let Some(c) = v["class"].as_str() {
            classes.insert(c.to_string());
        }
    }
    bail!(
        "{}: no cycle {n} of class {class} recorded (classes: {})",
        path.display(),
        classes.into_iter().collect::<Vec<_>>().join(", ")
    )
}
