//! Issue 12 (OCI distribution): plugins pushed to and pulled from a real
//! registry (Debian's docker-registry, CNCF distribution), pinned in
//! chaos.lock, cached by digest, and refused when altered.

use crate::util::*;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A docker-registry on a free loopback port with its storage in a temp
/// dir; killed on drop.
struct Registry {
    child: Child,
    addr: String,
    storage: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Self {
        let bin = Path::new("/usr/bin/docker-registry");
        assert!(
            bin.exists(),
            "{} is not installed: run scripts/install-deps.sh --test (CI installs it)",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                storage.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut r = Self {
            child,
            addr,
            storage,
            _dir: dir,
        };
        // Ready when GET /v2/ answers 200, within a deadline.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok((200, _, _)) = http(&r.addr, "GET", "/v2/", None, b"") {
                return r;
            }
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!(
                    "docker-registry exited ({status}): {}",
                    std::fs::read_to_string(r._dir.path().join("registry.log")).unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry not ready in 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn reference(&self, repo_tag: &str) -> String {
        format!("oci://{}/{repo_tag}", self.addr)
    }

    /// The file holding blob `digest` in the registry's storage.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Upload `bytes` as a blob of `repo` (POST, then PUT with the digest).
    fn put_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let (status, headers, body) = http(
            &self.addr,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            None,
            b"",
        )
        .unwrap();
        assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
        let location = header(&headers, "location");
        let path = location
            .split_once(&self.addr)
            .map_or(location.as_str(), |(_, p)| p);
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, _, body) = http(
            &self.addr,
            "PUT",
            &format!("{path}{sep}digest={digest}"),
            Some("application/octet-stream"),
            bytes,
        )
        .unwrap();
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        digest
    }

