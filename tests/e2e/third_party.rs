//! Issue 5: a third-party plugin (examples/plugins/asymmetric_partition,
//! which depends on chaos-sdk alone) runs with its own campaign.

use crate::util::*;

#[test]
fn third_party_asymmetric_partition_runs_in_both_network_modes() {
    let campaign = root().join("examples/plugins/asymmetric_partition/campaign.toml");
    let wasm = example_plugin("asymmetric_partition");
    let cargo_toml =
        std::fs::read_to_string(root().join("examples/plugins/asymmetric_partition/Cargo.toml"))
            .unwrap();
    let deps = cargo_toml.split("[dependencies]").nth(1).unwrap();
    assert_eq!(
        deps.lines().filter(|l| l.contains('=')).count(),
        1,
        "only chaos-sdk: {deps}"
    );
    for net in ["proxy", "netns"] {
        let dir = tempfile::tempdir().unwrap();
        let run = run_campaign(
            dir.path(),
            &campaign,
            &[
                "--plugin",
                wasm.to_str().unwrap(),
                "--cycles",
                "5",
                "--net",
                net,
                "--settle-ms",
                "300",
            ],
        );
        assert_eq!(run.code, 0, "{net}: {}", run.stderr);
        for c in run.cycles() {
            let e = &c["effects"][0];
            assert_eq!(e["verified"], true, "{net}: {e}");
            // One way only: node 0 drops its peers' traffic, they drop none.
            assert!(
                e["detail"]
                    .as_str()
                    .unwrap()
                    .starts_with("grudge [[1,2],[],[]]"),
                "{e}"
            );
        }
    }
}
