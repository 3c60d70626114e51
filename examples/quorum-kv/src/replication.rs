//! Fan-out to peers with a W-of-N quorum, and catch-up between nodes.

use crate::Bug;
use crate::log::{Entry, Record};
use crate::server::State;
use std::time::Duration;
use tokio::task::JoinSet;

pub struct Replicator {
    peers: Vec<String>,
    /// With `--bug gossip-peers`: each peer's real base URL, learnt from its
    /// `/whoami` on first fan-out.
    learnt: Vec<tokio::sync::OnceCell<String>>,
    quorum: usize,
    timeout: Duration,
    bug: Option<Bug>,
    client: reqwest::Client,
    /// `--replicate-when-idle-ms`: records not yet shipped, and the signal
    /// of each new one.
    idle: Option<Idle>,
}

struct Idle {
    pending: std::sync::Arc<std::sync::Mutex<Vec<Record>>>,
    wrote: std::sync::Arc<tokio::sync::Notify>,
}

/// How long a detached fan-out keeps retrying a peer that does not answer.
const RETRY_FOR: Duration = Duration::from_secs(30);

/// How long one catch-up pull may take (its log is small: loopback or a
/// bridge answers it in milliseconds).
const CATCH_UP_TIMEOUT: Duration = Duration::from_millis(400);

impl Replicator {
    pub fn new(
        peers: Vec<String>,
        quorum: usize,
        timeout: Duration,
        bug: Option<Bug>,
        idle: Duration,
    ) -> Self {
        let mut client = reqwest::Client::builder().timeout(Duration::from_secs(2));
        if bug == Some(Bug::GossipShortLived) {
            // The defect's shape: one connection per request, closed after.
            client = client.pool_max_idle_per_host(0);
        }
        let client = client.build().expect("reqwest client");
        let idle = (!idle.is_zero()).then(|| {
            let i = Idle {
                pending: Default::default(),
                wrote: Default::default(),
            };
            tokio::spawn(ship_when_idle(
                peers.clone(),
                client.clone(),
                i.pending.clone(),
                i.wrote.clone(),
                idle,
            ));
            i
        });
        Self {
            learnt: peers.iter().map(|_| tokio::sync::OnceCell::new()).collect(),
            peers,
            quorum,
            timeout,
            bug,
            client,
            idle,
        }
    }

    /// Nodes (this one included) that must hold a write before it is acked.
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    /// Where to send replicas: the peer URLs given, or with `--bug
    /// gossip-peers` the addresses the peers report themselves (a peer that
    /// does not answer yet is asked again on the next fan-out).
    async fn targets(&self) -> Vec<String> {
        if !matches!(self.bug, Some(Bug::GossipPeers | Bug::GossipShortLived)) {
            return self.peers.clone();
        }
        let mut out = Vec::new();
        for (peer, learnt) in self.peers.iter().zip(&self.learnt) {
            let got = learnt.get_or_try_init(|| whoami(&self.client, peer)).await;
            out.push(got.cloned().unwrap_or_else(|_| peer.clone()));
        }
        out
    }

    /// Send `record` to every peer; returns how many nodes hold it (this one
    /// included) once `quorum` is reached or the timeout passes.
    pub async fn fan_out(&self, record: &Record) -> usize {
        let mut acks = 1; // the local append happened before fan-out
        if let Some(idle) = &self.idle {
            idle.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(record.clone());
            idle.wrote.notify_one();
            return acks;
        }
        let peers = self.targets().await;
        if acks >= self.quorum || peers.is_empty() {
            self.spawn_detached(&peers, record);
            return acks;
        }
        let mut joins = JoinSet::new();
        for peer in &peers {
            let client = self.client.clone();
            let url = format!("{peer}/replicate");
            let record = record.clone();
            let persistent = self.bug != Some(Bug::AbortFanout);
            joins.spawn(async move { deliver(&client, &url, &record, persistent).await });
        }
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        while acks < self.quorum {
            tokio::select! {
                next = joins.join_next() => match next {
                    Some(Ok(true)) => acks += 1,
                    Some(_) => {}
                    None => break,
                },
                _ = &mut deadline => break,
            }
        }
        match self.bug {
            // The defect: the slower peers' requests die mid-flight, unrepaired.
            Some(Bug::AbortFanout) => joins.shutdown().await,
            // Let the slower peers' deliveries run to completion.
            _ => {
                tokio::spawn(async move { while joins.join_next().await.is_some() {} });
            }
        }
        acks
    }

