//! Disk faults through a filesystem the host owns: each node's data dir is
//! a FUSE passthrough mount ([`layer`]) over a backing dir, so the host
//! stands between the node and its disk and can, per lease, hold unsynced
//! writes back and drop them at a kill (a power failure), fail fsyncs with
//! EIO, fail writes with ENOSPC, or slow every read, write and fsync.
//!
//! Mounted only for fault classes that declare the `disk` capability, so
//! other campaigns pay nothing. Needs root and /dev/fuse; without them every
//! disk fault is refused before the run ([`available`]). Each mount is
//! journaled before it is made, so `chaos-host cleanup` and `--resume`
//! unmount what a killed engine left.

#[cfg(test)]
mod conformance;
mod layer;
pub mod remote;
mod unsynced;

use anyhow::Context;
use chaos_journal::journal::{Entry, Journal};
use chaos_model::contract::DiskFault;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why disk faults cannot run on this machine, if they cannot.
pub fn available() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("disk faults mount a FUSE layer under each data dir, which needs root (run chaos-host as root)".into());
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map(drop)
        .map_err(|e| {
            format!("disk faults need /dev/fuse ({e}; load the fuse module, or give the container --device /dev/fuse)")
        })
}

/// What the faults of one layer are set to; read by the layer on every
/// operation, set by the disk leases.
#[derive(Default)]
pub struct Faults {
    pub lose_unsynced: AtomicBool,
    pub fsync_error: AtomicBool,
    pub disk_full: AtomicBool,
    /// Added to every read, write and fsync; 0 for none.
    pub slow_us: AtomicU64,
    /// Bumped when a slow-io lease ends, waking the delays in progress:
    /// a lease ends when it ends, whatever delay it handed out (a 20 s
    /// delay once kept a node stalled 14 s past its 500 ms lease).
    slow_lifted: Mutex<u64>,
    slow_cv: std::sync::Condvar,
}

impl Faults {
    /// End the slow-io fault: no new delay, and those in progress end now.
    pub fn lift_slow(&self) {
        self.slow_us.store(0, Relaxed);
        *self.slow_lifted.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.slow_cv.notify_all();
    }
}

/// What the layer did, counted since it was mounted: the evidence a lease
/// reads at its start and end.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Bytes written while unsynced data was held back.
    pub held: u64,
    /// Bytes written through by an fsync.
    pub synced: u64,
    /// Bytes dropped at a kill.
    pub discarded: u64,
    /// Kills while unsynced data was held back.
    pub cuts: u64,
    pub fsyncs_failed: u64,
    pub writes_refused: u64,
    pub delayed: u64,
}

#[derive(Default)]
struct Counters {
    held: AtomicU64,
    synced: AtomicU64,
    discarded: AtomicU64,
    cuts: AtomicU64,
    fsyncs_failed: AtomicU64,
    writes_refused: AtomicU64,
    delayed: AtomicU64,
}

/// State shared by the layer's threads and the host.
#[derive(Default)]
pub struct Shared {
    pub faults: Faults,
    counters: Counters,
    unsynced: Mutex<unsynced::Unsynced>,
}

impl Shared {
    pub fn counts(&self) -> Counts {
        let c = &self.counters;
        Counts {
            held: c.held.load(Relaxed),
            synced: c.synced.load(Relaxed),
            discarded: c.discarded.load(Relaxed),
            cuts: c.cuts.load(Relaxed),
            fsyncs_failed: c.fsyncs_failed.load(Relaxed),
            writes_refused: c.writes_refused.load(Relaxed),
            delayed: c.delayed.load(Relaxed),
        }
    }

    /// The slow-io delay, if one is set; counted.
    fn delay(&self) {
        let f = &self.faults;
        let lifted = f.slow_lifted.lock().unwrap_or_else(|e| e.into_inner());
        let us = f.slow_us.load(Relaxed);
        if us > 0 {
            self.counters.delayed.fetch_add(1, Relaxed);
            let at = *lifted;
            // Until the delay is over or its lease ends, whichever first.
            let _ = f
                .slow_cv
                .wait_timeout_while(lifted, Duration::from_micros(us), |now| *now == at);
        }
    }
}

/// One node's layer: its mount and backing dir.
pub struct Disk {
    pub shared: Arc<Shared>,
    pub mountpoint: PathBuf,
    session: Mutex<Option<fuser::BackgroundSession>>,
    notifier: fuser::Notifier,
    /// The journal and the mount's entry; none for the remote helper's
    /// mount, which the control node journals with its host.
    journal: Option<(Arc<Journal>, u64)>,
}

