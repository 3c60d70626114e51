//! `chaos.lock`: every OCI plugin reference of a campaign pinned to the
//! manifest digest it resolved to the first time, beside the campaign file
//! (for the embedded campaign: in the current directory).
//!
//! A tag is a name someone can move; the lock makes moving it visible. The
//! first run that uses a reference records it; every later run resolves
//! the tag again and refuses a different digest, like a changed `[pins]`
//! sha256, until someone reviews the new artifact and deletes the entry or
//! runs with `--update-lock`. Written atomically (a temp file, then a
//! rename), and only when an entry was added or changed.

use anyhow::{Context, bail};
use chaos_model::plugin_ref::Pin;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The lock's file name.
pub const FILE_NAME: &str = "chaos.lock";

const HEADER: &str = "# chaos.lock: OCI plugin references pinned to the digest they resolved to.\n# Written by chaos-host; commit it. A tag that moves is refused until the\n# entry is deleted or the run passes --update-lock.\n";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockFile {
    #[serde(default = "one")]
    version: u32,
    /// Reference as written (`oci://...`) -> its pin.
    #[serde(default)]
    plugins: BTreeMap<String, Pin>,
}

fn one() -> u32 {
    1
}

impl Default for LockFile {
    fn default() -> Self {
        Self {
            version: one(),
            plugins: BTreeMap::new(),
        }
    }
}

/// A loaded `chaos.lock` and the changes a run made to it.
pub struct Lock {
    path: PathBuf,
    file: LockFile,
    update: bool,
    changed: bool,
}

impl Lock {
    /// The lock at `path` (empty when the file does not exist yet).
    /// `update`: a moved reference replaces its entry instead of being
    /// refused.
    pub fn open(path: &Path, update: bool) -> anyhow::Result<Self> {
        let file = match std::fs::read_to_string(path) {
            Ok(text) => {
                let f: LockFile = toml::from_str(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "{}: not a chaos.lock: {} (fix it, or delete it to pin every reference again)",
                        path.display(),
                        e.to_string().trim()
                    )
                })?;
                if f.version != 1 {
                    bail!(
                        "{}: version {} is not one this chaos-host reads (1)",
                        path.display(),
                        f.version
                    );
                }
                f
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LockFile::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Self {
            path: path.to_path_buf(),
            file,
            update,
            changed: false,
        })
    }

    /// The pin recorded for `reference`.
    #[cfg(test)]
    pub fn get(&self, reference: &str) -> Option<&Pin> {
        self.file.plugins.get(reference)
    }

    /// `reference` resolved to `pin` now: recorded when new; refused when
    /// the lock holds another digest, unless updating.
    pub fn check(&mut self, reference: &str, pin: &Pin) -> anyhow::Result<()> {
        match self.file.plugins.get(reference) {
            Some(locked) if locked == pin => return Ok(()),
            Some(locked) if !self.update => bail!(
                "{reference}: now resolves to {} but {} pins it to {}: the tag was moved to another artifact; review the new one, then delete its entry from {} or run with --update-lock",
                pin.digest,
                self.path.display(),
                locked.digest,
                FILE_NAME
            ),
            Some(locked) => {
                eprintln!(
                    "chaos-host: {reference}: {} updated from {} to {} (--update-lock)",
                    self.path.display(),
                    locked.digest,
                    pin.digest
                );
            }
            None => {}
        }
        self.file.plugins.insert(reference.to_string(), pin.clone());
        self.changed = true;
        Ok(())
    }

    /// Write the lock when this run added or changed an entry.
    pub fn save(&self) -> anyhow::Result<()> {
        if !self.changed {
            return Ok(());
        }
        let text = format!("{HEADER}{}", toml::to_string(&self.file)?);
        let tmp = self
            .path
            .with_file_name(format!(".{FILE_NAME}.tmp{}", std::process::id()));
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(c: char) -> Pin {
        Pin {
            digest: format!("sha256:{}", c.to_string().repeat(64)),
            layer: format!("sha256:{}", "0".repeat(64)),
        }
    }

    const R: &str = "oci://127.0.0.1:5000/chaos/x:1";

    #[test]
    fn first_use_records_and_writes_then_the_same_digest_passes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut lock = Lock::open(&path, false).unwrap();
        assert!(lock.get(R).is_none());
        lock.check(R, &pin('a')).unwrap();
        lock.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# chaos.lock"), "{text}");
        assert!(text.contains(&pin('a').digest), "{text}");
        // No temp file left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let mut again = Lock::open(&path, false).unwrap();
        assert_eq!(again.get(R), Some(&pin('a')));
        again.check(R, &pin('a')).unwrap();
        std::fs::remove_file(&path).unwrap();
        again.save().unwrap();
        assert!(!path.exists(), "unchanged: not rewritten");
    }

    #[test]
    fn a_moved_tag_is_refused_with_both_digests_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut lock = Lock::open(&path, false).unwrap();
        lock.check(R, &pin('a')).unwrap();
        lock.save().unwrap();
        let before = std::fs::read(&path).unwrap();

        let mut lock = Lock::open(&path, false).unwrap();
        let e = format!("{:#}", lock.check(R, &pin('b')).unwrap_err());
        assert!(e.starts_with(R), "{e}");
        assert!(
            e.contains(&pin('a').digest) && e.contains(&pin('b').digest),
            "{e}"
        );
        assert!(
            e.contains("--update-lock") && e.contains("delete its entry"),
            "{e}"
        );
        lock.save().unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "a refusal writes nothing"
        );

        let mut update = Lock::open(&path, true).unwrap();
        update.check(R, &pin('b')).unwrap();
        update.save().unwrap();
        assert_eq!(Lock::open(&path, false).unwrap().get(R), Some(&pin('b')));
    }

    #[test]
    fn a_broken_lock_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, "plugins = 3").unwrap();
        let e = format!("{:#}", Lock::open(&path, false).err().unwrap());
        assert!(
            e.contains("not a chaos.lock") && e.contains(FILE_NAME),
            "{e}"
        );
    }
}
