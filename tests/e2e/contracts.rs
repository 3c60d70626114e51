//! Issue 12: contract versions side by side. Plugins built against every
//! supported version (0.1.0, 0.1.1, 0.2.0 from their frozen WIT, 0.3.0 through
//! chaos-host-sdk) run in one campaign, each through its own bindings; the
//! version section chaos-host-sdk writes decides before compiling, and must
//! agree with what the component exports.

use crate::util::*;
use std::path::Path;

fn inspect(wasm: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .arg("inspect")
        .arg(wasm)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn contract_of(wasm: &Path) -> String {
    let out = inspect(wasm);
    assert!(out.status.success(), "{out:?}");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["contract"].as_str().unwrap().to_string()
}

#[test]
fn plugins_of_every_supported_contract_run_in_one_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let v010 = guest("contract_0_1_0"); // fault legacy_kill, no version section
    let v011 = guest("contract_0_1_1"); // assertion legacy_alive, no section
    let v020 = guest("contract_0_2_0"); // fault legacy_pause, no section
    let partition = plugin("partition_minority"); // fault, chaos-host-sdk
    let convergence = plugin("convergence"); // assertion, chaos-host-sdk
    assert_eq!(contract_of(&v010), "0.1.0");
    assert_eq!(contract_of(&v011), "0.1.1");
    assert_eq!(contract_of(&v020), "0.2.0");
    assert_eq!(contract_of(&partition), "0.3.0");
    assert_eq!(contract_of(&convergence), "0.3.0");
    let c = campaign(dir.path(), false, |t| t);
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            v010.to_str().unwrap(),
            "--plugin",
            v011.to_str().unwrap(),
            "--plugin",
            v020.to_str().unwrap(),
            "--plugin",
            partition.to_str().unwrap(),
            "--plugin",
            convergence.to_str().unwrap(),
            "--allow",
            "legacy_kill=signal",
            "--allow",
            "legacy_pause=pause",
            "--cycles",
            "2",
            "--writes",
            "40",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let cycles = run.cycles();
    let mut classes = std::collections::BTreeSet::new();
    for c in &cycles {
        let verdicts = c["verdicts"].as_array().unwrap();
        let by = |prefix: &str| {
            verdicts
                .iter()
                .find(|v| v["plugin"].as_str().unwrap().starts_with(prefix))
                .unwrap_or_else(|| panic!("no verdict of {prefix} in {c}"))
        };
        // The 0.1.1 assertion sees `alive` through the adapter: the 0.1.0
        // fault killed the primary, the 0.2.0 pause and the 0.3.0
        // partition killed no one.
        let legacy = by("legacy_alive@");
        let alive = legacy["figures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f[0] == "alive_nodes")
            .unwrap()[1]
            .as_f64()
            .unwrap();
        // Assertions see the burst's writes; the recovery window's are the
        // host's own check.
        let acked = c["ok"].as_f64().unwrap();
        let legacy_acked = legacy["figures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f[0] == "acked")
            .unwrap()[1]
            .as_f64()
            .unwrap();
        assert_eq!(legacy_acked, acked, "{c}");
        assert_eq!(by("convergence@")["outcome"], "pass", "{c}");
        let effect = c["effects"][0]["kind"].as_str().unwrap().to_string();
        match effect.as_str() {
            "signal" => assert_eq!(alive, 2.0, "{c}"),
            "partition" | "pause" => assert_eq!(alive, 3.0, "{c}"),
            other => panic!("unexpected effect {other}: {c}"),
        }
        assert_eq!(c["effects"][0]["verified"], true, "{c}");
        classes.insert(effect);
    }
    assert_eq!(classes.len(), 3, "every fault ran: {classes:?}");
    assert!(processes_mentioning(dir.path()).is_empty());
}

/// `bytes` with a top-level custom section `name` holding `payload`
/// appended (custom sections may follow any section of a component).
fn with_section(bytes: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            out.push(if n == 0 { b } else { b | 0x80 });
            if n == 0 {
                break;
            }
        }
    }
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = bytes.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

#[test]
fn the_version_section_decides_and_must_agree_with_the_exports() {
    let dir = tempfile::tempdir().unwrap();
    // Every plugin built with chaos-host-sdk carries the section, holding
    // the version of the WIT it was built from.
    let wit = std::fs::read_to_string(root().join("sdk/wit/types.wit")).unwrap();
    assert!(wit.contains("package chaos:plugin@0.3.0;"));
    for name in [
        "partition_minority",
        "convergence",
        "kill_primary_mid_write",
        "drop_random_acks",
        "clock_skew_peer",
    ] {
        let bytes = std::fs::read(plugin(name)).unwrap();
        let needle = b"chaos:contract-version0.3.0";
        assert!(
            bytes.windows(needle.len()).any(|w| w == needle),
            "{name} carries no chaos:contract-version section of 0.3.0"
        );
    }
    let legacy = std::fs::read(guest("contract_0_1_0")).unwrap();
    let cases: [(&str, &[u8], &str); 3] = [
        (
            "future",
            b"9.9.9",
            "built against contract chaos:plugin@9.9.9, but this chaos-host supports contract versions 0.1.0 to 0.1.1, 0.2.0, 0.3.0 (upgrade chaos-host, or rebuild the plugin against an older chaos-sdk)",
        ),
        (
            "disagrees",
            b"0.2.0",
            "its chaos:contract-version section says 0.2.0 but it exports chaos:plugin/fault@0.1.0: the component was not built by one chaos-sdk (rebuild it)",
        ),
        (
            "garbage",
            b"banana",
            "its chaos:contract-version section holds \"banana\", not a version MAJOR.MINOR.PATCH (rebuild it with chaos-sdk)",
        ),
    ];
    for (name, payload, message) in cases {
        let path = dir.path().join(format!("{name}.wasm"));
        std::fs::write(
            &path,
            with_section(&legacy, "chaos:contract-version", payload),
        )
        .unwrap();
        let out = inspect(&path);
        assert_eq!(out.status.code(), Some(2), "{name}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.trim_end(),
            format!("chaos-host: error: plugin {}: {message}", path.display()),
            "{name}"
        );
    }
    // Two sections that disagree (one in the core module, as chaos-host-sdk
    // writes it, one added at the top level) are refused.
    let sdk_built = std::fs::read(plugin("partition_minority")).unwrap();
    let two = dir.path().join("two.wasm");
    std::fs::write(
        &two,
        with_section(&sdk_built, "chaos:contract-version", b"0.1.1"),
    )
    .unwrap();
    let out = inspect(&two);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "it carries two chaos:contract-version sections, 0.3.0 and 0.1.1: it was linked from code built by different chaos-sdk versions (rebuild it)"
        ),
        "{out:?}"
    );
    // The same component with a section that agrees loads as before.
    let agrees = dir.path().join("agrees.wasm");
    std::fs::write(
        &agrees,
        with_section(&legacy, "chaos:contract-version", b"0.1.0"),
    )
    .unwrap();
    assert_eq!(contract_of(&agrees), "0.1.0");
}
