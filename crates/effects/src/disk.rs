//! Disk faults: a lease on one node's FUSE layer ([`chaos_mechanisms::disk`]), here
//! or on the node's remote host ([`chaos_mechanisms::disk::remote`]). The layer
//! counts what it did; the lease compares the counts at its start and
//! end, so an effect is verified only by what the node's own IO met:
//! bytes held back and a kill that dropped them, fsyncs failed, writes
//! refused, operations delayed. A fault the node never ran into is
//! ineffective, said with the figures.

use super::{EffectRecord, Effects};
use crate::kind::Kind;
use crate::lease::Lease;
use chaos_mechanisms::disk::{Counts, NodeDisk};
use chaos_model::contract::DiskFault;
use std::sync::Arc;

impl Effects {
    pub async fn disk(
        self: &Arc<Self>,
        index: u32,
        fault: DiskFault,
        ms: u32,
    ) -> Result<(), String> {
        chaos_model::bounds::lease("disk", ms)?;
        if let DiskFault::SlowIo(delay) = fault {
            chaos_model::bounds::slow_io(delay)?;
        }
        self.node(index)?;
        let disk = self.disk_of(index)?.clone();
        // One disk lease per node at a time: ending the first would clear a
        // flag the second set. Claimed before the first await, so two
        // plugins cannot both pass the check.
        let Some(_claim) = self.claim(Kind::Disk, index) else {
            return Err(format!(
                "node {index} already has a disk fault being set; one per node at a time"
            ));
        };
        if self.lease_open(Kind::Disk, index) {
            return Err(format!(
                "node {index} already has a disk fault in force{}; one per node at a time: wait for its lease to end",
                self.holder(Kind::Disk, index)
            ));
        }
        let during_burst = self.burst_running();
        let start_us = self.now_us();
        // A remote layer answers over its SSH session: off the async
        // threads. The counts come back with the set.
        let d = disk.clone();
        let before = tokio::task::spawn_blocking(move || {
            let before = d.counts()?;
            d.set_fault(fault)?;
            Ok::<_, String>(before)
        })
        .await
        .map_err(|e| format!("setting the disk fault on node {index}: {e}"))?
        .map_err(|e| format!("setting the disk fault on node {index}: {e}"))?;
        let detail = match fault {
            DiskFault::LoseUnsynced => "lose_unsynced".to_string(),
            DiskFault::FsyncError => "fsync_error (EIO)".to_string(),
            DiskFault::DiskFull => "disk_full (ENOSPC)".to_string(),
            DiskFault::SlowIo(latency) => {
                format!("slow_io +{latency} ms per read, write and fsync")
            }
        };
        let slot = self.open(
            EffectRecord {
                // Set on the layer; the lease end proves it with the counts.
                verified: true,
                ..EffectRecord::lease(
                    Kind::Disk,
                    index,
                    format!("{detail} for {ms} ms"),
                    Some(ms as u64),
                    start_us,
                    during_burst,
                    format!("set on the layer {}", disk.place()),
                )
            },
            Lease::Disk { fault, before },
        );
        self.schedule_end(slot, start_us, ms);
        Ok(())
    }

    /// The disk layer of node `index`.
    fn disk_of(&self, index: u32) -> Result<&Arc<NodeDisk>, String> {
        self.disks.get(index as usize).ok_or_else(|| {
            format!("node {index} has no disk layer (it is mounted only for fault classes that declare the `disk` capability)")
        })
    }

    /// A kill of node `index` while its unsynced data is held back drops
    /// that data: call once the killed process is reaped.
    pub(super) async fn power_cut(&self, index: u32) {
        let Some(d) = self.disks.get(index as usize).cloned() else {
            return;
        };
        match tokio::task::spawn_blocking(move || d.power_cut()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("power cut of node {index}'s disk: {e}"),
            Err(e) => tracing::warn!("power cut of node {index}'s disk: {e}"),
        }
    }

    /// End a disk lease (off the async threads: a remote layer answers
    /// over SSH): clear the fault and judge it by the counts.
    pub(super) async fn end_disk(
        &self,
        index: u32,
        fault: DiskFault,
        before: Counts,
    ) -> (String, bool) {
        let Ok(disk) = self.disk_of(index).cloned() else {
            return (String::new(), false);
        };
        // A remote kill still under way (a power failure's): its power cut
        // must come while the fault holds.
        let kill = self
            .kills
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&index)
            .cloned();
        if let Some(k) = kill {
            k.await;
        }
        tokio::task::spawn_blocking(move || judge(&disk, fault, before))
            .await
            .unwrap_or_else(|e| (format!("ending the disk fault: {e}"), false))
    }

    /// [`Effects::end_disk`] where nothing may wait (a cycle dropped).
    pub(super) fn end_disk_now(&self, index: u32, fault: DiskFault, before: Counts) {
        if let Ok(disk) = self.disk_of(index) {
            judge(disk, fault, before);
        }
    }
}

/// Clear `fault` on `disk` and judge its lease by the counts since
/// `before`: the evidence and whether it took hold.
fn judge(disk: &NodeDisk, fault: DiskFault, before: Counts) -> (String, bool) {
    let released = disk.clear_fault(fault);
    let after = match disk.counts() {
        Ok(c) => c,
        Err(e) => return (format!("reading the layer's counts: {e}"), false),
    };
    let d = |a: u64, b: u64| a.saturating_sub(b);
    match fault {
        DiskFault::LoseUnsynced => {
            let (held, synced, dropped, cuts) = (
                d(after.held, before.held),
                d(after.synced, before.synced),
                d(after.discarded, before.discarded),
                d(after.cuts, before.cuts),
            );
            let end = match released {
                Ok(Some(n)) => format!("{n} written through at the lease end"),
                Ok(None) => String::new(),
                Err(e) => format!("writing the rest through failed: {e}"),
            };
            // A power cut took hold when the node wrote through the
            // layer and was killed while it held its unsynced data.
            (
                format!(
                    "{held} byte(s) written unsynced, {synced} fsynced through, {dropped} dropped at {cuts} kill(s); {end}"
                ),
                held > 0 && cuts > 0,
            )
        }
        DiskFault::FsyncError => {
            let n = d(after.fsyncs_failed, before.fsyncs_failed);
            (format!("{n} fsync(s) failed with EIO"), n > 0)
        }
        DiskFault::DiskFull => {
            let n = d(after.writes_refused, before.writes_refused);
            (format!("{n} write(s) refused with ENOSPC"), n > 0)
        }
        DiskFault::SlowIo(_) => {
            let n = d(after.delayed, before.delayed);
            (format!("{n} operation(s) delayed"), n > 0)
        }
    }
}
