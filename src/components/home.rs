//! The shared /home every Slurm node mounts: a volume on one engine, a folder every
//! host shares (`[home] host_path`, e.g. an NFS mount), or the GlusterFS volume each
//! host's storage container mounts (see [`super::glusterfs`]).

use super::{Config, Layout};
use crate::contract;
use crate::plan::{MountPlan, MountSource, Plan, Propagation, SHARED_HOME_DIR, VolumePlan};
use crate::spec::HomeSpec;

fn volume(layout: &Layout) -> String {
    format!("{}-home", layout.cluster)
}

/// Where /home comes from on each host.
pub fn source(layout: &Layout) -> MountSource {
    match &layout.spec.home {
        HomeSpec::Volume => MountSource::Volume(volume(layout)),
        HomeSpec::HostPath(p) => MountSource::HostPath(p.display().to_string()),
        HomeSpec::GlusterFs => MountSource::HostPath(SHARED_HOME_DIR.replace("<cluster>", &layout.cluster)),
    }
}

/// /home as a node sees it. The GlusterFS volume is mounted on the host after the
/// node starts: it reaches the node through mount propagation.
pub fn mount(layout: &Layout) -> MountPlan {
    MountPlan {
        source: source(layout),
        target: "/home".into(),
        read_only: false,
        propagation: (layout.spec.home == HomeSpec::GlusterFs).then_some(Propagation::Slave),
    }
}

/// Nodes wait for the GlusterFS mount before starting their daemons.
pub fn configure(layout: &Layout, config: &mut Config) {
    if layout.spec.home == HomeSpec::GlusterFs {
        config
            .node_env
            .push(contract::env::var(contract::env::SHARED_HOME, contract::env::SHARED_HOME_GLUSTERFS));
    }
}

pub fn add(layout: &Layout, plan: &mut Plan) {
    if layout.spec.home == HomeSpec::Volume {
        plan.volumes.push(VolumePlan { host: 0, name: volume(layout), labels: layout.labels(&[]) });
    }
}
