//! One file per command. Each takes its parsed arguments and a [`Context`] and returns
//! the process exit code; errors go back to `main`, which prints them once.

pub mod backup;
pub mod config;
pub mod doctor;
pub mod down;
pub mod exec;
pub mod host;
pub mod image;
pub mod list;
pub mod logs;
pub mod restore;
pub mod ssh_config;
pub mod status;
pub mod token;
pub mod up;
pub mod user;
pub mod verify;

use futures_util::future::join_all;

pub use crate::cluster::{Cluster, ClusterError, ClusterHost, default_user, running_node};

use std::time::Duration;

use crate::cli::{ClusterName, UpArgs};
use crate::deploy::{self, UpOptions};
use crate::engine::docker::DockerEngine;
use crate::engine::{EngineError, EngineInfo};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::registry::{Entry, Registry};
use crate::settings::Settings;
use crate::spec::{ClusterSpec, HostSpec};

/// Settings resolved once from flags and environment.
pub struct Context {
    pub progress: Progress,
    pub settings: Settings,
}

impl Context {
    /// Connects to the engine at `url` (ssh://, tcp://, unix://), or the local one.
    pub async fn engine(&self, url: Option<&str>) -> Result<DockerEngine, EngineError> {
        DockerEngine::connect(url.or(self.settings.local_engine())).await
    }

    /// Connects to a host's engine and asks what it offers; any failure, a slow answer
    /// included, is an error naming the host.
    pub async fn host_engine(&self, host: &HostSpec) -> Result<(DockerEngine, EngineInfo), EngineError> {
        crate::deploy::hosts::connect(host).await
    }

    /// The cluster a command acts on, connected to the engines of all its hosts at once.
    /// The controller's host must answer, unless a backup controller runs on another
    /// host; other hosts that do not are kept as unreachable, so commands can still act
    /// on the rest and say what they missed.
    pub async fn cluster(&self, args: &ClusterName) -> miette::Result<Cluster> {
        self.connect(args, false).await
    }

    /// Like [`Context::cluster`], connected to the controller's host only (which also
    /// runs the login node): commands there need not wait for a host that is down.
    pub async fn cluster_controller(&self, args: &ClusterName) -> miette::Result<Cluster> {
        self.connect(args, true).await
    }

    async fn connect(&self, args: &ClusterName, controller_only: bool) -> miette::Result<Cluster> {
        let spec = load_spec(self, args)?;
        // With a backup controller on another host, the cluster goes on without the
        // primary's host, and so do the commands that look at it.
        let backup_elsewhere = matches!(spec.controller.backup, Some(crate::spec::BackupPlace::Host(_)));
        let (name, mut hosts) = (spec.name, spec.hosts);
        if hosts.is_empty() {
            let engine = Ok(self.engine(None).await?);
            return Ok(Cluster {
                name,
                hosts: vec![ClusterHost { name: "local".into(), url: None, engine }],
            });
        }
        if controller_only {
            hosts.truncate(1);
        }
        let engines = join_all(hosts.iter().map(|h| self.host_engine(h))).await;
        let mut connected = Vec::new();
        for (i, (host, engine)) in hosts.into_iter().zip(engines).enumerate() {
            let engine = match engine {
                Err(e) if i == 0 && (controller_only || !backup_elsewhere) => return Err(e.into()),
                other => other.map(|(engine, _)| engine),
            };
            connected.push(ClusterHost { name: host.name, url: Some(host.engine), engine });
        }
        Ok(Cluster { name, hosts: connected })
    }
}

/// Converges the cluster as `up` does and remembers it (its spec file and a copy of
/// the spec, so that `--name` finds it from any folder): the work `up`, `host add`,
/// `user add`/`remove` and `restore` share.
pub async fn converge(ctx: &Context, args: &UpArgs) -> miette::Result<Plan> {
    let spec = load_spec(ctx, &args.spec)?;
    let options = UpOptions {
        skip_unreachable: args.skip_unreachable,
        wait: Duration::from_secs(args.wait),
        sources: args.build.sources(spec.registry.as_deref()),
        local_engine: ctx.settings.local_engine().map(String::from),
        cache_dir: ctx.settings.cache_dir.clone(),
        drain_timeout: args.drain_timeout,
        requeue: args.requeue,
        now: args.now,
    };
    let plan = deploy::up(&spec, &options, &ctx.progress).await?;
    let text = spec_text(ctx, &args.spec, &spec);
    Registry::new(&ctx.settings).remember(&Entry::new(&spec, args.spec.file.as_deref(), text))?;
    Ok(plan)
}

/// What to run next, once a cluster is up, with the flag that names it.
pub fn next_steps(ctx: &Context, args: &ClusterName, cluster: &str) {
    let flag = match (&args.file, cluster) {
        (Some(file), _) => format!(" -f {}", file.display()),
        (None, crate::spec::DEFAULT_NAME) => String::new(),
        (None, name) => format!(" --name {name}"),
    };
    let p = &ctx.progress;
    p.say(format!("Cluster {cluster:?} is up. Next:"));
    p.say(format!("  slurmbox exec{flag} -- sinfo"));
    p.say(format!("  slurmbox verify{flag}"));
}

/// The text `up` remembers the cluster by (see [`crate::registry`]): its spec file's,
/// else the remembered copy, else just its name.
pub fn spec_text(ctx: &Context, args: &ClusterName, spec: &ClusterSpec) -> String {
    if let Some(text) = args.file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()) {
        return text;
    }
    Registry::new(&ctx.settings)
        .find(&spec.name)
        .map(|e| e.spec)
        .unwrap_or_else(|| format!("name = {}\n", toml_string(&spec.name)))
}

/// Reads the spec named by `-f`; without one, the spec of the cluster `--name` names
/// if this machine brought it up (wherever its hosts are), else the default cluster.
/// `--name` takes precedence over the spec's name.
pub fn load_spec(ctx: &Context, args: &ClusterName) -> miette::Result<ClusterSpec> {
    let remembered = match (&args.file, &args.name) {
        (None, Some(name)) => Registry::new(&ctx.settings).find(name),
        _ => None,
    };
    let mut spec = match (&args.file, remembered) {
        (Some(path), _) => ClusterSpec::load(path)?,
        (None, Some(entry)) => entry.load()?,
        (None, None) => ClusterSpec::default_cluster(),
    };
    if let Some(name) = &args.name {
        spec = ClusterSpec::parse("--name", &format!("name = {}", toml_string(name)))
            .map(|named| ClusterSpec { name: named.name, ..spec })?;
    }
    Ok(spec)
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn exit_code(code: i64) -> std::process::ExitCode {
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
