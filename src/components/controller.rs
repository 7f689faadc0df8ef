//! The controller: slurmctld in its own container on the controller's host, its state
//! on a volume (queued jobs survive `down` and `up`), holding slurm.conf and
//! cgroup.conf, which the other nodes fetch from it (configless).

use std::convert::Infallible;
use std::time::Duration;

use super::PartError;
use super::{Config, Layout, NodeContainer, compute, home, munge};
use crate::apply::Apply;
use crate::cluster::report::{ClusterStatus, ControllerStatus, DoctorReport};
use crate::cluster::{Cluster, Model, running_node};
use crate::contract;
use crate::engine::ContainerInfo;
use crate::engine::{Engine, ExecFailed, ExecSpec, FileUpload, checked, decode_base64};
use crate::gluster::Gluster;
use crate::plan::{
    COMPUTE_FEATURE, ContainerPlan, MAX_NODES, MountPlan, MountSource, Plan, Propagation, Role, VolumePlan,
};
use crate::render::{self, CgroupConf, Controllers, NodeSetDef, PartitionDef, SlurmConf, SlurmctldHost};
use crate::slurm::{Slurm, SlurmError};
use crate::wait::{self, Poll};

/// slurm.conf before other parts add to it.
pub fn slurm_conf(layout: &Layout) -> SlurmConf {
    SlurmConf {
        cluster_name: layout.cluster.clone(),
        controllers: Controllers(
            layout
                .controllers
                .iter()
                .map(|c| SlurmctldHost { name: c.name.clone(), addr: layout.controller_addr(c) })
                .collect(),
        ),
        max_node_count: MAX_NODES,
        node_sets: vec![NodeSetDef { name: COMPUTE_FEATURE.into(), feature: COMPUTE_FEATURE.into() }],
        partitions: vec![PartitionDef { name: "debug".into(), nodes: COMPUTE_FEATURE.into(), default: true }],
        slurmd_timeout: 20,
        cgroups: false,
        def_mem_per_cpu: None,
        gres_types: vec![],
        accounting: None,
        site: layout.spec.slurm_conf.clone(),
        jwt_key: None,
        openmetrics: false,
        emulated_nodes: layout.facts.iter().any(|f| f.emulated),
    }
}

/// cgroup.conf before the limits part decides (see [`super::limits`]).
pub fn cgroup_conf() -> CgroupConf {
    CgroupConf::disabled()
}

/// The controllers' shared state storage (StateSaveLocation): the site's folder
/// (`[controller] state_path`, at the same path on every controller's host); across
/// hosts without one, the GlusterFS volume its host's storage container mounts on a
/// folder of the host (see [`super::glusterfs`]); else a volume on the controller's
/// host, which every controller there mounts.
fn state_storage(layout: &Layout) -> (Option<VolumePlan>, MountPlan) {
    let mount = |source, target: &str, propagation| MountPlan {
        source,
        target: target.into(),
        read_only: false,
        propagation,
    };
    match &layout.spec.controller.state_path {
        Some(path) => (
            None,
            mount(MountSource::HostPath(path.display().to_string()), render::STATE_SAVE_LOCATION, None),
        ),
        // The volume is mounted in the host's folder after the controller starts (or
        // again after its client died): it reaches the controller through mount
        // propagation, and slurmbox-init links StateSaveLocation to it.
        None if layout.spec.controller.state_on_glusterfs() => {
            let folder = MountSource::HostPath(super::glusterfs::state_parent(layout));
            (None, mount(folder, contract::SHARED_STATE_MOUNT, Some(Propagation::Slave)))
        }
        None => {
            let name = format!("{}-state", layout.cluster);
            let volume =
                VolumePlan { host: layout.controller().host, name: name.clone(), labels: layout.labels(&[]) };
            (Some(volume), mount(MountSource::Volume(name), render::STATE_SAVE_LOCATION, None))
        }
    }
}

