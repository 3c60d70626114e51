//! Plugins as OCI artifacts: `oci://HOST[:PORT]/REPO:TAG` or
//! `oci://HOST[:PORT]/REPO@sha256:HEX`.
//!
//! The artifact follows the WebAssembly component convention of
//! wasm-pkg-tools and Spin: one manifest (`application/vnd.oci.image.
//! manifest.v1+json`) whose config is `application/vnd.wasm.config.v0+json`
//! and whose one layer is the component, `application/wasm`.
//!
//! Pulled artifacts are cached by content: every manifest and layer is
//! stored under its own sha256 (`oci_cache_dir()/sha256/<hex>.json|.wasm`)
//! and checked against its name whenever it is read, so a reference by
//! digest found in the cache needs no network and a changed file is
//! refused. Everything read from a registry is checked too: the manifest
//! against the digest asked for, the layer against the manifest's digest.
//!
//! Transport: loopback registries (`localhost`, `127.0.0.0/8`, `[::1]`) are
//! spoken to over plain HTTP, every other host over HTTPS unless listed in
//! `CHAOS_OCI_INSECURE` (comma-separated `HOST[:PORT]`). Access is anonymous
//! unless `~/.docker/config.json` (or `$DOCKER_CONFIG/config.json`) has an
//! `auths` entry with a basic `auth` for the registry.

use anyhow::{Context, anyhow, bail};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use std::path::PathBuf;

/// Media type of the wasm component layer.
pub const WASM_LAYER: &str = "application/wasm";
/// Media type of the config blob of a wasm component artifact.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// Media type of the manifest chaos-host pushes.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Layer type of older wasm artifacts (the CNCF wg-wasm draft); read, never
/// written.
const WASM_LAYER_LEGACY: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// Biggest manifest read (they are a few hundred bytes).
const MAX_MANIFEST_BYTES: usize = 1 << 20;
/// Largest wasm layer pulled: a plugin is a few hundred KiB; a registry
/// that sends more (or says it will) is refused before it fills memory.
const MAX_LAYER_BYTES: u64 = 64 << 20;

/// `sha256:` and 64 lowercase hex digits: the only digests chaos-host
/// accepts, checked before one becomes part of a cache file name.
fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

use chaos_model::plugin_ref::{OciRef, Pin};

/// How oci-client names `r`.
fn client_ref(r: &OciRef) -> Reference {
    match (&r.tag, &r.digest) {
        (Some(t), Some(d)) => Reference::with_tag_and_digest(
            r.registry.clone(),
            r.repository.clone(),
            t.clone(),
            d.clone(),
        ),
        (_, Some(d)) => Reference::with_digest(r.registry.clone(), r.repository.clone(), d.clone()),
        (t, None) => Reference::with_tag(
            r.registry.clone(),
            r.repository.clone(),
            t.clone().unwrap_or_default(),
        ),
    }
}

fn client(r: &OciRef) -> Client {
    Client::new(oci_client::client::ClientConfig {
        protocol: if r.plain_http() {
            oci_client::client::ClientProtocol::Http
        } else {
            oci_client::client::ClientProtocol::Https
        },
        ..Default::default()
    })
}

fn auth(r: &OciRef) -> RegistryAuth {
    docker_auth(&r.registry).unwrap_or(RegistryAuth::Anonymous)
}

/// Basic credentials for `registry` from the docker CLI's config, if any.
fn docker_auth(registry: &str) -> Option<RegistryAuth> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))?;
    auth_in(&std::fs::read(dir.join("config.json")).ok()?, registry)
}

/// The basic `auth` of `registry` in a docker `config.json`'s `auths`
/// (keys may carry a scheme and a path, as `docker login` writes them).
fn auth_in(config: &[u8], registry: &str) -> Option<RegistryAuth> {
    use base64::Engine;
    let config: serde_json::Value = serde_json::from_slice(config).ok()?;
    let auths = config.get("auths")?.as_object()?;
    let entry = auths.iter().find_map(|(k, v)| {
        let k = k
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        (k.split('/').next() == Some(registry)).then_some(v)
    })?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.get("auth")?.as_str()?)
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some(RegistryAuth::Basic(user.to_string(), password.to_string()))
}

