//! Checker bench, native: generated register histories (10k and 100k ops, 5
//! to 50 clients, 1 to 100 keys, 1% timed out), each checked valid, then
//! with one stale read near its end, then with one read of a value never
//! written; prints ops/s, the checker's peak heap and the verdict.
//!
//! `cargo run --release -p linearizable --example bench [--write DIR] [OPS
//! CLIENTS KEYS]`
//!
//! `--write DIR` also writes each valid and stale-read history to
//! `DIR/<ops>-<clients>c-<keys>k-<label>.jsonl` in the host's
//! `history.jsonl` format, for `chaos-host bench --checkers DIR` (the same
//! checks inside the sandbox).
//!
//! The peak is counted by a wrapper around the system allocator, reset
//! before each check: a crate for that would add a dependency for twenty
//! lines, and none resets per run as this needs.

use linearizable::DEFAULT_BUDGET;
use linearizable::check::{self, Verdict};
use linearizable::generate::{self, Spec};
use linearizable::history::{History, Kind, Status};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// wrapper only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let held = HELD.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(held, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this `layout`.
        unsafe { System.dealloc(ptr, layout) };
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn run(label: &str, spec: &Spec, history: &History) {
    let base = HELD.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let start = Instant::now();
    let report = check::check(history, &DEFAULT_BUDGET);
    let secs = start.elapsed().as_secs_f64();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    let verdict = match report.verdict {
        Verdict::Linearizable => "linearizable".to_owned(),
        Verdict::NotLinearizable { counterexample, .. } => {
            format!("not linearizable ({} ops shown)", counterexample.len())
        }
        Verdict::OverBudget { limit, .. } => format!("unknown ({limit:?} budget)"),
    };
    println!(
        "{:>7} ops {:>3} clients {:>3} keys {label:>7}: {secs:>7.3} s {:>10.0} ops/s {:>8.1} MiB peak {:>9} steps  {verdict}",
        spec.ops,
        spec.clients,
        spec.keys,
        spec.ops as f64 / secs,
        peak as f64 / (1 << 20) as f64,
        report.steps,
    );
}

/// `history` as the host's `history.jsonl`: one JSON object per line (the
/// generated keys and values are plain ASCII, so Rust's `{:?}` quoting is
/// JSON's).
fn write_jsonl(history: &History, path: &Path) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for op in &history.ops {
        let kind = match op.kind {
            Kind::Put => "put",
            Kind::Get => "get",
            Kind::Cas => "cas",
        };
        let status = match op.status {
            Status::Ok => "ok",
            Status::Fail => "fail",
            Status::Info => "info",
        };
        write!(
            out,
            "{{\"index\":{},\"process\":{},\"node\":{},\"kind\":\"{kind}\",\"key\":{:?}",
            op.index,
            op.process,
            op.node,
            history.key_name(op.key)
        )?;
        let field = |name: &str, v| history.value_name(v).map(|v| format!(",\"{name}\":{v:?}"));
        let fields = match op.kind {
            Kind::Put => [field("value", op.value), None],
            Kind::Get => [field("read", op.read), None],
            Kind::Cas => [field("value", op.value), field("expected", op.expected)],
        };
        for f in fields.into_iter().flatten() {
            out.write_all(f.as_bytes())?;
        }
        write!(
            out,
            ",\"status\":\"{status}\",\"invoke_us\":{}",
            op.invoke_us
        )?;
        if let Some(c) = op.complete_us {
            write!(out, ",\"complete_us\":{c}")?;
        }
        out.write_all(b"}\n")?;
    }
    out.flush()
}

fn main() {
    let mut raw: Vec<String> = std::env::args().skip(1).collect();
    let mut write: Option<PathBuf> = None;
    if let Some(i) = raw.iter().position(|a| a == "--write") {
        let dir = raw
            .get(i + 1)
            .expect("usage: bench [--write DIR] [OPS CLIENTS KEYS]");
        write = Some(PathBuf::from(dir));
        raw.drain(i..=i + 1);
    }
    if let Some(dir) = &write {
        std::fs::create_dir_all(dir).expect("creating the --write directory");
    }
    let args: Vec<usize> = raw
        .iter()
        .map(|a| {
            a.parse()
                .expect("usage: bench [--write DIR] [OPS CLIENTS KEYS]")
        })
        .collect();
    let shapes: Vec<(usize, u32, u32)> = match args[..] {
        [ops, clients, keys] => vec![(ops, clients as u32, keys as u32)],
        _ => [10_000, 100_000]
            .into_iter()
            .flat_map(|ops| {
                [
                    (5, 1),
                    (5, 10),
                    (8, 10),
                    (8, 100),
                    (50, 10),
                    (50, 100),
                    (50, 1),
                ]
                .map(|(c, k)| (ops, c, k))
            })
            .collect(),
    };
    for (ops, clients, keys) in shapes {
        let spec = Spec {
            ops,
            clients,
            keys,
            info_ratio: 0.01,
            seed: 15,
        };
        let history = generate::valid(&spec);
        let save = |label: &str, h: &History| {
            if let Some(dir) = &write {
                let path = dir.join(format!("{ops:06}-{clients:02}c-{keys:03}k-{label}.jsonl"));
                write_jsonl(h, &path).expect("writing a history");
            }
        };
        run("valid", &spec, &history);
        save("valid", &history);
        if let Some(mutant) = generate::with_stale_read(&history, 15) {
            run("stale", &spec, &mutant);
            save("stale", &mutant);
        }
        if let Some(mutant) = generate::with_phantom_read(&history, 15) {
            drop(history);
            run("phantom", &spec, &mutant);
        }
    }
}
