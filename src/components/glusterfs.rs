//! The GlusterFS volumes slurmbox runs: the shared /home (`[home] shared =
//! "glusterfs"`), on every host, and the controllers' state (a backup controller on
//! another host without `[controller] state_path`), on the controllers' hosts and one
//! more. A storage container on each such host, on the host's network, holds its
//! bricks and glusterd's state in volumes of that host, and FUSE-mounts the replicated
//! volumes on folders of its host: its nodes see one as /home (see [`super::home`]),
//! its controllers the other as their StateSaveLocation. The first host's storage
//! container shapes each volume: the state's before the controllers start, /home's
//! once every container runs.

use std::collections::BTreeMap;

use futures_util::future::join_all;

use super::PartError;
use super::{Layout, home};
use crate::apply::Apply;
use crate::cluster::report::{ClusterStatus, SharedHomeStatus};
use crate::cluster::{Cluster, Model};
use crate::contract;
use crate::engine::{ContainerInfo, Engine, ExecSpec, checked};
use crate::gluster::Gluster;
use crate::image::{self, Recipe};
use crate::plan::{
    ContainerPlan, HOST_NETWORK, LABEL_NODE, LABEL_ROLE, MountPlan, MountSource, Plan, PlannedFile,
    Propagation, Role, SHARED_STATE_DIR, StoragePeer, VolumePlan,
};
use crate::spec::{Arch, HomeSpec};

/// A storage container's capabilities: GlusterFS's servers act as root on the brick
/// for every user's files, and its client mounts the volume.
pub const STORAGE_CAPS: &[(&str, &str)] = &[
    // The FUSE mount, and the trusted.* extended attributes GlusterFS keeps on bricks.
    ("SYS_ADMIN", "mount the volume; GlusterFS's trusted.* attributes on the brick"),
    ("CHOWN", "files on the brick keep their users' owners"),
    ("DAC_OVERRIDE", "the brick server reads and writes every user's files"),
    ("DAC_READ_SEARCH", "the brick server walks every user's folders"),
    ("FOWNER", "set modes and times on files of other owners"),
    ("FSETID", "keep setgid bits on shared folders"),
    ("KILL", "stop the brick processes on shutdown"),
    ("NET_BIND_SERVICE", "GlusterFS clients connect from privileged ports"),
];

/// The hosts with a brick of the controllers' state volume (indices into the layout's
/// hosts, which are the spec's): see [`crate::spec::ControllerSpec::state_brick_hosts`].
pub fn state_hosts(layout: &Layout) -> Vec<usize> {
    layout.spec.controller.state_brick_hosts(&layout.spec.hosts)
}

/// Where the controllers' state volume is mounted on a host (`SHARED_STATE_DIR`).
pub fn state_dir(layout: &Layout) -> String {
    SHARED_STATE_DIR.replace("<cluster>", &layout.cluster)
}

/// The host's folder of the cluster that holds [`state_dir`]: what a controller mounts.
pub fn state_parent(layout: &Layout) -> String {
    let dir = state_dir(layout);
    dir.rsplit_once('/').map_or(dir.clone(), |(parent, _)| parent.to_string())
}

