//! `slurmbox status`: prints what [`crate::status::gather`] found (each host, reachable
//! or not, its engine, its nodes, whether its nodes have the GlusterFS /home; that
//! volume's bricks; each node's container state and Slurm state; the jobs in the
//! queue) as tables or JSON.

use std::process::ExitCode;

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};

use super::Context;
use crate::cli::StatusArgs;
use crate::status::gather;

pub async fn run(ctx: &Context, args: StatusArgs) -> miette::Result<ExitCode> {
    let handle = ctx.cluster(&args.cluster).await?;
    let status = gather(&handle).await?;
    let (cluster, hosts, nodes, shared_home) =
        (&status.cluster, &status.hosts, &status.nodes, &status.shared_home);

    if args.json {
        println!("{}", serde_json::to_string_pretty(&status).expect("status serializes"));
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
        for h in hosts {
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
    if let Some(home) = shared_home {
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
    table.load_style(UTF8_BORDERS_ONLY).set_header([
        "NODE",
        "HOST",
        "ROLE",
        "SLURM",
        "CONTAINER",
        "STATUS",
        "GPUS",
    ]);
    for n in nodes {
        table.add_row([
            n.node.as_str(),
            n.host.as_str(),
            n.role.as_str(),
            n.slurm_state.as_deref().unwrap_or("-"),
            n.container_state.as_str(),
            n.container_status.as_str(),
            n.gres.as_deref().unwrap_or("-"),
        ]);
    }
    println!("{table}");
    for n in nodes {
        if let Some(change) = &n.waiting_for_change {
            println!(
                "{}: waiting for a change ({change}): draining until its jobs end; the next `slurmbox up` makes it",
                n.node
            );
        }
    }
    println!("{}", limits_line(nodes));
    if status.slurm_error.is_none() {
        println!("{}", jobs_line(&status.jobs));
    }
    if let Some(port) = nodes.iter().find_map(|n| n.ssh_port) {
        println!(
            "ssh logins: port {port} of the controller's host (`slurmbox ssh-config USER` prints a user's block)"
        );
    }
    if let Some(url) = &status.rest_url {
        println!("REST API: {url} (`slurmbox token USER` prints a user's token)");
    }
    if let Some(url) = &status.web_url {
        println!("dashboard: {url} (log in with `web-login` on the login node)");
    }
    if let Some(metrics) = &status.metrics {
        println!("{}", crate::components::metrics::status_line(metrics));
    }
    print_controllers(&status);
    // What could not be asked, on stderr, so the tables read the same either way.
    let p = &ctx.progress;
    if let Some(e) = &status.slurm_error {
        p.say(format!("Slurm states unknown: {e}"));
    }
    for h in hosts {
        for e in [&h.info_error, &h.home_error].into_iter().flatten() {
            p.say(format!("host {}: {e}", h.host));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// With a backup, which controller is in charge; after an unclean start, what it may
/// have cost.
fn print_controllers(status: &crate::cluster::report::ClusterStatus) {
    if status.controllers.len() > 1 {
        println!("{}", crate::components::controller::status_line(&status.controllers));
    }
    if let Some(at) = &status.controller_unclean_start {
        println!("note: {}", crate::components::controller::unclean_start_advice(at));
    }
}

/// One line on the queue: "jobs: 2 running (alice, bob), 5 pending".
fn jobs_line(jobs: &[crate::cluster::report::JobStatus]) -> String {
    if jobs.is_empty() {
        return "jobs: none in the queue".into();
    }
    let mut by: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> = Default::default();
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for j in jobs {
        by.entry(&j.state).or_default().insert(&j.user);
        *counts.entry(&j.state).or_default() += 1;
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(state, n)| {
            let users: Vec<&str> = by[state].iter().copied().collect();
            format!("{n} {} ({})", state.to_lowercase(), users.join(", "))
        })
        .collect();
    format!("jobs: {} (`--json` lists each)", parts.join(", "))
}

/// One line on what confines the compute nodes' jobs, from what they were made with.
fn limits_line(nodes: &[crate::cluster::report::NodeStatus]) -> String {
    let mut by: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for n in nodes.iter().filter(|n| n.role == "compute") {
        by.entry(n.limits.as_deref().unwrap_or("unknown")).or_default().push(&n.node);
    }
    let parts: Vec<String> = by
        .iter()
        .map(|(limits, nodes)| match *limits {
            "off" => format!("NOT enforced on {} (`slurmbox doctor` says why)", nodes.join(", ")),
            "unknown" => format!("unknown on {} (their host did not answer)", nodes.join(", ")),
            plugin => format!("enforced by {plugin} on {}", nodes.join(", ")),
        })
        .collect();
    format!(
        "limits (memory, cores, processes): {}",
        if parts.is_empty() { "no compute nodes".into() } else { parts.join("; ") }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::report::NodeStatus;

    fn node(name: &str, role: &str, limits: Option<&str>) -> NodeStatus {
        NodeStatus {
            host: "pi1".into(),
            node: name.into(),
            role: role.into(),
            container: None,
            container_state: "running".into(),
            container_status: "Up".into(),
            slurm_state: None,
            waiting_for_change: None,
            limits: limits.map(String::from),
            gres: None,
            gpus: None,
            ssh_port: None,
        }
    }

    #[test]
    fn the_limits_line_groups_nodes_by_what_confines_them() {
        let nodes = [
            node("controller", "controller", None),
            node("pi1", "compute", Some("cgroup/v2")),
            node("pi2", "compute", Some("cgroup/v2")),
            node("pi3", "compute", None),
        ];
        assert_eq!(
            limits_line(&nodes),
            "limits (memory, cores, processes): enforced by cgroup/v2 on pi1, pi2; unknown on pi3 (their host did not answer)"
        );
        assert_eq!(
            limits_line(&[node("node1", "compute", Some("off"))]),
            "limits (memory, cores, processes): NOT enforced on node1 (`slurmbox doctor` says why)"
        );
    }

    #[test]
    fn the_jobs_line_counts_jobs_by_state_with_their_users() {
        let job = |id, user: &str, state: &str| crate::cluster::report::JobStatus {
            id,
            name: "wrap".into(),
            user: user.into(),
            partition: "main".into(),
            state: state.into(),
            reason: None,
            nodes: vec![],
        };
        assert_eq!(jobs_line(&[]), "jobs: none in the queue");
        assert_eq!(
            jobs_line(&[job(1, "bob", "RUNNING"), job(2, "alice", "PENDING"), job(3, "alice", "RUNNING")]),
            "jobs: 1 pending (alice), 2 running (alice, bob) (`--json` lists each)"
        );
    }
}