impl Disk {
    /// Mount a passthrough layer of `backing` (created) at `mountpoint`
    /// (created), journaled first when a journal is given.
    pub fn mount(
        backing: &Path,
        mountpoint: &Path,
        journal: Option<Arc<Journal>>,
    ) -> anyhow::Result<Self> {
        for d in [backing, mountpoint] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        // Absolute, so `chaos-host cleanup` finds it from any directory.
        let mountpoint = &std::fs::canonicalize(mountpoint)
            .with_context(|| format!("resolving {}", mountpoint.display()))?;
        let journal = match journal {
            Some(j) => {
                let seq = j.record(Entry::Mount {
                    path: mountpoint.to_string_lossy().into_owned(),
                })?;
                Some((j, seq))
            }
            None => None,
        };
        let shared = Arc::new(Shared::default());
        let fs = layer::Layer::new(backing.to_path_buf(), shared.clone());
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("chaos-host".into()),
            fuser::MountOption::Subtype("chaos-disk".into()),
        ];
        // Slow-io sleeps in the handler: more than one thread keeps a
        // delayed read from holding up every other operation.
        config.n_threads = Some(4);
        config.clone_fd = true;
        let session = match fuser::spawn_mount(fs, mountpoint, &config) {
            Ok(s) => s,
            Err(e) => {
                if let Some((j, seq)) = &journal {
                    j.done(*seq);
                }
                return Err(e).with_context(|| {
                    format!("mounting the disk layer at {}", mountpoint.display())
                });
            }
        };
        Ok(Self {
            shared,
            mountpoint: mountpoint.to_path_buf(),
            notifier: session.notifier(),
            session: Mutex::new(Some(session)),
            journal,
        })
    }

    /// Set `fault` on the layer (the start of a disk lease).
    pub fn set_fault(&self, fault: DiskFault) {
        let f = &self.shared.faults;
        match fault {
            DiskFault::LoseUnsynced => f.lose_unsynced.store(true, Relaxed),
            DiskFault::FsyncError => f.fsync_error.store(true, Relaxed),
            DiskFault::DiskFull => f.disk_full.store(true, Relaxed),
            DiskFault::SlowIo(ms) => f.slow_us.store(u64::from(ms) * 1000, Relaxed),
        }
    }

    /// Clear `fault` (the end of its lease). For `lose_unsynced`, what is
    /// still held back is written through: the bytes, or why not.
    pub fn clear_fault(&self, fault: DiskFault) -> Option<std::io::Result<u64>> {
        let f = &self.shared.faults;
        match fault {
            DiskFault::LoseUnsynced => return Some(self.release_unsynced()),
            DiskFault::FsyncError => f.fsync_error.store(false, Relaxed),
            DiskFault::DiskFull => f.disk_full.store(false, Relaxed),
            DiskFault::SlowIo(_) => f.lift_slow(),
        }
        None
    }

    /// A power cut: drop every unsynced write (after the node's process is
    /// gone). Counted when a `lose_unsynced` lease is in force.
    pub fn power_cut(&self) {
        if !self.shared.faults.lose_unsynced.load(Relaxed) {
            return;
        }
        let (bytes, inos) = self
            .shared
            .unsynced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .discard();
        let c = &self.shared.counters;
        c.cuts.fetch_add(1, Relaxed);
        c.discarded.fetch_add(bytes, Relaxed);
        // The kernel may still cache the old sizes of these files.
        for ino in inos {
            let _ = self.notifier.inval_inode(fuser::INodeNo(ino), 0, 0);
        }
    }

    /// Stop holding unsynced writes back: write what is held through to
    /// the backing files, as the kernel would have. Returns the bytes.
    pub fn release_unsynced(&self) -> std::io::Result<u64> {
        self.shared.faults.lose_unsynced.store(false, Relaxed);
        self.shared
            .unsynced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all_through()
    }

    /// Unmount (every node process must be gone). Idempotent.
    pub fn unmount(&self) -> anyhow::Result<()> {
        let session = self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(s) = session
            && let Err(e) = s.umount_and_join()
        {
            // Busy (a member of a killed group not yet gone): detach it, so
            // nothing stays mounted; the kernel drops it once unused.
            if mounted(&self.mountpoint) {
                nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH)
                    .with_context(|| {
                        format!("unmounting {} (after: {e})", self.mountpoint.display())
                    })?;
            }
            tracing::debug!("{} detached: {e}", self.mountpoint.display());
        }
        if let Some((j, seq)) = &self.journal {
            j.done(*seq);
        }
        Ok(())
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        // A cycle dropped mid-way (Ctrl-C): lazily, since a node may still
        // hold a file open. The journal covers a killed engine.
        if self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            let _ = nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH);
            if let Some((j, seq)) = &self.journal {
                j.done(*seq);
            }
        }
    }
}

