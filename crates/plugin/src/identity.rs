//! Plugin names: the only plugin-chosen text the host uses as a key.
//!
//! A name becomes a directory under `--out`, a nftables/namespace label,
//! part of write ids, URLs and argv, and the key of `[grants]`, `[pins]`
//! and `[params]`. So it must be plain (`[a-z0-9_-]{1,64}`: no `/`, no
//! `..`, no spaces, no case games) and unique among the plugins of a run.

use anyhow::bail;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Longest plugin name.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` may name a plugin: 1 to 64 of `a-z`, `0-9`, `_`, `-`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Refuse the plugin at `path` when `describe()` gave it a name the host
/// cannot use.
pub fn check_name(path: &Path, name: &str) -> anyhow::Result<()> {
    if !is_valid_name(name) {
        // Debug-quoted and clipped: the name is plugin-supplied.
        let shown: String = name.chars().take(2 * MAX_NAME_LEN).collect();
        bail!(
            "plugin {}: name {shown:?} is not a valid plugin name: it must be 1 to {MAX_NAME_LEN} characters of a-z, 0-9, _ and - (rename it in describe() and rebuild)",
            path.display()
        );
    }
    Ok(())
}

/// The names of one run's plugins, each claimed by one file.
#[derive(Default)]
pub struct Names {
    taken: BTreeMap<String, PathBuf>,
}

impl Names {
    /// Claim `name` for the plugin at `path`; refused when another file
    /// already claimed it.
    pub fn claim(&mut self, name: &str, path: &Path) -> anyhow::Result<()> {
        if let Some(first) = self.taken.get(name) {
            bail!(
                "plugins {} and {}: both are named {name:?}: grants, pins, parameters and results are keyed by name, so names must be unique (remove one of them, or rename one in its describe() and rebuild)",
                first.display(),
                path.display()
            );
        }
        self.taken.insert(name.to_string(), path.to_path_buf());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "kill_primary_mid_write", "x-1", &"a".repeat(64)] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in [
            "",
            "../../../../escape",
            "a/b",
            "..",
            "Upper",
            "with space",
            "tab\t",
            "dot.name",
            "é",
            &"a".repeat(65),
        ] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn refusal_names_the_file_the_name_and_the_rule() {
        let e = check_name(Path::new("/p/x.wasm"), "../x").unwrap_err();
        let e = format!("{e:#}");
        assert!(e.starts_with("plugin /p/x.wasm: name \"../x\""), "{e}");
        assert!(e.contains("a-z, 0-9, _ and -"), "{e}");
    }

    #[test]
    fn a_name_is_claimed_once() {
        let mut n = Names::default();
        n.claim("a", Path::new("/one/a.wasm")).unwrap();
        n.claim("b", Path::new("/one/b.wasm")).unwrap();
        let e = format!("{:#}", n.claim("a", Path::new("/two/a.wasm")).unwrap_err());
        assert!(
            e.contains("/one/a.wasm") && e.contains("/two/a.wasm"),
            "{e}"
        );
    }
}
