//! The controller: slurmctld in its own container on the controller's host, its state
//! on a volume (queued jobs survive `down` and `up`), holding slurm.conf and
//! cgroup.conf, which the other nodes fetch from it (configless).

use std::convert::Infallible;
use std::time::Duration;

use super::PartError;
use super::{Config, Layout, NodeContainer, compute, home, munge};
use crate::apply::Apply;
use crate::cluster::report::{ClusterStatus, DoctorReport};
use crate::cluster::{Cluster, Model, running_node};
use crate::contract;
use crate::engine::ContainerInfo;
use crate::engine::{Engine, ExecFailed, ExecSpec, FileUpload, checked, decode_base64};
use crate::plan::{
    COMPUTE_FEATURE, ContainerPlan, MAX_NODES, MountPlan, MountSource, Plan, Role, VolumePlan,
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
    }
}

/// cgroup.conf before the limits part decides (see [`super::limits`]).
pub fn cgroup_conf() -> CgroupConf {
    CgroupConf::disabled()
}

/// The controllers' shared state storage (StateSaveLocation): a volume on the primary
/// controller's host, which every controller there mounts.
fn state_storage(layout: &Layout) -> (VolumePlan, MountPlan) {
    let name = format!("{}-state", layout.cluster);
    let volume =
        VolumePlan { host: layout.controller().host, name: name.clone(), labels: layout.labels(&[]) };
    let mount = MountPlan {
        source: MountSource::Volume(name),
        target: render::STATE_SAVE_LOCATION.into(),
        read_only: false,
        propagation: None,
    };
    (volume, mount)
}

pub fn add(layout: &Layout, config: &Config, plan: &mut Plan) {
    let (volume, state) = state_storage(layout);
    plan.volumes.push(volume);
    for placed in &layout.controllers {
        let mut controller = layout.node_container(
            config,
            NodeContainer {
                placed,
                role: Role::Controller,
                mounts: vec![munge::mount(layout, false), state.clone(), home::mount(layout)],
                env: vec![],
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
pub async fn unclean_start<E: Engine>(engine: &E, container: &str) -> Option<String> {
    let read = ExecSpec::new(["cat", &format!("{}/slurmbox-unclean-start", render::STATE_SAVE_LOCATION)]);
    let out = engine.exec(container, &read).await.ok()?;
    Some(out.stdout.trim().to_string()).filter(|at| out.ok() && !at.is_empty())
}

/// For `status`: when the running controller came back from an unclean stop.
pub async fn status(cluster: &Cluster, model: &Model, status: &mut ClusterStatus) {
    status.controller_unclean_start = unclean_start_of(cluster, model).await;
}

/// For `doctor`: after an unclean stop, what may be lost and what to check.
pub async fn doctor(cluster: &Cluster, model: &Model, report: &mut DoctorReport) {
    report.controller = unclean_start_of(cluster, model).await.map(|at| unclean_start_advice(&at));
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