    fn spawn_detached(&self, peers: &[String], record: &Record) {
        for peer in peers {
            let client = self.client.clone();
            let url = format!("{peer}/replicate");
            let record = record.clone();
            tokio::spawn(async move { deliver(&client, &url, &record, true).await });
        }
    }
}

/// `--replicate-when-idle-ms`: once a write has come and then none for
/// `idle`, send every record written since to every peer (retrying as a
/// detached fan-out does).
async fn ship_when_idle(
    peers: Vec<String>,
    client: reqwest::Client,
    pending: std::sync::Arc<std::sync::Mutex<Vec<Record>>>,
    wrote: std::sync::Arc<tokio::sync::Notify>,
    idle: Duration,
) {
    loop {
        wrote.notified().await;
        while tokio::time::timeout(idle, wrote.notified()).await.is_ok() {}
        let batch = std::mem::take(&mut *pending.lock().unwrap_or_else(|e| e.into_inner()));
        for peer in &peers {
            let (client, url, batch) = (client.clone(), format!("{peer}/replicate"), batch.clone());
            tokio::spawn(async move {
                for record in &batch {
                    deliver(&client, &url, record, true).await;
                }
            });
        }
    }
}

/// The base URL `peer` says it really listens on.
async fn whoami(client: &reqwest::Client, peer: &str) -> anyhow::Result<String> {
    let v: serde_json::Value = client
        .get(format!("{peer}/whoami"))
        .send()
        .await?
        .json()
        .await?;
    let listen = v["listen"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("{peer}/whoami: no listen address in {v}"))?;
    Ok(format!("http://{listen}"))
}

/// POST `record` to a peer. With `persistent`, retry with backoff until the
/// peer holds it or `RETRY_FOR` passes; the first answer is what counts
/// towards quorum either way.
async fn deliver(client: &reqwest::Client, url: &str, record: &Record, persistent: bool) -> bool {
    let started = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(10);
    loop {
        match client.post(url).json(record).send().await {
            Ok(resp) if resp.status().is_success() => return true,
            _ if !persistent || started.elapsed() > RETRY_FOR => return false,
            _ => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(200));
            }
        }
    }
}

/// Pull entries this node misses from every peer's log, forever.
///
/// Each pull gives up after `CATCH_UP_TIMEOUT`: a pull begun during a
/// partition in netns mode waits on a dropped SYN whose retransmit comes
/// 1 s later, and with a long timeout the node would sit out that second
/// after the heal instead of asking again on its next tick.
pub async fn catch_up(state: State, peers: Vec<String>, every: Duration) {
    let client = reqwest::Client::builder()
        .timeout(CATCH_UP_TIMEOUT)
        .build()
        .expect("reqwest client");
    let mut cursors = vec![0u64; peers.len()];
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        for (peer, cursor) in peers.iter().zip(cursors.iter_mut()) {
            let url = format!("{peer}/log?after={cursor}");
            let Ok(resp) = client.get(&url).send().await else {
                continue;
            };
            let Ok(entries) = resp.json::<Vec<Entry>>().await else {
                continue;
            };
            for entry in entries {
                if !state.log.contains(&entry.record.id)
                    && state.commit(entry.record).await.is_err()
                {
                    break;
                }
                *cursor = entry.seq;
            }
        }
    }
}