pub fn add(layout: &Layout, plan: &mut Plan) {
    let home = layout.spec.home == HomeSpec::GlusterFs;
    let state = state_hosts(layout);
    if !home && state.is_empty() {
        return;
    }
    let glusterd_vol = format!("{}-glusterd", layout.cluster);
    let brick_vol = format!("{}-brick", layout.cluster);
    let volume = |name: &str, target: &str| MountPlan {
        source: MountSource::Volume(name.to_string()),
        target: target.into(),
        read_only: false,
        propagation: None,
    };
    let shared = |source: MountSource, target: &str| MountPlan {
        source,
        target: target.into(),
        read_only: false,
        propagation: Some(Propagation::Shared),
    };
    for (host, listed) in layout.spec.hosts.iter().enumerate() {
        // The volumes with a brick here, and the ones mounted here for the host's
        // containers: /home for its nodes, the state for its controllers.
        let mut bricks = vec![];
        let mut mounts =
            vec![volume(&glusterd_vol, "/var/lib/glusterd"), volume(&brick_vol, contract::BRICK_DIR)];
        let mut mounted: Vec<String> = vec![];
        if home {
            bricks.push(contract::STORAGE_VOLUME.to_string());
            mounted.push(contract::STORAGE_VOLUME.into());
            mounts.push(shared(home::source(layout), &mount_dir(contract::STORAGE_VOLUME)));
        }
        if state.contains(&host) {
            bricks.push(contract::STATE_VOLUME.to_string());
        }
        if layout.controllers.iter().any(|c| c.host == host) && !state.is_empty() {
            mounted.push(contract::STATE_VOLUME.into());
            mounts.push(shared(MountSource::HostPath(state_dir(layout)), &mount_dir(contract::STATE_VOLUME)));
        }
        if bricks.is_empty() {
            continue;
        }
        for name in [&glusterd_vol, &brick_vol] {
            plan.volumes.push(VolumePlan { host, name: name.clone(), labels: layout.labels(&[]) });
        }
        let node = format!("storage-{}", listed.name);
        let c = ContainerPlan {
            host,
            name: format!("{}-{node}", layout.cluster),
            hostname: node.clone(),
            role: Role::Storage,
            image: layout.facts[host].storage_image.clone().expect("facts carry the storage image"),
            command: vec![contract::STORAGE_PATH.to_string(), "run".into()],
            env: vec![
                contract::env::var(contract::env::STORAGE_ADDRESS, &listed.address),
                contract::env::var(contract::env::STORAGE_MOUNTS, mounted.join(" ")),
            ],
            mounts,
            cap_add: STORAGE_CAPS.iter().map(|(c, _)| c.to_string()).collect(),
            network: HOST_NETWORK.into(),
            ip: None,
            files: vec![PlannedFile {
                path: contract::STORAGE_PATH.into(),
                mode: 0o755,
                contents: contract::STORAGE_SCRIPT.into(),
            }],
            labels: layout.labels(&[(LABEL_ROLE, Role::Storage.as_str()), (LABEL_NODE, &node)]),
            devices: vec!["/dev/fuse".into()],
            cgroupns_private: false,
            ports: vec![],
            memory_mib: None,
            health: None,
            security_opt: vec!["apparmor=unconfined".into()],
        };
        plan.storage.push(StoragePeer {
            host,
            container: c.name.clone(),
            address: listed.address.clone(),
            bricks,
            mounts: mounted,
        });
        plan.containers.push(c);
    }
}

/// Where a storage container mounts the volume `name` for its host.
fn mount_dir(name: &str) -> String {
    format!("{}/{name}", contract::STORAGE_MOUNT_DIR)
}

/// GlusterFS's servers use fixed ports of their host (24007 and up), so a host holds
/// the GlusterFS /home of one cluster only: another's is refused before anything changes.
pub async fn check<E: crate::engine::Engine>(engines: &[E], plan: &Plan) -> Result<(), PartError> {
    for peer in &plan.storage {
        let there = engines[peer.host].list_labelled(LABEL_ROLE, Role::Storage.as_str()).await?;
        if let Some(other) = there
            .iter()
            .filter_map(|c| c.labels.get(crate::plan::LABEL_CLUSTER))
            .find(|cluster| **cluster != plan.cluster)
        {
            return Err(PartError::SharedHomeTaken {
                host: plan.hosts[peer.host].name.clone(),
                other: other.clone(),
            });
        }
    }
    Ok(())
}

/// The storage containers start first: glusterd is up on every host, and the peers
/// can find each other, while the other parts prepare their containers.
pub async fn on_created<E: crate::engine::Engine>(apply: &mut Apply<'_, E>) -> Result<(), PartError> {
    if apply.plan.storage.is_empty() {
        return Ok(());
    }
    apply.say("starting the GlusterFS storage containers");
    apply.start_role(Role::Storage).await?;
    // The controllers start on their state: it is there before them.
    let hosts = apply.plan.storage.iter().filter(|s| s.has(contract::STATE_VOLUME)).count();
    if hosts > 0 {
        let step = apply.progress.step(format!("Controllers' state (GlusterFS on {hosts} hosts)"));
        step.message("peers, bricks and volume");
        let changed = converge_volume(apply.engines, apply.plan, contract::STATE_VOLUME).await?;
        step.done_with(if changed.is_empty() { "as it was".to_string() } else { changed });
    }
    Ok(())
}

/// Makes the volume span every storage host (peers, bricks, start); idempotent.
pub async fn after_start<E: crate::engine::Engine>(apply: &mut Apply<'_, E>) -> Result<(), PartError> {
    let hosts = apply.plan.storage.iter().filter(|s| s.has(contract::STORAGE_VOLUME)).count();
    if hosts == 0 {
        return Ok(());
    }
    let step = apply
        .progress
        .step(format!("Shared /home (GlusterFS on {hosts} host{})", if hosts == 1 { "" } else { "s" }));
    step.message("peers, bricks and volume");
    let changed = converge_volume(apply.engines, apply.plan, contract::STORAGE_VOLUME).await?;
    step.done_with(if changed.is_empty() { "as it was".to_string() } else { changed });
    Ok(())
}

