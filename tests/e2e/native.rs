//! Issue 5: native plugins are opt-in, loudly unsandboxed, and still go
//! through grants and host-owned effects.

use crate::util::*;

fn native_lib() -> std::path::PathBuf {
    let p = bin_dir().join("libnative_pause.so");
    assert!(p.exists(), "{} missing: run cargo build", p.display());
    p
}

#[test]
fn native_plugin_runs_flagged_unsandboxed() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| t);
    let lib = native_lib();
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--native-plugin",
            lib.to_str().unwrap(),
            "--allow",
            "native_pause=pause",
            "--cycles",
            "3",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("is NOT sandboxed"), "{}", run.stderr);
    assert!(
        run.stdout.contains("UNSANDBOXED native plugin"),
        "{}",
        run.stdout
    );
    let class = &run.summary()["classes"][0];
    assert_eq!(class["plugin"], "native_pause@0.1.0 [native, UNSANDBOXED]");
    for c in run.cycles() {
        let e = &c["effects"][0];
        assert_eq!(e["kind"], "pause");
        assert_eq!(e["verified"], true, "{e}");
    }
}

#[test]
fn native_plugin_without_grant_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| t);
    let lib = native_lib();
    let run = run_campaign(dir.path(), &c, &["--native-plugin", lib.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("needs capabilities not granted: pause"),
        "{}",
        run.stderr
    );
}
