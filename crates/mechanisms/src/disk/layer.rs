//! The FUSE passthrough filesystem of one node's data dir: every operation
//! goes to the same path under the backing dir, with the faults of
//! [`super::Faults`] applied on the way. Files are opened direct-io (no
//! kernel page cache), so what the node reads is what the layer answers:
//! after a power cut it cannot read dropped data back from the kernel.
//! Metadata (create, rename, unlink, mkdir, truncate) passes through at
//! once and survives a power cut; only file data is held back.

use super::Shared;
use super::unsynced::Pending;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Attributes and entries are never cached by the kernel: sizes change
/// under it when unsynced data is dropped.
const TTL: Duration = Duration::ZERO;

pub struct Layer {
    backing: PathBuf,
    shared: Arc<Shared>,
    inodes: Mutex<Inodes>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_fh: AtomicU64,
}

/// Inode numbers of the paths seen, relative to the backing dir (root = 1).
struct Inodes {
    path: HashMap<u64, PathBuf>,
    ino: HashMap<PathBuf, u64>,
    next: u64,
}

struct Handle {
    file: Arc<File>,
    /// O_APPEND: the layer places each write at the end it knows (the
    /// backing file is opened without it, since pwrite ignores offsets on
    /// an O_APPEND fd).
    append: bool,
}

fn errno(e: std::io::Error) -> Errno {
    Errno::from(e)
}

impl Layer {
    pub fn new(backing: PathBuf, shared: Arc<Shared>) -> Self {
        let mut inodes = Inodes {
            path: HashMap::new(),
            ino: HashMap::new(),
            next: 2,
        };
        inodes.path.insert(1, PathBuf::new());
        inodes.ino.insert(PathBuf::new(), 1);
        Self {
            backing,
            shared,
            inodes: Mutex::new(inodes),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }

    fn inodes(&self) -> std::sync::MutexGuard<'_, Inodes> {
        self.inodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The relative path of `ino`.
    fn rel(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.inodes().path.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn real(&self, rel: &Path) -> PathBuf {
        self.backing.join(rel)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.rel(parent)?.join(name))
    }

    fn intern(&self, rel: &Path) -> u64 {
        let mut i = self.inodes();
        if let Some(&n) = i.ino.get(rel) {
            return n;
        }
        let n = i.next;
        i.next += 1;
        i.path.insert(n, rel.to_path_buf());
        i.ino.insert(rel.to_path_buf(), n);
        n
    }

    fn forget_path(&self, rel: &Path) -> Option<u64> {
        let mut i = self.inodes();
        let n = i.ino.remove(rel)?;
        i.path.remove(&n);
        Some(n)
    }

    fn handle(&self, fh: FileHandle) -> Result<(Arc<File>, bool), Errno> {
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh.0)
            .map(|h| (h.file.clone(), h.append))
            .ok_or(Errno::EBADF)
    }

    fn add_handle(&self, file: File, append: bool) -> FileHandle {
        let fh = self.next_fh.fetch_add(1, Relaxed);
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                fh,
                Handle {
                    file: Arc::new(file),
                    append,
                },
            );
        FileHandle(fh)
    }

    /// The attributes of `rel` as the node sees them: the backing file's,
    /// with the size its unsynced writes give it.
    fn attr(&self, ino: u64, rel: &Path) -> Result<FileAttr, Errno> {
        let m = std::fs::symlink_metadata(self.real(rel)).map_err(errno)?;
        let size = self.size(ino, &m);
        Ok(to_attr(ino, &m, size))
    }

    fn size(&self, ino: u64, m: &Metadata) -> u64 {
        let u = self
            .shared
            .unsynced
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        u.0.get(&ino).map_or(m.len(), |p| p.size(m.len()))
    }

    fn entry(&self, rel: &Path, reply: ReplyEntry) {
        let ino = self.intern(rel);
        match self.attr(ino, rel) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    /// Cut the node's view of `ino` to `size`: its unsynced writes and the
    /// backing file.
    fn truncate(&self, ino: u64, file: &File, size: u64) -> std::io::Result<()> {
        let mut u = self
            .shared
            .unsynced
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(p) = u.0.get_mut(&ino) {
            p.truncate(size);
        }
        file.set_len(size)
    }
}

fn to_attr(ino: u64, m: &Metadata, size: u64) -> FileAttr {
    let t = |s: i64, ns: i64| UNIX_EPOCH + Duration::new(s.max(0) as u64, ns as u32);
    let ft = m.file_type();
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: m.blocks(),
        atime: t(m.atime(), m.atime_nsec()),
        mtime: t(m.mtime(), m.mtime_nsec()),
        ctime: t(m.ctime(), m.ctime_nsec()),
        crtime: SystemTime::UNIX_EPOCH,
        kind: FileType::from_std(ft).unwrap_or(FileType::RegularFile),
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev() as u32,
        blksize: 4096,
        flags: 0,
    }
}

