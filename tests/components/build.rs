//! Builds every guest crate (`plugins/*`, `examples/plugins/*`,
//! `tests/guests/*`) for wasm32-wasip2 with one nested
//! `cargo build --release --target wasm32-wasip2 -p ...`, and writes their
//! paths as constants (as Spin's tests/test-components does).
//!
//! The nested build has a target dir of its own, `guests/` in the outer one
//! (the outer cargo holds the lock of its own build dirs), and the flags,
//! package set and dir of `scripts/build-plugins.sh`: after that script,
//! this build finds everything fresh, and the other way round, so one CI
//! run builds each component once.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the guest crates are, relative to the repository root.
const GUEST_DIRS: [&str; 3] = ["plugins", "examples/plugins", "tests/guests"];
const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest = PathBuf::from(var("CARGO_MANIFEST_DIR"));
    let root = manifest
        .join("../..")
        .canonicalize()
        .expect("repository root");
    let out_dir = PathBuf::from(var("OUT_DIR"));

    let mut crates = Vec::new();
    for dir in GUEST_DIRS {
        let mut found: Vec<String> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .flatten()
            .filter(|e| e.path().join("Cargo.toml").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        found.sort();
        for name in found {
            // The crate dirs only: plugins/ and tests/guests/ also hold the
            // script's copies of the components.
            rerun_if_changed(&root.join(dir).join(&name));
            crates.push(name);
        }
    }
    for p in ["sdk", "wit", "Cargo.toml", "Cargo.lock"] {
        rerun_if_changed(&root.join(p));
    }
    println!("cargo::rerun-if-env-changed=CARGO_HOME");

    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    require_target(&rustc);

    let target_dir = outer_target_dir(&out_dir).join("guests");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root)
        .args(["build", "--locked", "--release", "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    for name in &crates {
        cmd.args(["-p", name]);
    }
    // What cargo sets for this build script is not for the nested build:
    // clippy's wrapper would lint the guests, and the outer flags would
    // change the bytes. Exactly the flags of scripts/build-plugins.sh.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if [
            "CARGO_CFG_",
            "CARGO_FEATURE_",
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "DEP_",
        ]
        .iter()
        .any(|p| k.starts_with(p))
        {
            cmd.env_remove(&*k);
        }
    }
    for k in [
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_LINKER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_CRATE_NAME",
        "OUT_DIR",
        "TARGET",
        "HOST",
        "NUM_JOBS",
        "OPT_LEVEL",
        "DEBUG",
        "PROFILE",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", remap_flags(&root));
    // Its stdout is not build script output.
    let status = cmd
        .stdout(std::io::stderr())
        .status()
        .unwrap_or_else(|e| fail(&format!("running cargo: {e}")));
    if !status.success() {
        // Exit 1: cargo then shows the nested build's errors (our stderr).
        eprintln!(
            "`cargo build --release --target {TARGET}` of the guest crates failed ({status})"
        );
        std::process::exit(1);
    }

    let release = target_dir.join(TARGET).join("release");
    let mut code = String::new();
    let mut all = String::new();
    for name in &crates {
        let wasm = release.join(format!("{name}.wasm"));
        assert!(wasm.is_file(), "{} was not built", wasm.display());
        let wasm = wasm.to_str().expect("UTF-8 target dir");
        let konst = name.to_uppercase();
        code +=
            &format!("/// `{name}`, built for {TARGET}.\npub const {konst}: &str = {wasm:?};\n");
        all += &format!("    ({name:?}, {konst}),\n");
    }
    code += &format!(
        "/// Every guest crate: (its directory's name, its component).\npub const ALL: &[(&str, &str)] = &[\n{all}];\n"
    );
    std::fs::write(out_dir.join("components.rs"), code).expect("writing components.rs");
}

fn var(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} unset"))
}

fn rerun_if_changed(p: &Path) {
    println!("cargo::rerun-if-changed={}", p.display());
}

/// Stop the build with `message` alone: cargo fails it after this script
/// (which exits 0, or cargo would print its whole output besides).
fn fail(message: &str) -> ! {
    println!("cargo::error={message}");
    std::process::exit(0)
}

/// The wasm32-wasip2 standard library is installed, or the build stops
/// saying how to add it.
fn require_target(rustc: &str) {
    let out = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .unwrap_or_else(|e| fail(&format!("running {rustc}: {e}")));
    let libdir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || libdir.is_empty() || !Path::new(&libdir).is_dir() {
        fail(&format!(
            "the {TARGET} target is not installed (the e2e tests build the guest crates for it): run `rustup target add {TARGET}`"
        ));
    }
}

/// The outer build's target dir: the nearest ancestor of OUT_DIR that cargo
/// tagged as one; OUT_DIR itself if none is.
fn outer_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|d| d.join("CACHEDIR.TAG").is_file())
        .unwrap_or(out_dir)
        .to_path_buf()
}

/// scripts/build-plugins.sh's `CARGO_ENCODED_RUSTFLAGS`, byte for byte (the
/// same flags give the same fingerprints, so neither build redoes the
/// other's, and the same reproducible bytes): the cargo home, its registry
/// sources and the checkout remapped to fixed names.
fn remap_flags(root: &Path) -> String {
    let cargo_home = std::env::var("CARGO_HOME")
        .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
    let mut flags = vec![format!("--remap-path-prefix={cargo_home}=/cargo-home")];
    let mut srcs: Vec<String> = std::fs::read_dir(format!("{cargo_home}/registry/src"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    srcs.sort();
    for s in srcs {
        flags.push(format!(
            "--remap-path-prefix={cargo_home}/registry/src/{s}=/cargo-registry"
        ));
    }
    flags.push(format!(
        "--remap-path-prefix={}=/chaos-host",
        root.display()
    ));
    flags.join("\x1f")
}
