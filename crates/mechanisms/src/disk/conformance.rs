//! Conformance of the disk layer with the filesystem under it: one script
//! of file operations runs on a plain temp dir and on a directory through a
//! mounted layer, and every step's outcome (the value or errno, the bytes
//! read, listings, stats without inode numbers or times) must be the same,
//! as must the trees they leave (through the mount and in the backing dir).
//! Run once with the layer passing writes through, and once holding them
//! back (`lose_unsynced` without a power cut): until a cut, held writes
//! must be invisible to the node.

use super::tests::layer;
use std::ffi::CString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

/// The outcome of each step of one run, in order.
#[derive(Default)]
struct Log(Vec<(String, String)>);

impl Log {
    fn rec<T: fmt::Debug>(&mut self, step: &str, r: io::Result<T>) {
        self.0.push((step.to_string(), show(r)));
    }

    /// Open `path`, recording the outcome; the handle if it opened.
    fn open(&mut self, step: &str, o: &OpenOptions, path: &Path) -> Option<File> {
        match o.open(path) {
            Ok(f) => {
                self.rec(step, Ok(()));
                Some(f)
            }
            Err(e) => {
                self.rec::<()>(step, Err(e));
                None
            }
        }
    }
}

/// A value, or the errno's name.
fn show<T: fmt::Debug>(r: io::Result<T>) -> String {
    match r {
        Ok(v) => format!("{v:?}"),
        Err(e) => match e.raw_os_error() {
            Some(n) => format!("Err({:?})", nix::errno::Errno::from_raw(n)),
            None => format!("Err({e})"),
        },
    }
}

/// Run `op` on a handle the script opened (a failed open was recorded).
fn on<T>(f: &Option<File>, op: impl FnOnce(&File) -> io::Result<T>) -> io::Result<T> {
    f.as_ref()
        .map_or_else(|| Err(io::Error::other("no handle")), op)
}

/// Bytes as a step shows them: short ones as text, long ones by digest.
struct Bytes(Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() <= 80 {
            write!(f, "{:?}", String::from_utf8_lossy(&self.0))
        } else {
            let h = self.0.iter().fold(0xcbf29ce484222325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
            });
            write!(f, "{} bytes, fnv {h:016x}", self.0.len())
        }
    }
}

