//! The `chaos-host` binary the bench runs as children (`chaos-host run`):
//! `$CHAOS_HOST` when set, else `chaos-host` next to this binary (the same
//! target dir, as `cargo build` leaves them).

use anyhow::bail;
use std::path::PathBuf;

/// The chaos-host binary to run, which must exist.
pub fn binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("CHAOS_HOST").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "bench: CHAOS_HOST={} is not a file: point it at a chaos-host binary, or unset it to use the one next to chaos-bench",
                path.display()
            );
        }
        return Ok(path);
    }
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name("chaos-host");
    if !path.is_file() {
        bail!(
            "bench: {} not found: build it (`cargo build --locked -p chaos-host`, or scripts/bench.sh), or set CHAOS_HOST=/path/to/chaos-host",
            path.display()
        );
    }
    Ok(path)
}
