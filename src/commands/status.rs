//! `slurmbox status`: each node's container state and Slurm state.

use std::process::ExitCode;

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};

use super::Context;
use crate::actions::node_states;
use crate::cli::StatusArgs;
use crate::plan::{LABEL_NODE, LABEL_ROLE, Role};

#[derive(Debug, serde::Serialize)]
pub struct NodeStatus {
    /// The spec's name of the host the node runs on ("local" for the local engine).
    pub host: String,
    pub node: String,
    pub role: String,
    pub container: String,
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
    let nodes: Vec<NodeStatus> = containers
        .iter()
        .map(|c| {
            let node = c.labels.get(LABEL_NODE).cloned().unwrap_or_default();
            NodeStatus {
                host: handle.hosts[c.host].clone(),
                slurm_state: states.get(&node).cloned(),
                role: c.labels.get(LABEL_ROLE).cloned().unwrap_or_default(),
                node,
                container: c.name.clone(),
                container_state: c.state.clone(),
                container_status: c.status.clone(),
            }
        })
        .collect();
    if args.json {
        let doc = serde_json::json!({ "cluster": cluster, "nodes": nodes });
        println!("{}", serde_json::to_string_pretty(&doc).expect("status serializes"));
    } else {
        let mut table = Table::new();
        table.load_style(UTF8_BORDERS_ONLY).set_header([
            "NODE",
            "HOST",
            "ROLE",
            "SLURM",
            "CONTAINER",
            "STATUS",
        ]);
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
        println!("cluster {cluster}\n{table}");
    }
    Ok(ExitCode::SUCCESS)
}
