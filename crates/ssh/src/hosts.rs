//! The connected hosts of a run.

use crate::host::Host;
use chaos_model::hosts::Layout;
use std::path::PathBuf;
use std::sync::Arc;

/// The connected hosts of a run and where each node goes.
pub struct Hosts {
    pub hosts: Vec<Arc<Host>>,
    pub placement: Vec<usize>,
}

impl Hosts {
    /// Open one master connection per host and check each can run its
    /// nodes: `programs` holds each node's program. Any failure is one
    /// error naming the host and the fix; masters already open are closed.
    pub async fn connect(layout: &Layout, programs: &[PathBuf]) -> anyhow::Result<Self> {
        let connects = layout
            .hosts
            .iter()
            .zip(&layout.ips)
            .map(|(h, ip)| Host::connect(h.clone(), *ip));
        let mut hosts = Vec::new();
        let mut first_err = None;
        // All at once: an unreachable host costs one connect timeout, not one
        // per host.
        for r in futures::future::join_all(connects).await {
            match r {
                Ok(h) => hosts.push(Arc::new(h)),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        for (k, host) in hosts.iter().enumerate() {
            let mine: Vec<&PathBuf> = layout
                .placement
                .iter()
                .zip(programs)
                .filter(|(p, _)| **p == k)
                .map(|(_, prog)| prog)
                .collect();
            host.check(&mine).await?;
        }
        Ok(Self {
            hosts,
            placement: layout.placement.clone(),
        })
    }

    /// The host node `i` runs on.
    pub fn of(&self, i: usize) -> &Arc<Host> {
        &self.hosts[self.placement[i]]
    }

    /// Upload the helper (clock leases, disk layers) to every host, all at
    /// once, before the first cycle (a lease then does not wait for the
    /// upload). A host where it fails keeps the reason, which its skews
    /// record; returned too, so disk faults can refuse the run.
    pub async fn install_helpers(&self, journal: &Arc<chaos_journal::Journal>) -> Vec<String> {
        let runs = self.hosts.iter().map(|h| {
            let (h, j) = (h.clone(), journal.clone());
            tokio::task::spawn_blocking(move || {
                h.helper(&j)
                    .err()
                    .map(|e| format!("host {}: no chaos-host helper: {e}", h.spec.name))
            })
        });
        let mut failed = Vec::new();
        for r in futures::future::join_all(runs).await {
            if let Ok(Some(e)) = r {
                tracing::warn!("{e}");
                failed.push(e);
            }
        }
        failed
    }

    /// Remove the run's directories, helpers included (the run's end).
    pub async fn remove_run_dirs(&self, journal: &Arc<chaos_journal::Journal>) {
        let runs = self.hosts.iter().map(|h| {
            let (h, j) = (h.clone(), journal.clone());
            tokio::task::spawn_blocking(move || {
                if let Err(e) = h.remove_run_dir(&j) {
                    tracing::warn!("host {}: removing the run's directory: {e}", h.spec.name);
                }
            })
        });
        futures::future::join_all(runs).await;
    }
}
