//! The `quorum-kv` binary: one node of the reference system (see the
//! library's docs for what it does and its `--bug` switches).

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    quorum_kv::serve(quorum_kv::Args::parse()).await
}
