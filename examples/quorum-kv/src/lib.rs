//! quorum-kv: the reference system under test for chaos-host, as a library
//! ([`serve`]) and the `quorum-kv` binary.
//!
//! N nodes; a write sent to any node is appended to that node's durable log
//! (append + fdatasync), fanned out to every peer, and acknowledged once W
//! nodes (itself included) hold it. Peers that were slower keep receiving the
//! write after the acknowledgement, and nodes catch up from each other's logs,
//! so an acknowledged write ends on every live node.
//!
//! `--bug abort-fanout` reproduces ai-memory's lost writes (its
//! `JoinSet::shutdown()` after quorum): once W acks arrive, in-flight fan-out
//! requests to slower peers are aborted and nothing repairs them, so
//! acknowledged writes silently miss a node.
//!
//! `--bug gossip-peers` is a correct system that learns its peers' real
//! addresses (`GET /whoami` on each peer URL it was given, on first
//! fan-out) and replicates to them directly from then on, as a gossiping
//! system would. Nothing else changes (catch-up stays on), but a partition
//! that cuts only the peer URLs it was given no longer cuts its fan-out.
//!
//! `--bug lose-one` drops exactly one replicated write (acknowledged, never
//! stored), so tests can show a single lost write fails its cycle;
//! `--bug hang-reads` never answers `/ids`; `--bug crash-mid-burst` aborts
//! at its 20th record.
//!
//! `--bug ack-before-fsync` acknowledges a write once it is written to the
//! log, and fdatasyncs the log in the background once a second: a process
//! crash loses nothing (the kernel holds the data), a power failure loses
//! every acknowledged write of the last second on every node.
//!
//! `--bug stale-reads` has node 1 serve `/ids` and `GET /kv/{key}` from a
//! view 300 ms behind its log: nothing is lost and every node converges,
//! but reads during the cycle miss writes acknowledged before they began.
//!
//! Register mode (`register`): `GET /kv/{key}`, `PUT /kv/{key}`,
//! `POST /kv/{key}/cas`, quorum-replicated like writes; `--bug lost-update`
//! lets two concurrent cas on one key both succeed.
//!
//! Endpoints: `GET /health`, `POST /write`, `POST /replicate`,
//! `GET /ids?ns=NS`, `GET /log?after=SEQ`, `GET /time`, `GET /whoami`.

mod log;
mod register;
mod replication;
mod server;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Defects the reference system can be switched into, so tests can show the
/// engine catches them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Bug {
    /// Abort in-flight fan-out once quorum is met, without repair
    /// (acknowledged writes then miss a node).
    AbortFanout,
    /// Replicate to the peers' real listen addresses (asked through
    /// `/whoami`), not to the peer URLs given.
    GossipPeers,
    /// As `gossip-peers`, with a new connection per replication request,
    /// closed once answered: no direct connection outlives its write, so a
    /// bypass is only ever seen while a write is in flight.
    GossipShortLived,
    /// Acknowledge the replication of exactly one write (the one whose id
    /// ends in `-w42`) without storing it: one lost acknowledged write in a
    /// cycle, which a 0.995 threshold over 200 writes would let pass.
    LoseOne,
    /// Answer `/health` and writes, but never answer `/ids`: a node alive
    /// and silent, for the liveness finding.
    HangReads,
    /// Abort the process once it holds 20 records: a node that dies
    /// mid-burst though no fault asked for it.
    CrashMidBurst,
    /// Once a write misses its quorum, refuse every later write with 503
    /// until restarted: a node that stays unavailable after a partition is
    /// healed, though it loses nothing (the recovery window's finding).
    StuckAfterQuorumLoss,
    /// Acknowledge after write(), fdatasync in the background every
    /// second: durable against a crash, not against a power failure.
    AckBeforeFsync,
    /// Node 1 serves `/ids` from a view that lags its log by
    /// [`STALE_LAG`]: everything is stored and durable, and it converges,
    /// but a client reading from it misses writes acknowledged before its
    /// read began.
    StaleReads,
    /// Register mode: a cas compares against the value read when its
    /// request arrived, not once it holds the node's lock, so concurrent
    /// cas on one key both succeed (a lost update).
    LostUpdate,
}

