//! Where a plugin's bytes come from: a file, a built-in, or an OCI
//! artifact. Every place a plugin is named (`--plugin`, `--plugin-dir`,
//! `[campaign] assertions`, `inspect`, `plugin push`, a resumed or replayed
//! run) goes through [`PluginRef::parse`] and [`Resolver::fetch`].
//!
//! The rule, in order:
//! 1. `oci://...` is an OCI reference ([`super::oci`]);
//! 2. text with a `/`, ending in `.wasm`, or naming an existing file is a
//!    path (relative to the campaign file's directory in a campaign, to
//!    the current directory on the command line);
//! 3. anything else is a built-in's name ([`super::builtins`]); an unknown
//!    name is refused with the list of built-ins and how to pass a file.

use super::lock::Lock;
use super::oci;
use anyhow::{Context, bail};
use chaos_model::plugin_ref::{Pin, PluginRef};
use std::collections::BTreeMap;

/// A plugin's bytes, with the name to give it in messages.
pub struct Fetched {
    pub origin: String,
    pub bytes: Vec<u8>,
    /// What identifies the source (a canonical path, a built-in name, a
    /// reference): the same source named twice loads once.
    pub key: String,
}

/// Fetches plugins, pinning OCI references: to the digests a recorded run
/// used (resume, replay), else through `chaos.lock`.
pub struct Resolver {
    lock: Option<Lock>,
    recorded: BTreeMap<String, Pin>,
    pinned: BTreeMap<String, Pin>,
}

impl Resolver {
    /// `lock`: the campaign's `chaos.lock`, if OCI references are to be
    /// checked against one. `recorded`: references a recorded run resolved
    /// (`run.json`), used as they are.
    pub fn new(lock: Option<Lock>, recorded: BTreeMap<String, Pin>) -> Self {
        Self {
            lock,
            recorded,
            pinned: BTreeMap::new(),
        }
    }

    /// A resolver with neither lock nor record (`inspect`, `plugin push`).
    pub fn unpinned() -> Self {
        Self::new(None, BTreeMap::new())
    }

    pub async fn fetch(&mut self, r: &PluginRef) -> anyhow::Result<Fetched> {
        match r {
            PluginRef::Path(p) => {
                let bytes = read_plugin_file(p, "plugin")?;
                Ok(Fetched {
                    origin: p.display().to_string(),
                    bytes,
                    key: std::fs::canonicalize(p)
                        .unwrap_or_else(|_| p.clone())
                        .display()
                        .to_string(),
                })
            }
            PluginRef::Builtin(b) => Ok(Fetched {
                origin: b.name.to_string(),
                bytes: b.bytes.to_vec(),
                key: format!("builtin:{}", b.name),
            }),
            PluginRef::Oci(o) => {
                let reference = o.to_string();
                let (bytes, pin) = if let Some(rec) = self.recorded.get(&reference) {
                    let (bytes, pin) = oci::pull(o, Some(&rec.digest)).await?;
                    if pin != *rec {
                        bail!(
                            "{reference}: layer {} differs from {} recorded in run.json",
                            pin.layer,
                            rec.layer
                        );
                    }
                    (bytes, pin)
                } else {
                    let (bytes, pin) = oci::pull(o, None).await?;
                    if let Some(lock) = &mut self.lock {
                        lock.check(&reference, &pin)?;
                    }
                    (bytes, pin)
                };
                self.pinned.insert(reference.clone(), pin);
                Ok(Fetched {
                    origin: reference.clone(),
                    bytes,
                    key: reference,
                })
            }
        }
    }