pub fn add(layout: &Layout, config: &Config, plan: &mut Plan) {
    let (volume, state) = state_storage(layout);
    plan.volumes.extend(volume);
    for placed in &layout.controllers {
        // The munge key: the primary's host volume is the one the primary makes; a
        // backup on another host gets the copy nodes there get.
        let beside_primary = placed.host == layout.controller().host;
        let mut controller = layout.node_container(
            config,
            NodeContainer {
                placed,
                role: Role::Controller,
                mounts: vec![
                    munge::mount(layout, layout.is_backup(placed) && beside_primary),
                    state.clone(),
                    home::mount(layout),
                ],
                env: [
                    layout.is_backup(placed).then(|| contract::env::var(contract::env::BACKUP, 1)),
                    layout.spec.controller.state_on_glusterfs().then(|| {
                        contract::env::var(contract::env::SHARED_STATE, contract::env::SHARED_HOME_GLUSTERFS)
                    }),
                ]
                .into_iter()
                .flatten()
                .collect(),
                files: config.slurm_files(),
            },
        );
        // The node image with slurmrestd and the JWT plugin, where the host has it.
        if let Some(image) = &layout.facts[placed.host].controller_image {
            controller.image = image.clone();
        }
        plan.containers.push(controller);
    }
}

/// A new controller container may not know compute nodes that kept running: dynamic
/// nodes live in its saved state, and a crash loses whatever was not saved yet. Have
/// them register again.
pub async fn after_start<E: Engine>(apply: &mut Apply<'_, E>) -> Result<(), PartError> {
    let controller = apply.plan.controller();
    // A backup made now answers before `up` ends (on another host it starts seconds
    // after the primary: it waits for the munge key and the primary's state).
    let backups: Vec<&ContainerPlan> =
        apply.plan.controllers().skip(1).filter(|c| apply.touched(&c.name)).collect();
    for backup in backups {
        let step = apply.progress.step(format!("Backup controller {}", backup.hostname));
        wait_for_ping(apply.control(), &controller.name, &backup.hostname, Duration::from_secs(60)).await?;
        step.done_with("standing by".to_string());
    }
    if !apply.touched(&controller.name) {
        return Ok(());
    }
    // Not the ones a rolling change makes again next: told to read the new controller's
    // configuration, an older slurmd may not understand it (24.11 and 26.05's keys).
    let kept: Vec<&ContainerPlan> = apply
        .plan
        .containers
        .iter()
        .filter(|c| c.role == Role::Compute && !apply.touched(&c.name) && !apply.rolling.contains(&c.name))
        .collect();
    if kept.is_empty() {
        return Ok(());
    }
    let step =
        apply.progress.step(format!("Registering {} running nodes with the new controller", kept.len()));
    wait_for_controller(apply.control(), &controller.name, Duration::from_secs(60)).await?;
    let nodes: Vec<_> =
        kept.iter().map(|c| (&apply.engines[c.host], c.name.as_str(), c.hostname.as_str())).collect();
    compute::reregister_nodes(apply.control(), &controller.name, &nodes).await?;
    step.done();
    Ok(())
}

/// Waits until the controller answers `scontrol ping`.
pub async fn wait_for_controller(
    engine: &impl Engine,
    controller: &str,
    timeout: Duration,
) -> Result<(), PartError> {
    let slurm = Slurm::new(engine, controller);
    wait::until(timeout, Duration::from_millis(100), async || match slurm.controller_up().await {
        Ok(true) => Ok(Poll::Ready(())),
        // Not up yet, or its commands cannot reach it yet.
        Ok(false) | Err(SlurmError::Failed { .. }) => Ok(Poll::NotYet(())),
        Err(e) => Err(e),
    })
    .await
    .map_err(|waited| waited.or_timeout(|_| PartError::ControllerDown(timeout.as_secs())))
}

/// Waits until `scontrol ping` on `controller` says that the backup controller
/// `hostname` answers (in standby).
pub async fn wait_for_ping(
    engine: &impl Engine,
    controller: &str,
    hostname: &str,
    timeout: Duration,
) -> Result<(), PartError> {
    let slurm = Slurm::new(engine, controller);
    wait::until(timeout, Duration::from_millis(250), async || match slurm.pings().await {
        Ok(pings) if pings.iter().any(|ping| ping.hostname == hostname && ping.responding) => {
            Ok(Poll::Ready(()))
        }
        // Not up yet, or the primary's commands do not reach it yet.
        Ok(_) | Err(_) => Ok::<_, Infallible>(Poll::NotYet(())),
    })
    .await
    .map_err(|_| PartError::BackupDown { name: hostname.to_string(), waited: timeout.as_secs() })
}

