//! chaos-bench: what chaos-host itself costs, measured, printed as a table
//! (see `bench.rs`). Out of the product: it runs the `chaos-host` binary
//! as children (`chaos-host run`) and links the library crates for what it
//! measures in process.
//!
//! Exit status: 0 when the figures were measured, 2 on a usage or harness
//! error (printed as one chained line).

mod bench;
mod bypass;
mod chaos_host;
mod checkers;
mod clients;
mod ssh;

use clap::Parser;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "chaos-bench",
    version,
    about = "Measure what chaos-host costs: plugin load and calls, harness overhead per cycle, fault timing, memory over a campaign, and the workload driver against wrk. Run from the repository root; runs the chaos-host binary next to this one (or $CHAOS_HOST)."
)]
struct Cli {
    #[command(flatten)]
    bench: bench::BenchArgs,
    /// Log filter (tracing syntax), e.g. `info`, `debug`.
    #[arg(long, env = "CHAOS_LOG", default_value = "info")]
    log: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    chaos_core::logging::init(&cli.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chaos-bench: error: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let measured = if cli.bench.bypass_only {
        bypass::run()
    } else if cli.bench.clients_only {
        runtime.block_on(clients::run(&cli.bench))
    } else {
        runtime.block_on(bench::run(&cli.bench))
    };
    match measured {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chaos-bench: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