/// Where pulled artifacts are cached: `CHAOS_OCI_CACHE_DIR` (`off`: no
/// cache), else `$XDG_CACHE_HOME/chaos-host/oci`, else
/// `~/.cache/chaos-host/oci`: beside the compiled-component cache, not in
/// it (wasmtime cleans its own directory).
pub fn oci_cache_dir() -> Option<PathBuf> {
    match std::env::var_os("CHAOS_OCI_CACHE_DIR") {
        Some(d) if d == "off" => None,
        Some(d) => Some(PathBuf::from(d)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|c| c.join("chaos-host").join("oci")),
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The content-addressed cache: blobs named by their own sha256.
struct Cache {
    dir: PathBuf,
}

impl Cache {
    fn open() -> Option<Self> {
        oci_cache_dir().map(|d| Self {
            dir: d.join("sha256"),
        })
    }

    fn path(&self, digest: &str, ext: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join(format!("{hex}.{ext}"))
    }

    /// The blob `digest`, if cached; refused when its content no longer
    /// has that digest.
    fn get(&self, r: &OciRef, digest: &str, ext: &str) -> anyhow::Result<Option<Vec<u8>>> {
        if !valid_digest(digest) {
            bail!("{r}: digest {digest:?} is not sha256:<64 lowercase hex digits>; refusing it");
        }
        let path = self.path(digest, ext);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("{r}: reading {}", path.display())),
        };
        let actual = digest_of(&bytes);
        if actual != digest {
            bail!(
                "{r}: cached blob {} has sha256 {actual}, not the {digest} it is stored as: the cache was altered, refusing it (delete the file to pull it again)",
                path.display()
            );
        }
        Ok(Some(bytes))
    }

    /// Store `bytes` under its digest (atomically; a failure only costs a
    /// later pull).
    fn put(&self, digest: &str, ext: &str, bytes: &[u8]) {
        if !valid_digest(digest) {
            return;
        }
        let path = self.path(digest, ext);
        let tmp = path.with_extension(format!("{ext}.tmp{}", std::process::id()));
        let write = std::fs::create_dir_all(&self.dir)
            .and_then(|()| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = write {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!("caching {} failed: {e}", path.display());
        }
    }
}

/// The manifest fields chaos-host reads.
#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
}

/// The wasm layer of manifest `bytes`.
fn wasm_layer(r: &OciRef, bytes: &[u8]) -> anyhow::Result<Descriptor> {
    let manifest: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| anyhow!("{r}: the manifest is not an OCI image manifest ({e})"))?;
    let types: Vec<String> = manifest
        .layers
        .iter()
        .map(|l| l.media_type.clone())
        .collect();
    let mut wasm = manifest
        .layers
        .into_iter()
        .filter(|l| l.media_type == WASM_LAYER || l.media_type == WASM_LAYER_LEGACY);
    match (wasm.next(), wasm.next()) {
        (Some(l), None) if !valid_digest(&l.digest) => bail!(
            "{r}: its wasm layer's digest {:?} is not sha256:<64 lowercase hex digits>; refusing the artifact",
            l.digest
        ),
        (Some(l), None) if l.size > MAX_LAYER_BYTES => bail!(
            "{r}: its wasm layer is {} bytes, over the {} MiB a plugin may have; refusing to pull it",
            l.size,
            MAX_LAYER_BYTES >> 20
        ),
        (Some(l), None) => Ok(l),
        (Some(_), Some(_)) => bail!(
            "{r}: the artifact has more than one {WASM_LAYER} layer; a chaos plugin artifact has exactly one (push it with `chaos-host plugin push`)"
        ),
        (None, _) => bail!(
            "{r}: not a wasm component artifact: its manifest has no {WASM_LAYER} layer (layers: {}); push a plugin with `chaos-host plugin push FILE {r}`",
            if types.is_empty() {
                "none".to_string()
            } else {
                types.join(", ")
            }
        ),
    }
}

