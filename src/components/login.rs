//! The login node: where users run `sbatch`, `srun` and `sinfo`. It runs munged and
//! sackd, which fetches the controller's files (configless); on a host's network,
//! where sackd would take the compute node's port, it gets its own copy of the files
//! and runs no Slurm daemon.

use super::{Config, Layout, NodeContainer, home, munge};
use crate::plan::{Plan, Role};

pub fn add(layout: &Layout, config: &Config, plan: &mut Plan) {
    plan.containers.push(layout.node_container(
        config,
        NodeContainer {
            placed: &layout.login,
            role: Role::Login,
            mounts: vec![munge::mount(layout, true), home::mount(layout)],
            env: vec![],
            files: if layout.on_host_network { config.slurm_files() } else { vec![] },
        },
    ));
}