/// Makes the GlusterFS volume `volume` span the storage hosts of the plan with a brick
/// of it: the first of them probes the others, creates the volume (one brick per host,
/// replicated to all) or adds the bricks of new hosts, and starts it. The storage
/// containers that mount it for their host then mount it. Returns what changed.
pub async fn converge_volume<E: Engine>(
    engines: &[E],
    plan: &Plan,
    volume: &str,
) -> Result<String, PartError> {
    let peers: Vec<&StoragePeer> = plan.storage.iter().filter(|s| s.has(volume)).collect();
    let Some(first) = peers.first() else {
        return Ok(String::new());
    };
    let mut cmd = vec![contract::STORAGE_PATH.to_string(), contract::STORAGE_CONVERGE.into(), volume.into()];
    cmd.extend(peers.iter().map(|s| s.address.clone()));
    let out = checked(&engines[first.host], &first.container, &ExecSpec::new(cmd)).await?;
    // Every host that mounts it does so now, all at once, rather than at its own next look.
    let mount = ExecSpec::new([contract::STORAGE_PATH, "mount", volume]);
    let mounting = plan.storage.iter().filter(|s| s.mounts.iter().any(|m| m == volume));
    let mounted = join_all(mounting.map(|s| checked(&engines[s.host], &s.container, &mount))).await;
    mounted.into_iter().collect::<Result<Vec<_>, _>>()?;
    // The script reports each change on stderr ("slurmbox-storage: created ...").
    Ok(out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix(contract::STORAGE_LOG_PREFIX))
        .collect::<Vec<_>>()
        .join("; "))
}

/// Takes a leaving host's brick out of the shared /home's volume and forgets the host
/// (run in the first host's storage container `first`). What it held stays on the
/// other hosts' bricks.
pub async fn remove_storage_peer(engine: &impl Engine, first: &str, address: &str) -> Result<(), PartError> {
    checked(engine, first, &ExecSpec::new([contract::STORAGE_PATH, "remove", address])).await?;
    Ok(())
}

/// For `status`: the volume's health (from the first host's storage container) and,
/// per host, whether its nodes have the volume mounted.
pub async fn status(cluster: &Cluster, model: &Model, status: &mut ClusterStatus) {
    let storage = storage_reports(cluster, model).await;
    let first = storage.iter().map(|(host, _)| *host).min();
    status.shared_home = storage
        .iter()
        .filter(|(host, _)| Some(*host) == first)
        .find_map(|(_, r)| r.as_ref().ok().and_then(|r| r.volume.clone()));
    for (i, host) in status.hosts.iter_mut().enumerate() {
        let report = storage.iter().find(|(h, _)| *h == i).map(|(_, r)| r);
        host.home_mounted = report.and_then(|r| r.as_ref().ok()).and_then(|r| r.mounted);
        host.home_error = report.and_then(|r| r.as_ref().err()).cloned();
    }
}

/// What a storage container's `status` printed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StorageReport {
    /// Whether this host has the volume mounted for its nodes.
    pub mounted: Option<bool>,
    /// The volume, when asked for it (`--volume`).
    pub volume: Option<SharedHomeStatus>,
}

/// Parses the storage script's `status` output: `key=value` lines (`mounted=yes`,
/// then with `--volume`: `volume=Started`, `bricks=`, `online=`, `heal_pending=`,
/// `split_brain=`). Unknown lines are ignored; a missing or unreadable count is 0.
pub fn parse_storage_report(text: &str) -> StorageReport {
    let values: BTreeMap<&str, &str> =
        text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.trim(), v.trim())).collect();
    let number = |key: &str| values.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
    StorageReport {
        mounted: values.get("mounted").map(|m| *m == "yes"),
        volume: values.get("volume").map(|volume| SharedHomeStatus {
            volume: volume.to_string(),
            bricks: number("bricks"),
            online: number("online"),
            heal_pending: number("heal_pending"),
            split_brain: number("split_brain"),
        }),
    }
}

/// With a GlusterFS /home, each running storage container says whether its host has
/// the volume mounted (the storage script's `status`); the first one (lowest host) also
/// reports on the volume, asked of GlusterFS itself ([`Gluster`]). Each answer comes
/// with its host's index, or why it could not be had.
async fn storage_reports(handle: &Cluster, model: &Model) -> Vec<(usize, Result<StorageReport, String>)> {
    let storage: Vec<&ContainerInfo> = model.of_role(Role::Storage).filter(|c| c.running()).collect();
    let first = storage.iter().map(|c| c.host).min();
    let reports = join_all(storage.into_iter().map(|c| async move {
        let engine = handle.engine(c);
        let cmd = ExecSpec::new([contract::STORAGE_PATH, contract::STORAGE_STATUS]);
        let mut report = match checked(engine, &c.name, &cmd).await {
            Ok(out) => Ok(parse_storage_report(&out.stdout)),
            Err(e) => Err(e.to_string()),
        };
        // A storage container that serves only the controllers' state says nothing here.
        if let Ok(StorageReport { mounted: None, .. }) = report {
            return None;
        }
        if let (Ok(report), true) = (&mut report, Some(c.host) == first) {
            report.volume =
                Some(match Gluster::new(engine, &c.name).volume_health(contract::STORAGE_VOLUME).await {
                    Ok(health) => SharedHomeStatus {
                        volume: health.state_name().to_string(),
                        bricks: health.bricks,
                        online: health.online,
                        heal_pending: u32::try_from(health.heal_pending).unwrap_or(u32::MAX),
                        split_brain: u32::try_from(health.split_brain).unwrap_or(u32::MAX),
                    },
                    Err(e) => return Some((c.host, Err(e.to_string()))),
                });
        }
        Some((c.host, report))
    }))
    .await;
    reports.into_iter().flatten().collect()
}

