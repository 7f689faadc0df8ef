//! `slurmbox doctor`: what each compute node really enforces. Every host's engine is
//! asked what it offers (cgroup version, driver, rootless, AppArmor) and every running
//! compute node what slurmd runs with; the parts of the cluster (limits, GPUs, the
//! controller) each say their share ([`crate::status::doctor`]). Printed here as a line
//! per limit: held or not, and where not, why and what would change it.

use std::process::ExitCode;

use super::Context;
use crate::cli::DoctorArgs;
use crate::status;

pub async fn run(ctx: &Context, args: DoctorArgs) -> miette::Result<ExitCode> {
    let spec = super::load_spec(ctx, &args.cluster)?;
    let handle = ctx.cluster(&args.cluster).await?;
    let report = status::doctor(&handle, &spec).await?;

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
    match &report.state_storage {
        Some(Ok(fine)) => println!("controllers' state: {fine}"),
        Some(Err(wrong)) => println!("controllers' state: PROBLEM: {wrong}"),
        None => {}
    }
    if let Some(advice) = &report.controller {
        println!("controller: {advice}");
    }
    if report.limits_off {
        println!(
            "What would change it: a host whose Docker engine runs as root on cgroup v1 or v2 (most Linux \
             hosts); see the README's \"Limits\" section."
        );
    }
    Ok(ExitCode::SUCCESS)
}
