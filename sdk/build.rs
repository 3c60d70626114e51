//! The contract version is written once, in the WIT this crate ships
//! (`wit/types.wit`, `package chaos:plugin@X.Y.Z;`). This script reads it and
//! generates the constant and the bytes of the `chaos:contract-version`
//! custom section every plugin carries, so the host can pick its bindings
//! before compiling the component (as Zed's extension API does).

use std::path::Path;

fn main() {
    let wit = Path::new("wit/types.wit");
    println!("cargo::rerun-if-changed={}", wit.display());
    let text = std::fs::read_to_string(wit)
        .unwrap_or_else(|e| panic!("chaos-sdk: reading {}: {e}", wit.display()));
    let version = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("package chaos:plugin@"))
        .and_then(|rest| rest.strip_suffix(';'))
        .unwrap_or_else(|| {
            panic!(
                "chaos-sdk: {} has no `package chaos:plugin@X.Y.Z;` line",
                wit.display()
            )
        });
    let parts: Vec<&str> = version.split('.').collect();
    assert!(
        parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
        "chaos-sdk: contract version {version:?} in {} is not X.Y.Z",
        wit.display()
    );
    let bytes: Vec<String> = version.bytes().map(|b| b.to_string()).collect();
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(
        out.join("contract.rs"),
        format!(
            "/// The contract version this SDK builds against (`chaos:plugin@{version}`).\n\
             pub const CONTRACT_VERSION: &str = \"{version}\";\n\
             #[doc(hidden)]\n\
             pub const CONTRACT_SECTION: [u8; {n}] = [{b}];\n",
            n = bytes.len(),
            b = bytes.join(", ")
        ),
    )
    .expect("writing contract.rs");
}
