//! `chaos-host plugin list|push` and `chaos-host inspect`: plugins as
//! things to look at and to share, apart from a run.

use crate::args::PushArgs;
use anyhow::bail;
use chaos_model::plugin_ref::{OciRef, PluginRef};
use chaos_plugin::oci;
use chaos_plugin::{Resolver, Runtime, builtins};
use std::path::Path;
use std::time::Instant;

/// `chaos-host inspect PLUGIN`: what the plugin says about itself, as JSON.
pub async fn inspect(plugin: &str) -> anyhow::Result<()> {
    let source = PluginRef::parse(plugin, Path::new(""), "inspect")?;
    let fetched = Resolver::unpinned().fetch(&source).await?;
    let runtime = Runtime::new()?;
    let p = runtime.load_bytes(&fetched.origin, fetched.bytes).await?;
    println!("{}", serde_json::to_string_pretty(&p.meta)?);
    Ok(())
}

/// `chaos-host plugin list`: every built-in, loaded as a run would load it.
pub async fn list() -> anyhow::Result<()> {
    let runtime = Runtime::new()?;
    let mut rows = Vec::new();
    for b in builtins::BUILTINS {
        let p = runtime.load_bytes(b.name, b.bytes.to_vec()).await?;
        rows.push(p.meta);
    }
    let width = rows.iter().map(|m| m.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:width$}  {:9}  {:7}  {:8}  {:12}  SHA256",
        "NAME", "KIND", "VERSION", "CONTRACT", "CAPABILITIES"
    );
    for m in rows {
        let caps = if m.capabilities.is_empty() {
            "-".to_string()
        } else {
            m.capabilities.join(",")
        };
        println!(
            "{:width$}  {:9}  {:7}  {:8}  {:12}  {}",
            m.name, m.kind, m.version, m.contract, caps, m.sha256
        );
        println!("{:width$}  {}", "", m.description);
    }
    println!(
        "\nrun one with `chaos-host run --plugin NAME`; name one in a campaign with `assertions = [\"NAME\"]`"
    );
    Ok(())
}

/// `chaos-host plugin push PLUGIN oci://...`: load it (only a working chaos
/// plugin is pushed), push it, print the manifest digest.
pub async fn push(args: &PushArgs) -> anyhow::Result<()> {
    let target = OciRef::parse(&args.reference)?;
    let source = PluginRef::parse(&args.plugin, Path::new(""), "plugin push")?;
    if let PluginRef::Path(p) = &source
        && !p.exists()
    {
        bail!("plugin push {}: no such file", p.display());
    }
    let fetched = Resolver::unpinned().fetch(&source).await?;
    let runtime = Runtime::new()?;
    let loaded = runtime
        .load_bytes(&fetched.origin, fetched.bytes.clone())
        .await?;
    let world = world_of(&fetched.bytes)?;
    let meta = &loaded.meta;
    let started = Instant::now();
    let digest = oci::push(
        &target,
        &fetched.bytes,
        world,
        &oci::Annotations {
            name: &meta.name,
            version: &meta.version,
            description: &meta.description,
            kind: meta.kind,
            contract: &meta.contract,
        },
    )
    .await?;
    eprintln!(
        "chaos-host: pushed {} ({}, {} bytes, layer {}) to {target} in {} ms",
        meta.label(),
        fetched.origin,
        fetched.bytes.len(),
        oci::digest_of(&fetched.bytes),
        started.elapsed().as_millis()
    );
    println!("{digest}");
    Ok(())
}

/// The component's imports and exports by name, for the artifact's config.
fn world_of(bytes: &[u8]) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::new(&engine, bytes)?;
    let ty = component.component_type();
    let imports = ty.imports(&engine).map(|(n, _)| n.to_string()).collect();
    let exports = ty.exports(&engine).map(|(n, _)| n.to_string()).collect();
    Ok((imports, exports))
}