/// Has the controller write its state folder now, and waits (7 s at most) until it has.
/// Compute nodes register with the controller alone (they are not in slurm.conf), and
/// slurmctld writes its node state when something else changes (a job submitted, a node
/// updated) or every 5 minutes: a controller back from a crash, or a backup taking
/// over, before that would know none of the nodes, and they would not register again.
/// Any node update makes slurmctld write it; `node`'s comment set to nothing (it has
/// none) changes nothing else. Likewise the associations it learnt from slurmdbd, which
/// it writes only every 5 minutes or when a partition is deleted: a backup taking over
/// while slurmdbd is away too (its host lost) reads them there, and without them waits
/// for slurmdbd and answers nothing. With accounting, a hidden, inactive partition is
/// made and deleted at once, after the node update: slurmctld writes the associations
/// as it deletes a partition, and its other files at most every 5 s, so the node
/// update's comes first.
pub async fn wait_state_written<E: Engine>(
    engine: &E,
    controller: &str,
    node: &str,
    accounting: bool,
) -> Result<(), PartError> {
    let state = render::STATE_SAVE_LOCATION;
    let part = "slurmbox-save-state";
    let (associations, written) = if accounting {
        (
            format!(
                "scontrol create partitionname={part} state=inactive hidden=yes >/dev/null && \
                 scontrol delete partitionname={part} >/dev/null; "
            ),
            format!(" && [ {state}/assoc_mgr_state -nt \"$m\" ]"),
        )
    } else {
        (String::new(), String::new())
    };
    let script = format!(
        "m=$(mktemp); scontrol update nodename={node} comment= >/dev/null; {associations}\
         for _ in $(seq 70); do [ {state}/node_state -nt \"$m\" ]{written} && break; sleep 0.1; done; rm -f \"$m\""
    );
    checked(engine, controller, &ExecSpec::new(["bash", "-c", &script])).await?;
    Ok(())
}

/// The controller's state in a backup: its StateSaveLocation, a gzipped tar.
pub const BACKUP_FILE: &str = "slurmctld-state.tar.gz";

/// The controller in charge, which must run.
fn in_charge<'m>(cluster: &Cluster, model: &'m Model) -> Result<&'m ContainerInfo, PartError> {
    Ok(running_node(&cluster.name, &model.containers, contract::CONTROLLER_HOST)?)
}

/// For `slurmbox backup`: the state of the controller in charge.
pub async fn backup(cluster: &Cluster, model: &Model) -> Result<Vec<u8>, PartError> {
    let c = in_charge(cluster, model)?;
    save_state(cluster.engine(c), &c.name).await
}

/// For `slurmbox restore`: the controller takes the backup's state and starts again
/// with it.
pub async fn restore(cluster: &Cluster, model: &Model, state: &[u8]) -> Result<(), PartError> {
    let c = in_charge(cluster, model)?;
    restore_state(cluster.engine(c), &c.name, state).await
}

/// Once every share is back: the controller answers (its container started again, and
/// slurmctld reached slurmdbd), and the running compute nodes register again (the
/// restored state knows them as they were when the backup was taken, their addresses
/// too).
pub async fn after_restore(cluster: &Cluster, model: &Model) -> Result<(), PartError> {
    let c = in_charge(cluster, model)?;
    let engine = cluster.engine(c);
    // The engine refuses commands while the container starts again: not yet, too.
    let answers = Slurm::new(engine, &c.name).within(5);
    let timeout = Duration::from_secs(180);
    wait::until(timeout, Duration::from_millis(500), async || {
        let up = answers.controller_up().await.unwrap_or(false);
        Ok::<_, Infallible>(if up { Poll::Ready(()) } else { Poll::NotYet(()) })
    })
    .await
    .map_err(|_| PartError::ControllerDown(timeout.as_secs()))?;
    let nodes: Vec<_> = model
        .of_role(Role::Compute)
        .filter(|n| n.running())
        .filter_map(|n| Some((cluster.engine(n), n.name.as_str(), n.node()?)))
        .collect();
    super::compute::reregister_nodes(engine, &c.name, &nodes).await
}