    /// Write `chaos.lock` if this run changed it; the pins of every OCI
    /// reference fetched, for `run.json`.
    pub fn finish(self) -> anyhow::Result<BTreeMap<String, Pin>> {
        if let Some(lock) = &self.lock {
            lock.save()?;
        }
        Ok(self.pinned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaos_builtins as builtins;
    use std::path::Path;

    fn parse(text: &str, base: &Path) -> anyhow::Result<PluginRef> {
        PluginRef::parse(text, base, "--plugin")
    }

    #[test]
    fn the_resolution_rule() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        assert!(matches!(
            parse("oci://localhost:5000/x:1", base).unwrap(),
            PluginRef::Oci(_)
        ));
        // A name with a slash or a .wasm is a path, even when missing.
        for p in [
            "plugins/x.wasm",
            "./convergence",
            "convergence.wasm",
            "/abs/x",
        ] {
            let r = parse(p, base).unwrap();
            assert_eq!(r.as_path(), Some(base.join(p).as_path()), "{p}");
        }
        // A built-in's name is the built-in...
        let r = parse("partition_minority", base).unwrap();
        assert!(matches!(r, PluginRef::Builtin(b) if b.name == "partition_minority"));
        assert_eq!(r.saved(), "partition_minority");
        // ...unless a file of that name sits there.
        std::fs::write(base.join("convergence"), b"x").unwrap();
        assert!(parse("convergence", base).unwrap().as_path().is_some());
    }

    #[test]
    fn an_unknown_name_lists_the_builtins_and_says_how_to_pass_a_file() {
        let e = format!(
            "{:#}",
            parse("partition_majority", Path::new("/")).unwrap_err()
        );
        assert!(
            e.starts_with("--plugin \"partition_majority\": no built-in plugin has that name"),
            "{e}"
        );
        for b in builtins::BUILTINS {
            assert!(e.contains(b.name), "{e}");
        }
        assert!(
            e.contains("./partition_majority.wasm") && e.contains("oci://"),
            "{e}"
        );
    }

    #[test]
    fn a_malformed_oci_reference_is_refused_at_parse() {
        let e = format!(
            "{:#}",
            parse("oci://ghcr.io/acme/x", Path::new("/")).unwrap_err()
        );
        assert!(e.contains("no tag or digest"), "{e}");
    }

    #[tokio::test]
    async fn builtins_fetch_their_embedded_bytes() {
        let mut r = Resolver::unpinned();
        let f = r
            .fetch(&parse("convergence", Path::new("/")).unwrap())
            .await
            .unwrap();
        assert_eq!(f.origin, "convergence");
        assert_eq!(f.bytes, builtins::get("convergence").unwrap().bytes);
        assert!(r.finish().unwrap().is_empty());
    }
}

/// The most a plugin file may hold: what an OCI layer may (64 MiB).
pub const MAX_PLUGIN_BYTES: u64 = 64 << 20;

/// Read the plugin file at `path` (`what`: "plugin", "native plugin"):
/// a regular file of at most [`MAX_PLUGIN_BYTES`], else one error naming
/// it. Opened without blocking, so a FIFO or a device named `x.wasm`
/// neither hangs the host nor streams into its memory.
pub fn read_plugin_file(path: &std::path::Path, what: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("reading {what} {}", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!(
            "{what} {}: not a regular file (a WebAssembly component is a .wasm file)",
            path.display()
        );
    }
    if meta.len() > MAX_PLUGIN_BYTES {
        anyhow::bail!(
            "{what} {}: {} bytes, over the {} MiB a plugin may have",
            path.display(),
            meta.len(),
            MAX_PLUGIN_BYTES >> 20
        );
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_PLUGIN_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    if bytes.len() as u64 > MAX_PLUGIN_BYTES {
        anyhow::bail!(
            "{what} {}: grew past the {} MiB a plugin may have while read",
            path.display(),
            MAX_PLUGIN_BYTES >> 20
        );
    }
    Ok(bytes)
}

#[cfg(test)]
mod file_tests {
    use super::*;

    /// A FIFO or a device named like a plugin is refused at once, naming
    /// it: before, `inspect /dev/zero` read 1.6 GB and a FIFO hung.
    #[test]
    fn only_regular_files_within_the_cap_are_read() {
        let e = format!(
            "{:#}",
            read_plugin_file(std::path::Path::new("/dev/zero"), "plugin").unwrap_err()
        );
        assert!(e.contains("/dev/zero: not a regular file"), "{e}");
        let dir = std::env::temp_dir().join(format!("chaos-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("x.wasm");
        let _ = std::fs::remove_file(&fifo);
        nix::unistd::mkfifo(
            &fifo,
            nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        )
        .unwrap();
        let e = format!("{:#}", read_plugin_file(&fifo, "plugin").unwrap_err());
        assert!(e.contains("x.wasm: not a regular file"), "{e}");
        let big = dir.join("big.wasm");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_PLUGIN_BYTES + 1).unwrap();
        let e = format!("{:#}", read_plugin_file(&big, "plugin").unwrap_err());
        assert!(e.contains("over the 64 MiB"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