/// The Debian release the storage image comes from (GlusterFS 11).
pub const IMAGE_SUITE: &str = "trixie";

/// Debian packages in the storage image: GlusterFS's server (glusterd and the brick
/// processes) and its FUSE client, which mounts the volume for the host's nodes.
pub const IMAGE_PACKAGES: &[&str] =
    &["glusterfs-server", "glusterfs-client", "mount", "attr", "procps", "tini", "ca-certificates"];

/// Shell run on the storage image's finished tree (`$1` is its root).
pub const IMAGE_HOOKS: &[&str] = &[
    // glusterd names itself by the UUID in glusterd.info, made on first start. One baked
    // into the image would give every host the same identity, and peers refuse that.
    r#"rm -f "$1/var/lib/glusterd/glusterd.info""#,
    // Geo-replication (copying a volume to another site) is not used. Where its helper
    // is installed, every start of glusterd runs it some fifteen times (a Python
    // program each time) to write its settings: about 2.5 s of a core before glusterd
    // answers. Without it glusterd says "geo-replication module not installed" and
    // starts at once.
    r#"rm -f "$1"/usr/lib/*/glusterfs/gsyncd"#,
];

/// The storage image's recipe on `arch`: what [`image::ensure`] builds for it.
pub fn image_recipe(arch: Arch) -> Recipe {
    Recipe {
        kind: image::Kind::Storage,
        arch,
        suite: IMAGE_SUITE,
        packages: IMAGE_PACKAGES,
        hooks: IMAGE_HOOKS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Existing storage images are found by their tag: it stays what it was.
    #[test]
    fn the_storage_images_tag_stays_the_same() {
        assert_eq!(image_recipe(Arch::Amd64).tag(), "slurmbox/storage:gluster-d05b7e476e36");
        assert!(image_recipe(Arch::Arm64).tag().starts_with("slurmbox/storage-arm64:gluster-"));
    }

    #[test]
    fn the_dockerfile_holds_the_storage_recipe() {
        let recipe = image_recipe(Arch::Amd64);
        let f = recipe.dockerfile("localhost:5000/debian", image::DEFAULT_MIRROR);
        assert!(f.starts_with("FROM localhost:5000/debian:trixie\n"), "{f}");
        assert!(
            f.contains("apt-get install -y --no-install-recommends glusterfs-server glusterfs-client "),
            "{f}"
        );
        // Each hook runs on the tree `/`, quoted whole for sh.
        assert!(f.contains("RUN sh -ec 'rm -f \"$1/var/lib/glusterd/glusterd.info\"' hook /\n"), "{f}");
        assert!(f.ends_with(&format!("LABEL io.slurmbox.recipe={}\n", recipe.digest())), "{f}");
    }

    use crate::cluster::report::SharedHomeStatus;

    #[test]
    fn a_storage_report_with_the_volume() {
        let report = parse_storage_report(
            "mounted=yes\nvolume=Started\nbricks=3\nonline=2\nheal_pending=5\nsplit_brain=0\n",
        );
        assert_eq!(
            report,
            StorageReport {
                mounted: Some(true),
                volume: Some(SharedHomeStatus {
                    volume: "Started".into(),
                    bricks: 3,
                    online: 2,
                    heal_pending: 5,
                    split_brain: 0
                }),
            }
        );
    }

    #[test]
    fn a_storage_report_without_the_volume() {
        assert_eq!(
            parse_storage_report("mounted=no\n"),
            StorageReport { mounted: Some(false), volume: None }
        );
        // Before the first `up` made the volume: no counts, which read as 0.
        let none = parse_storage_report("mounted=no\nvolume=none\n").volume.unwrap();
        assert_eq!((none.volume.as_str(), none.bricks, none.online), ("none", 0, 0));
        // Lines that are not key=value, and counts that are not numbers, are ignored.
        let odd = parse_storage_report("gluster says hi\nvolume=Started\nbricks=three\n").volume.unwrap();
        assert_eq!(odd.bricks, 0);
        assert_eq!(parse_storage_report(""), StorageReport::default());
    }
}
