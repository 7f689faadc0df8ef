//! The controller: slurmctld in its own container on the controller's host, its state
//! on a volume (queued jobs survive `down` and `up`), holding slurm.conf and
//! cgroup.conf, which the other nodes fetch from it (configless).

use std::time::Duration;

use super::{Config, Layout, NodeContainer, home, munge};
use crate::actions;
use crate::deploy::{Apply, DeployError};
use crate::plan::{
    COMPUTE_FEATURE, ContainerPlan, MAX_NODES, MountPlan, MountSource, Plan, Role, VolumePlan,
};
use crate::render::{self, CgroupConf, NodeSetDef, PartitionDef, SlurmConf};

/// slurm.conf before other parts add to it.
pub fn slurm_conf(layout: &Layout) -> SlurmConf {
    SlurmConf {
        cluster_name: layout.cluster.clone(),
        controller_host: layout.controller.name.clone(),
        controller_addr: layout.controller_addr.clone(),
        max_node_count: MAX_NODES,
        node_sets: vec![NodeSetDef { name: COMPUTE_FEATURE.into(), feature: COMPUTE_FEATURE.into() }],
        partitions: vec![PartitionDef { name: "debug".into(), nodes: COMPUTE_FEATURE.into(), default: true }],
        slurmd_timeout: 20,
        cgroups: false,
        def_mem_per_cpu: None,
        gres_types: vec![],
        accounting: None,
        site: layout.spec.slurm_conf.clone(),
    }
}

/// cgroup.conf before the limits part decides (see [`super::limits`]).
pub fn cgroup_conf() -> CgroupConf {
    CgroupConf::disabled()
}

pub fn add(layout: &Layout, config: &Config, plan: &mut Plan) {
    let state_vol = format!("{}-state", layout.cluster);
    plan.volumes.push(VolumePlan {
        host: layout.controller.host,
        name: state_vol.clone(),
        labels: layout.labels(&[]),
    });
    let state = MountPlan {
        source: MountSource::Volume(state_vol),
        target: render::STATE_SAVE_LOCATION.into(),
        read_only: false,
        propagation: None,
    };
    plan.containers.push(layout.node_container(
        config,
        NodeContainer {
            placed: &layout.controller,
            role: Role::Controller,
            mounts: vec![munge::mount(layout, false), state, home::mount(layout)],
            env: vec![],
            files: config.slurm_files(),
        },
    ));
}

/// A new controller container may not know compute nodes that kept running: dynamic
/// nodes live in its saved state, and a crash loses whatever was not saved yet. Have
/// them register again.
pub async fn after_start<E: crate::engine::Engine>(apply: &mut Apply<'_, E>) -> Result<(), DeployError> {
    let controller = apply.plan.controller();
    if !apply.touched(&controller.name) {
        return Ok(());
    }
    let kept: Vec<&ContainerPlan> =
        apply.plan.containers.iter().filter(|c| c.role == Role::Compute && !apply.touched(&c.name)).collect();
    if kept.is_empty() {
        return Ok(());
    }
    let step =
        apply.progress.step(format!("Registering {} running nodes with the new controller", kept.len()));
    actions::wait_for_controller(apply.control(), &controller.name, Duration::from_secs(60)).await?;
    actions::reregister_nodes(apply.engines, &controller.name, &kept).await?;
    step.done();
    Ok(())
}