/// Text shown as is.
struct Text(String);

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the two sides must agree on in a stat: not inode numbers or times.
fn meta(m: &fs::Metadata) -> Text {
    let t = m.file_type();
    let kind = if t.is_dir() {
        "dir"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_file() {
        "file"
    } else {
        "other"
    };
    Text(format!(
        "{kind} mode={:o} size={} nlink={} uid={} gid={}",
        m.mode() & 0o7777,
        m.size(),
        m.nlink(),
        m.uid(),
        m.gid()
    ))
}

fn lstat(p: &Path) -> io::Result<Text> {
    fs::symlink_metadata(p).map(|m| meta(&m))
}

fn stat(p: &Path) -> io::Result<Text> {
    fs::metadata(p).map(|m| meta(&m))
}

fn fstat(f: &File) -> io::Result<Text> {
    f.metadata().map(|m| meta(&m))
}

fn read(p: &Path) -> io::Result<Bytes> {
    fs::read(p).map(Bytes)
}

/// Up to `n` bytes at `off` through a handle.
fn pread(f: &File, off: u64, n: usize) -> io::Result<Bytes> {
    let mut buf = vec![0; n];
    let mut got = 0;
    while got < n {
        match f.read_at(&mut buf[got..], off + got as u64)? {
            0 => break,
            k => got += k,
        }
    }
    buf.truncate(got);
    Ok(Bytes(buf))
}

/// A directory's entries with their types, sorted.
fn list(p: &Path) -> io::Result<Text> {
    let mut v = Vec::new();
    for e in fs::read_dir(p)? {
        let e = e?;
        let t = e.file_type()?;
        let kind = if t.is_dir() {
            "/"
        } else if t.is_symlink() {
            "@"
        } else {
            ""
        };
        v.push(format!("{}{kind}", e.file_name().to_string_lossy()));
    }
    v.sort();
    Ok(Text(v.join(" ")))
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL in test paths")
}

fn cvt(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

fn setxattr(p: &Path, name: &str, value: &[u8], flags: i32) -> io::Result<()> {
    let (p, n) = (cstr(p), CString::new(name).unwrap());
    // SAFETY: `p` and `n` are NUL-terminated and outlive the call; the
    // value pointer and length describe `value`.
    cvt(unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
}

/// The value of `name` read into a buffer of `size` bytes (0: its size).
fn getxattr(p: &Path, name: &str, size: usize) -> io::Result<Bytes> {
    let (p, n) = (cstr(p), CString::new(name).unwrap());
    let mut buf = vec![0u8; size];
    // SAFETY: `p` and `n` are NUL-terminated and outlive the call; the
    // kernel writes at most `buf.len()` bytes into `buf`.
    let got = cvt_size(unsafe {
        libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
    })?;
    if size == 0 {
        return Ok(Bytes(format!("size {got}").into_bytes()));
    }
    buf.truncate(got);
    Ok(Bytes(buf))
}

/// The names of `p`'s extended attributes, sorted.
fn listxattr(p: &Path) -> io::Result<Vec<String>> {
    let p = cstr(p);
    // SAFETY: `p` is NUL-terminated; a null buffer of size 0 asks the size.
    let size = cvt_size(unsafe { libc::llistxattr(p.as_ptr(), std::ptr::null_mut(), 0) })?;
    let mut buf = vec![0u8; size];
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    let got =
        cvt_size(unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })?;
    buf.truncate(got);
    let mut names: Vec<String> = buf
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    names.sort();
    Ok(names)
}

fn removexattr(p: &Path, name: &str) -> io::Result<()> {
    let (p, n) = (cstr(p), CString::new(name).unwrap());
    // SAFETY: `p` and `n` are NUL-terminated and outlive the call.
    cvt(unsafe { libc::lremovexattr(p.as_ptr(), n.as_ptr()) })
}

fn fallocate(f: &File, mode: i32, off: i64, len: i64) -> io::Result<()> {
    nix::fcntl::fallocate(
        f,
        nix::fcntl::FallocateFlags::from_bits_retain(mode),
        off,
        len,
    )
    .map_err(io::Error::from)
}

fn renameat2(from: &Path, to: &Path, flags: nix::fcntl::RenameFlags) -> io::Result<()> {
    use nix::fcntl::AT_FDCWD;
    nix::fcntl::renameat2(AT_FDCWD, from, AT_FDCWD, to, flags).map_err(io::Error::from)
}

/// A shared read-write mapping of the first `len` bytes of a file.
struct Map {
    ptr: *mut u8,
    len: usize,
}

impl Map {
    fn new(f: &File, len: usize) -> io::Result<Map> {
        // SAFETY: a fresh mapping (no address hint) of an open fd; the
        // result is checked against MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Map {
            ptr: ptr.cast(),
            len,
        })
    }

    fn read(&self, off: usize, n: usize) -> io::Result<Bytes> {
        assert!(off + n <= self.len);
        let mut v = vec![0u8; n];
        // SAFETY: `[off, off + n)` lies inside the mapping (asserted), which
        // lives until `self` drops; the file is long enough that no page
        // faults past its end.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(off), v.as_mut_ptr(), n) };
        Ok(Bytes(v))
    }

    fn write(&self, off: usize, data: &[u8]) -> io::Result<()> {
        assert!(off + data.len() <= self.len);
        // SAFETY: as in `read`; the mapping is writable and shared.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(off), data.len()) };
        Ok(())
    }

    fn msync(&self) -> io::Result<()> {
        // SAFETY: the whole of this live mapping.
        cvt(unsafe { libc::msync(self.ptr.cast(), self.len, libc::MS_SYNC) })
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: this mapping, unmapped once; no slice into it outlives
        // `read` or `write`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The script: every operation the layer passes through, with the error
/// cases around it. `hold`: the layer holds writes back (the backing
/// file's blocks then differ, so they are not shown).
fn script(root: &Path, l: &mut Log, hold: bool) {
    let p = |s: &str| root.join(s);
    let rw = {
        let mut o = OpenOptions::new();
        o.read(true).write(true);
        o
    };
    let new = {
        let mut o = OpenOptions::new();
        o.read(true).write(true).create_new(true);
        o
    };
    let ro = {
        let mut o = OpenOptions::new();
        o.read(true);
        o
    };

    // The issue's case: a file written under a temporary name and renamed
    // into place (how nats-server writes its JetStream meta files).
    l.rec("mkdir d", fs::create_dir(p("d")));
    l.rec("write d/u.tmp", fs::write(p("d/u.tmp"), b"2\n"));
    l.rec("rename d/u.tmp d/u", fs::rename(p("d/u.tmp"), p("d/u")));
    l.rec("read d/u", read(&p("d/u")));
    l.rec("stat d/u", stat(&p("d/u")));
    l.rec("stat d/u.tmp", stat(&p("d/u.tmp")));
    l.rec("rewrite d/u", fs::write(p("d/u"), b"3\n"));
    l.rec("read d/u again", read(&p("d/u")));
    l.rec("list d", list(&p("d")));
    // The same through the shell and coreutils (mv renames with renameat2
    // flags).
    l.rec(
        "sh: mkdir, echo > tmp, mv, cat",
        std::process::Command::new("sh")
            .args([
                "-c",
                "mkdir s && echo 2 > s/u.tmp && mv s/u.tmp s/u && cat s/u 2>&1",
            ])
            .current_dir(root)
            .output()
            .map(|o| (o.status.code(), Bytes(o.stdout))),
    );

    // Create, write, read.
    let f = l.open("create f", &new, &p("f"));
    l.rec("pwrite f", on(&f, |f| f.write_at(b"hello world", 0)));
    l.rec("pread f", on(&f, |f| pread(f, 0, 64)));
    l.rec("pread f at 6", on(&f, |f| pread(f, 6, 64)));
    l.rec("pread f past the end", on(&f, |f| pread(f, 100, 64)));
    l.rec("pwrite f past the end", on(&f, |f| f.write_at(b"!", 20)));
    l.rec("read f with a hole", read(&p("f")));
    l.rec("stat f", stat(&p("f")));
    l.rec("fstat f", on(&f, fstat));
    l.open("create f again", &new, &p("f"));
    l.open("open missing", &ro, &p("missing"));
    l.open("open d for writing", &rw, &p("d"));
    l.open("open f/x", &ro, &p("f/x"));
    let long = "n".repeat(300);
    l.rec("stat a 300-byte name", stat(&p(&long)));
    l.open("create a 300-byte name", &new, &p(&long));
    let r = l.open("open f read-only", &ro, &p("f"));
    l.rec("write a read-only handle", on(&r, |f| f.write_at(b"x", 0)));
    let t = l.open(
        "open d/u with O_TRUNC",
        OpenOptions::new().write(true).truncate(true),
        &p("d/u"),
    );
    l.rec("read d/u after O_TRUNC", read(&p("d/u")));
    drop((r, t));
    let od = l.open(
        "create od with O_DIRECT",
        new.clone().custom_flags(libc::O_DIRECT),
        &p("od"),
    );
    {
        let mut v = vec![0u8; 3 * 4096];
        let a = v.as_ptr().align_offset(4096);
        let block = &mut v[a..a + 4096];
        block.fill(b'D');
        l.rec("O_DIRECT pwrite", on(&od, |f| f.write_at(block, 0)));
        block.fill(0);
        l.rec(
            "O_DIRECT pread",
            on(&od, |f| f.read_at(block, 0)).map(|n| Bytes(block[..n].to_vec())),
        );
    }
    drop(od);
    l.rec("read od", read(&p("od")));

    // Rename over an existing file, with handles open on both.
    l.rec("write a", fs::write(p("a"), b"new"));
    l.rec("write b", fs::write(p("b"), b"old"));
    let ha = l.open("open a", &rw, &p("a"));
    let hb = l.open("open b", &rw, &p("b"));
    l.rec("rename a b", fs::rename(p("a"), p("b")));
    l.rec("read b after the rename", read(&p("b")));
    l.rec("stat a after the rename", stat(&p("a")));
    l.rec("read the replaced b's handle", on(&hb, |f| pread(f, 0, 64)));
    l.rec("read a's handle", on(&ha, |f| pread(f, 0, 64)));
    l.rec("fstat the replaced b's handle", on(&hb, fstat));
    l.rec("fstat a's handle", on(&ha, fstat));
    l.rec(
        "write the replaced b's handle",
        on(&hb, |f| f.write_at(b"OLD", 0)),
    );
    l.rec(
        "read the replaced b's handle again",
        on(&hb, |f| pread(f, 0, 64)),
    );
    l.rec("write a's handle", on(&ha, |f| f.write_at(b"NEW!", 0)));
    l.rec("read b after a's handle wrote", read(&p("b")));
    drop((ha, hb));
    l.rec("rename b b", fs::rename(p("b"), p("b")));
    l.rec("rename missing", fs::rename(p("missing"), p("b2")));
    l.rec("rename a file over a dir", fs::rename(p("b"), p("d")));
    l.rec("rename a dir over a file", fs::rename(p("d"), p("b")));
    l.rec("mkdir e", fs::create_dir(p("e")));
    l.rec("write e/x", fs::write(p("e/x"), b"x"));
    l.rec("mkdir d2", fs::create_dir(p("d2")));
    l.rec("rename d2 over non-empty e", fs::rename(p("d2"), p("e")));
    l.rec("mkdir e2", fs::create_dir(p("e2")));
    l.rec("rename d2 over empty e2", fs::rename(p("d2"), p("e2")));
    l.rec("list after the dir renames", list(root));
    l.rec("mkdir d/sub", fs::create_dir(p("d/sub")));
    l.rec("rename d into d/sub", fs::rename(p("d"), p("d/sub/d")));
    use nix::fcntl::RenameFlags as RF;
    l.rec("write n1", fs::write(p("n1"), b"n1"));
    l.rec(
        "RENAME_NOREPLACE onto b",
        renameat2(&p("n1"), &p("b"), RF::RENAME_NOREPLACE),
    );
    l.rec("read b after NOREPLACE", read(&p("b")));
    l.rec(
        "RENAME_NOREPLACE onto a new name",
        renameat2(&p("n1"), &p("n2"), RF::RENAME_NOREPLACE),
    );
    l.rec("read n2", read(&p("n2")));
    l.rec("write x1", fs::write(p("x1"), b"one"));
    l.rec("write x2", fs::write(p("x2"), b"two"));
    let h1 = l.open("open x1", &rw, &p("x1"));
    let h2 = l.open("open x2", &rw, &p("x2"));
    l.rec(
        "RENAME_EXCHANGE x1 x2",
        renameat2(&p("x1"), &p("x2"), RF::RENAME_EXCHANGE),
    );
    l.rec("read x1 after the exchange", read(&p("x1")));
    l.rec("read x2 after the exchange", read(&p("x2")));
    l.rec("write x1's old handle", on(&h1, |f| f.write_at(b"ONE", 0)));
    l.rec("write x2's old handle", on(&h2, |f| f.write_at(b"TWO", 0)));
    l.rec("read x1 after the handles wrote", read(&p("x1")));
    l.rec("read x2 after the handles wrote", read(&p("x2")));
    l.rec("stat x1 after the exchange", stat(&p("x1")));
    drop((h1, h2));
    l.rec("mkdir xd", fs::create_dir(p("xd")));
    l.rec("write xd/c", fs::write(p("xd/c"), b"child"));
    l.rec(
        "RENAME_EXCHANGE dir xd and file x1",
        renameat2(&p("xd"), &p("x1"), RF::RENAME_EXCHANGE),
    );
    l.rec("read x1/c", read(&p("x1/c")));
    l.rec("read xd", read(&p("xd")));
    l.rec("stat xd/c", stat(&p("xd/c")));

    // Rename of a directory with handles open inside.
    l.rec("mkdir p/q", fs::create_dir_all(p("p/q")));
    let hf = l.open("create p/q/f", &new, &p("p/q/f"));
    l.rec("write p/q/f", on(&hf, |f| f.write_at(b"one", 0)));
    let hd = l.open("open dir p/q", &ro, &p("p/q"));
    l.rec("rename p r", fs::rename(p("p"), p("r")));
    l.rec("write p/q/f's handle", on(&hf, |f| f.write_at(b"ONE", 3)));
    l.rec("fsync p/q/f's handle", on(&hf, |f| f.sync_all()));
    l.rec("read r/q/f", read(&p("r/q/f")));
    l.rec("fstat p/q/f's handle", on(&hf, fstat));
    l.rec("stat p", stat(&p("p")));
    l.rec("read p/q/f", read(&p("p/q/f")));
    l.rec("write r/q/g", fs::write(p("r/q/g"), b"g"));
    l.rec("list r/q", list(&p("r/q")));
    l.rec("fsync the dir handle of p/q", on(&hd, |f| f.sync_all()));
    l.rec("rename r/q q2", fs::rename(p("r/q"), p("q2")));
    l.rec("read q2/f", read(&p("q2/f")));
    l.rec("rename q2 r/q", fs::rename(p("q2"), p("r/q")));
    l.rec("mkdir t", fs::create_dir(p("t")));
    l.rec("rename r t/r", fs::rename(p("r"), p("t/r")));
    l.rec(
        "write p/q/f's handle again",
        on(&hf, |f| f.write_at(b"1", 0)),
    );
    l.rec("read t/r/q/f", read(&p("t/r/q/f")));
    l.rec("stat t/r/q/g", stat(&p("t/r/q/g")));
    drop((hf, hd));

    // Rename of an open file.
    let ho = l.open("create o", &new, &p("o"));
    l.rec("write o", on(&ho, |f| f.write_at(b"open", 0)));
    l.rec("rename o o2", fs::rename(p("o"), p("o2")));
    l.rec("write o's handle", on(&ho, |f| f.write_at(b"!", 4)));
    l.rec("read o2", read(&p("o2")));
    l.rec("fstat o's handle", on(&ho, fstat));
    l.rec("ftruncate o's handle", on(&ho, |f| f.set_len(2)));
    l.rec("read o2 after ftruncate", read(&p("o2")));
    l.rec(
        "fchmod o's handle",
        on(&ho, |f| {
            f.set_permissions(fs::Permissions::from_mode(0o600))
        }),
    );
    l.rec("stat o2 after fchmod", stat(&p("o2")));
    drop(ho);

    // Hard links.
    l.rec("write h1", fs::write(p("h1"), b"link"));
    l.rec("link h1 h2", fs::hard_link(p("h1"), p("h2")));
    l.rec("stat h1", stat(&p("h1")));
    l.rec("stat h2", stat(&p("h2")));
    let hh = l.open("open h2", &rw, &p("h2"));
    l.rec("write h2's handle", on(&hh, |f| f.write_at(b"LINK", 0)));
    l.rec("read h1", read(&p("h1")));
    l.rec("link h1 h2 again", fs::hard_link(p("h1"), p("h2")));
    l.rec("link missing", fs::hard_link(p("missing"), p("h9")));
    l.rec("link a dir", fs::hard_link(p("d"), p("d9")));
    l.rec("rename h1 h2 (one file)", fs::rename(p("h1"), p("h2")));
    l.rec("stat h1 after rename onto its link", stat(&p("h1")));
    l.rec("stat h2 after rename onto its link", stat(&p("h2")));
    l.rec("unlink h1", fs::remove_file(p("h1")));
    l.rec("stat h2 after unlink h1", stat(&p("h2")));
    l.rec("fstat h2's handle", on(&hh, fstat));
    l.rec("link h2 d/h3", fs::hard_link(p("h2"), p("d/h3")));
    l.rec("rename d/h3 d/h4", fs::rename(p("d/h3"), p("d/h4")));
    l.rec("unlink h2", fs::remove_file(p("h2")));
    l.rec(
        "write h2's handle after unlink",
        on(&hh, |f| f.write_at(b"!", 4)),
    );
    l.rec("read d/h4", read(&p("d/h4")));
    l.rec("stat d/h4", stat(&p("d/h4")));
    drop(hh);

    // Symlinks.
    l.rec("symlink sf -> f", std::os::unix::fs::symlink("f", p("sf")));
    l.rec("readlink sf", fs::read_link(p("sf")));
    l.rec("read through sf", read(&p("sf")));
    l.rec("lstat sf", lstat(&p("sf")));
    l.rec("stat sf", stat(&p("sf")));
    l.rec(
        "symlink sn -> nowhere",
        std::os::unix::fs::symlink("nowhere", p("sn")),
    );
    l.rec("stat sn", stat(&p("sn")));
    l.rec("lstat sn", lstat(&p("sn")));
    l.rec("symlink sd -> d", std::os::unix::fs::symlink("d", p("sd")));
    l.rec("list through sd", list(&p("sd")));
    l.rec("symlink onto sf", std::os::unix::fs::symlink("x", p("sf")));
    l.rec("readlink a file", fs::read_link(p("f")));
    l.rec("rename sf sf2", fs::rename(p("sf"), p("sf2")));
    l.rec("readlink sf2", fs::read_link(p("sf2")));
    l.rec("link the symlink sn", fs::hard_link(p("sn"), p("sn2")));
    l.rec("lstat sn2", lstat(&p("sn2")));
    l.rec(
        "lchown sf2",
        std::os::unix::fs::lchown(p("sf2"), Some(4321), Some(4321)),
    );
    l.rec("lstat sf2 after lchown", lstat(&p("sf2")));
    l.rec("stat f after lchown of sf2", lstat(&p("f")));

    // Truncate and ftruncate.
    l.rec("write t/x", fs::write(p("t/x"), b"0123456789"));
    let trunc = |path: &Path, n| nix::unistd::truncate(path, n).map_err(io::Error::from);
    l.rec("truncate t/x to 3", trunc(&p("t/x"), 3));
    l.rec("read t/x", read(&p("t/x")));
    l.rec("truncate t/x to 10", trunc(&p("t/x"), 10));
    l.rec("read t/x extended", read(&p("t/x")));
    let ht = l.open("open t/x", &rw, &p("t/x"));
    l.rec("ftruncate t/x to 5", on(&ht, |f| f.set_len(5)));
    l.rec("pread t/x after ftruncate", on(&ht, |f| pread(f, 0, 64)));
    l.rec("truncate missing", trunc(&p("missing"), 0));
    l.rec("truncate a dir", trunc(&p("d"), 0));
    let htr = l.open("open t/x read-only", &ro, &p("t/x"));
    l.rec("ftruncate a read-only handle", on(&htr, |f| f.set_len(1)));
    drop((ht, htr));

    // fallocate.
    let hfa = l.open("create fa", &new, &p("fa"));
    l.rec("write fa", on(&hfa, |f| f.write_at(b"abcd", 0)));
    l.rec(
        "fallocate fa to 8192",
        on(&hfa, |f| fallocate(f, 0, 0, 8192)),
    );
    l.rec("stat fa", stat(&p("fa")));
    l.rec("pread fa", on(&hfa, |f| pread(f, 0, 10)));
    let blocks = |f: &File| f.metadata().map(|m| if hold { 0 } else { m.blocks() });
    l.rec(
        "fallocate KEEP_SIZE to 16384",
        on(&hfa, |f| fallocate(f, libc::FALLOC_FL_KEEP_SIZE, 0, 16384)),
    );
    l.rec("stat fa after KEEP_SIZE", stat(&p("fa")));
    l.rec("blocks of fa after KEEP_SIZE", on(&hfa, blocks));
    l.rec(
        "fallocate PUNCH_HOLE",
        on(&hfa, |f| {
            fallocate(
                f,
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                0,
                4096,
            )
        }),
    );
    l.rec("pread fa after PUNCH_HOLE", on(&hfa, |f| pread(f, 0, 10)));
    l.rec("write fa at 4096", on(&hfa, |f| f.write_at(b"zzzz", 4096)));
    l.rec(
        "fallocate ZERO_RANGE",
        on(&hfa, |f| fallocate(f, libc::FALLOC_FL_ZERO_RANGE, 4096, 2)),
    );
    l.rec("pread fa after ZERO_RANGE", on(&hfa, |f| pread(f, 4096, 6)));
    l.rec(
        "fallocate PUNCH_HOLE without KEEP_SIZE",
        on(&hfa, |f| fallocate(f, libc::FALLOC_FL_PUNCH_HOLE, 0, 10)),
    );
    let hfr = l.open("open fa read-only", &ro, &p("fa"));
    l.rec(
        "fallocate a read-only handle",
        on(&hfr, |f| fallocate(f, 0, 0, 1)),
    );
    let seek = |f: &File, whence| nix::unistd::lseek(f, 0, whence).map_err(io::Error::from);
    use nix::unistd::Whence;
    l.rec("SEEK_DATA in fa", on(&hfr, |f| seek(f, Whence::SeekData)));
    l.rec("SEEK_HOLE in fa", on(&hfr, |f| seek(f, Whence::SeekHole)));
    drop((hfa, hfr));
    l.rec("write fc", fs::write(p("fc"), [b'c'; 8192]));
    let hfc = l.open("open fc", &rw, &p("fc"));
    l.rec(
        "fallocate COLLAPSE_RANGE",
        on(&hfc, |f| {
            fallocate(f, libc::FALLOC_FL_COLLAPSE_RANGE, 0, 4096)
        }),
    );
    drop(hfc);
    l.rec("unlink fc", fs::remove_file(p("fc")));

    // O_APPEND.
    l.rec("write ap", fs::write(p("ap"), b"x"));
    let mut app = OpenOptions::new();
    app.append(true);
    let a1 = l.open("open ap O_APPEND", &app, &p("ap"));
    let a2 = l.open("open ap O_APPEND again", &app, &p("ap"));
    let an = l.open("open ap", &rw, &p("ap"));
    l.rec("append 1", on(&a1, |mut f| f.write_all(b"1")));
    l.rec("append 2", on(&a2, |mut f| f.write_all(b"2")));
    l.rec("pwrite ap at 0", on(&an, |f| f.write_at(b"N", 0)));
    l.rec("pwrite ap past the end", on(&an, |f| f.write_at(b"Z", 10)));
    l.rec("append 3", on(&a1, |mut f| f.write_all(b"3")));
    l.rec(
        "pwrite an O_APPEND handle at 0",
        on(&a2, |f| f.write_at(b"P", 0)),
    );
    l.rec(
        "position of the O_APPEND handle",
        on(&a1, |mut f| f.stream_position()),
    );
    l.rec("read ap", read(&p("ap")));
    drop((a1, a2, an));

    // mmap, shared, written both ways.
    let pattern: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
    l.rec("write mm", fs::write(p("mm"), &pattern));
    let hm = l.open("open mm", &rw, &p("mm"));
    let map = match on(&hm, |f| Map::new(f, 8192)) {
        Ok(m) => {
            l.rec("mmap mm", Ok(()));
            Some(m)
        }
        Err(e) => {
            l.rec::<()>("mmap mm", Err(e));
            None
        }
    };
    if let Some(m) = &map {
        l.rec("read the map", m.read(0, 8192));
        l.rec("write the map", m.write(0, b"MMAP"));
        l.rec("msync", m.msync());
        l.rec("pread what the map wrote", on(&hm, |f| pread(f, 0, 8)));
        l.rec("pwrite under the map", on(&hm, |f| f.write_at(b"FD", 4096)));
        l.rec("read the pwrite through the map", m.read(4096, 4));
    }
    drop(map);
    l.rec("read mm", read(&p("mm")));
    drop(hm);

    // Unlink of an open file.
    let hz = l.open("create z", &new, &p("z"));
    l.rec("write z", on(&hz, |f| f.write_at(b"zz", 0)));
    l.rec("unlink z", fs::remove_file(p("z")));
    l.rec("stat z after unlink", stat(&p("z")));
    l.rec("write z's handle", on(&hz, |f| f.write_at(b"more", 2)));
    l.rec("read z's handle", on(&hz, |f| pread(f, 0, 64)));
    l.rec("fstat z's handle", on(&hz, fstat));
    l.rec("ftruncate z's handle", on(&hz, |f| f.set_len(3)));
    l.rec(
        "read z's handle after ftruncate",
        on(&hz, |f| pread(f, 0, 64)),
    );
    l.rec(
        "fchmod z's handle",
        on(&hz, |f| {
            f.set_permissions(fs::Permissions::from_mode(0o600))
        }),
    );
    l.rec("fstat z's handle after fchmod", on(&hz, fstat));
    l.rec("fsync z's handle", on(&hz, |f| f.sync_all()));
    l.rec("write a new z", fs::write(p("z"), b"new"));
    l.rec("read the new z", read(&p("z")));
    l.rec("read the old z's handle", on(&hz, |f| pread(f, 0, 64)));
    drop(hz);
    l.rec("unlink missing", fs::remove_file(p("missing")));
    l.rec("unlink a dir", fs::remove_file(p("d")));

    // Extended attributes (where the backing fs refuses them, both sides
    // must refuse alike).
    l.rec("write xa", fs::write(p("xa"), b"x"));
    let xa = p("xa");
    l.rec("setxattr", setxattr(&xa, "user.k", b"v1", 0));
    l.rec("getxattr", getxattr(&xa, "user.k", 64));
    l.rec("getxattr size", getxattr(&xa, "user.k", 0));
    l.rec("getxattr small buffer", getxattr(&xa, "user.k", 1));
    l.rec("listxattr", listxattr(&xa));
    l.rec(
        "setxattr XATTR_CREATE existing",
        setxattr(&xa, "user.k", b"v", libc::XATTR_CREATE),
    );
    l.rec(
        "setxattr XATTR_REPLACE missing",
        setxattr(&xa, "user.n", b"v", libc::XATTR_REPLACE),
    );
    l.rec(
        "setxattr XATTR_REPLACE",
        setxattr(&xa, "user.k", b"value2", libc::XATTR_REPLACE),
    );
    l.rec("setxattr a second", setxattr(&xa, "user.a", b"", 0));
    l.rec("getxattr replaced", getxattr(&xa, "user.k", 64));
    l.rec("getxattr empty", getxattr(&xa, "user.a", 64));
    l.rec("listxattr two", listxattr(&xa));
    l.rec("removexattr", removexattr(&xa, "user.k"));
    l.rec("removexattr again", removexattr(&xa, "user.k"));
    l.rec("getxattr removed", getxattr(&xa, "user.k", 64));
    l.rec("listxattr after remove", listxattr(&xa));
    l.rec("setxattr trusted", setxattr(&xa, "trusted.t", b"tv", 0));
    l.rec("getxattr trusted", getxattr(&xa, "trusted.t", 64));
    l.rec("setxattr on a dir", setxattr(&p("d"), "user.d", b"dv", 0));
    l.rec("getxattr on a dir", getxattr(&p("d"), "user.d", 64));
    l.rec(
        "setxattr on a symlink",
        setxattr(&p("sf2"), "user.s", b"s", 0),
    );
    l.rec("getxattr on a symlink", getxattr(&p("sf2"), "user.s", 64));
    l.rec("getxattr on missing", getxattr(&p("missing"), "user.k", 64));

    // fsync of a directory and a file.
    let hdd = l.open("open dir d", &ro, &p("d"));
    l.rec("fsync dir d", on(&hdd, |f| f.sync_all()));
    l.rec("fdatasync dir d", on(&hdd, |f| f.sync_data()));
    drop(hdd);
    l.rec(
        "fsync a file",
        File::open(p("f")).and_then(|f| f.sync_all()),
    );

    // mkdir and rmdir.
    l.rec("mkdir d again", fs::create_dir(p("d")));
    l.rec("mkdir in a missing dir", fs::create_dir(p("nope/x")));
    l.rec("rmdir non-empty e", fs::remove_dir(p("e")));
    l.rec("rmdir a file", fs::remove_dir(p("f")));
    l.rec("rmdir missing", fs::remove_dir(p("missing")));
    l.rec("mkdir k", fs::create_dir(p("k")));
    l.rec("rmdir k", fs::remove_dir(p("k")));
    l.rec("stat k after rmdir", stat(&p("k")));
    l.rec("mkdir k again", fs::create_dir(p("k")));
    l.rec("write k/f", fs::write(p("k/f"), b"k"));
    l.rec("read k/f", read(&p("k/f")));
    l.rec("mkdir k2", fs::create_dir(p("k2")));
    l.rec("rename k2 k3", fs::rename(p("k2"), p("k3")));
    l.rec("rmdir k3", fs::remove_dir(p("k3")));
    // The node's umask, not the layer's, decides the modes of what it
    // creates.
    l.rec(
        "mkdir and create under umask 0",
        std::process::Command::new("sh")
            .args(["-c", "umask 0 && mkdir m0 && : > m0/f"])
            .current_dir(root)
            .status()
            .map(|s| s.success()),
    );
    l.rec("stat m0", stat(&p("m0")));
    l.rec("stat m0/f", stat(&p("m0/f")));

    // readdir, over several replies.
    l.rec("mkdir big", fs::create_dir(p("big")));
    for i in 0..300 {
        fs::write(p(&format!("big/n{i:03}")), b"").unwrap_or_default();
    }
    l.rec("list big", list(&p("big")));
    for i in (0..300).step_by(2) {
        fs::remove_file(p(&format!("big/n{i:03}"))).unwrap_or_default();
    }
    l.rec("list big after unlinks", list(&p("big")));

    // Modes, owners, times.
    l.rec(
        "chmod f 640",
        fs::set_permissions(p("f"), fs::Permissions::from_mode(0o640)),
    );
    l.rec("stat f after chmod", stat(&p("f")));
    l.rec(
        "chmod d 700",
        fs::set_permissions(p("d"), fs::Permissions::from_mode(0o700)),
    );
    l.rec("stat d after chmod", stat(&p("d")));
    l.rec(
        "chmod f 4755",
        fs::set_permissions(p("f"), fs::Permissions::from_mode(0o4755)),
    );
    l.rec(
        "chown f",
        std::os::unix::fs::chown(p("f"), Some(1234), Some(1234)),
    );
    l.rec("stat f after chown", stat(&p("f")));
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    l.rec(
        "futimens f",
        File::open(p("f")).and_then(|f| {
            f.set_times(
                fs::FileTimes::new()
                    .set_modified(when)
                    .set_accessed(when + std::time::Duration::from_secs(5)),
            )
        }),
    );
    let times = |path: &Path| fs::symlink_metadata(path).map(|m| (m.mtime(), m.atime()));
    l.rec("times of f", times(&p("f")));
    use nix::sys::stat::{UtimensatFlags, utimensat};
    use nix::sys::time::TimeSpec;
    l.rec(
        "utimensat sf2 without following",
        utimensat(
            nix::fcntl::AT_FDCWD,
            &p("sf2"),
            &TimeSpec::new(7, 0),
            &TimeSpec::new(8, 0),
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(io::Error::from),
    );
    l.rec("times of sf2", times(&p("sf2")));
    l.rec("times of f after sf2's", times(&p("f")));
    l.rec(
        "utimensat d, mtime only",
        utimensat(
            nix::fcntl::AT_FDCWD,
            &p("d"),
            &TimeSpec::UTIME_OMIT,
            &TimeSpec::new(9, 0),
            UtimensatFlags::FollowSymlink,
        )
        .map_err(io::Error::from),
    );
    l.rec("mtime of d", fs::metadata(p("d")).map(|m| m.mtime()));
}

/// Every entry under `root`: its stat, extended attributes, and content or
/// link target, sorted by path.
fn tree(root: &Path) -> Vec<String> {
    fn entry(path: &Path, m: &fs::Metadata) -> io::Result<String> {
        let mut xattrs = Vec::new();
        for x in listxattr(path)? {
            xattrs.push(format!("{x}={}", show(getxattr(path, &x, 256))));
        }
        let body = if m.is_dir() {
            String::new()
        } else if m.file_type().is_symlink() {
            format!("-> {:?}", fs::read_link(path)?)
        } else {
            format!("{:?}", Bytes(fs::read(path)?))
        };
        Ok(format!("{:?} {xattrs:?} {body}", meta(m)))
    }
    fn walk(root: &Path, rel: &Path, out: &mut Vec<String>) {
        let names = fs::read_dir(root.join(rel)).and_then(|d| {
            d.map(|e| e.map(|e| e.file_name()))
                .collect::<io::Result<Vec<_>>>()
        });
        let mut names = match names {
            Ok(n) => n,
            Err(e) => return out.push(format!("{}/: {}", rel.display(), show::<()>(Err(e)))),
        };
        names.sort();
        for n in names {
            let rel = rel.join(n);
            let path = root.join(&rel);
            match fs::symlink_metadata(&path) {
                Ok(m) => {
                    let e = show(entry(&path, &m).map(Text));
                    out.push(format!("{}: {e}", rel.display()));
                    if m.is_dir() {
                        walk(root, &rel, out);
                    }
                }
                Err(e) => out.push(format!("{}: {}", rel.display(), show::<()>(Err(e)))),
            }
        }
    }
    let mut out = Vec::new();
    walk(root, Path::new(""), &mut out);
    out
}

/// The lines only `plain` has and those only `layer` has, or None.
fn differences(what: &str, plain: &[String], layer: &[String]) -> Option<String> {
    let only = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter().filter(|l| !b.contains(l)).cloned().collect()
    };
    let (p, l) = (only(plain, layer), only(layer, plain));
    if p.is_empty() && l.is_empty() && plain.len() == layer.len() {
        return None;
    }
    Some(format!(
        "{what} differ:\n  plain only:\n    {}\n  layer only:\n    {}\n",
        p.join("\n    "),
        l.join("\n    ")
    ))
}

/// Steps where the layer cannot or need not do what the backing fs does:
/// what it answers instead, and why.
const KNOWN: &[(&str, &str, &str)] = &[
    (
        "fallocate COLLAPSE_RANGE",
        "Err(EOPNOTSUPP)",
        "the kernel's FUSE refuses every fallocate mode but KEEP_SIZE, \
         PUNCH_HOLE and ZERO_RANGE before the layer sees it",
    ),
    (
        "SEEK_DATA in fa",
        "0",
        "the layer has no lseek: the kernel answers that the whole file is \
         data, as POSIX allows (a held write may fill a backing hole)",
    ),
    (
        "SEEK_HOLE in fa",
        "8192",
        "as for SEEK_DATA: the only hole is at the end",
    ),
];

fn conform(hold: bool) {
    let Some((dir, disk)) = layer() else { return };
    let plain = tempfile::tempdir().unwrap();
    let mut want = Log::default();
    script(plain.path(), &mut want, hold);
    disk.shared.faults.lose_unsynced.store(hold, Relaxed);
    let mut got = Log::default();
    script(&dir.path().join("m"), &mut got, hold);
    let mut report = String::new();
    for (i, ((step, w), (_, g))) in want.0.iter().zip(&got.0).enumerate() {
        let known = KNOWN.iter().find(|k| k.0 == step);
        if let Some((_, answer, why)) = known
            && g != answer
        {
            report += &format!("step {i} {step}: layer {g}, not {answer} ({why})\n");
        } else if known.is_none() && w != g {
            report += &format!("step {i} {step}:\n  plain: {w}\n  layer: {g}\n");
        }
    }
    assert_eq!(want.0.len(), got.0.len());
    let expected = tree(plain.path());
    report += &differences("trees", &expected, &tree(&dir.path().join("m"))).unwrap_or_default();
    if hold {
        // What is held back reaches the backing files when the lease ends.
        if let Err(e) = disk.release_unsynced() {
            report += &format!("writing held data through: {e}\n");
        }
    }
    report +=
        &differences("backing trees", &expected, &tree(&dir.path().join("b"))).unwrap_or_default();
    disk.unmount().unwrap();
    assert!(report.is_empty(), "the layer diverged:\n{report}");
}

#[test]
fn the_layer_does_what_the_backing_filesystem_does() {
    conform(false);
}

#[test]
fn held_writes_are_invisible_until_a_power_cut() {
    conform(true);
}