/// A node's disk layer as the effects see it: mounted here, or on the
/// node's remote host by chaos-host's helper there
/// ([`remote`]). Both answer the same calls with the same
/// counts, so a lease is judged alike wherever the node runs.
pub enum NodeDisk {
    Local(Disk),
    Remote(remote::RemoteDisk),
}

impl NodeDisk {
    /// Where the layer is, for evidence: "at PATH" (and "on host H").
    pub fn place(&self) -> String {
        match self {
            Self::Local(d) => format!("at {}", d.mountpoint.display()),
            Self::Remote(r) => format!("at {} on host {}", r.mountpoint, r.host),
        }
    }

    /// The layer's counts now (blocking for a remote one).
    pub fn counts(&self) -> Result<Counts, String> {
        match self {
            Self::Local(d) => Ok(d.shared.counts()),
            Self::Remote(r) => r.counts(),
        }
    }

    /// Set `fault` (blocking for a remote one).
    pub fn set_fault(&self, fault: DiskFault) -> Result<(), String> {
        match self {
            Self::Local(d) => {
                d.set_fault(fault);
                Ok(())
            }
            Self::Remote(r) => r.set_fault(fault),
        }
    }

    /// Clear `fault`; for `lose_unsynced`, the bytes written through.
    pub fn clear_fault(&self, fault: DiskFault) -> Result<Option<u64>, String> {
        match self {
            Self::Local(d) => d.clear_fault(fault).transpose().map_err(|e| e.to_string()),
            Self::Remote(r) => r.clear_fault(fault),
        }
    }

    /// A power cut (after the node's process is gone); see
    /// [`Disk::power_cut`].
    pub fn power_cut(&self) -> Result<(), String> {
        match self {
            Self::Local(d) => {
                d.power_cut();
                Ok(())
            }
            Self::Remote(r) => r.power_cut(),
        }
    }

    /// Unmount (every node process must be gone). Idempotent.
    pub fn unmount(&self) -> anyhow::Result<()> {
        match self {
            Self::Local(d) => d.unmount(),
            Self::Remote(r) => r.unmount().map_err(anyhow::Error::msg),
        }
    }
}

/// Whether `path` is a mount point now (from /proc/self/mountinfo).
pub fn mounted(path: &Path) -> bool {
    let want = path.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(&*want))
}

/// Undoes the disk layers' journal entries: their mounts.
pub struct Mounts;

impl chaos_journal::Undo for Mounts {
    fn undo(&self, entry: &Entry) -> Option<Result<Option<String>, String>> {
        match entry {
            Entry::Mount { path } => Some(undo_mount(path)),
            _ => None,
        }
    }
}