/// The component `r` names, and what it resolved to.
///
/// `want` is a digest already known for `r` (from `chaos.lock` or
/// `run.json`): it is pulled by that digest, from the cache when there,
/// and the tag is not looked up. Otherwise a reference by digest is
/// pulled by its digest and one by tag resolves the tag on the registry.
pub async fn pull(r: &OciRef, want: Option<&str>) -> anyhow::Result<(Vec<u8>, Pin)> {
    let by = match want {
        Some(d) => r.by_digest(d),
        None => r.clone(),
    };
    let cache = Cache::open();
    if let (Some(cache), Some(digest)) = (&cache, &by.digest)
        && let Some(manifest) = cache.get(r, digest, "json")?
    {
        let layer = wasm_layer(r, &manifest)?;
        if let Some(wasm) = cache.get(r, &layer.digest, "wasm")? {
            tracing::debug!("{r}: from the cache");
            return Ok((
                wasm,
                Pin {
                    digest: digest.clone(),
                    layer: layer.digest,
                },
            ));
        }
    }
    let client = client(&by);
    let auth = auth(&by);
    let image = client_ref(&by);
    let (manifest, _) = client
        .pull_manifest_raw(&image, &auth, &[OCI_MANIFEST, DOCKER_MANIFEST])
        .await
        .map_err(|e| explain(r, "pulling its manifest", e))?;
    if manifest.len() > MAX_MANIFEST_BYTES {
        bail!(
            "{r}: manifest of {} bytes is too big for a plugin artifact",
            manifest.len()
        );
    }
    // The digest of the bytes received, whatever the registry says.
    let digest = digest_of(&manifest);
    if let Some(asked) = &by.digest
        && *asked != digest
    {
        bail!(
            "{r}: the registry answered {asked} with a manifest whose sha256 is {digest}: it was altered, refusing it"
        );
    }
    let layer = wasm_layer(r, &manifest)?;
    let wasm = match cache
        .as_ref()
        .map(|c| c.get(r, &layer.digest, "wasm"))
        .transpose()?
        .flatten()
    {
        Some(w) => w,
        None => {
            let descriptor = oci_client::manifest::OciDescriptor {
                media_type: layer.media_type.clone(),
                digest: layer.digest.clone(),
                size: layer.size as i64,
                ..Default::default()
            };
            // Streamed and capped at the size the manifest declared: a
            // registry that sends more is cut off, not buffered.
            let mut stream = client
                .pull_blob_stream(&image, &descriptor)
                .await
                .map_err(|e| explain(r, &format!("pulling layer {}", layer.digest), e))?;
            let mut wasm = Vec::with_capacity(layer.size as usize);
            while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
                let chunk =
                    chunk.with_context(|| format!("{r}: pulling layer {}", layer.digest))?;
                if (wasm.len() + chunk.len()) as u64 > layer.size {
                    bail!(
                        "{r}: layer {} is longer than the {} bytes its manifest declares: the blob was altered, refusing it",
                        layer.digest,
                        layer.size
                    );
                }
                wasm.extend_from_slice(&chunk);
            }
            wasm
        }
    };
    let actual = digest_of(&wasm);
    if actual != layer.digest {
        bail!(
            "{r}: layer {} has sha256 {actual}: the blob was altered, refusing it",
            layer.digest
        );
    }
    if let Some(c) = &cache {
        c.put(&layer.digest, "wasm", &wasm);
        c.put(&digest, "json", &manifest);
    }
    Ok((
        wasm,
        Pin {
            digest,
            layer: layer.digest,
        },
    ))
}

/// What a plugin artifact says about itself: annotations of its manifest.
pub struct Annotations<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub description: &'a str,
    pub kind: &'a str,
    pub contract: &'a str,
}

