//! `slurmbox list`: the clusters this machine brought up (see [`crate::registry`]),
//! each with its Slurm version, hosts and spec file. What runs is `status`'s to say.

use std::process::ExitCode;

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};

use super::Context;
use crate::cli::ListArgs;
use crate::registry::Registry;

pub async fn run(ctx: &Context, args: ListArgs) -> miette::Result<ExitCode> {
    let clusters = Registry::new(&ctx.settings).list();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&clusters).expect("entries serialize"));
        return Ok(ExitCode::SUCCESS);
    }
    if clusters.is_empty() {
        ctx.progress.say("No clusters yet: `slurmbox up` brings one up.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new();
    table.load_style(UTF8_BORDERS_ONLY).set_header(["NAME", "SLURM", "HOSTS", "SPEC"]);
    for c in &clusters {
        table.add_row([
            c.name.clone(),
            c.slurm.clone(),
            if c.hosts.is_empty() { "local".into() } else { c.hosts.join(", ") },
            c.spec_file.as_ref().map_or("-".into(), |p| p.display().to_string()),
        ]);
    }
    println!("{table}");
    Ok(ExitCode::SUCCESS)
}