/// Open options for a backing file from the node's open flags: never
/// O_APPEND (see [`Handle::append`]); writable handles also readable, so
/// an fsync can write unsynced extents through any of them.
fn options(flags: i32) -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    if flags & libc::O_ACCMODE != libc::O_RDONLY {
        o.write(true);
    }
    o.custom_flags(
        flags & !(libc::O_APPEND | libc::O_ACCMODE | libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC),
    );
    o
}

impl Filesystem for Layer {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // mmap of direct-io files (Linux 6.6+), for systems that map their
        // data files (etcd's bbolt); refused by older kernels, harmlessly.
        let _ = config.add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name) {
            Ok(rel) => {
                if std::fs::symlink_metadata(self.real(&rel)).is_err() {
                    return reply.error(Errno::ENOENT);
                }
                self.entry(&rel, reply)
            }
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.rel(ino).and_then(|rel| self.attr(ino.0, &rel)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let run = || -> Result<FileAttr, Errno> {
            let rel = self.rel(ino)?;
            let real = self.real(&rel);
            if let Some(m) = mode {
                std::fs::set_permissions(&real, std::fs::Permissions::from_mode(m))
                    .map_err(errno)?;
            }
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::chown(&real, uid, gid).map_err(errno)?;
            }
            if let Some(size) = size {
                let file = match fh.map(|fh| self.handle(fh)) {
                    Some(Ok((f, _))) => f,
                    _ => Arc::new(
                        std::fs::OpenOptions::new()
                            .write(true)
                            .open(&real)
                            .map_err(errno)?,
                    ),
                };
                self.truncate(ino.0, &file, size).map_err(errno)?;
            }
            self.attr(ino.0, &rel)
        };
        match run() {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self
            .rel(ino)
            .and_then(|rel| std::fs::read_link(self.real(&rel)).map_err(errno))
        {
            Ok(t) => reply.data(t.as_os_str().as_encoded_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let run = || -> Result<PathBuf, Errno> {
            let rel = self.child(parent, name)?;
            std::fs::DirBuilder::new()
                .mode(mode & !umask)
                .create(self.real(&rel))
                .map_err(errno)?;
            Ok(rel)
        };
        match run() {
            Ok(rel) => self.entry(&rel, reply),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let run = || -> Result<(), Errno> {
            let rel = self.child(parent, name)?;
            std::fs::remove_file(self.real(&rel)).map_err(errno)?;
            if let Some(ino) = self.forget_path(&rel) {
                self.shared
                    .unsynced
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .0
                    .remove(&ino);
            }
            Ok(())
        };
        match run() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let run = || -> Result<(), Errno> {
            let rel = self.child(parent, name)?;
            std::fs::remove_dir(self.real(&rel)).map_err(errno)?;
            self.forget_path(&rel);
            Ok(())
        };
        match run() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        match self.child(parent, link_name).and_then(|rel| {
            std::os::unix::fs::symlink(target, self.real(&rel)).map_err(errno)?;
            Ok(rel)
        }) {
            Ok(rel) => self.entry(&rel, reply),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        let run = || -> Result<(), Errno> {
            let from = self.child(parent, name)?;
            let to = self.child(newparent, newname)?;
            std::fs::rename(self.real(&from), self.real(&to)).map_err(errno)?;
            // The replaced file's inode is gone; `from` and everything
            // under it keep their numbers under the new name.
            if let Some(old) = self.forget_path(&to) {
                self.shared
                    .unsynced
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .0
                    .remove(&old);
            }
            let mut i = self.inodes();
            let moved: Vec<(PathBuf, u64)> = i
                .ino
                .iter()
                .filter(|(p, _)| p.starts_with(&from))
                .map(|(p, n)| (p.clone(), *n))
                .collect();
            for (p, n) in moved {
                let new = to.join(p.strip_prefix(&from).expect("filtered on the prefix"));
                i.ino.remove(&p);
                i.ino.insert(new.clone(), n);
                i.path.insert(n, new);
            }
            Ok(())
        };
        match run() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let run = || -> Result<FileHandle, Errno> {
            let rel = self.rel(ino)?;
            let file = options(flags.0).open(self.real(&rel)).map_err(errno)?;
            if flags.0 & libc::O_TRUNC != 0 {
                self.truncate(ino.0, &file, 0).map_err(errno)?;
            }
            Ok(self.add_handle(file, flags.0 & libc::O_APPEND != 0))
        };
        match run() {
            Ok(fh) => reply.opened(fh, FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let run = || -> Result<(FileAttr, FileHandle), Errno> {
            if self.shared.faults.disk_full.load(Relaxed) {
                self.shared.counters.writes_refused.fetch_add(1, Relaxed);
                return Err(Errno::from_i32(libc::ENOSPC));
            }
            let rel = self.child(parent, name)?;
            let mut o = options(flags);
            o.write(true).create(true).mode(mode & !umask);
            if flags & libc::O_EXCL != 0 {
                o.create_new(true);
            }
            let file = o.open(self.real(&rel)).map_err(errno)?;
            let ino = self.intern(&rel);
            if flags & libc::O_TRUNC != 0 {
                self.truncate(ino, &file, 0).map_err(errno)?;
            }
            let attr = self.attr(ino, &rel)?;
            Ok((attr, self.add_handle(file, flags & libc::O_APPEND != 0)))
        };
        match run() {
            Ok((a, fh)) => reply.created(&TTL, &a, Generation(0), fh, FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        self.shared.delay();
        let run = || -> Result<Vec<u8>, Errno> {
            let (file, _) = self.handle(fh)?;
            let mut buf = vec![0u8; size as usize];
            let mut got = 0;
            while got < buf.len() {
                match file.read_at(&mut buf[got..], offset + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(errno(e)),
                }
            }
            let u = self
                .shared
                .unsynced
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(p) = u.0.get(&ino.0) {
                got = got.max(p.overlay(offset, &mut buf));
            }
            buf.truncate(got);
            Ok(buf)
        };
        match run() {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        self.shared.delay();
        let run = || -> Result<(), Errno> {
            let (file, append) = self.handle(fh)?;
            let faults = &self.shared.faults;
            if faults.disk_full.load(Relaxed) {
                self.shared.counters.writes_refused.fetch_add(1, Relaxed);
                return Err(Errno::from_i32(libc::ENOSPC));
            }
            // The lease flag is read under the lock that releasing it takes,
            // so no write is held back after the release wrote all through.
            let mut u = self
                .shared
                .unsynced
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let offset = if append {
                let len = file.metadata().map_err(errno)?.len();
                u.0.get(&ino.0).map_or(len, |p| p.size(len))
            } else {
                offset
            };
            if faults.lose_unsynced.load(Relaxed) {
                u.0.entry(ino.0)
                    .or_insert_with(|| Pending::new(file.clone()))
                    .push(offset, data);
                self.shared
                    .counters
                    .held
                    .fetch_add(data.len() as u64, Relaxed);
                Ok(())
            } else {
                file.write_all_at(data, offset).map_err(errno)
            }
        };
        match run() {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() is not a sync: unsynced data stays held.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.shared.delay();
        let run = || -> Result<(), Errno> {
            if self.shared.faults.fsync_error.load(Relaxed) {
                self.shared.counters.fsyncs_failed.fetch_add(1, Relaxed);
                return Err(Errno::EIO);
            }
            let (file, _) = self.handle(fh)?;
            let pending = self
                .shared
                .unsynced
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .0
                .remove(&ino.0);
            if let Some(p) = pending {
                let n = p.write_through().map_err(errno)?;
                self.shared.counters.synced.fetch_add(n, Relaxed);
                if datasync {
                    p.file.sync_data()
                } else {
                    p.file.sync_all()
                }
                .map_err(errno)?;
            }
            if datasync {
                file.sync_data()
            } else {
                file.sync_all()
            }
            .map_err(errno)
        };
        match run() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        if self.shared.faults.fsync_error.load(Relaxed) {
            self.shared.counters.fsyncs_failed.fetch_add(1, Relaxed);
            return reply.error(Errno::EIO);
        }
        match self.rel(ino).and_then(|rel| {
            File::open(self.real(&rel))
                .and_then(|d| d.sync_all())
                .map_err(errno)
        }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let rel = match self.rel(ino) {
            Ok(r) => r,
            Err(e) => return reply.error(e),
        };
        let mut entries = vec![
            (ino.0, FileType::Directory, ".".into()),
            (1, FileType::Directory, "..".into()),
        ];
        match std::fs::read_dir(self.real(&rel)) {
            Ok(dir) => {
                let mut names: Vec<_> = dir.flatten().collect();
                names.sort_by_key(|e| e.file_name());
                for e in names {
                    let kind = e
                        .file_type()
                        .ok()
                        .and_then(FileType::from_std)
                        .unwrap_or(FileType::RegularFile);
                    let child = self.intern(&rel.join(e.file_name()));
                    entries.push((child, kind, e.file_name()));
                }
            }
            Err(e) => return reply.error(errno(e)),
        }
        for (i, (n, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(n), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match nix::sys::statvfs::statvfs(&self.backing) {
            Ok(s) => {
                // A full disk says so to statfs too.
                let full = self.shared.faults.disk_full.load(Relaxed);
                let free = |n: u64| if full { 0 } else { n };
                reply.statfs(
                    s.blocks(),
                    free(s.blocks_free()),
                    free(s.blocks_available()),
                    s.files(),
                    s.files_free(),
                    s.block_size() as u32,
                    s.name_max() as u32,
                    s.fragment_size() as u32,
                )
            }
            Err(e) => reply.error(Errno::from_i32(e as i32)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if self.shared.faults.disk_full.load(Relaxed) {
            self.shared.counters.writes_refused.fetch_add(1, Relaxed);
            return reply.error(Errno::from_i32(libc::ENOSPC));
        }
        let run = || -> Result<(), Errno> {
            let (file, _) = self.handle(fh)?;
            nix::fcntl::fallocate(
                &*file,
                nix::fcntl::FallocateFlags::from_bits_truncate(mode),
                offset as i64,
                length as i64,
            )
            .map_err(|e| Errno::from_i32(e as i32))
        };
        match run() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}
