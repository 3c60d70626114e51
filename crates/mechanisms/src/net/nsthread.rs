//! A thread that lives in another network namespace.
//!
//! A socket belongs to the namespace of the thread that created it, so
//! chaos-host keeps one such thread per namespace to open connections and
//! check ports there, while the rest of the host stays in its own namespace.

use nix::sched::{CloneFlags, setns};
use std::path::Path;
use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

pub struct NsThread {
    tx: mpsc::Sender<Job>,
}

impl NsThread {
    /// Start a thread inside the namespace at `path` (e.g. /run/netns/NAME).
    pub fn enter(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::open(path)
            .map_err(|e| anyhow::anyhow!("opening namespace {}: {e}", path.display()))?;
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let name = format!("netns {}", path.display());
        std::thread::Builder::new().name(name).spawn(move || {
            let entered = setns(&file, CloneFlags::CLONE_NEWNET);
            let ok = entered.is_ok();
            let _ = ready_tx.send(entered);
            if ok {
                // Ends when the NsThread (the sender) is dropped.
                while let Ok(job) = rx.recv() {
                    job();
                }
            }
        })?;
        ready_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("namespace thread for {} died", path.display()))?
            .map_err(|e| anyhow::anyhow!("entering namespace {}: {e}", path.display()))?;
        Ok(Self { tx })
    }

    /// Run `f` on the namespace's thread and wait for its result.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .ok()?;
        rx.await.ok()
    }
}
