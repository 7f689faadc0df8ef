//! `slurmbox status`: each host (reachable or not, its engine, its nodes, whether its
//! nodes have the GlusterFS /home), that volume's bricks, and each node's container
//! state and Slurm state.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use futures_util::future::join_all;

use super::Context;
use crate::actions::node_states;
use crate::cli::StatusArgs;
use crate::engine::{ContainerInfo, Engine, ExecSpec};
use crate::plan::{LABEL_NODE, LABEL_ROLE, Role, STORAGE_PATH, runs_on_host};

#[derive(Debug, serde::Serialize)]
pub struct HostStatus {
    pub host: String,
    /// The engine's address ("local" for the local engine).
    pub engine: String,
    pub reachable: bool,
    /// Why it could not be reached.
    pub error: Option<String>,
    /// Docker version and CPU architecture, as its engine reports them.
    pub docker_version: Option<String>,
    pub arch: Option<String>,
    /// Images the cluster's containers there run.
    pub images: Vec<String>,
    pub nodes: Vec<String>,
    /// With a GlusterFS /home: whether its storage container has the volume mounted
    /// for the host's nodes (null without one, or when it cannot be asked).
    pub home_mounted: Option<bool>,
}

/// The GlusterFS /home's volume, as the first host's storage container reports it.
#[derive(Debug, Default, serde::Serialize)]
pub struct SharedHomeStatus {
    /// "Started", "Stopped", or "none" before the first `up` made it.
    pub volume: String,
    pub bricks: u32,
    /// Bricks whose server runs and answers.
    pub online: u32,
    /// Files a brick still lacks, which self-heal will copy there.
    pub heal_pending: u32,
    /// Files whose copies disagree and which GlusterFS cannot settle by itself.
    pub split_brain: u32,
}

#[derive(Debug, serde::Serialize)]
pub struct NodeStatus {
    /// The spec's name of the host the node runs on ("local" for the local engine).
    pub host: String,
    pub node: String,
    pub role: String,
    /// Null for a node on a host that did not answer.
    pub container: Option<String>,
    pub container_state: String,
    pub container_status: String,
    /// Slurm's state for compute nodes ("idle", "down*", ...); null for the others or
    /// when the controller cannot be asked.
    pub slurm_state: Option<String>,
}