/// `slurmbox backup`: the controller's state (its StateSaveLocation) as a gzipped tar.
/// slurmctld replaces each state file whole (it writes a new one, then renames it), so a
/// copy taken while it runs holds every file as it was at one moment. It writes the
/// jobs' state a few seconds after they change, not at once: the copy waits until
/// slurmctld has written it since the backup began (changes were pending), or for
/// 7 s (none were), so that a job submitted just before is in it.
pub async fn save_state<E: Engine>(engine: &E, container: &str) -> Result<Vec<u8>, PartError> {
    let script = format!(
        "cd {} && mark=$(mktemp) && for _ in $(seq 35); do [ job_state -nt \"$mark\" ] && break; sleep 0.2; done; \
         rm -f \"$mark\"; tar --warning=no-file-changed --warning=no-file-removed -czf - . | base64 -w0; \
         s=(\"${{PIPESTATUS[@]}}\"); [ \"${{s[0]}}\" -le 1 ] && [ \"${{s[1]}}\" = 0 ]",
        render::STATE_SAVE_LOCATION
    );
    let out = checked(engine, container, &ExecSpec::new(["bash", "-c", &script])).await?;
    Ok(decode_base64(container, "the controller's state", &out.stdout)?)
}

/// `slurmbox restore`: hands the controller a backup's state. slurmctld is stopped the
/// way that saves its own state (SIGTERM); Docker starts the container again and
/// slurmbox-init puts the backup's state in place before slurmctld reads it.
pub async fn restore_state<E: Engine>(engine: &E, container: &str, state: &[u8]) -> Result<(), PartError> {
    let file = FileUpload { path: contract::RESTORE_STATE.into(), contents: state.to_vec(), mode: 0o600 };
    engine.upload(container, &[file]).await?;
    checked(engine, container, &ExecSpec::new(["pkill", "-TERM", "-x", "slurmctld"])).await?;
    // slurmctld answers while it saves its state and stops: wait until it is gone (its
    // container then starts again), or whoever asks next may still hear the old one.
    let alive = ExecSpec::new(["pgrep", "-x", "slurmctld"]);
    wait::until(Duration::from_secs(120), Duration::from_millis(200), async || {
        let runs = engine.exec(container, &alive).await.is_ok_and(|o| o.ok());
        Ok::<_, Infallible>(if runs { Poll::NotYet(()) } else { Poll::Ready(()) })
    })
    .await
    .map_err(|_| ExecFailed {
        cmd: "pkill -TERM -x slurmctld".into(),
        container: container.into(),
        code: 0,
        said: "slurmctld still runs 120 s after it was told to stop".into(),
    })?;
    Ok(())
}

/// When the running slurmctld started after an unclean stop (a crash or kill: its
/// state may lack the changes of the seconds before), as slurmbox-init recorded it.
/// Unknown after 5 s: the state folder may be a GlusterFS volume whose client hangs
/// (seen on a backup's host after the primary's host was cut off), and reading it
/// would hold `status` with it.
pub async fn unclean_start<E: Engine>(engine: &E, container: &str) -> Option<String> {
    let read = ExecSpec::new(["cat", &format!("{}/slurmbox-unclean-start", render::STATE_SAVE_LOCATION)]);
    let out = tokio::time::timeout(Duration::from_secs(5), engine.exec(container, &read)).await.ok()?.ok()?;
    Some(out.stdout.trim().to_string()).filter(|at| out.ok() && !at.is_empty())
}

/// For `status`: which controller is in charge, and when the running controller came
/// back from an unclean stop.
pub async fn status(cluster: &Cluster, model: &Model, status: &mut ClusterStatus) {
    status.controller_unclean_start = unclean_start_of(cluster, model).await;
    status.controllers = controllers(cluster, model).await;
}

/// Each controller as `scontrol ping` sees it (asked of the first running controller
/// that answers: one may be starting again, or on a host that is cut off).
async fn controllers(cluster: &Cluster, model: &Model) -> Vec<ControllerStatus> {
    let mut pings = Vec::new();
    for c in model.controllers() {
        pings = Slurm::new(cluster.engine(c), &c.name).pings().await.unwrap_or_default();
        if !pings.is_empty() {
            break;
        }
    }
    let leader = crate::slurm::in_charge(&pings).map(|p| p.hostname.clone());
    pings
        .into_iter()
        .map(|p| ControllerStatus {
            in_charge: leader.as_deref() == Some(p.hostname.as_str()),
            name: p.hostname,
            mode: p.mode,
            responding: p.responding,
        })
        .collect()
}

/// "controllers: controller (primary) DOWN; controller2 (backup1) in charge".
pub fn status_line(controllers: &[ControllerStatus]) -> String {
    let each: Vec<String> = controllers
        .iter()
        .map(|c| {
            let state = match (c.responding, c.in_charge) {
                (_, true) => "in charge",
                (true, false) => "standing by",
                (false, _) => "DOWN",
            };
            format!("{} ({}) {state}", c.name, c.mode)
        })
        .collect();
    format!("controllers: {}", each.join("; "))
}

