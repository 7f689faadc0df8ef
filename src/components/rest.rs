//! Slurm's REST API (`[rest]`): Debian's slurmrestd in its own container (`NAME-rest`,
//! host name `rest`) on the controller's host, taking JWT tokens only, published there
//! on `[rest] port` (6820, or the next one free when another cluster has it).
//!
//! Tokens are signed with the cluster's JWT key: made once on the controller from the
//! kernel's RNG (`slurmbox-jwt`, before slurmctld starts) into the `NAME-jwt` volume,
//! which slurmctld's and slurmdbd's containers alone mount. slurm.conf and
//! slurmdbd.conf accept tokens beside munge (`AuthAltTypes=auth/jwt`); only slurmctld
//! and slurmdbd load that plugin, so compute and login nodes keep the node image. A
//! researcher gets a token with Slurm's own `scontrol token` on the login node, the
//! admin one for anybody with `slurmbox token USER`.

use super::{Config, Layout};
use crate::contract;
use crate::plan::{
    ContainerPlan, LABEL_NODE, LABEL_REST_PORT, LABEL_ROLE, MountPlan, MountSource, Plan, PlannedFile,
    PortPlan, Role, VolumePlan,
};

/// slurmrestd's host name on the cluster's network.
pub const REST_HOST: &str = "rest";
/// The port slurmrestd listens on inside its container on the cluster's network.
pub const REST_CONTAINER_PORT: u16 = 6820;
/// The folder of the JWT key in the containers that mount it.
pub const JWT_DIR: &str = "/var/lib/slurmbox/jwt";
/// The key itself (slurm.conf's and slurmdbd.conf's `AuthAltParameters=jwt_key=`).
pub const JWT_KEY: &str = "/var/lib/slurmbox/jwt/jwt_hs256.key";

/// The key's script, prefixed to the controller's and slurmdbd's commands
/// (assets/slurmbox-jwt.sh).
pub const JWT_SCRIPT: &str = include_str!("../../assets/slurmbox-jwt.sh");
pub const JWT_PATH: &str = "/usr/local/sbin/slurmbox-jwt";
/// The REST container's main process (assets/slurmbox-rest.sh).
pub const REST_SCRIPT: &str = include_str!("../../assets/slurmbox-rest.sh");
pub const REST_PATH: &str = "/usr/local/sbin/slurmbox-rest";
/// What slurmbox-rest reads: the address and port slurmrestd listens on.
pub const ENV_LISTEN: &str = "SLURMBOX_REST_LISTEN";

/// Tokens are accepted beside munge, where the cluster has its REST API.
pub fn configure(layout: &Layout, config: &mut Config) {
    if layout.spec.rest.enabled {
        config.slurm_conf.jwt_key = Some(JWT_KEY.into());
    }
}

fn jwt_volume(layout: &Layout) -> String {
    format!("{}-jwt", layout.cluster)
}

/// The JWT key's volume, and the controllers and slurmdbd (added by their parts
/// before this one) given it; then slurmrestd's own container.
pub fn add(layout: &Layout, config: &Config, plan: &mut Plan) {
    if !layout.spec.rest.enabled {
        return;
    }
    let volume = jwt_volume(layout);
    let host = layout.controller().host;
    plan.volumes.push(VolumePlan { host, name: volume.clone(), labels: layout.labels(&[]) });
    for c in plan.containers.iter_mut() {
        let mode = match c.role {
            Role::Controller => "make",
            Role::Dbd => "wait",
            _ => continue,
        };
        c.mounts.push(MountPlan {
            source: MountSource::Volume(volume.clone()),
            target: JWT_DIR.into(),
            read_only: c.role == Role::Dbd,
            propagation: None,
        });
        c.files.push(PlannedFile { path: JWT_PATH.into(), mode: 0o755, contents: JWT_SCRIPT.into() });
        c.command.splice(0..0, [JWT_PATH.to_string(), mode.to_string()]);
    }
    plan.containers.push(container(layout, config));
}

/// slurmrestd's container: the controller's image (it has slurmrestd), slurm.conf, no
/// key of any kind; only the capabilities to drop to its account.
fn container(layout: &Layout, config: &Config) -> ContainerPlan {
    let host = layout.controller().host;
    let facts = &layout.facts[host];
    let port = facts.rest_port;
    let address = layout.spec.rest.address.map_or("0.0.0.0".to_string(), |a| a.to_string());
    // On a host's network slurmrestd listens on the host itself, where the spec says;
    // on the cluster's network on its own port, published on the host.
    let listen = match layout.on_host_network {
        true => format!("{address}:{port}"),
        false => format!("0.0.0.0:{REST_CONTAINER_PORT}"),
    };
    let mut files = config.slurm_files();
    files.push(PlannedFile { path: REST_PATH.into(), mode: 0o755, contents: REST_SCRIPT.into() });
    let mut labels = layout.labels(&[(LABEL_ROLE, Role::Rest.as_str()), (LABEL_NODE, REST_HOST)]);
    labels.insert(LABEL_REST_PORT.into(), port.to_string());
    ContainerPlan {
        host,
        name: format!("{}-{REST_HOST}", layout.cluster),
        hostname: REST_HOST.into(),
        role: Role::Rest,
        image: facts.controller_image.clone().unwrap_or_else(|| facts.image.clone()),
        command: vec![REST_PATH.into()],
        env: vec![contract::env::var(ENV_LISTEN, &listen)],
        mounts: vec![],
        // slurmrestd starts as root only to drop to its own account (-u, -g).
        cap_add: vec!["SETUID".into(), "SETGID".into()],
        network: layout.network.clone(),
        ip: None,
        files,
        labels,
        devices: vec![],
        security_opt: vec![],
        cgroupns_private: false,
        ports: match layout.on_host_network {
            true => vec![],
            false => {
                vec![PortPlan { host_ip: address, host_port: port, container_port: REST_CONTAINER_PORT }]
            }
        },
        memory_mib: None,
        health: None,
    }
}
