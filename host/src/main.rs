//! chaos-host: runs fault-injection campaigns against replicated systems.
//!
//! Exit status: 0 when every fault class passed, 1 when a class failed,
//! 2 on a usage or harness error (printed as one chained line).

mod args;

mod export;

mod merge;
mod plan;
mod plugins;

mod replay;
mod report;

mod run;
mod scaffold;
mod shard;
mod summary;

use args::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    chaos_core::logging::init(&cli.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chaos-host: error: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("chaos-host: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<bool> {
    match command {
        Command::Run(args) => {
            if args.campaign.is_none() && args.resume.is_none() {
                eprintln!(
                    "chaos-host: no --campaign: running the embedded reference campaign (the reference system quorum-kv, 3 nodes, W=2, served by this binary; see examples/reference/campaign.toml)"
                );
            }
            let plan = args.plan()?;
            let runtime = chaos_plugin::Runtime::new()?;
            let summary = run::run(&plan, &runtime).await?;
            print!("{}", report::table(&summary));
            println!(
                "results: {} (report.html, junit.xml, cycles.jsonl, summary.json)",
                plan.out.display()
            );
            Ok(summary.pass)
        }
        Command::NewPlugin(a) => {
            let root = scaffold::create(&scaffold::NewPlugin {
                name: a.name,
                assertion: a.assertion,
                client: a.client,
                dir: a.dir,
                sdk: a.sdk,
            })?;
            println!("created {}", root.display());
            println!("next: cd {} && ./run.sh", root.display());
            Ok(true)
        }
        Command::Report(a) => {
            report::write_files(&a.dir)?;
            println!(
                "{}\n{}",
                a.dir.join("report.html").display(),
                a.dir.join("junit.xml").display()
            );
            Ok(true)
        }
        Command::Cleanup => {
            let dir = chaos_journal::journal::state_dir();
            let actions = chaos_journal::journal::recover(&dir, &chaos_mechanisms::UNDO)?;
            if actions.is_empty() {
                println!("nothing to clean up (journals in {})", dir.display());
            }
            for a in actions {
                println!("{a}");
            }
            Ok(true)
        }
        Command::Replay(args) => replay::replay(&args).await,
        Command::Merge(args) => merge::merge(&args),
        Command::ReferenceNode { args } => {
            let args = <quorum_kv::Args as clap::Parser>::try_parse_from(
                std::iter::once("quorum-kv".to_string()).chain(args),
            )?;
            quorum_kv::serve(args).await?;
            Ok(true)
        }
        Command::Export(args) => {
            for f in export::export(&args.dir, args.format)? {
                println!("{}", f.display());
            }
            Ok(true)
        }
        Command::ClockPatch { pids } => {
            chaos_mechanisms::clock::vdso::helper_main(&pids);
            Ok(true)
        }
        Command::ClockLease { pgid, step_ns, ppm } => {
            chaos_mechanisms::clock::lease_main(pgid, step_ns, ppm);
            Ok(true)
        }
        Command::DiskLayer {
            backing,
            mountpoint,
        } => {
            chaos_mechanisms::disk::remote::helper_main(&backing, &mountpoint);
            Ok(true)
        }
        Command::Inspect(args) => {
            plugins::inspect(&args.file).await?;
            Ok(true)
        }
        Command::Plugin(args::PluginCommand::List) => {
            plugins::list().await?;
            Ok(true)
        }
        Command::Plugin(args::PluginCommand::Push(args)) => {
            plugins::push(&args).await?;
            Ok(true)
        }
    }
}
