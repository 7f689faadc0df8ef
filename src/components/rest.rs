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

use std::collections::BTreeSet;
use std::time::Duration;

use super::login::{self, PublishedPorts};
use super::{Config, Layout, PartError};
use crate::apply::Apply;
use crate::cluster::report::ClusterStatus;
use crate::cluster::{Cluster, Model, running_node};
use crate::contract;
use crate::engine::{ContainerInfo, Engine, ExecSpec, FileUpload, checked};
use crate::plan::{
    CONTROLLER_HOST, ContainerPlan, LABEL_NODE, LABEL_REST_PORT, LABEL_REST_URL, LABEL_ROLE, MountPlan,
    MountSource, Plan, PlannedFile, PortPlan, Role, VolumePlan,
};
use crate::spec::DEFAULT_REST_PORT;

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
    // A backup controller on another host: the key is copied into a volume there.
    for backup in layout.controllers.iter().filter(|c| c.host != host) {
        plan.volumes.push(VolumePlan { host: backup.host, name: volume.clone(), labels: layout.labels(&[]) });
    }
    let primary = format!("{}-{}", layout.cluster, layout.controller().name);
    for c in plan.containers.iter_mut() {
        let mode = match c.role {
            Role::Controller if c.name == primary => "make",
            Role::Controller => "take",
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

/// A backup controller on another host gets a copy of the key the primary made (which
/// therefore starts first) before it starts, as nodes there get the munge key.
pub async fn before_start<E: Engine>(apply: &mut Apply<'_, E>) -> Result<(), PartError> {
    let primary = apply.plan.controller();
    let remote: Vec<_> = apply
        .starting()
        .into_iter()
        .filter(|c| {
            c.role == Role::Controller
                && c.host != primary.host
                && c.mounts.iter().any(|m| m.target == JWT_DIR)
        })
        .collect();
    if remote.is_empty() {
        return Ok(());
    }
    apply.say("copying the JWT key to the backup controller's host");
    apply.start_controller().await?;
    let key = super::munge::read_secret(
        apply.control(),
        &primary.name,
        JWT_KEY,
        "JWT key",
        Duration::from_secs(60),
    )
    .await?;
    let upload = FileUpload { path: JWT_KEY.into(), contents: key, mode: 0o400 };
    for c in remote {
        apply.engines[c.host].upload(&c.name, std::slice::from_ref(&upload)).await?;
    }
    Ok(())
}

/// slurmrestd's container: the controller's image (it has slurmrestd), slurm.conf, the
/// cluster's accounts, no key of any kind; only the capabilities to drop to its account.
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
    // slurmbox-init, for its `addresses` beside slurmrestd.
    files.push(PlannedFile {
        path: contract::INIT_PATH.into(),
        mode: 0o755,
        contents: contract::INIT_SCRIPT.into(),
    });
    let mut labels = layout.labels(&[(LABEL_ROLE, Role::Rest.as_str()), (LABEL_NODE, REST_HOST)]);
    labels.insert(LABEL_REST_PORT.into(), port.to_string());
    labels.insert(LABEL_REST_URL.into(), published_url(layout, layout.spec.rest.address, false, port));
    ContainerPlan {
        host,
        name: format!("{}-{REST_HOST}", layout.cluster),
        hostname: REST_HOST.into(),
        role: Role::Rest,
        image: facts.controller_image.clone().unwrap_or_else(|| facts.image.clone()),
        command: vec![REST_PATH.into()],
        env: vec![contract::env::var(ENV_LISTEN, &listen)],
        // The cluster's accounts, read-only: slurmrestd names the users of the jobs it
        // lists (their passwords are no one's: users log in with keys).
        mounts: vec![super::users::mount(layout, true)],
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

/// Where people and tools reach a port published on the controller's host: the
/// spec's address for it, else the controller's host as the other hosts know it, else
/// this machine (the local engine).
pub fn published_url(layout: &Layout, address: Option<std::net::IpAddr>, tls: bool, port: u16) -> String {
    let host = match address.filter(|a| !a.is_unspecified()) {
        Some(std::net::IpAddr::V6(a)) => format!("[{a}]"),
        Some(a) => a.to_string(),
        None => match layout.spec.hosts.get(layout.controller().host) {
            Some(h) if !h.address.is_empty() => h.address.clone(),
            _ => "127.0.0.1".into(),
        },
    };
    format!("{}://{host}:{port}", if tls { "https" } else { "http" })
}

/// slurmrestd's port on the controller's host (see [`login::choose_port`]): the
/// spec's, else the one it has, else [`DEFAULT_REST_PORT`] or the next one free.
pub fn choose_port(explicit: Option<u16>, ports: &PublishedPorts, avoid: &BTreeSet<u16>) -> u16 {
    login::choose_port(DEFAULT_REST_PORT, explicit, ports, avoid)
}

/// What slurmrestd containers publish on `engine`'s host.
pub async fn ports<E: Engine>(
    engine: &E,
    cluster: &str,
) -> Result<PublishedPorts, crate::engine::EngineError> {
    login::published_ports(engine, cluster, Role::Rest, LABEL_REST_PORT).await
}

/// Before anything changes: the port the spec names is not another cluster's REST API's
/// on the controller's host (`up` picks a free one where the spec names none).
pub async fn check<E: Engine>(engines: &[E], plan: &Plan) -> Result<(), PartError> {
    login::check_port_free(engines, plan, (Role::Rest, LABEL_REST_PORT), ("[rest] port", "REST API")).await
}

/// For `status`: where the REST API answers.
pub async fn status(_cluster: &Cluster, model: &Model, status: &mut ClusterStatus) {
    status.rest_url = model.of_role(Role::Rest).find_map(|c| c.labels.get(LABEL_REST_URL).cloned());
}

/// A token for `user`, signed by slurmctld (`scontrol token` as root on the
/// controller), valid `lifespan` seconds (default: Slurm's); `SLURM_JWT=...` as scontrol
/// prints it.
pub async fn token(
    cluster: &Cluster,
    containers: &[ContainerInfo],
    user: &str,
    lifespan: Option<u64>,
) -> Result<String, PartError> {
    // slurm.conf accepts tokens where the cluster has its REST API, running or not.
    if !containers.iter().any(|c| c.is(Role::Rest)) {
        return Err(PartError::RestOff(cluster.name.clone()));
    }
    let controller = running_node(&cluster.name, containers, CONTROLLER_HOST)?;
    let mut cmd = vec!["scontrol".to_string(), "token".into(), format!("username={user}")];
    cmd.extend(lifespan.map(|s| format!("lifespan={s}")));
    Ok(checked(cluster.engine(controller), &controller.name, &ExecSpec::new(cmd)).await?.stdout)
}

/// A token's lifespan as people write it ("90s", "30m", "1h", "2d"; a bare number is
/// seconds), in seconds.
pub fn parse_lifespan(text: &str) -> Result<u64, String> {
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => 0,
    };
    number.parse::<u64>().ok().and_then(|n| n.checked_mul(scale)).filter(|s| *s > 0).ok_or_else(|| {
        format!("{text:?} is not a lifespan: write a positive number with s, m, h or d (\"30m\")")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifespans_read_as_people_write_them() {
        assert_eq!(parse_lifespan("3600"), Ok(3600));
        assert_eq!(parse_lifespan("3600s"), Ok(3600));
        assert_eq!(parse_lifespan("30m"), Ok(1800));
        assert_eq!(parse_lifespan("1h"), Ok(3600));
        assert_eq!(parse_lifespan("2d"), Ok(172800));
        for bad in ["", "0", "0h", "h", "1w", "-1h", "1.5h", "1 h", "99999999999999999999d"] {
            assert!(parse_lifespan(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_port_is_6820_or_the_next_free_one() {
        let none = BTreeSet::new();
        let ports = |own: Option<u16>, taken: &[u16]| PublishedPorts {
            own,
            taken: taken.iter().map(|p| (*p, "other".to_string())).collect(),
        };
        assert_eq!(choose_port(None, &ports(None, &[]), &none), 6820);
        assert_eq!(choose_port(None, &ports(None, &[6820]), &none), 6821);
        assert_eq!(choose_port(None, &ports(Some(6825), &[6820]), &none), 6825, "kept");
        assert_eq!(choose_port(None, &ports(None, &[6820]), &BTreeSet::from([6821])), 6822);
        assert_eq!(choose_port(Some(6820), &ports(None, &[6820]), &none), 6820, "the spec's, taken or not");
    }
}
