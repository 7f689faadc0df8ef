//! `slurmbox config render`: the generated Slurm files, without starting anything.

use std::process::ExitCode;

use super::Context;
use crate::cli::ConfigCommand;
use crate::engine::Engine;
use crate::plan::{HostFacts, Plan};
use crate::spec::Arch;

pub async fn run(ctx: &Context, cmd: ConfigCommand) -> miette::Result<ExitCode> {
    let ConfigCommand::Render(args) = cmd;
    let spec = super::up::load_spec(&args.spec)?;
    // Node sizes default to a share of the Docker host, so ask it.
    let engine = ctx.engine(spec.engine()).await?;
    let info = engine.info().await?;
    let arch = Arch::parse(&info.arch).unwrap_or(Arch::native());
    let image = crate::image::Recipe::new(spec.slurm, arch).tag();
    let storage_image = Some(crate::image::Recipe::storage(arch).tag());
    let facts = HostFacts { cpus: info.cpus, memory_mib: info.memory_mib, arch, image, storage_image };
    // Every host is assumed to look like the controller's here; `up` asks each one.
    let facts = vec![facts; spec.hosts.len().max(1)];
    let plan = Plan::new(&spec, &facts);
    for file in plan.slurm_files() {
        println!("# ---- {} (controller; nodes fetch it) ----", file.path);
        print!("{}", file.contents);
    }
    println!("# ---- compute nodes register with (slurmd -Z --conf) ----");
    println!("{}", plan.node_conf);
    Ok(ExitCode::SUCCESS)
}
