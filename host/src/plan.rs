//! Command line: clap arguments turned once into a validated [`Plan`].

use crate::args::RunArgs;
use crate::shard::Shard;

use anyhow::{Context, bail};
use chaos_model::campaign::Campaign;
use chaos_model::plugin_ref::PluginRef;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A validated run: the campaign plus everything the command line changed.
pub struct Plan {
    /// The arguments as saved to `run.json`, for `--resume`.
    pub args: RunArgs,
    /// Finish the run already in `out` instead of starting afresh.
    pub resume: bool,
    /// Run only this cycle of this class (`chaos-host replay`).
    pub only: Option<(String, u32)>,
    pub campaign: Campaign,
    pub plugins: Vec<chaos_model::plugin_ref::PluginRef>,
    /// The `chaos.lock` OCI references are checked against and recorded
    /// in; `None` when resuming or replaying (they use `args.oci`).
    pub lock: Option<PathBuf>,
    /// `--update-lock`: a moved OCI tag replaces its lock entry.
    pub update_lock: bool,
    /// Opt-in, unsandboxed shared libraries.
    pub native_plugins: Vec<PathBuf>,
    pub allow: Vec<(String, String)>,
    pub cycles: u32,
    pub writes: u32,
    pub settle: Duration,
    pub seed: u64,
    pub out: PathBuf,
    pub net: chaos_model::network::Mode,
    /// The remote hosts the nodes go on (`[hosts]`, `--hosts`), checked
    /// but not yet connected.
    pub hosts: Option<chaos_model::hosts::Layout>,
    /// Cycles of a class run at once.
    pub parallel: u32,
    /// Only this shard's cycles, when sharded.
    pub shard: Option<Shard>,
}

/// Most cycles `--parallel` runs at once: each is a whole cluster with its
/// own processes, ports and (in netns mode) namespaces, so beyond this a
/// machine runs out of something long before it runs faster.
pub const MAX_PARALLEL: u32 = 64;

pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl RunArgs {
    /// The plan of the run whose --out dir is `dir`, from its `run.json`.
    fn resume(dir: &std::path::Path) -> anyhow::Result<Plan> {
        let mut plan = Self::saved(dir)?;
        plan.resume = true;
        Ok(plan)
    }

    /// The plan saved in `dir/run.json`, writing to `dir`.
    pub fn saved(dir: &std::path::Path) -> anyhow::Result<Plan> {
        let path = dir.join("run.json");
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "--resume {}: reading {} (only an --out dir of chaos-host run can be resumed)",
                dir.display(),
                path.display()
            )
        })?;
        let mut saved: RunArgs = serde_json::from_slice(&bytes)
            .with_context(|| format!("--resume: {} is not a run plan", path.display()))?;
        saved.out = dir.to_path_buf();
        saved.resume = None;
        let mut plan = saved
            .plan()
            .with_context(|| format!("the run saved in {}", path.display()))?;
        // OCI references use the digests the run recorded, not the lock.
        plan.lock = None;
        plan.update_lock = false;
        Ok(plan)
    }
}

/// `program` names an executable file: itself when it is a path, or
/// one on PATH when it is a bare name.
fn runnable(program: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 {
        return executable(program);
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| executable(&d.join(program))))
}

