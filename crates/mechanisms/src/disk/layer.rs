//! The FUSE passthrough filesystem of one node's data dir: every operation
//! goes to the same path under the backing dir, with the faults of
//! [`super::Faults`] applied on the way. Files are opened direct-io (no
//! kernel page cache), so what the node reads is what the layer answers:
//! after a power cut it cannot read dropped data back from the kernel.
//! Metadata (create, rename, link, unlink, mkdir, truncate, chmod, times,
//! xattrs) passes through at once and survives a power cut; only file data
//! is held back. Short of a power cut, the node sees what the backing
//! filesystem would show it (`conformance.rs` checks this, with and without
//! writes held back).

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
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
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
/// A hard link made through the layer shares its file's number (so its
/// unsynced writes are one file's); links made before the mount, or
/// outside it, get a number each.
struct Inodes {
    /// A path the inode has now; none once unlinked (while still open).
    path: HashMap<u64, PathBuf>,
    /// Every path seen: several may map to one inode (hard links).
    ino: HashMap<PathBuf, u64>,
    next: u64,
}

struct Handle {
    file: Arc<File>,
    /// O_APPEND: the layer places each write at the end it knows (the
    /// backing file is opened without it, since pwrite ignores offsets on
    /// an O_APPEND fd).
    append: bool,
    ino: u64,
}

/// What an operation on an inode acts on: its backing path, or, once it has
/// none (unlinked or renamed over while open), one of its open handles.
enum Target {
    Path(PathBuf),
    File(Arc<File>),
}

fn errno(e: std::io::Error) -> Errno {
    Errno::from(e)
}

fn nix_errno(e: nix::errno::Errno) -> Errno {
    Errno::from_i32(e as i32)
}

/// `base/rest`, or `base` itself for an empty `rest`: `join("")` would add
/// a trailing separator, naming no file ("d/u/": ENOTDIR).
fn under(base: &Path, rest: &Path) -> PathBuf {
    if rest.as_os_str().is_empty() {
        base.to_path_buf()
    } else {
        base.join(rest)
    }
}