/// The node `--bug stale-reads` makes serve stale reads.
pub const STALE_NODE: u32 = 1;
/// How far its view lags its log.
pub const STALE_LAG: Duration = Duration::from_millis(300);

/// How often `--bug ack-before-fsync` syncs its log.
const BACKGROUND_SYNC: Duration = Duration::from_secs(1);

#[derive(Parser, Debug)]
#[command(
    name = "quorum-kv",
    about = "W-of-N quorum write store (chaos-host reference SUT)"
)]
pub struct Args {
    /// This node's index, reported by /health and recorded in its log.
    #[arg(long)]
    pub node: u32,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Directory holding this node's durable log; created if missing.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Comma-separated base URLs of the other nodes.
    #[arg(long, default_value = "", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Nodes (this one included) that must hold a write before it is acked.
    #[arg(long, default_value_t = 2)]
    pub quorum: usize,
    /// How long a write waits for quorum before answering 503.
    #[arg(long, default_value_t = 2000)]
    pub quorum_timeout_ms: u64,
    /// How often each node pulls missing entries from its peers' logs
    /// (0 disables catch-up).
    #[arg(long, default_value_t = 100)]
    pub catchup_ms: u64,
    /// Asynchronous replication: acknowledge a write once stored here
    /// (quorum 1) and ship what was written to every peer once no write
    /// has arrived for this long; no catch-up. A node that sends nothing
    /// to its peers while writes keep coming (0: off).
    #[arg(long, default_value_t = 0)]
    pub replicate_when_idle_ms: u64,
    /// Switch on a known defect.
    #[arg(long, value_enum)]
    pub bug: Option<Bug>,
}

impl Args {
    fn peers(&self) -> Vec<String> {
        self.peers
            .iter()
            .map(|p| p.trim().trim_end_matches('/').to_string())
            .filter(|p| !p.is_empty())
            .collect()
    }
}

/// Run one node until it is killed. The `quorum-kv` binary and chaos-host's
/// hidden `reference-node` subcommand (the embedded default campaign) both
/// call this, so an installed chaos-host needs no checkout to run it.
pub async fn serve(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.quorum >= 1, "--quorum must be at least 1");
    let peers = args.peers();
    let sync_each = args.bug != Some(Bug::AckBeforeFsync);
    let log = log::Log::open(&args.data_dir, sync_each)
        .with_context(|| format!("opening log in {}", args.data_dir.display()))?;
    let idle = Duration::from_millis(args.replicate_when_idle_ms);
    let replicator = replication::Replicator::new(
        peers.clone(),
        if idle.is_zero() { args.quorum } else { 1 },
        Duration::from_millis(args.quorum_timeout_ms),
        args.bug,
        idle,
    );
    // The abort-fanout defect is that nothing repairs an aborted fan-out; a
    // write lost on purpose must stay lost too.
    let repairs = !matches!(args.bug, Some(Bug::AbortFanout | Bug::LoseOne));
    let catchup = repairs && args.catchup_ms > 0 && !peers.is_empty() && idle.is_zero();
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let state = server::State::new(args.node, listener.local_addr()?, log, replicator, args.bug);
    if !sync_each {
        let s = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(BACKGROUND_SYNC);
            tick.tick().await;
            loop {
                tick.tick().await;
                let s = s.clone();
                let _ = tokio::task::spawn_blocking(move || s.log.sync()).await;
            }
        });
    }
    if catchup {
        tokio::spawn(replication::catch_up(
            state.clone(),
            peers,
            Duration::from_millis(args.catchup_ms),
        ));
    }
    eprintln!(
        "quorum-kv node {} listening on {} (quorum {}, bug {:?}, catch-up {})",
        args.node,
        listener.local_addr()?,
        args.quorum,
        args.bug,
        catchup
    );
    axum::serve(listener, server::router(state)).await?;
    Ok(())
}