/// Push `wasm` as a wasm component artifact to `r` (which needs a tag);
/// returns the manifest's digest. The config's `created` is the Unix
/// epoch, so pushing the same component twice gives the same digest.
pub async fn push(
    r: &OciRef,
    wasm: &[u8],
    world: (Vec<String>, Vec<String>),
    about: &Annotations<'_>,
) -> anyhow::Result<String> {
    if r.tag.is_none() || r.digest.is_some() {
        bail!(
            "{r}: push to a tag (oci://HOST/REPOSITORY:TAG); the digest is the registry's answer"
        );
    }
    let layer = digest_of(wasm);
    let (imports, exports) = world;
    let config = serde_json::to_vec(&serde_json::json!({
        "created": "1970-01-01T00:00:00Z",
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer],
        "component": { "exports": exports, "imports": imports },
    }))?;
    let config_digest = digest_of(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": Descriptor {
            media_type: WASM_CONFIG.into(),
            digest: config_digest.clone(),
            size: config.len() as u64,
        },
        "layers": [Descriptor {
            media_type: WASM_LAYER.into(),
            digest: layer.clone(),
            size: wasm.len() as u64,
        }],
        "annotations": {
            "org.opencontainers.image.title": about.name,
            "org.opencontainers.image.version": about.version,
            "org.opencontainers.image.description": about.description,
            "dev.chaos-host.plugin.kind": about.kind,
            "dev.chaos-host.plugin.contract": about.contract,
        },
    }))?;
    let client = client(r);
    let image = client_ref(r);
    // Checks the registry and logs in for the push.
    client
        .auth(&image, &auth(r), oci_client::RegistryOperation::Push)
        .await
        .map_err(|e| explain(r, "authenticating", e))?;
    client
        .push_blob(&image, wasm, &layer)
        .await
        .map_err(|e| explain(r, "pushing the component", e))?;
    client
        .push_blob(&image, &config, &config_digest)
        .await
        .map_err(|e| explain(r, "pushing the config", e))?;
    let digest = digest_of(&manifest);
    client
        .push_manifest_raw(&image, manifest, OCI_MANIFEST.parse()?)
        .await
        .map_err(|e| explain(r, "pushing the manifest", e))?;
    Ok(digest)
}

/// One line for a registry failure: the reference, what failed, why, and
/// what to do.
fn explain(r: &OciRef, doing: &str, e: OciDistributionError) -> anyhow::Error {
    let scheme = if r.plain_http() { "http" } else { "https" };
    match &e {
        OciDistributionError::RequestError(re) if re.is_connect() || re.is_timeout() => anyhow!(
            "{r}: registry {scheme}://{} unreachable while {doing}: {} (is the registry running, and are host and port right?)",
            r.registry,
            chain(re)
        ),
        OciDistributionError::ImageManifestNotFoundError(_) => not_found(r),
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|x| &x.code).collect();
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                not_found(r)
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                anyhow!(
                    "{r}: the registry refused access while {doing} (log in with `docker login {}`; chaos-host reads basic credentials from ~/.docker/config.json)",
                    r.registry
                )
            } else {
                anyhow!("{r}: the registry refused {doing}: {e}")
            }
        }
        OciDistributionError::ServerError { code: 404, .. } => not_found(r),
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => anyhow!(
            "{r}: the registry refused access while {doing} (log in with `docker login {}`; chaos-host reads basic credentials from ~/.docker/config.json)",
            r.registry
        ),
        OciDistributionError::DigestError(d) => anyhow!(
            "{r}: {doing}: the content does not match its digest ({d}): it was altered, refusing it"
        ),
        _ => anyhow!(
            "{r}: {doing} on {scheme}://{} failed: {}",
            r.registry,
            chain(&e)
        ),
    }
}

fn not_found(r: &OciRef) -> anyhow::Error {
    let what = match (&r.tag, &r.digest) {
        (_, Some(d)) => format!("digest {d}"),
        (Some(t), None) => format!("tag {t:?}"),
        (None, None) => "it".into(),
    };
    anyhow!(
        "{r}: no such artifact: the registry {} has no {what} in repository {} (check the reference, or push it with `chaos-host plugin push FILE {r}`)",
        r.registry,
        r.repository
    )
}