pub async fn run(ctx: &Context, args: StatusArgs) -> miette::Result<ExitCode> {
    let handle = ctx.cluster(&args.cluster).await?;
    let cluster = handle.name.clone();
    let containers = handle.containers().await?;
    let controller = containers.iter().find(|c| {
        c.labels.get(LABEL_ROLE).map(String::as_str) == Some(Role::Controller.as_str()) && c.running()
    });
    let states = match controller {
        Some(c) => node_states(handle.engine(c), &c.name).await.unwrap_or_default(),
        None => Default::default(),
    };
    let mut nodes: Vec<NodeStatus> = containers
        .iter()
        .map(|c| {
            let node = c.labels.get(LABEL_NODE).cloned().unwrap_or_default();
            NodeStatus {
                host: handle.hosts[c.host].name.clone(),
                slurm_state: states.get(&node).cloned(),
                role: c.labels.get(LABEL_ROLE).cloned().unwrap_or_default(),
                node,
                container: Some(c.name.clone()),
                container_state: c.state.clone(),
                container_status: c.status.clone(),
            }
        })
        .collect();
    // Nodes on hosts that did not answer, as far as Slurm knows them (over several
    // hosts compute nodes are named after their host).
    for (host, _) in handle.unreachable() {
        for (node, state) in states.iter().filter(|(n, _)| runs_on_host(n, &host.name)) {
            nodes.push(NodeStatus {
                host: host.name.clone(),
                node: node.clone(),
                role: Role::Compute.as_str().into(),
                container: None,
                container_state: "unknown".into(),
                container_status: "host unreachable".into(),
                slurm_state: Some(state.clone()),
            });
        }
    }

    // With a GlusterFS /home, each running storage container says whether its host has
    // the volume mounted; the first one also reports on the volume.
    let storage: Vec<&ContainerInfo> = containers
        .iter()
        .filter(|c| {
            c.labels.get(LABEL_ROLE).map(String::as_str) == Some(Role::Storage.as_str()) && c.running()
        })
        .collect();
    let first = storage.iter().map(|c| c.host).min();
    let handle = &handle;
    let storage = join_all(storage.into_iter().map(|c| async move {
        let mut cmd = ExecSpec::new([STORAGE_PATH, "status"]);
        if Some(c.host) == first {
            cmd.cmd.push("--volume".into());
        }
        let out = handle.engine(c).exec(&c.name, &cmd).await;
        let report: BTreeMap<String, String> = out
            .ok()
            .filter(|o| o.ok())
            .map(|o| {
                o.stdout
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        (c.host, report)
    }))
    .await;
    let shared_home =
        storage.iter().find(|(host, r)| Some(*host) == first && r.contains_key("volume")).map(|(_, r)| {
            let number = |key: &str| r.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
            SharedHomeStatus {
                volume: r.get("volume").cloned().unwrap_or_default(),
                bricks: number("bricks"),
                online: number("online"),
                heal_pending: number("heal_pending"),
                split_brain: number("split_brain"),
            }
        });

    let infos = join_all(handle.hosts.iter().map(|h| async {
        match &h.engine {
            Ok(engine) => Some(engine.info().await),
            Err(_) => None,
        }
    }))
    .await;
    let hosts: Vec<HostStatus> = handle
        .hosts
        .iter()
        .zip(infos)
        .enumerate()
        .map(|(i, (h, info))| {
            let info = info.and_then(Result::ok);
            let images: BTreeSet<String> =
                containers.iter().filter(|c| c.host == i).map(|c| c.image.clone()).collect();
            HostStatus {
                host: h.name.clone(),
                engine: h.url.clone().unwrap_or_else(|| "local".into()),
                reachable: h.engine.is_ok(),
                error: h.engine.as_ref().err().map(ToString::to_string),
                docker_version: info.as_ref().map(|i| i.version.clone()),
                arch: info.as_ref().map(|i| i.arch.clone()),
                images: images.into_iter().collect(),
                nodes: nodes.iter().filter(|n| n.host == h.name).map(|n| n.node.clone()).collect(),
                home_mounted: storage
                    .iter()
                    .find(|(host, _)| *host == i)
                    .and_then(|(_, r)| r.get("mounted"))
                    .map(|m| m == "yes"),
            }
        })
        .collect();

    if args.json {
        let doc = serde_json::json!({
            "cluster": cluster,
            "hosts": hosts,
            "nodes": nodes,
            "shared_home": shared_home,
        });
        println!("{}", serde_json::to_string_pretty(&doc).expect("status serializes"));
        return Ok(ExitCode::SUCCESS);
    }
    println!("cluster {cluster}");
    if hosts.len() > 1 || hosts.iter().any(|h| h.engine != "local") {
        let mut table = Table::new();
        table.load_style(UTF8_BORDERS_ONLY).set_header([
            "HOST",
            "ENGINE",
            "REACHABLE",
            "DOCKER",
            "IMAGE",
            "NODES",
            "HOME",
        ]);
        for h in &hosts {
            let docker = match (&h.docker_version, &h.arch) {
                (Some(v), Some(a)) => format!("{v} ({a})"),
                _ => "-".into(),
            };
            table.add_row([
                h.host.clone(),
                h.engine.clone(),
                match &h.error {
                    None => "yes".into(),
                    Some(e) => format!("NO: {e}"),
                },
                docker,
                if h.images.is_empty() { "-".into() } else { h.images.join(", ") },
                h.nodes.join(", "),
                match h.home_mounted {
                    Some(true) => "mounted".into(),
                    Some(false) => "NOT mounted".into(),
                    None => "-".into(),
                },
            ]);
        }
        println!("{table}");
    }
    if let Some(home) = &shared_home {
        println!(
            "shared /home: GlusterFS volume {}, {} of {} bricks online, {} files waiting for self-heal, {} in split-brain",
            home.volume.to_lowercase(),
            home.online,
            home.bricks,
            home.heal_pending,
            home.split_brain
        );
    }
    let mut table = Table::new();
    table.load_style(UTF8_BORDERS_ONLY).set_header(["NODE", "HOST", "ROLE", "SLURM", "CONTAINER", "STATUS"]);
    for n in &nodes {
        table.add_row([
            n.node.as_str(),
            n.host.as_str(),
            n.role.as_str(),
            n.slurm_state.as_deref().unwrap_or("-"),
            n.container_state.as_str(),
            n.container_status.as_str(),
        ]);
    }
    println!("{table}");
    Ok(ExitCode::SUCCESS)
}