fn absolute(p: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `PLUGIN.PARAM=VALUE`; VALUE is read as a TOML value (5000, 0.5, true),
/// else taken as text.
fn parse_param(p: &str) -> anyhow::Result<(String, String, toml::Value)> {
    let parsed = p.split_once('=').and_then(|(name, value)| {
        let (plugin, key) = name.split_once('.')?;
        (!plugin.is_empty() && !key.is_empty()).then_some((plugin, key, value))
    });
    let Some((plugin, key, value)) = parsed else {
        bail!("--param {p:?}: expected PLUGIN.PARAM=VALUE, e.g. --param drop_random_acks.ms=5000");
    };
    let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    Ok((plugin.to_string(), key.to_string(), value))
}

impl RunArgs {
    pub fn plan(self) -> anyhow::Result<Plan> {
        if let Some(dir) = &self.resume {
            return Self::resume(dir);
        }
        // Without --campaign: the embedded reference campaign.
        let (mut campaign, text) = match &self.campaign {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("reading campaign {}", path.display()))?;
                (Campaign::load(path)?, bytes)
            }
            None => (
                Campaign::reference()?,
                chaos_model::campaign::REFERENCE_TOML.as_bytes().to_vec(),
            ),
        };
        let campaign_path = campaign.path.clone();
        let sha256 = {
            use sha2::Digest;
            format!("{:x}", sha2::Sha256::digest(text))
        };
        if let Some(saved) = &self.campaign_sha256
            && *saved != sha256
        {
            bail!(
                "campaign {} changed since the run being resumed started (sha256 {saved} in run.json, now {sha256}): a resumed run must use the same campaign; start a new run with another --out",
                campaign_path.display()
            );
        }
        for p in &self.param {
            let (plugin, key, value) = parse_param(p)?;
            campaign
                .file
                .params
                .entry(plugin)
                .or_default()
                .insert(key, value);
        }
        let mut allow = Vec::new();
        for a in &self.allow {
            let Some((who, caps)) = a.split_once('=') else {
                bail!(
                    "--allow {a:?}: expected PLUGIN=CAPABILITY[,CAPABILITY...], e.g. --allow kill_primary_mid_write=signal"
                );
            };
            for cap in caps.split(',') {
                chaos_plugin::grants_parse(cap).with_context(|| format!("--allow {a}"))?;
            }
            allow.push((who.to_string(), caps.to_string()));
        }
        let mut plugins = self
            .plugin
            .iter()
            .map(|p| PluginRef::parse(p, Path::new(""), "--plugin"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for dir in &self.plugin_dir {
            let entries = std::fs::read_dir(dir)
                .with_context(|| format!("--plugin-dir {}", dir.display()))?;
            let mut found: Vec<_> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
                .collect();
            if found.is_empty() {
                bail!("--plugin-dir {}: no .wasm file in it", dir.display());
            }
            found.sort();
            // A shared directory may hold client components too (they are
            // named by a campaign's [client] plugin): not faults to run.
            // Their export name is in the component's bytes.
            found.retain(|p| {
                let client = std::fs::read(p).is_ok_and(|b| {
                    let needle = b"chaos:plugin/client@";
                    b.windows(needle.len()).any(|w| w == needle)
                });
                if client {
                    eprintln!(
                        "chaos-host: --plugin-dir {}: {} is a client component, not loaded as a fault or assertion",
                        dir.display(),
                        p.display()
                    );
                }
                !client
            });
            plugins.extend(found.into_iter().map(PluginRef::Path));
        }
        for p in plugins.iter().filter_map(PluginRef::as_path) {
            if !p.exists() {
                bail!(
                    "--plugin {}: no such file (build the plugins with scripts/build-plugins.sh, or name a built-in: {})",
                    p.display(),
                    chaos_builtins::names()
                );
            }
        }
        for p in &self.native_plugin {
            if !p.exists() {
                bail!("--native-plugin {}: no such file", p.display());
            }
        }
        let cycles = self.cycles.unwrap_or(campaign.file.campaign.cycles);
        if cycles == 0 {
            bail!("--cycles 0: nothing to run");
        }
        let writes = self.writes.unwrap_or(campaign.file.burst.writes);
        if writes == 0 {
            bail!("--writes 0: a cycle that writes nothing tests nothing; give at least 1");
        }
        use chaos_model::bounds::{CYCLES, WRITES, setting};
        setting("--cycles", u64::from(cycles), &CYCLES).map_err(anyhow::Error::msg)?;
        setting("--writes", u64::from(writes), &WRITES).map_err(anyhow::Error::msg)?;
        let parallel = self.parallel.unwrap_or(1);
        if !(1..=MAX_PARALLEL).contains(&parallel) {
            bail!(
                "--parallel {parallel}: give from 1 to {} cycles at once (each runs a whole cluster of {} node(s) with its own ports, data dirs and network)",
                MAX_PARALLEL,
                campaign.file.system.nodes
            );
        }
        if let Some(shard) = self.shard
            && shard.count > cycles
        {
            bail!(
                "--shard {shard}: {} shards of {cycles} cycle(s) per class would leave shard(s) with no cycle; use at most {cycles} shards or more --cycles",
                shard.count
            );
        }
        let settle = Duration::from_millis(self.settle_ms.unwrap_or(campaign.file.burst.settle_ms));
        let seed = self
            .seed
            .or(campaign.file.campaign.seed)
            .unwrap_or_else(|| chaos_model::seed::splitmix(now_nanos()));
        let hosts = match (&self.hosts, &campaign.file.hosts) {
            (Some(file), _) => Some(chaos_model::hosts::Layout::new(
                &chaos_model::hosts::read_file(file)?,
                file,
                campaign.file.system.nodes,
            )?),
            (None, Some(section)) => Some(chaos_model::hosts::Layout::new(
                section,
                &campaign.path,
                campaign.file.system.nodes,
            )?),
            (None, None) => None,
        };
        let net = match (self.net, &hosts) {
            (None | Some(chaos_model::network::Mode::Ssh), Some(_)) => {
                chaos_model::network::Mode::Ssh
            }
            (Some(m), Some(_)) => bail!(
                "--net {}: the nodes are placed on remote hosts ([hosts] or --hosts), whose network is the hosts'; drop --net",
                m.as_str()
            ),
            (Some(chaos_model::network::Mode::Ssh), None) => bail!(
                "--net ssh: no hosts to place the nodes on; list them under [hosts] in the campaign or pass --hosts FILE"
            ),
            (m, None) => m.unwrap_or(campaign.file.network.mode),
        };
        campaign.check_mode(net).with_context(|| {
            format!(
                "campaign {} in network mode {}",
                campaign.path.display(),
                net.as_str()
            )
        })?;
        if let chaos_model::campaign::ClientSpec::Driver { program, .. } = &campaign.client
            && !runnable(program)
        {
            bail!(
                "campaign {}: client.command: the driver {} is not an executable file{}; install it or fix the path",
                campaign.path.display(),
                program.display(),
                if program.components().count() > 1 {
                    " (a path with '/' is relative to the campaign file)"
                } else {
                    " on PATH"
                }
            );
        }
        let saved = RunArgs {
            seed: Some(seed),
            cycles: Some(cycles),
            writes: Some(writes),
            settle_ms: Some(settle.as_millis() as u64),
            net: Some(net),
            parallel: Some(parallel),
            campaign_sha256: Some(sha256),
            campaign: self.campaign.as_deref().map(absolute),
            hosts: self.hosts.as_deref().map(absolute),
            plugin: plugins.iter().map(PluginRef::saved).collect(),
            native_plugin: self.native_plugin.iter().map(|p| absolute(p)).collect(),
            plugin_dir: Vec::new(),
            ..self.clone()
        };
        // chaos.lock sits beside the campaign; the embedded one's in the
        // current directory.
        let lock = match &self.campaign {
            Some(_) => campaign_path.with_file_name(chaos_plugin::lock::FILE_NAME),
            None => PathBuf::from(chaos_plugin::lock::FILE_NAME),
        };
        Ok(Plan {
            args: saved,
            resume: false,
            only: None,
            net,
            hosts,
            campaign,
            plugins,
            lock: Some(lock),
            update_lock: self.update_lock,
            native_plugins: self.native_plugin,
            allow,
            cycles,
            writes,
            settle,
            seed,
            parallel,
            shard: self.shard,
            out: self.out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse_param;

    #[test]
    fn params_parse_typed_values_and_name_bad_ones() {
        let (plugin, key, v) = parse_param("drop_random_acks.ms=5000").unwrap();
        assert_eq!((plugin.as_str(), key.as_str()), ("drop_random_acks", "ms"));
        assert_eq!(v, toml::Value::Integer(5000));
        let (_, _, v) = parse_param("kill_primary_mid_write.target=leader").unwrap();
        assert_eq!(v, toml::Value::String("leader".into()));
        let e = parse_param("ms=5000").unwrap_err().to_string();
        assert!(
            e.contains("--param \"ms=5000\": expected PLUGIN.PARAM=VALUE"),
            "{e}"
        );
    }
}
