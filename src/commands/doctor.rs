//! `slurmbox doctor`: what each compute node really enforces. Every host's engine is
//! asked what it offers (cgroup version, driver, rootless, AppArmor) and every running
//! compute node what slurmd runs with ([`limits::PROBE`]); [`limits::judge`] turns that
//! into a line per limit: held or not, and where not, why and what would change it.

use std::process::ExitCode;

use futures_util::future::join_all;

use super::Context;
use crate::cli::DoctorArgs;
use crate::components::controller;
use crate::components::gpus::GpuHost;
use crate::components::limits::{self, CgroupHost, NodeLimits, NodeReport};
use crate::engine::{Engine, ExecSpec};
use crate::plan::{LABEL_GPUS, LABEL_NODE, LABEL_ROLE, Role};

#[derive(Debug, serde::Serialize)]
struct Report {
    cluster: String,
    /// The cluster's decision, as `up` printed it.
    limits: String,
    hosts: Vec<HostReport>,
    nodes: Vec<NodeDoctor>,
    /// After an unclean stop of the controller: what may be lost, and what to check.
    controller: Option<String>,
}

#[derive(Debug, serde::Serialize)]
struct HostReport {
    host: String,
    /// "cgroup v1, cgroupfs driver", or why the engine could not be asked.
    cgroup: String,
    /// "cgroup/v1" where limits can be enforced, else why not.
    can_enforce: Result<String, String>,
    /// Its compute nodes' GPUs (model, or device files), or those its engine offers.
    gpus: Option<String>,
}

#[derive(Debug, serde::Serialize)]
struct NodeDoctor {
    node: String,
    host: String,
    /// The node's limits, or why its container could not be asked.
    limits: Result<NodeLimits, String>,
}

pub async fn run(ctx: &Context, args: DoctorArgs) -> miette::Result<ExitCode> {
    let spec = super::load_spec(ctx, &args.cluster)?;
    let handle = ctx.cluster(&args.cluster).await?;
    let containers = handle.containers().await?;

    let infos = join_all(handle.hosts.iter().map(|h| async {
        match &h.engine {
            Ok(engine) => engine
                .info()
                .await
                .map(|i| (CgroupHost::from_engine(&i), GpuHost::from_engine(&i)))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }))
    .await;
    let hosts: Vec<HostReport> = handle
        .hosts
        .iter()
        .zip(&infos)
        .enumerate()
        .map(|(i, (h, info))| HostReport {
            host: h.name.clone(),
            cgroup: match info {
                Ok((c, _)) => c.describe(),
                Err(e) => format!("not asked: {e}"),
            },
            can_enforce: match info {
                Ok((c, _)) => c.plugin().map(|p| p.to_string()),
                Err(_) => Err("its engine did not answer".into()),
            },
            // What its compute nodes were given (the model where known), else what its
            // engine offers.
            gpus: {
                let given: Vec<String> = containers
                    .iter()
                    .filter(|c| c.host == i)
                    .filter_map(|c| {
                        Some(format!("{}: {}", c.labels.get(LABEL_NODE)?, c.labels.get(LABEL_GPUS)?))
                    })
                    .collect();
                match given.is_empty() {
                    false => Some(given.join("; ")),
                    true => info
                        .as_ref()
                        .ok()
                        .and_then(|(_, g)| g.describe(spec.gpu_devices(i), spec.engine_gpus(i))),
                }
            },
        })
        .collect();
    let answered: Vec<(String, CgroupHost)> = handle
        .hosts
        .iter()
        .zip(&infos)
        .filter_map(|(h, i)| i.as_ref().ok().map(|(c, _)| (h.name.clone(), c.clone())))
        .collect();
    let decision = limits::decide(spec.compute.limits, &answered);

    let compute: Vec<_> = containers
        .iter()
        .filter(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some(Role::Compute.as_str()))
        .collect();
    let handle = &handle;
    let nodes = join_all(compute.iter().map(|c| {
        let neighbours = compute.iter().filter(|o| o.host == c.host).count() - 1;
        async move {
            let limits = if !c.running() {
                Err(format!("its container is {}", c.state))
            } else {
                match handle.engine(c).exec(&c.name, &ExecSpec::shell(limits::PROBE)).await {
                    Ok(out) if out.ok() => Ok(limits::judge(&NodeReport::parse(&out.stdout), neighbours)),
                    Ok(out) => Err(format!("the probe failed (exit {}): {}", out.code, out.stderr.trim())),
                    Err(e) => Err(e.to_string()),
                }
            };
            NodeDoctor {
                node: c.labels.get(LABEL_NODE).cloned().unwrap_or_default(),
                host: handle.hosts[c.host].name.clone(),
                limits,
            }
        }
    }))
    .await;
    let ctld = containers.iter().find(|c| {
        c.running() && c.labels.get(LABEL_ROLE).map(String::as_str) == Some(Role::Controller.as_str())
    });
    let controller = match ctld {
        Some(c) => controller::unclean_start(handle.engine(c), &c.name).await,
        None => None,
    }
    .map(|at| controller::unclean_start_advice(&at));
    let report =
        Report { cluster: handle.name.clone(), limits: decision.summary(), hosts, nodes, controller };

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("the report serializes"));
        return Ok(ExitCode::SUCCESS);
    }
    println!("cluster {}", report.cluster);
    println!("limits: {}", report.limits);
    for h in &report.hosts {
        match &h.can_enforce {
            Ok(plugin) => println!("host {}: {}: limits can be enforced ({plugin})", h.host, h.cgroup),
            Err(why) => println!("host {}: {}: limits cannot be enforced: {why}", h.host, h.cgroup),
        }
        if let Some(gpus) = &h.gpus {
            println!("host {}: {gpus}", h.host);
        }
    }
    for n in &report.nodes {
        println!("node {} (host {})", n.node, n.host);
        match &n.limits {
            Ok(l) => {
                println!("  memory     {}", l.memory.detail);
                println!("  cores      {}", l.cores.detail);
                println!("  processes  {}", l.processes.detail);
                if let Some(gpus) = &l.gpus {
                    println!("  gpus       {}", gpus.detail);
                }
            }
            Err(e) => println!("  could not be asked: {e}"),
        }
    }
    if let Some(advice) = &report.controller {
        println!("controller: {advice}");
    }
    if let limits::Limits::Off { .. } = decision {
        println!(
            "What would change it: a host whose Docker engine runs as root on cgroup v1 or v2 (most Linux \
             hosts); see the README's \"Limits\" section."
        );
    }
    Ok(ExitCode::SUCCESS)
}
