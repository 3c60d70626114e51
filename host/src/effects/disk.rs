//! Disk faults: a lease on one node's FUSE layer ([`crate::disk`]). The
//! layer counts what it did; the lease compares the counts at its start
//! and end, so an effect is verified only by what the node's own IO met:
//! bytes held back and a kill that dropped them, fsyncs failed, writes
//! refused, operations delayed. A fault the node never ran into is
//! ineffective, said with the figures.

use super::{EffectRecord, Effects};
use crate::disk::{Counts, Disk};
use crate::plugin::DiskFault;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

impl Effects {
    pub async fn disk(
        self: &Arc<Self>,
        index: u32,
        fault: DiskFault,
        ms: u32,
    ) -> Result<(), String> {
        self.node(index)?;
        let disk = self.disk_of(index)?.clone();
        // One disk lease per node at a time: ending the first would clear a
        // flag the second set.
        if self.lease_open("disk", index) {
            return Err(format!(
                "node {index} already has a disk fault in force{}; one per node at a time: wait for its lease to end",
                self.holder("disk", index)
            ));
        }
        let during_burst = self.burst_running();
        let before = disk.shared.counts();
        let start_us = self.now_us();
        let f = &disk.shared.faults;
        let detail = match fault {
            DiskFault::LoseUnsynced => {
                f.lose_unsynced.store(true, Relaxed);
                "lose_unsynced".to_string()
            }
            DiskFault::FsyncError => {
                f.fsync_error.store(true, Relaxed);
                "fsync_error (EIO)".to_string()
            }
            DiskFault::DiskFull => {
                f.disk_full.store(true, Relaxed);
                "disk_full (ENOSPC)".to_string()
            }
            DiskFault::SlowIo(latency) => {
                f.slow_us.store(u64::from(latency) * 1000, Relaxed);
                format!("slow_io +{latency} ms per read, write and fsync")
            }
        };
        let slot = self.push(EffectRecord {
            // Set on the layer; the lease end proves it with the counts.
            verified: true,
            ..EffectRecord::lease(
                "disk",
                index,
                format!("{detail} for {ms} ms"),
                Some(ms as u64),
                start_us,
                during_burst,
                format!("set on the layer at {}", disk.mountpoint.display()),
            )
        });
        self.remember(slot, |u| u.disk = Some((fault, before)));
        self.schedule_end(slot, start_us, ms);
        Ok(())
    }

    /// The disk layer of node `index`.
    fn disk_of(&self, index: u32) -> Result<&Arc<Disk>, String> {
        self.disks.get(index as usize).ok_or_else(|| {
            format!("node {index} has no disk layer (it is mounted only for fault classes that declare the `disk` capability)")
        })
    }

    /// A kill of node `index` while its unsynced data is held back drops
    /// that data: call once the killed process is reaped.
    pub(super) fn power_cut(&self, index: u32) {
        if let Some(d) = self.disks.get(index as usize) {
            d.power_cut();
        }
    }

    /// End a disk lease: clear the fault and judge it by the counts.
    pub(super) fn end_disk(&self, index: u32, fault: DiskFault, before: Counts) -> (String, bool) {
        let Ok(disk) = self.disk_of(index) else {
            return (String::new(), false);
        };
        let f = &disk.shared.faults;
        let mut released = None;
        match fault {
            DiskFault::LoseUnsynced => released = Some(disk.release_unsynced()),
            DiskFault::FsyncError => f.fsync_error.store(false, Relaxed),
            DiskFault::DiskFull => f.disk_full.store(false, Relaxed),
            DiskFault::SlowIo(_) => f.slow_us.store(0, Relaxed),
        }
        let after = disk.shared.counts();
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
                    Some(Ok(n)) => format!("{n} written through at the lease end"),
                    Some(Err(e)) => format!("writing the rest through failed: {e}"),
                    None => String::new(),
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
}