/// An error and its sources on one line ("connection refused" is often
/// three levels down).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> OciRef {
        OciRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e:#}"))
    }

    fn err(s: &str) -> String {
        format!("{:#}", OciRef::parse(s).unwrap_err())
    }

    #[test]
    fn references_parse_into_registry_repository_tag_and_digest() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ok("oci://127.0.0.1:5000/chaos/partition_minority:1.0");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "chaos/partition_minority");
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(r.digest, None);
        assert_eq!(
            r.to_string(),
            "oci://127.0.0.1:5000/chaos/partition_minority:1.0"
        );
        let r = ok(&format!("oci://ghcr.io/acme/x@{d}"));
        assert_eq!((r.tag.as_deref(), r.digest.as_deref()), (None, Some(&*d)));
        let r = ok(&format!("oci://[::1]:5000/x:t@{d}"));
        assert_eq!(r.registry, "[::1]:5000");
        assert_eq!(
            (r.tag.as_deref(), r.digest.as_deref()),
            (Some("t"), Some(&*d))
        );
        assert_eq!(r.to_string(), format!("oci://[::1]:5000/x:t@{d}"));
        assert_eq!(ok("oci://localhost/a/b/c:v").repository, "a/b/c");
    }

    #[test]
    fn malformed_references_say_what_is_wrong_and_the_expected_form() {
        for (text, why) in [
            ("oci://ghcr.io/acme/x", "no tag or digest"),
            ("oci://ghcr.io", "no repository"),
            ("oci://ghcr.io/Acme/x:1", "repository \"Acme/x\""),
            ("oci://ghcr.io/acme/x:", "tag \"\""),
            ("oci://ghcr.io/acme/x@md5:00", "must start with sha256:"),
            ("oci://ghcr.io/acme/x@sha256:abc", "64 lowercase hex"),
            ("oci://host:99999/x:1", "not a port number"),
            ("oci://ho st/x:1", "not a host name"),
            ("oci://[zz]/x:1", "not an IPv6 address"),
            ("oci:///x:1", "not a host name"),
        ] {
            let e = err(text);
            assert!(
                e.starts_with(&format!("plugin reference {text:?}: ")),
                "{e}"
            );
            assert!(e.contains(why), "{text}: {e}");
            assert!(
                e.contains("expected oci://HOST[:PORT]/REPOSITORY:TAG"),
                "{e}"
            );
        }
    }

    #[test]
    fn loopback_is_plain_http_and_everything_else_https() {
        for plain in [
            "oci://localhost:5000/x:1",
            "oci://127.0.0.1/x:1",
            "oci://127.9.9.9:1/x:1",
            "oci://[::1]:5000/x:1",
        ] {
            assert!(ok(plain).plain_http(), "{plain}");
        }
        for tls in [
            "oci://ghcr.io/x:1",
            "oci://10.0.0.1:5000/x:1",
            "oci://localhost.example.com/x:1",
            "oci://[::2]/x:1",
        ] {
            assert!(!ok(tls).plain_http(), "{tls}");
        }
    }

    #[test]
    fn a_manifest_without_a_wasm_layer_is_named_with_its_layers() {
        let r = ok("oci://localhost/x:1");
        let m = br#"{"schemaVersion":2,"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:00","size":1}]}"#;
        let e = format!("{:#}", wasm_layer(&r, m).unwrap_err());
        assert!(
            e.contains(
                "no application/wasm layer (layers: application/vnd.oci.image.layer.v1.tar)"
            ),
            "{e}"
        );
        let hex = "ab".repeat(32);
        let m = format!(
            r#"{{"layers":[{{"mediaType":"application/wasm","digest":"sha256:{hex}","size":2}}]}}"#
        );
        assert_eq!(
            wasm_layer(&r, m.as_bytes()).unwrap().digest,
            format!("sha256:{hex}")
        );
        // A digest that would walk out of the cache, and a layer too big to
        // pull, are refused from the manifest alone.
        let m =
            br#"{"layers":[{"mediaType":"application/wasm","digest":"sha256:../../x","size":2}]}"#;
        let e = format!("{:#}", wasm_layer(&r, m).unwrap_err());
        assert!(e.contains("is not sha256:<64 lowercase hex digits>"), "{e}");
        let m = format!(
            r#"{{"layers":[{{"mediaType":"application/wasm","digest":"sha256:{hex}","size":{}}}]}}"#,
            MAX_LAYER_BYTES + 1
        );
        let e = format!("{:#}", wasm_layer(&r, m.as_bytes()).unwrap_err());
        assert!(e.contains("over the 64 MiB a plugin may have"), "{e}");
    }

    #[test]
    fn basic_auth_comes_from_the_docker_config_entry_of_the_registry() {
        // "me:secret" in base64.
        let config = br#"{"auths":{"https://ghcr.io/v1/":{"auth":"bWU6c2VjcmV0"},"other.io":{"auth":"eDp5"}}}"#;
        match auth_in(config, "ghcr.io") {
            Some(RegistryAuth::Basic(u, p)) => {
                assert_eq!((u.as_str(), p.as_str()), ("me", "secret"))
            }
            _ => panic!("no basic auth for ghcr.io"),
        }
        assert!(auth_in(config, "quay.io").is_none());
        assert!(auth_in(b"{}", "ghcr.io").is_none());
    }

    #[test]
    fn digests_are_sha256_of_the_bytes() {
        assert_eq!(
            digest_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