/// Undo a journaled mount: detach it if it is still there.
pub fn undo_mount(path: &str) -> Result<Option<String>, String> {
    if !mounted(Path::new(path)) {
        return Ok(None);
    }
    nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH)
        .map(|()| Some(format!("unmounted disk layer {path}")))
        .map_err(|e| format!("unmounting disk layer {path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A layer over a temp dir, or None where this machine cannot mount one.
    pub(super) fn layer() -> Option<(tempfile::TempDir, Disk)> {
        if let Err(why) = available() {
            eprintln!("skipped: {why}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::create(&dir.path().join("state"), "t", &Mounts).unwrap());
        let disk =
            Disk::mount(&dir.path().join("b"), &dir.path().join("m"), Some(journal)).unwrap();
        Some((dir, disk))
    }

    #[test]
    fn unsynced_appends_are_dropped_at_a_power_cut_and_synced_ones_kept() {
        let Some((dir, disk)) = layer() else { return };
        let path = dir.path().join("m/log");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"before\n").unwrap();
        disk.shared.faults.lose_unsynced.store(true, Relaxed);
        f.write_all(b"synced\n").unwrap();
        f.sync_data().unwrap();
        f.write_all(b"lost\n").unwrap();
        // The writer reads its own unsynced write; the disk does not have it.
        assert_eq!(std::fs::read(&path).unwrap(), b"before\nsynced\nlost\n");
        assert_eq!(
            std::fs::read(dir.path().join("b/log")).unwrap(),
            b"before\nsynced\n"
        );
        drop(f);
        disk.power_cut();
        assert_eq!(std::fs::read(&path).unwrap(), b"before\nsynced\n");
        let c = disk.shared.counts();
        assert_eq!((c.held, c.synced, c.discarded, c.cuts), (12, 7, 5, 1));
        // Appends go on after the cut at the end the disk has.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"again\n").unwrap();
        disk.release_unsynced().unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("b/log")).unwrap(),
            b"before\nsynced\nagain\n"
        );
        drop(f);
        disk.unmount().unwrap();
        assert!(!mounted(&dir.path().join("m")));
    }

    #[test]
    fn o_sync_writes_survive_a_power_cut_with_the_files_earlier_writes() {
        use std::os::unix::fs::OpenOptionsExt;
        let Some((dir, disk)) = layer() else { return };
        let path = dir.path().join("m/meta.tmp");
        disk.shared.faults.lose_unsynced.store(true, Relaxed);
        let mut plain = std::fs::File::create(&path).unwrap();
        plain.write_all(b"held\n").unwrap();
        for flag in [libc::O_SYNC, libc::O_DSYNC] {
            let mut synced = std::fs::OpenOptions::new()
                .append(true)
                .custom_flags(flag)
                .open(&path)
                .unwrap();
            synced.write_all(b"sync\n").unwrap();
        }
        // NATS's pattern: an O_SYNC temp file renamed into place.
        std::fs::rename(&path, dir.path().join("m/meta")).unwrap();
        plain.write_all(b"lost\n").unwrap();
        drop(plain);
        disk.power_cut();
        assert_eq!(
            std::fs::read(dir.path().join("m/meta")).unwrap(),
            b"held\nsync\nsync\n"
        );
        let c = disk.shared.counts();
        assert_eq!((c.held, c.synced, c.discarded), (10, 15, 5));
        disk.unmount().unwrap();
    }

    /// A write stalled by a slow-io lease of 60 s completes as soon as
    /// the lease ends (issue 24: the delay once outlived its lease by
    /// 14 s and the cycle blamed the node).
    #[test]
    fn a_slow_io_delay_ends_with_its_lease() {
        let Some((dir, disk)) = layer() else { return };
        let disk = Arc::new(disk);
        disk.set_fault(DiskFault::SlowIo(60_000));
        let path = dir.path().join("m/slow");
        let started = std::time::Instant::now();
        let writer = std::thread::spawn(move || std::fs::write(&path, b"x"));
        while disk.shared.counts().delayed == 0 {
            assert!(!writer.is_finished(), "the write was not delayed");
            std::thread::yield_now();
        }
        assert!(!writer.is_finished());
        disk.clear_fault(DiskFault::SlowIo(60_000));
        writer.join().unwrap().unwrap();
        // Ended by the lease, not by its 60 s delay.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
        Arc::try_unwrap(disk).ok().unwrap().unmount().unwrap();
    }

    #[test]
    fn fsync_error_and_disk_full_fail_the_call_and_are_counted() {
        let Some((dir, disk)) = layer() else { return };
        let path = dir.path().join("m/f");
        let mut f = std::fs::File::create(&path).unwrap();
        disk.shared.faults.fsync_error.store(true, Relaxed);
        f.write_all(b"x").unwrap();
        assert_eq!(f.sync_all().unwrap_err().raw_os_error(), Some(libc::EIO));
        disk.shared.faults.fsync_error.store(false, Relaxed);
        disk.shared.faults.disk_full.store(true, Relaxed);
        assert_eq!(
            f.write_all(b"y").unwrap_err().raw_os_error(),
            Some(libc::ENOSPC)
        );
        disk.shared.faults.disk_full.store(false, Relaxed);
        disk.shared.faults.slow_us.store(20_000, Relaxed);
        let t = std::time::Instant::now();
        f.write_all(b"z").unwrap();
        assert!(t.elapsed() >= Duration::from_millis(20));
        let c = disk.shared.counts();
        assert_eq!((c.fsyncs_failed, c.writes_refused, c.delayed), (1, 1, 1));
        drop(f);
        disk.unmount().unwrap();
    }

    #[test]
    fn a_journaled_mount_is_undone_by_cleanup() {
        let Some((dir, disk)) = layer() else { return };
        let m = dir.path().join("m");
        assert!(mounted(&m));
        let undone = undo_mount(m.to_str().unwrap()).unwrap();
        assert!(undone.unwrap().contains("unmounted disk layer"));
        assert!(!mounted(&m));
        assert_eq!(undo_mount(m.to_str().unwrap()).unwrap(), None);
        drop(disk);
    }
}