fn timespec(t: Option<fuser::TimeOrNow>) -> nix::sys::time::TimeSpec {
    use nix::sys::time::TimeSpec;
    match t {
        None => TimeSpec::UTIME_OMIT,
        Some(fuser::TimeOrNow::Now) => TimeSpec::UTIME_NOW,
        Some(fuser::TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => TimeSpec::from_duration(d),
            Err(e) => {
                let d = e.duration();
                let (s, ns) = (d.as_secs() as i64, i64::from(d.subsec_nanos()));
                if ns == 0 {
                    TimeSpec::new(-s, 0)
                } else {
                    TimeSpec::new(-s - 1, 1_000_000_000 - ns)
                }
            }
        },
    }
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

    /// Forget the path `rel` (unlinked, or replaced by a rename); `linked`:
    /// its file had other links, which may be known by the same inode.
    /// Returns the inode if it has no path left.
    fn forget_path(&self, rel: &Path, linked: bool) -> Option<u64> {
        let mut i = self.inodes();
        let n = i.ino.remove(rel)?;
        if i.path.get(&n).is_some_and(|p| p == rel) {
            let other = linked
                .then(|| i.ino.iter().find(|(_, m)| **m == n).map(|(p, _)| p.clone()))
                .flatten();
            match other {
                Some(p) => i.path.insert(n, p),
                None => i.path.remove(&n),
            };
        }
        (!i.path.contains_key(&n)).then_some(n)
    }

    /// Move every path under `from` (itself included) to under `to`; with
    /// `swap` (RENAME_EXCHANGE), those under `to` to under `from` as well.
    fn move_paths(&self, from: &Path, to: &Path, swap: bool) {
        let mut i = self.inodes();
        let moved: Vec<(PathBuf, PathBuf, u64)> = i
            .ino
            .iter()
            .filter_map(|(p, &n)| {
                let new = match p.strip_prefix(from) {
                    Ok(rest) => under(to, rest),
                    Err(_) if swap => under(from, p.strip_prefix(to).ok()?),
                    Err(_) => return None,
                };
                Some((p.clone(), new, n))
            })
            .collect();
        for (old, _, _) in &moved {
            i.ino.remove(old);
        }
        for (old, new, n) in moved {
            i.ino.insert(new.clone(), n);
            if i.path.get(&n) == Some(&old) {
                i.path.insert(n, new);
            }
        }
    }

    /// Drop the unsynced writes of `ino` once nothing reaches it: no path
    /// and no open handle (an unlinked file's data lives on, as on a disk,
    /// until its last close).
    fn drop_if_unreachable(&self, ino: u64) {
        if self.inodes().path.contains_key(&ino) || self.open_file(ino).is_some() {
            return;
        }
        self.shared
            .unsynced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .remove(&ino);
    }

    /// An open handle of `ino`, if any.
    fn open_file(&self, ino: u64) -> Option<Arc<File>> {
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .find(|h| h.ino == ino)
            .map(|h| h.file.clone())
    }

    /// What an operation on `ino` acts on (see [`Target`]).
    fn target(&self, ino: INodeNo) -> Result<Target, Errno> {
        match self.rel(ino) {
            Ok(rel) => Ok(Target::Path(self.real(&rel))),
            Err(e) => self.open_file(ino.0).map(Target::File).ok_or(e),
        }
    }

    fn handle(&self, fh: FileHandle) -> Result<(Arc<File>, bool), Errno> {
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh.0)
            .map(|h| (h.file.clone(), h.append))
            .ok_or(Errno::EBADF)
    }

    fn add_handle(&self, file: File, append: bool, ino: u64) -> FileHandle {
        let fh = self.next_fh.fetch_add(1, Relaxed);
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                fh,
                Handle {
                    file: Arc::new(file),
                    append,
                    ino,
                },
            );
        FileHandle(fh)
    }

    /// The attributes of `rel` as the node sees them: the backing file's,
    /// with the size its unsynced writes give it.
    fn attr(&self, ino: u64, rel: &Path) -> Result<FileAttr, Errno> {
        self.attr_of(ino, &Target::Path(self.real(rel)))
    }

    fn attr_of(&self, ino: u64, t: &Target) -> Result<FileAttr, Errno> {
        let m = match t {
            Target::Path(p) => std::fs::symlink_metadata(p),
            Target::File(f) => f.metadata(),
        }
        .map_err(errno)?;
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
/// an fsync can write unsynced extents through any of them. Never O_DIRECT
/// either: the node already bypasses every cache above the layer, and the
/// layer's buffers (its reads, its held extents) are not block-aligned.
fn options(flags: i32) -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    if flags & libc::O_ACCMODE != libc::O_RDONLY {
        o.write(true);
    }
    o.custom_flags(
        flags
            & !(libc::O_APPEND
                | libc::O_ACCMODE
                | libc::O_CREAT
                | libc::O_EXCL
                | libc::O_TRUNC
                | libc::O_DIRECT),
    );
    o
}

/// Give a file the node just created the permissions it asked for: the
/// node's umask is already out of `mode`, but the layer's own umask was
/// applied again by the syscall. Bits the kernel added (a setgid dir's
/// S_ISGID) stay.
fn set_created_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    let have = std::fs::symlink_metadata(path)?.mode() & 0o7777;
    let want = (have & !0o777) | (mode & 0o777);
    if want != have {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(want))?;
    }
    Ok(())
}

/// The C path of a target for the xattr calls, and whether to follow it: a
/// path is the inode itself (a symlink's own xattrs), an open handle is
/// reached through its /proc/self/fd link.
fn xattr_path(t: &Target) -> (std::ffi::CString, bool) {
    let (bytes, follow) = match t {
        Target::Path(p) => (p.as_os_str().as_bytes().to_vec(), false),
        Target::File(f) => (
            format!("/proc/self/fd/{}", f.as_raw_fd()).into_bytes(),
            true,
        ),
    };
    // Paths from the kernel and the backing dir hold no NUL.
    (std::ffi::CString::new(bytes).unwrap_or_default(), follow)
}

