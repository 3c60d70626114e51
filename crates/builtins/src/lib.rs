//! The built-in plugins, compiled into the binary: `--plugin
//! partition_minority` works from an installed chaos-host with no checkout
//! and no wasm toolchain.
//!
//! The bytes are the committed release builds in `crates/builtins/wasm/`, written
//! by `scripts/build-plugins.sh` from `plugins/<name>/`; that build is
//! reproducible and `scripts/test.sh` fails when the committed files differ
//! from what the sources build. A `build.rs` compiling them instead would
//! make every `cargo install` need the wasm32-wasip2 target and nest a
//! cargo build inside the host's.

/// One built-in plugin: its name (as `describe()` gives it) and component.
pub struct Builtin {
    pub name: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! builtins {
    ($($name:literal),* $(,)?) => {
        /// Every built-in, sorted by name.
        pub const BUILTINS: &[Builtin] = &[$(Builtin {
            name: $name,
            bytes: include_bytes!(concat!("../wasm/", $name, ".wasm")),
        }),*];
    };
}

builtins![
    "bandwidth_cap",
    "clock_drift_peer",
    "clock_skew_peer",
    "convergence",
    "crash_restart",
    "disk_full_peer",
    "drop_random_acks",
    "fsync_error_peer",
    "kill_primary_mid_write",
    "linearizable",
    "lossy_link",
    "partition_minority",
    "power_failure",
    "set_full",
    "slow_disk",
    "slow_link",
];

/// The built-in called `name`.
pub fn get(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The built-ins' names, comma-separated, for messages.
pub fn names() -> String {
    BUILTINS
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plugin_crate_is_built_in_and_sorted() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins");
        let mut crates: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().join("Cargo.toml").exists())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        crates.sort();
        let names: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
        assert_eq!(names, crates, "crates/builtins/src/lib.rs lists plugins/*");
        assert!(BUILTINS.iter().all(|b| b.bytes.starts_with(b"\0asm")));
        assert!(get("convergence").is_some() && get("nope").is_none());
    }
}
