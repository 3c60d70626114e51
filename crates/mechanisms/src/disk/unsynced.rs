//! Data written but not yet fsynced, held by the layer instead of the
//! backing file while a `lose_unsynced` lease is in force: what a power
//! failure would lose. As in lazyfs, the layer keeps its own cache of
//! unsynced writes per file; a read sees the cache over the backing file, an
//! fsync writes the file's cache through and syncs it, and a power cut
//! drops the cache. Unlike lazyfs the cache is a list of extents in write
//! order (not pages): the writes under test are small appends.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// The unsynced writes of one file.
pub struct Pending {
    /// A writable handle on the backing file, to write the extents through.
    pub file: Arc<File>,
    /// (offset, bytes), oldest first; later extents win where they overlap.
    extents: Vec<(u64, Vec<u8>)>,
}

impl Pending {
    pub fn new(file: Arc<File>) -> Self {
        Self {
            file,
            extents: Vec::new(),
        }
    }

    pub fn push(&mut self, offset: u64, data: &[u8]) {
        self.extents.push((offset, data.to_vec()));
    }

    /// The file's size as the writer sees it, given the backing size.
    pub fn size(&self, backing: u64) -> u64 {
        self.extents
            .iter()
            .map(|(o, d)| o + d.len() as u64)
            .fold(backing, u64::max)
    }

    pub fn bytes(&self) -> u64 {
        self.extents.iter().map(|(_, d)| d.len() as u64).sum()
    }

    /// Lay the extents over `buf`, which holds `[offset, offset + buf.len())`
    /// of the backing file (zero-filled past its end). Returns how far the
    /// extents reach into `buf`, so a read past the backing end is not
    /// cut short.
    pub fn overlay(&self, offset: u64, buf: &mut [u8]) -> usize {
        let end = offset + buf.len() as u64;
        let mut reach = 0;
        for (o, d) in &self.extents {
            let (from, to) = ((*o).max(offset), (o + d.len() as u64).min(end));
            if from >= to {
                continue;
            }
            let src = &d[(from - o) as usize..(to - o) as usize];
            buf[(from - offset) as usize..(to - offset) as usize].copy_from_slice(src);
            reach = reach.max((to - offset) as usize);
        }
        reach
    }

    /// Write every extent to the backing file, in order. Returns the bytes
    /// written.
    pub fn write_through(&self) -> std::io::Result<u64> {
        for (o, d) in &self.extents {
            self.file.write_all_at(d, *o)?;
        }
        Ok(self.bytes())
    }

    /// Forget the extents past `size` (a truncate): cut them down.
    pub fn truncate(&mut self, size: u64) {
        self.extents.retain_mut(|(o, d)| {
            if *o >= size {
                return false;
            }
            d.truncate((size - *o).min(d.len() as u64) as usize);
            true
        });
    }

    /// Forget what the extents hold in `[offset, offset + len)` (a hole
    /// punched or a range zeroed there, in the backing file).
    pub fn punch(&mut self, offset: u64, len: u64) {
        let end = offset.saturating_add(len);
        let mut kept = Vec::with_capacity(self.extents.len());
        for (o, d) in self.extents.drain(..) {
            let e = o + d.len() as u64;
            if e <= offset || o >= end {
                kept.push((o, d));
                continue;
            }
            if o < offset {
                kept.push((o, d[..(offset - o) as usize].to_vec()));
            }
            if e > end {
                kept.push((end, d[(end - o) as usize..].to_vec()));
            }
        }
        self.extents = kept;
    }
}

/// The unsynced writes of one layer, by inode.
#[derive(Default)]
pub struct Unsynced(pub HashMap<u64, Pending>);

impl Unsynced {
    /// Drop everything (a power cut); returns the bytes dropped and the
    /// inodes that had any.
    pub fn discard(&mut self) -> (u64, Vec<u64>) {
        let bytes = self.0.values().map(Pending::bytes).sum();
        let inos = self.0.drain().map(|(i, _)| i).collect();
        (bytes, inos)
    }

    /// Write everything through (the lease ended without a power cut: the
    /// data reaches the backing file as an ordinary write would have).
    pub fn write_all_through(&mut self) -> std::io::Result<u64> {
        let mut n = 0;
        for (_, p) in self.0.drain() {
            n += p.write_through()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> (tempfile::TempDir, Pending) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        (dir, Pending::new(Arc::new(f)))
    }

    #[test]
    fn reads_see_the_latest_write_over_the_backing_file() {
        let (_d, mut p) = pending();
        p.push(8, b"abcd");
        p.push(9, b"X");
        assert_eq!(p.size(10), 12);
        let mut buf = *b"89\0\0\0\0";
        let reach = p.overlay(8, &mut buf);
        assert_eq!(&buf[..reach], b"aXcd");
    }

    #[test]
    fn write_through_reaches_the_file_and_discard_loses_it() {
        let (d, mut p) = pending();
        p.push(10, b"tail");
        p.write_through().unwrap();
        assert_eq!(
            std::fs::read(d.path().join("f")).unwrap(),
            b"0123456789tail"
        );
        let mut u = Unsynced::default();
        p.push(14, b"lost");
        u.0.insert(7, p);
        assert_eq!(u.discard(), (8, vec![7]));
        assert_eq!(
            std::fs::read(d.path().join("f")).unwrap(),
            b"0123456789tail"
        );
    }

    #[test]
    fn truncate_cuts_extents() {
        let (_d, mut p) = pending();
        p.push(10, b"abcdef");
        p.push(20, b"gone");
        p.truncate(12);
        assert_eq!(p.bytes(), 2);
        assert_eq!(p.size(10), 12);
    }

    #[test]
    fn punch_cuts_the_range_out_of_extents() {
        let (_d, mut p) = pending();
        p.push(10, b"abcdef");
        p.push(13, b"XY");
        p.punch(12, 2);
        let mut buf = [0u8; 6];
        let reach = p.overlay(10, &mut buf);
        assert_eq!((&buf, reach), (b"ab\0\0Yf", 6));
        assert_eq!(p.bytes(), 5);
    }
}