/// For `doctor`: after an unclean stop, what may be lost and what to check; with a
/// backup, whether the controllers' state storage is shared and writable.
pub async fn doctor(cluster: &Cluster, model: &Model, report: &mut DoctorReport) {
    report.controller = unclean_start_of(cluster, model).await.map(|at| unclean_start_advice(&at));
    report.state_storage = state_storage_health(cluster, model).await;
}

/// Writes a token into the state folder through the first controller and reads it
/// through each other one: they share the folder only if every one sees it.
async fn state_storage_health(cluster: &Cluster, model: &Model) -> Option<Result<String, String>> {
    let all: Vec<&ContainerInfo> = model.of_role(Role::Controller).collect();
    if all.len() < 2 {
        return None;
    }
    if let Some(down) = all.iter().find(|c| !c.running()) {
        return Some(Err(format!(
            "{} is not running, so its view of the state folder cannot be checked (`slurmbox logs {}`)",
            down.name,
            down.node().unwrap_or_default()
        )));
    }
    let dir = render::STATE_SAVE_LOCATION;
    let token = format!("{}-{}", std::process::id(), nanos_now());
    let write = format!("echo {token} >{dir}/slurmbox-probe && df -Ph {dir} | awk 'NR==2 {{print $4}}'");
    let (first, others) = all.split_first()?;
    let free = match checked(cluster.engine(first), &first.name, &ExecSpec::new(["bash", "-c", &write])).await
    {
        Ok(out) => out.stdout.trim().to_string(),
        Err(e) => return Some(Err(format!("{} cannot write its state folder {dir}: {e}", first.name))),
    };
    for other in others {
        let read = ExecSpec::new(["cat", &format!("{dir}/slurmbox-probe")]);
        let seen = cluster.engine(other).exec(&other.name, &read).await.map(|o| o.stdout.trim().to_string());
        if seen.as_deref().ok() != Some(token.as_str()) {
            return Some(Err(format!(
                "{} does not see what {} writes to {dir}: the folder is not shared, and a takeover would start \
                 from old state (check [controller] state_path on both hosts, or the storage containers' logs)",
                other.name, first.name
            )));
        }
    }
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    let shared = format!("{dir} shared by {} and writable ({free} free)", names.join(" and "));
    Some(match state_volume_health(cluster, model).await {
        None => Ok(shared),
        Some(Ok(volume)) => Ok(format!("{shared}; {volume}")),
        Some(Err(wrong)) => Err(format!("{shared}, but {wrong}")),
    })
}

/// With the state on GlusterFS: its volume's bricks, as GlusterFS sees them from the
/// primary's host. A brick offline leaves one copy fewer (the next host lost may stop
/// the controllers); files in split-brain need an admin.
async fn state_volume_health(cluster: &Cluster, model: &Model) -> Option<Result<String, String>> {
    let storage = model.of_role(Role::Storage).filter(|c| c.running()).min_by_key(|c| c.host)?;
    let volume = contract::STATE_VOLUME;
    let health = match Gluster::new(cluster.engine(storage), &storage.name).volume_health(volume).await {
        Ok(h) => h,
        Err(e) => return Some(Err(format!("GlusterFS does not report on volume {volume}: {e}"))),
    };
    if health.bricks == 0 {
        return None;
    }
    let line = format!(
        "GlusterFS volume {volume} {}: {} of {} bricks online, {} files to heal, {} in split-brain",
        health.state_name(),
        health.online,
        health.bricks,
        health.heal_pending,
        health.split_brain
    );
    Some(if health.online < health.bricks || health.split_brain > 0 { Err(line) } else { Ok(line) })
}

/// A value that differs from call to call, for the probe above.
fn nanos_now() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

async fn unclean_start_of(cluster: &Cluster, model: &Model) -> Option<String> {
    let c = model.controllers().into_iter().next()?;
    unclean_start(cluster.engine(c), &c.name).await
}

/// What an admin should know after such a start, for `status` and `doctor`.
pub fn unclean_start_advice(at: &str) -> String {
    format!(
        "the controller came back at {at} from an unclean stop (a crash or kill): slurmctld saves its state at \
         most every 5 s, so a change of its last seconds may be lost (a job it had just started can be queued \
         and run again). slurmbox puts nodes Slurm drains for a \"Duplicate jobid\" back in service for ten \
         minutes; `sacct -D -X` lists jobs that ran more than once"
    )
}