    /// Push a manifest whose one layer is `layer` with `media_type`.
    fn put_artifact(&self, repo: &str, tag: &str, media_type: &str, layer: &[u8]) {
        let config = br#"{"architecture":"wasm","os":"wasip2"}"#;
        let config_digest = self.put_blob(repo, config);
        let layer_digest = self.put_blob(repo, layer);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.wasm.config.v0+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [{"mediaType": media_type, "digest": layer_digest, "size": layer.len()}],
        });
        let (status, _, body) = http(
            &self.addr,
            "PUT",
            &format!("/v2/{repo}/manifests/{tag}"),
            Some("application/vnd.oci.image.manifest.v1+json"),
            &serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 exchange over a fresh connection.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = content_type {
        head.push_str(&format!("Content-Type: {t}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let headers = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = headers
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok((status, headers, answer[split + 4..].to_vec()))
}

fn header(headers: &str, name: &str) -> String {
    headers
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {name} header in {headers}"))
}

fn sha256(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// chaos-host with `args`, its OCI and compile caches under `cache`; a
/// `run` writes to `dir/out`.
fn chaos_with_cache(dir: &Path, cache: &Path, args: &[&str]) -> Run {
    let env = [
        (
            "CHAOS_OCI_CACHE_DIR",
            cache.join("oci").to_str().unwrap().to_string(),
        ),
        (
            "CHAOS_CACHE_DIR",
            cache.join("wasm").to_str().unwrap().to_string(),
        ),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if args[0] == "run" {
        return chaos_env(dir, args, &env);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env("CHAOS_LOG", "warn")
        .env("CHAOS_STATE_DIR", dir.join("state"))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        out: dir.join("out"),
    }
}

/// `chaos-host plugin push PLUGIN REFERENCE`; the manifest digest printed.
fn push(dir: &Path, plugin: &str, reference: &str) -> String {
    let run = chaos_with_cache(
        dir,
        &dir.join("cache"),
        &["plugin", "push", plugin, reference],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let digest = run.stdout.trim().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{}",
        run.stdout
    );
    digest
}

/// The one error line of a refused run (exit 2).
fn error_line(run: &Run) -> String {
    assert_eq!(
        run.code, 2,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("chaos-host: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    errors[0].to_string()
}

/// The sha256 `inspect` reports for `plugin`.
fn inspected_sha(run: &Run) -> String {
    assert_eq!(run.code, 0, "{}", run.stderr);
    let meta: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    meta["sha256"].as_str().unwrap().to_string()
}

fn file_sha(path: &Path) -> String {
    sha256(&std::fs::read(path).unwrap())
        .trim_start_matches("sha256:")
        .to_string()
}

#[test]
fn oci_push_then_pull_by_tag_and_by_digest_gives_the_source_bytes() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("pull-cache");
    let file = plugin("convergence");
    let by_tag = registry.reference("chaos/convergence:1.0");
    let started = Instant::now();
    let digest = push(dir.path(), file.to_str().unwrap(), &by_tag);
    eprintln!("push: {} ms", started.elapsed().as_millis());
    // The same component pushed again gives the same manifest.
    assert_eq!(push(dir.path(), file.to_str().unwrap(), &by_tag), digest);
    // A built-in by name.
    push(
        dir.path(),
        "partition_minority",
        &registry.reference("chaos/partition_minority:1.0"),
    );

    let started = Instant::now();
    let pulled = chaos_with_cache(dir.path(), &cache, &["inspect", &by_tag]);
    eprintln!("pull by tag: {} ms", started.elapsed().as_millis());
    assert_eq!(inspected_sha(&pulled), file_sha(&file));
    let by_digest = registry.reference(&format!("chaos/convergence@{digest}"));
    let pulled = chaos_with_cache(
        dir.path(),
        &dir.path().join("other-cache"),
        &["inspect", &by_digest],
    );
    assert_eq!(inspected_sha(&pulled), file_sha(&file));
    let pulled = chaos_with_cache(
        dir.path(),
        &cache,
        &[
            "inspect",
            &registry.reference("chaos/partition_minority:1.0"),
        ],
    );
    assert_eq!(
        inspected_sha(&pulled),
        file_sha(&root().join("crates/builtins/wasm/partition_minority.wasm"))
    );

    // Cached by digest: with the registry gone, the digest still loads...
    let addr = registry.addr.clone();
    drop(registry);
    let started = Instant::now();
    let cached = chaos_with_cache(dir.path(), &cache, &["inspect", &by_digest]);
    eprintln!("cache hit by digest: {} ms", started.elapsed().as_millis());
    assert_eq!(inspected_sha(&cached), file_sha(&file));
    // ...and a tag, which must be asked of the registry, is refused
    // naming the reference and what to check.
    let down = chaos_with_cache(dir.path(), &cache, &["inspect", &by_tag]);
    let e = error_line(&down);
    assert!(
        e.starts_with(&format!(
            "chaos-host: error: {by_tag}: registry http://{addr} unreachable"
        )),
        "{e}"
    );
    assert!(
        e.contains("Connection refused") && e.contains("is the registry running"),
        "{e}"
    );
}

#[test]
fn oci_campaign_pins_chaos_lock_refuses_a_moved_tag_and_replays_the_recorded_digest() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let fault = registry.reference("chaos/fault:stable");
    let assertion = registry.reference("chaos/convergence:1");
    let first = push(dir.path(), "partition_minority", &fault);
    let assertion_digest = push(dir.path(), "convergence", &assertion);
    let c = campaign(dir.path(), false, |t| {
        t.lines()
            .map(|l| {
                if l.starts_with("assertions =") {
                    format!("assertions = [{assertion:?}]")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    let run_args = |extra: &[&str]| {
        let mut a = vec![
            "run",
            "--campaign",
            c.to_str().unwrap(),
            "--plugin",
            &fault,
            "--cycles",
            "1",
            "--writes",
            "20",
            "--settle-ms",
            "300",
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let args = run_args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ok = chaos_with_cache(dir.path(), &cache, &args);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let cycles = ok.cycles();
    assert_eq!(cycles[0]["class"], "partition_minority");
    assert!(
        cycles[0]["verdicts"].to_string().contains("convergence@"),
        "the OCI assertion judged the cycle: {}",
        cycles[0]
    );
    // chaos.lock beside the campaign pins both references.
    let lock_path = dir.path().join("chaos.lock");
    let lock: toml::Table = toml::from_str(&std::fs::read_to_string(&lock_path).unwrap()).unwrap();
    assert_eq!(
        lock["plugins"][&fault]["digest"].as_str(),
        Some(first.as_str())
    );
    assert_eq!(
        lock["plugins"][&assertion]["digest"].as_str(),
        Some(assertion_digest.as_str())
    );
    assert_eq!(
        lock["plugins"][&fault]["layer"].as_str().unwrap(),
        format!(
            "sha256:{}",
            file_sha(&root().join("crates/builtins/wasm/partition_minority.wasm"))
        )
    );
    // run.json records the digests for resume and replay.
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ok.out.join("run.json")).unwrap()).unwrap();
    assert_eq!(saved["oci"][&fault]["digest"], first.as_str());
    let recorded_out = dir.path().join("recorded");
    std::fs::rename(&ok.out, &recorded_out).unwrap();

    // The tag moves to another component: refused, naming both digests.
    let moved = push(dir.path(), "drop_random_acks", &fault);
    assert_ne!(moved, first);
    let refused = chaos_with_cache(dir.path(), &cache, &args);
    let e = error_line(&refused);
    assert!(
        e.contains(&fault) && e.contains(&first) && e.contains(&moved),
        "{e}"
    );
    assert!(
        e.contains("--update-lock") && e.contains("chaos.lock"),
        "{e}"
    );
    assert!(
        !refused.out.join("cycles.jsonl").exists(),
        "refused before any cycle"
    );

    // Replaying the recorded cycle uses the recorded digest, not the tag.
    let replay = chaos_with_cache(
        dir.path(),
        &cache,
        &[
            "replay",
            recorded_out.to_str().unwrap(),
            "--class",
            "partition_minority",
            "--cycle",
            &cycles[0]["cycle"].to_string(),
        ],
    );
    assert!(replay.code == 0 || replay.code == 1, "{}", replay.stderr);
    assert!(replay.stdout.contains("cycle"), "{}", replay.stdout);

    // --update-lock accepts the new artifact and records it.
    std::fs::remove_dir_all(&refused.out).ok();
    let args = run_args(&["--update-lock"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let updated = chaos_with_cache(dir.path(), &cache, &args);
    assert_eq!(updated.code, 0, "{}", updated.stderr);
    assert_eq!(updated.cycles()[0]["class"], "drop_random_acks");
    let lock: toml::Table = toml::from_str(&std::fs::read_to_string(&lock_path).unwrap()).unwrap();
    assert_eq!(
        lock["plugins"][&fault]["digest"].as_str(),
        Some(moved.as_str())
    );
}

#[test]
fn oci_altered_blobs_are_refused_in_the_registry_and_in_the_cache() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let reference = registry.reference("chaos/kill:1");
    let digest = push(dir.path(), "kill_primary_mid_write", &reference);
    let by_digest = registry.reference(&format!("chaos/kill@{digest}"));
    let layer = format!(
        "sha256:{}",
        file_sha(&root().join("crates/builtins/wasm/kill_primary_mid_write.wasm"))
    );

    // A good pull fills a cache; then its cached layer is altered.
    let cache = dir.path().join("cache-a");
    let good = chaos_with_cache(dir.path(), &cache, &["inspect", &by_digest]);
    inspected_sha(&good);
    let cached = cache
        .join("oci/sha256")
        .join(format!("{}.wasm", layer.trim_start_matches("sha256:")));
    let mut bytes = std::fs::read(&cached).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&cached, &bytes).unwrap();
    let e = error_line(&chaos_with_cache(
        dir.path(),
        &cache,
        &["inspect", &by_digest],
    ));
    assert!(e.contains(&by_digest) && e.contains("altered"), "{e}");
    assert!(e.contains(cached.to_str().unwrap()), "{e}");

    // The registry's own copy altered: refused, with a fresh cache.
    let blob = registry.blob_file(&layer);
    std::fs::write(
        &blob,
        std::fs::read(root().join("crates/builtins/wasm/convergence.wasm")).unwrap(),
    )
    .unwrap();
    let e = error_line(&chaos_with_cache(
        dir.path(),
        &dir.path().join("cache-b"),
        &["inspect", &reference],
    ));
    assert!(e.contains(&reference) && e.contains("altered"), "{e}");
}

#[test]
fn oci_bad_references_and_artifacts_get_one_line_naming_the_reference() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let refused = |plugin: &str| {
        let run = chaos_with_cache(
            dir.path(),
            &cache,
            &["run", "--plugin", plugin, "--cycles", "1"],
        );
        let e = error_line(&run);
        assert!(!run.out.join("cycles.jsonl").exists());
        e
    };
    // Malformed: no tag.
    let bare = registry.reference("chaos/x");
    let e = refused(&bare);
    assert!(
        e.contains(&format!("plugin reference {bare:?}: no tag or digest")),
        "{e}"
    );
    // Unknown tag.
    push(
        dir.path(),
        "partition_minority",
        &registry.reference("chaos/x:1"),
    );
    let unknown = registry.reference("chaos/x:2");
    let e = refused(&unknown);
    assert!(
        e.starts_with(&format!("chaos-host: error: {unknown}: no such artifact")),
        "{e}"
    );
    assert!(e.contains("tag \"2\"") && e.contains("plugin push"), "{e}");
    // A manifest without a wasm layer (a container image's tar layer).
    registry.put_artifact(
        "chaos/image",
        "1",
        "application/vnd.oci.image.layer.v1.tar",
        b"tar",
    );
    let image = registry.reference("chaos/image:1");
    let e = refused(&image);
    assert!(
        e.contains(&format!("{image}: not a wasm component artifact"))
            && e.contains(
                "no application/wasm layer (layers: application/vnd.oci.image.layer.v1.tar)"
            ),
        "{e}"
    );
    // An application/wasm layer that is not a component.
    registry.put_artifact("chaos/notwasm", "1", "application/wasm", b"not a component");
    let notwasm = registry.reference("chaos/notwasm:1");
    let e = refused(&notwasm);
    assert!(
        e.contains(&format!("plugin {notwasm}: not a WebAssembly component")),
        "{e}"
    );
    // A component that is not a chaos plugin.
    let core = wat::parse_str("(component)").unwrap();
    registry.put_artifact("chaos/component", "1", "application/wasm", &core);
    let component = registry.reference("chaos/component:1");
    let e = refused(&component);
    assert!(
        e.contains(&format!("plugin {component}: not a chaos plugin")),
        "{e}"
    );
    // Push refuses what is not a loadable plugin, before any upload.
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"junk").unwrap();
    let run = chaos_with_cache(
        dir.path(),
        &cache,
        &[
            "plugin",
            "push",
            junk.to_str().unwrap(),
            &registry.reference("chaos/junk:1"),
        ],
    );
    let e = error_line(&run);
    assert!(e.contains("not a WebAssembly component"), "{e}");
    let (status, _, _) =
        http(&registry.addr, "GET", "/v2/chaos/junk/tags/list", None, b"").unwrap();
    assert_eq!(status, 404, "nothing was pushed");
    // Registry down: nothing listens on the port any more.
    let reference = registry.reference("chaos/x:1");
    let addr = registry.addr.clone();
    drop(registry);
    let e = refused(&reference);
    assert!(
        e.starts_with(&format!(
            "chaos-host: error: {reference}: registry http://{addr} unreachable"
        )),
        "{e}"
    );
}

#[test]
fn oci_resume_of_the_embedded_campaign_uses_the_recorded_digest_and_the_lock_is_in_the_cwd() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let fault = registry.reference("chaos/fault:stable");
    let first = push(dir.path(), "partition_minority", &fault);
    let out = dir.path().join("out");
    // The embedded campaign (no --campaign), run from `dir`.
    let chaos_in_dir = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_chaos-host"))
            .current_dir(dir.path())
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .env("CHAOS_LOG", "warn")
            .env("CHAOS_STATE_DIR", dir.path().join("state"))
            .env("CHAOS_OCI_CACHE_DIR", cache.join("oci"))
            .env("CHAOS_CACHE_DIR", cache.join("wasm"))
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, stderr) = chaos_in_dir(&[
        "run",
        "--plugin",
        &fault,
        "--cycles",
        "2",
        "--writes",
        "20",
        "--settle-ms",
        "300",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let lock = std::fs::read_to_string(dir.path().join("chaos.lock")).unwrap();
    assert!(lock.contains(&fault) && lock.contains(&first), "{lock}");
    // As if killed after its first cycle.
    let jsonl = out.join("cycles.jsonl");
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let first_line = text.lines().next().unwrap();
    std::fs::write(&jsonl, format!("{first_line}\n")).unwrap();

    // The tag moves; a new run is refused by the lock...
    let moved = push(dir.path(), "drop_random_acks", &fault);
    let (code, stderr) = chaos_in_dir(&["run", "--plugin", &fault, "--cycles", "1"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&moved) && stderr.contains(&first),
        "{stderr}"
    );
    // ...and the resume runs the recorded artifact, not the moved tag.
    let (code, stderr) = chaos_in_dir(&["run", "--resume", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let cycles: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(cycles.len(), 2);
    assert!(cycles.iter().all(|c| c["class"] == "partition_minority"));
    assert_nothing_left(dir.path(), run_id(&stderr).as_deref());
}

#[test]
fn oci_client_component_is_pulled_pinned_and_carries_the_cycle() {
    // Issue 22: clients share like faults: `[client] plugin` takes an
    // oci:// reference, locked in chaos.lock, and a [pins] sha256.
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let reference = registry.reference("chaos/quorum-kv-client:1");
    push(
        dir.path(),
        example_plugin("quorum_kv_client").to_str().unwrap(),
        &reference,
    );
    let kv = bin_dir().join("quorum-kv");
    let campaign_with = |extra: &str| {
        example_campaign(dir.path(), "plugins/quorum_kv_client/campaign.toml", |t| {
            format!(
                "{}{extra}",
                t.replace("../../../target/debug/quorum-kv", kv.to_str().unwrap())
                    .replace(
                        r#"plugin = "../quorum_kv_client.wasm""#,
                        &format!("plugin = {reference:?}"),
                    )
            )
        })
    };
    let c = campaign_with("");
    let args = [
        "run",
        "--campaign",
        c.to_str().unwrap(),
        "--plugin",
        "drop_random_acks",
        "--cycles",
        "1",
        "--writes",
        "20",
    ];
    let run = chaos_with_cache(dir.path(), &cache, &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.cycles()[0]["status"], "pass");
    assert!(run.cycles()[0]["ok"].as_u64().unwrap() > 0);
    let lock = std::fs::read_to_string(dir.path().join("chaos.lock")).unwrap();
    assert!(lock.contains("chaos/quorum-kv-client:1"), "{lock}");
    // A pin that is not the component's sha256 is refused before the run.
    let pinned = campaign_with(&format!(
        "\n[pins]\nquorum_kv_client = \"{}\"\n",
        "0".repeat(64)
    ));
    let run = chaos_with_cache(
        dir.path(),
        &cache,
        &[
            "run",
            "--campaign",
            pinned.to_str().unwrap(),
            "--plugin",
            "drop_random_acks",
            "--cycles",
            "1",
        ],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("does not match the pin"),
        "{}",
        run.stderr
    );
}