fn cname(name: &OsStr) -> Result<std::ffi::CString, Errno> {
    std::ffi::CString::new(name.as_bytes()).map_err(|_| Errno::EINVAL)
}

/// A size returned by an xattr call, or its errno.
fn xattr_size(r: libc::ssize_t) -> Result<usize, Errno> {
    if r < 0 {
        Err(errno(std::io::Error::last_os_error()))
    } else {
        Ok(r as usize)
    }
}

/// Answer a getxattr or listxattr of `size` bytes with what `call` (given
/// the buffer) read: its size for a size query.
fn reply_xattr(
    size: u32,
    reply: fuser::ReplyXattr,
    call: impl FnOnce(&mut [u8]) -> Result<usize, Errno>,
) {
    let mut buf = vec![0u8; size as usize];
    match call(&mut buf) {
        Ok(n) if size == 0 => reply.size(n as u32),
        Ok(n) => reply.data(&buf[..n]),
        Err(e) => reply.error(e),
    }
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
                // The backing fs's errno (ENAMETOOLONG, ELOOP...), not
                // always ENOENT.
                if let Err(e) = std::fs::symlink_metadata(self.real(&rel)) {
                    return reply.error(errno(e));
                }
                self.entry(&rel, reply)
            }
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let t = match fh.and_then(|fh| self.handle(fh).ok()) {
            Some((f, _)) => Ok(Target::File(f)),
            None => self.target(ino),
        };
        match t.and_then(|t| self.attr_of(ino.0, &t)) {
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
        atime: Option<fuser::TimeOrNow>,
        mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let run = || -> Result<FileAttr, Errno> {
            // The handle the node named (ftruncate), else the path (not
            // following a symlink: lchown, utimensat's NOFOLLOW), else a
            // handle of a file that has no path left.
            let t = match fh.and_then(|fh| self.handle(fh).ok()) {
                Some((f, _)) => Target::File(f),
                None => self.target(ino)?,
            };
            if let Some(m) = mode {
                let p = std::fs::Permissions::from_mode(m);
                match &t {
                    Target::Path(path) => std::fs::set_permissions(path, p),
                    Target::File(f) => f.set_permissions(p),
                }
                .map_err(errno)?;
            }
            if uid.is_some() || gid.is_some() {
                match &t {
                    Target::Path(path) => std::os::unix::fs::lchown(path, uid, gid),
                    Target::File(f) => std::os::unix::fs::fchown(&**f, uid, gid),
                }
                .map_err(errno)?;
            }
            if let Some(size) = size {
                let file = match &t {
                    Target::File(f) => f.clone(),
                    Target::Path(path) => Arc::new(
                        std::fs::OpenOptions::new()
                            .write(true)
                            .open(path)
                            .map_err(errno)?,
                    ),
                };
                self.truncate(ino.0, &file, size).map_err(errno)?;
            }
            if atime.is_some() || mtime.is_some() {
                let (a, m) = (timespec(atime), timespec(mtime));
                match &t {
                    Target::Path(path) => nix::sys::stat::utimensat(
                        nix::fcntl::AT_FDCWD,
                        path,
                        &a,
                        &m,
                        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
                    ),
                    Target::File(f) => nix::sys::stat::futimens(&**f, &a, &m),
                }
                .map_err(nix_errno)?;
            }
            self.attr_of(ino.0, &t)
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
            let real = self.real(&rel);
            std::fs::DirBuilder::new()
                .mode(mode & !umask)
                .create(&real)
                .map_err(errno)?;
            set_created_mode(&real, mode & !umask).map_err(errno)?;
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
            let real = self.real(&rel);
            let linked = std::fs::symlink_metadata(&real).is_ok_and(|m| m.nlink() > 1);
            std::fs::remove_file(&real).map_err(errno)?;
            if let Some(ino) = self.forget_path(&rel, linked) {
                self.drop_if_unreachable(ino);
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
            self.forget_path(&rel, false);
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
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        let run = || -> Result<(), Errno> {
            let from = self.child(parent, name)?;
            let to = self.child(newparent, newname)?;
            let (real_from, real_to) = (self.real(&from), self.real(&to));
            let old = std::fs::symlink_metadata(&real_from).map_err(errno)?;
            let replaced = std::fs::symlink_metadata(&real_to).ok();
            nix::fcntl::renameat2(
                nix::fcntl::AT_FDCWD,
                &real_from,
                nix::fcntl::AT_FDCWD,
                &real_to,
                nix::fcntl::RenameFlags::from_bits_retain(flags.bits()),
            )
            .map_err(nix_errno)?;
            // Two links of one file: rename(2) leaves both.
            if replaced
                .as_ref()
                .is_some_and(|r| (r.dev(), r.ino()) == (old.dev(), old.ino()))
            {
                return Ok(());
            }
            if flags.contains(fuser::RenameFlags::RENAME_EXCHANGE) {
                self.move_paths(&from, &to, true);
                return Ok(());
            }
            // The replaced file loses this name; `from` and everything
            // under it keep their numbers under the new name.
            let linked = replaced.is_some_and(|r| r.nlink() > 1 && !r.is_dir());
            let orphan = self.forget_path(&to, linked);
            self.move_paths(&from, &to, false);
            if let Some(ino) = orphan {
                self.drop_if_unreachable(ino);
            }
            Ok(())
        };
        match run() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let run = || -> Result<FileAttr, Errno> {
            let rel = self.rel(ino)?;
            let new = self.child(newparent, newname)?;
            std::fs::hard_link(self.real(&rel), self.real(&new)).map_err(errno)?;
            // The new name is the same inode to the kernel, and to the
            // unsynced writes.
            self.inodes().ino.insert(new.clone(), ino.0);
            self.attr(ino.0, &new)
        };
        match run() {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
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
            Ok(self.add_handle(file, flags.0 & libc::O_APPEND != 0, ino.0))
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
            let real = self.real(&rel);
            let mut o = options(flags);
            o.write(true).create_new(true).mode(mode & !umask);
            // Created here (then given its mode, see `set_created_mode`),
            // or, without O_EXCL, opened if it appeared since the lookup.
            let file = match o.open(&real) {
                Ok(f) => {
                    set_created_mode(&real, mode & !umask).map_err(errno)?;
                    f
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::AlreadyExists
                        && flags & libc::O_EXCL == 0 =>
                {
                    options(flags).write(true).open(&real).map_err(errno)?
                }
                Err(e) => return Err(errno(e)),
            };
            let ino = self.intern(&rel);
            if flags & libc::O_TRUNC != 0 {
                self.truncate(ino, &file, 0).map_err(errno)?;
            }
            let attr = self.attr(ino, &rel)?;
            Ok((
                attr,
                self.add_handle(file, flags & libc::O_APPEND != 0, ino),
            ))
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
        flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        // O_SYNC / O_DSYNC (O_SYNC includes the O_DSYNC bit): the write is
        // durable when it returns, as if fsynced. Handles are opened with
        // FOPEN_DIRECT_IO, so the kernel sends no FSYNC after it: the flag
        // on the write is all the layer sees (NATS writes its stream
        // metadata this way, then renames it into place).
        let sync = flags.0 & libc::O_DSYNC != 0;
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
            if faults.lose_unsynced.load(Relaxed) && !sync {
                u.0.entry(ino.0)
                    .or_insert_with(|| Pending::new(file.clone()))
                    .push(offset, data);
                self.shared
                    .counters
                    .held
                    .fetch_add(data.len() as u64, Relaxed);
                Ok(())
            } else if sync && faults.fsync_error.load(Relaxed) {
                // The sync an O_SYNC write carries fails as an fsync would.
                self.shared.counters.fsyncs_failed.fetch_add(1, Relaxed);
                Err(Errno::EIO)
            } else if sync {
                // The file's held writes first, as an fsync would: older
                // held extents must not land over this write later.
                if let Some(p) = u.0.remove(&ino.0) {
                    let n = p.write_through().map_err(errno)?;
                    self.shared.counters.synced.fetch_add(n, Relaxed);
                }
                file.write_all_at(data, offset).map_err(errno)?;
                file.sync_data().map_err(errno)?;
                if faults.lose_unsynced.load(Relaxed) {
                    self.shared
                        .counters
                        .synced
                        .fetch_add(data.len() as u64, Relaxed);
                }
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
        ino: INodeNo,
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
        self.drop_if_unreachable(ino.0);
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

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let run = || -> Result<(), Errno> {
            let t = self.target(ino)?;
            let ((path, follow), name) = (xattr_path(&t), cname(name)?);
            let (p, n, v) = (path.as_ptr(), name.as_ptr(), value.as_ptr().cast());
            // SAFETY: `path` and `name` are NUL-terminated and outlive the
            // call (as does the handle `t` may hold); `v` and `value.len()`
            // describe `value`.
            let r = unsafe {
                if follow {
                    libc::setxattr(p, n, v, value.len(), flags)
                } else {
                    libc::lsetxattr(p, n, v, value.len(), flags)
                }
            };
            xattr_size(r as libc::ssize_t).map(drop)
        };
        match run() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn getxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        size: u32,
        reply: fuser::ReplyXattr,
    ) {
        reply_xattr(size, reply, |buf| {
            let t = self.target(ino)?;
            let ((path, follow), name) = (xattr_path(&t), cname(name)?);
            let (p, n, b) = (path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast());
            // SAFETY: `path` and `name` are NUL-terminated and outlive the
            // call; the kernel writes at most `buf.len()` bytes at `b`
            // (none for a size query on an empty buffer).
            xattr_size(unsafe {
                if follow {
                    libc::getxattr(p, n, b, buf.len())
                } else {
                    libc::lgetxattr(p, n, b, buf.len())
                }
            })
        })
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: fuser::ReplyXattr) {
        reply_xattr(size, reply, |buf| {
            let t = self.target(ino)?;
            let (path, follow) = xattr_path(&t);
            let (p, b) = (path.as_ptr(), buf.as_mut_ptr().cast());
            // SAFETY: `path` is NUL-terminated and outlives the call; the
            // kernel writes at most `buf.len()` bytes at `b`.
            xattr_size(unsafe {
                if follow {
                    libc::listxattr(p, b, buf.len())
                } else {
                    libc::llistxattr(p, b, buf.len())
                }
            })
        })
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let run = || -> Result<(), Errno> {
            let t = self.target(ino)?;
            let ((path, follow), name) = (xattr_path(&t), cname(name)?);
            // SAFETY: `path` and `name` are NUL-terminated and outlive the
            // call.
            let r = unsafe {
                if follow {
                    libc::removexattr(path.as_ptr(), name.as_ptr())
                } else {
                    libc::lremovexattr(path.as_ptr(), name.as_ptr())
                }
            };
            xattr_size(r as libc::ssize_t).map(drop)
        };
        match run() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
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
            use nix::fcntl::FallocateFlags as F;
            let (file, _) = self.handle(fh)?;
            let flags = F::from_bits_truncate(mode);
            // Under the lock, so no held write lands between the two.
            let mut u = self
                .shared
                .unsynced
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let before = file.metadata().map_err(errno)?.len();
            nix::fcntl::fallocate(&*file, flags, offset as i64, length as i64)
                .map_err(nix_errno)?;
            // A hole punched or a range zeroed over held writes: they are
            // gone from it, as from the disk, and the size the node saw
            // stays.
            if flags.intersects(F::FALLOC_FL_PUNCH_HOLE | F::FALLOC_FL_ZERO_RANGE)
                && let Some(p) = u.0.get_mut(&ino.0)
            {
                let size = p.size(before);
                p.punch(offset, length);
                if p.size(file.metadata().map_err(errno)?.len()) < size {
                    file.set_len(size).map_err(errno)?;
                }
            }
            Ok(())
        };
        match run() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}
