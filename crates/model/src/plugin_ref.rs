//! How a plugin is named: a path, a built-in's name or an `oci://`
//! reference, parsed and checked before anything is fetched (fetching is
//! the plugin runtime's job).

use anyhow::{anyhow, bail};
use chaos_builtins::{self as builtins, Builtin};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// A plugin as the user named it.
#[derive(Clone)]
pub enum PluginRef {
    Path(PathBuf),
    Builtin(&'static Builtin),
    Oci(OciRef),
}

impl fmt::Debug for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// How it is named in messages and in `run.json`.
impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(p) => write!(f, "{}", p.display()),
            Self::Builtin(b) => write!(f, "{}", b.name),
            Self::Oci(r) => write!(f, "{r}"),
        }
    }
}

impl PluginRef {
    /// `text` as given in `field` (for messages, e.g. `--plugin`); a
    /// relative path is taken relative to `base`.
    pub fn parse(text: &str, base: &Path, field: &str) -> anyhow::Result<Self> {
        if text.starts_with("oci://") {
            return Ok(Self::Oci(OciRef::parse(text)?));
        }
        let path = base.join(text);
        if text.contains('/') || text.ends_with(".wasm") || path.is_file() {
            return Ok(Self::Path(path));
        }
        if let Some(b) = builtins::get(text) {
            return Ok(Self::Builtin(b));
        }
        bail!(
            "{field} {text:?}: no built-in plugin has that name (built-ins: {}); to use a file, give its path (./{text}.wasm), or an OCI artifact as oci://HOST/REPOSITORY:TAG",
            builtins::names()
        )
    }

    /// The form saved in `run.json`: an absolute path, a built-in's name,
    /// an OCI reference as written (its digest is saved beside it).
    pub fn saved(&self) -> String {
        match self {
            Self::Path(p) => std::path::absolute(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string(),
            _ => self.to_string(),
        }
    }

    /// The file, for a plugin given as a path.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            Self::Path(p) => Some(p),
            _ => None,
        }
    }
}

/// A parsed `oci://` reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciRef {
    /// `HOST[:PORT]`, IPv6 hosts in brackets.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

impl fmt::Display for OciRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// What a reference resolved to: the manifest's digest and its wasm
/// layer's. Saved in `chaos.lock` and in `run.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// `sha256:...` of the manifest.
    pub digest: String,
    /// `sha256:...` of the wasm layer (the component's own sha256).
    pub layer: String,
}

const EXPECTED: &str = "expected oci://HOST[:PORT]/REPOSITORY:TAG or oci://HOST[:PORT]/REPOSITORY@sha256:DIGEST, e.g. oci://ghcr.io/acme/chaos/partition_minority:1.0";

impl OciRef {
    /// Parse `oci://HOST[:PORT]/REPO(:TAG|@sha256:HEX|:TAG@sha256:HEX)`.
    /// A tag or a digest is required: "latest" is never assumed.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let bad = |why: &str| anyhow!("plugin reference {text:?}: {why} ({EXPECTED})");
        let rest = text
            .strip_prefix("oci://")
            .ok_or_else(|| bad("no oci:// prefix"))?;
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("no repository after the registry"))?;
        check_registry(registry).map_err(|why| bad(&why))?;
        let (path, digest) = match path.split_once('@') {
            Some((p, d)) => {
                let hex = d
                    .strip_prefix("sha256:")
                    .ok_or_else(|| bad("the digest must start with sha256:"))?;
                if hex.len() != 64
                    || !hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return Err(bad(
                        "the digest must be sha256: and 64 lowercase hex digits",
                    ));
                }
                (p, Some(d.to_string()))
            }
            None => (path, None),
        };
        // A ':' after the last '/' starts the tag.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t.to_string())),
            _ => (path, None),
        };
        if repository.is_empty()
            || !repository.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| {
                        b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || matches!(b, b'.' | b'_' | b'-')
                    })
                    && c.as_bytes()[0].is_ascii_alphanumeric()
            })
        {
            return Err(bad(&format!(
                "repository {repository:?} must be lowercase path components of a-z, 0-9, '.', '_' and '-'"
            )));
        }
        if let Some(t) = &tag
            && (t.is_empty()
                || t.len() > 128
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
                || t.starts_with(['.', '-']))
        {
            return Err(bad(&format!(
                "tag {t:?} must be 1 to 128 of A-Z, a-z, 0-9, '.', '_' and '-', not starting with '.' or '-'"
            )));
        }
        if tag.is_none() && digest.is_none() {
            return Err(bad("no tag or digest (add :TAG or @sha256:DIGEST)"));
        }
        Ok(Self {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// The same artifact by digest (what a resumed run uses).
    pub fn by_digest(&self, digest: &str) -> Self {
        Self {
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    /// Host without the port, brackets removed.
    pub fn host(&self) -> &str {
        let r = self.registry.as_str();
        if let Some(v6) = r.strip_prefix('[') {
            return v6.split(']').next().unwrap_or(v6);
        }
        r.rsplit_once(':').map_or(r, |(h, _)| h)
    }

    /// Whether the registry is spoken to over plain HTTP: loopback, or
    /// listed in `CHAOS_OCI_INSECURE`.
    pub fn plain_http(&self) -> bool {
        let host = self.host();
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        loopback
            || std::env::var("CHAOS_OCI_INSECURE").is_ok_and(|list| {
                list.split(',')
                    .map(str::trim)
                    .any(|h| h == self.registry || h == host)
            })
    }
}

fn check_registry(registry: &str) -> Result<(), String> {
    let (host, port) = if let Some(v6) = registry.strip_prefix('[') {
        let (ip, rest) = v6
            .split_once(']')
            .ok_or("unclosed '[' in the registry host")?;
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{ip:?} is not an IPv6 address"));
        }
        (ip, rest.strip_prefix(':'))
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'))
    {
        return Err(format!("registry host {host:?} is not a host name"));
    }
    if let Some(p) = port
        && p.parse::<u16>().is_err()
    {
        return Err(format!("registry port {p:?} is not a port number"));
    }
    Ok(())
}
