//! [`RecordingEngine`]: an [`Engine`] in memory, for unit tests of code that acts on
//! engines (deploying, removing hosts, waiting for daemons) without Docker.
//!
//! It records every call in order as a [`Call`], keeps a small model of what exists
//! (containers with their labels and state, networks, volumes, images, uploaded files)
//! so that creating, listing, starting and removing agree with each other, and answers
//! `exec` from fixtures the test registers. It can be told that its host does not
//! answer ([`RecordingEngine::set_unreachable`]) or that one call fails
//! ([`RecordingEngine::fail_when`]).
//!
//! It is only ever used when a test passes it in, like any other engine; nothing picks
//! it by `cfg!(test)`.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use slurmbox::engine::recording::{ANY_CONTAINER, Call, RecordingEngine};
//! use slurmbox::engine::{ContainerInfo, Engine, ExecOutput, ExecSpec};
//!
//! let engine = RecordingEngine::named("pi1");
//! engine.insert_container(ContainerInfo {
//!     host: 0,
//!     name: "lab-controller".into(),
//!     id: "c1".into(),
//!     image: "slurmbox/node:24.11-test".into(),
//!     labels: [("io.slurmbox.cluster".to_string(), "lab".to_string())].into(),
//!     state: "running".into(),
//!     status: "Up 2 minutes".into(),
//! });
//! let up = ExecOutput::success("Slurmctld(primary) at controller is UP\n");
//! engine.answer(ANY_CONTAINER, &["scontrol", "ping"], up);
//!
//! let out = engine.exec("lab-controller", &ExecSpec::new(["scontrol", "ping"])).await.unwrap();
//! assert!(out.stdout.contains("is UP"));
//! assert_eq!(engine.exec_log(), ["lab-controller: scontrol ping"]);
//! engine.set_unreachable(true);
//! assert!(engine.list_containers("lab").await.is_err());
//! assert_eq!(engine.calls()[1], Call::ListContainers { cluster: "lab".into() });
//! # });
//! ```

mod calls;
mod engine;
mod state;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

pub use calls::{Call, api_error};
use state::{Answer, Container, State, new_container, start, words};

use super::{ContainerInfo, EngineError, EngineInfo, ExecOutput, Result};
use crate::plan::{ContainerPlan, NetworkPlan, VolumePlan};

/// Matches an answer or a failure to every container.
pub const ANY_CONTAINER: &str = "*";

/// An in-memory [`Engine`] that records its calls; see the [module](self) docs.
pub struct RecordingEngine {
    name: String,
    state: Mutex<State>,
}

impl Default for RecordingEngine {
    fn default() -> RecordingEngine {
        RecordingEngine::named("local")
    }
}

impl RecordingEngine {
    /// An engine named "local", with nothing on it.
    pub fn new() -> RecordingEngine {
        RecordingEngine::default()
    }

    /// An engine with a name (a host's), which [`Call::SendImage`] and errors use.
    pub fn named(name: &str) -> RecordingEngine {
        RecordingEngine { name: name.into(), state: Mutex::new(State::default()) }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records `call`, then fails it if the engine is unreachable or a
    /// [`fail_when`](Self::fail_when) predicate matches it.
    fn record(&self, call: Call) -> Result<MutexGuard<'_, State>> {
        let mut state = self.state();
        if state.unreachable {
            state.calls.push(call);
            return Err(EngineError::Unreachable(format!(
                "{}: the recording engine is set unreachable",
                self.name
            )));
        }
        let failure = state.failures.iter().find(|(when, _)| when(&call)).map(|(_, error)| error());
        state.calls.push(call);
        match failure {
            Some(e) => Err(e),
            None => Ok(state),
        }
    }

    // Fixtures.

    /// Answers `exec` (and `exec_attached`, with the code) of commands starting with
    /// the words `prefix` in `container` ([`ANY_CONTAINER`] for any) with `output`,
    /// every time. Of several persistent answers that match, the one registered last
    /// wins; an empty prefix matches every command. Without any, a command exits 0
    /// with no output.
    pub fn answer(&self, container: &str, prefix: &[&str], output: ExecOutput) {
        let answer = Answer { container: container.into(), prefix: words(prefix), output };
        self.state().answers.push(answer);
    }

    /// Like [`answer`](Self::answer), but used once. One-time answers come before
    /// persistent ones, oldest first, so a sequence (down, down, up) is three calls.
    pub fn answer_once(&self, container: &str, prefix: &[&str], output: ExecOutput) {
        let answer = Answer { container: container.into(), prefix: words(prefix), output };
        self.state().once.push_back(answer);
    }

    /// What [`Engine::info`] reports (default: 4 CPUs, 8192 MiB, x86_64).
    pub fn set_info(&self, info: EngineInfo) {
        self.state().info = Some(info);
    }

    /// What [`Engine::logs`] returns for `container` (default: nothing).
    pub fn set_logs(&self, container: &str, logs: &str) -> Result<()> {
        self.state().container(container)?.logs = logs.into();
        Ok(())
    }

    /// Makes every call fail with [`EngineError::Unreachable`] (still recorded), as a
    /// host that fell off the network; `false` brings it back.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.state().unreachable = unreachable;
    }

    /// Makes every call that `when` matches fail with `error()` (still recorded, and
    /// without effect on the model). See [`api_error`] for an error like Docker's.
    pub fn fail_when(
        &self,
        when: impl Fn(&Call) -> bool + Send + 'static,
        error: impl Fn() -> EngineError + Send + 'static,
    ) {
        self.state().failures.push((Box::new(when), Box::new(error)));
    }

    /// Forgets every [`fail_when`](Self::fail_when).
    pub fn clear_failures(&self) {
        self.state().failures.clear();
    }

    /// An engine holding one running container `name` of `image`, made by an earlier
    /// run: what a client's tests exec into.
    pub fn with_running(name: &str, image: &str) -> RecordingEngine {
        let engine = RecordingEngine::new();
        engine.insert_container(ContainerInfo {
            host: 0,
            name: name.into(),
            id: format!("{name}-id"),
            image: image.into(),
            labels: Default::default(),
            state: "running".into(),
            status: "Up 2 minutes".into(),
        });
        engine
    }

    /// Puts a container on the engine without recording a call, as one made by an
    /// earlier run. Its `host` is set to 0, as engines list them.
    pub fn insert_container(&self, info: ContainerInfo) {
        let container = Container {
            info: ContainerInfo { host: 0, ..info },
            plan: None,
            files: BTreeMap::new(),
            logs: String::new(),
        };
        self.state().containers.insert(container.info.name.clone(), container);
    }

    /// Puts a planned container on the engine (and its image) without recording a
    /// call, running or only created, as an earlier `up` left it.
    pub fn insert_planned(&self, plan: &ContainerPlan, running: bool) {
        let mut state = self.state();
        let container = new_container(&mut state, plan);
        state.images.entry(plan.image.clone()).or_insert_with(|| plan.image.clone());
        state.containers.insert(plan.name.clone(), container);
        if running {
            start(&mut state.containers.get_mut(&plan.name).expect("just inserted").info);
        }
    }

    /// Puts an image on the engine (its tag names it) without recording a call.
    /// Puts an image in the registry this engine pulls from (a site's, a Debian base).
    pub fn offer(&self, image: &str) {
        self.state().registry.insert(image.into(), format!("sha256:{image}"));
    }

    /// Whether the registry holds `image` (pushed there, or offered).
    pub fn registry_has(&self, image: &str) -> bool {
        self.state().registry.contains_key(image)
    }

    pub fn insert_image(&self, tag: &str) {
        self.state().images.insert(tag.into(), tag.into());
    }

    /// Puts a volume on the engine without recording a call.
    pub fn insert_volume(&self, vol: &VolumePlan) {
        self.state().volumes.insert(vol.name.clone(), vol.labels.clone());
    }

    /// Puts a network on the engine without recording a call.
    pub fn insert_network(&self, net: &NetworkPlan) {
        self.state().networks.insert(net.name.clone(), net.labels.clone());
    }

    // Inspection.

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Every call so far, in order, leaving none: for tests in phases.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.state().calls)
    }

    /// The commands run so far, one `container: cmd words` line each (`exec` and
    /// `exec_attached`), for readable assertions.
    pub fn exec_log(&self) -> Vec<String> {
        self.state()
            .calls
            .iter()
            .filter_map(|c| match c {
                Call::Exec { container, cmd, .. } | Call::ExecAttached { container, cmd, .. } => {
                    Some(format!("{container}: {}", cmd.join(" ")))
                }
                _ => None,
            })
            .collect()
    }

    /// Every container on the engine, by name.
    pub fn containers(&self) -> Vec<ContainerInfo> {
        self.state().containers.values().map(|c| c.info.clone()).collect()
    }

    pub fn container(&self, name: &str) -> Option<ContainerInfo> {
        self.state().containers.get(name).map(|c| c.info.clone())
    }

    /// The plan a container was created from ([`Engine::create_container`] or
    /// [`insert_planned`](Self::insert_planned)).
    pub fn planned(&self, name: &str) -> Option<ContainerPlan> {
        self.state().containers.get(name).and_then(|c| c.plan.clone())
    }

    /// What was uploaded to `path` in `container`, last write wins.
    pub fn file(&self, container: &str, path: &str) -> Option<Vec<u8>> {
        self.state().containers.get(container).and_then(|c| c.files.get(path).cloned())
    }

    pub fn has_network(&self, name: &str) -> bool {
        self.state().networks.contains_key(name)
    }

    pub fn has_volume(&self, name: &str) -> bool {
        self.state().volumes.contains_key(name)
    }

    /// Whether an image id or tag is on the engine.
    pub fn has_image(&self, image: &str) -> bool {
        self.state().images.contains_key(image)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use futures_util::Stream;

    use super::*;
    use crate::components::HostFacts;
    use crate::engine::{Engine, ExecSpec, FileUpload};
    use crate::plan::LABEL_CLUSTER;
    use crate::plan::Plan;
    use crate::spec::{Arch, ClusterSpec};

    const IMAGE: &str = "slurmbox/node:24.11-test";

    /// The default cluster's plan ("slurmbox": controller, login, node1, node2).
    fn plan() -> Plan {
        let facts = HostFacts {
            cpus: 2,
            memory_mib: 4096,
            arch: Arch::Amd64,
            emulated: false,
            image: IMAGE.into(),
            storage_image: None,
            accounting_image: None,
            controller_image: None,
            metrics_image: None,
            web_image: None,
            cgroup: crate::components::limits::CgroupHost::v2(),
            ssh_port: crate::spec::DEFAULT_SSH_PORT,
            rest_port: crate::spec::DEFAULT_REST_PORT,
            web_port: crate::spec::DEFAULT_WEB_PORT,
            gpus: None,
        };
        crate::components::plan(&ClusterSpec::default_cluster(), &[facts])
    }

    /// An engine running the default cluster.
    fn running_cluster() -> (RecordingEngine, Plan) {
        let engine = RecordingEngine::new();
        let plan = plan();
        for c in &plan.containers {
            engine.insert_planned(c, true);
        }
        (engine, plan)
    }

    fn tar(chunks: &[&'static [u8]]) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        futures_util::stream::iter(chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn containers_are_created_listed_started_and_removed_consistently() {
        let engine = RecordingEngine::new();
        let plan = plan();
        let controller = plan.controller().clone();
        engine.insert_image(IMAGE);

        engine.create_container(&controller).await.unwrap();
        let listed = engine.list_containers(&plan.cluster).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, controller.name);
        assert_eq!(listed[0].labels, controller.labels, "labels (the spec hash too) are kept");
        assert!(!listed[0].running());
        assert!(engine.list_containers("other").await.unwrap().is_empty(), "listed by cluster label");

        engine.start_container(&controller.name).await.unwrap();
        assert!(engine.container(&controller.name).unwrap().running());
        assert_eq!(engine.planned(&controller.name).as_ref(), Some(&controller));

        engine.remove_container(&controller.name).await.unwrap();
        engine.remove_container(&controller.name).await.unwrap();
        assert!(engine.containers().is_empty());
        assert_eq!(
            engine.calls(),
            [
                Call::CreateContainer { name: controller.name.clone(), image: IMAGE.into() },
                Call::ListContainers { cluster: plan.cluster.clone() },
                Call::ListContainers { cluster: "other".into() },
                Call::StartContainer { name: controller.name.clone() },
                Call::RemoveContainer { name: controller.name.clone() },
                Call::RemoveContainer { name: controller.name.clone() },
            ]
        );
    }

    #[tokio::test]
    async fn creating_needs_the_image_and_a_free_name() {
        let engine = RecordingEngine::new();
        let controller = plan().controller().clone();
        let e = engine.create_container(&controller).await.unwrap_err();
        assert!(e.to_string().contains("create container slurmbox-controller"), "{e}");
        assert!(engine.containers().is_empty());

        engine.insert_image(IMAGE);
        engine.create_container(&controller).await.unwrap();
        let e = engine.create_container(&controller).await.unwrap_err();
        assert!(matches!(e, EngineError::Foreign { what: "container", .. }), "{e}");
        let e = engine.start_container("nope").await.unwrap_err();
        assert!(e.to_string().contains("start container nope"), "{e}");
    }

    #[tokio::test]
    async fn exec_answers_from_fixtures() {
        let (engine, _) = running_cluster();
        let ping = ExecSpec::new(["scontrol", "ping"]);
        // Nothing registered: exit 0, no output.
        let out = engine.exec("slurmbox-login", &ping).await.unwrap();
        assert!(out.ok() && out.stdout.is_empty());

        engine.answer(ANY_CONTAINER, &[], ExecOutput::failure(127, "not found"));
        engine.answer(ANY_CONTAINER, &["scontrol"], ExecOutput::success("any"));
        engine.answer("slurmbox-controller", &["scontrol", "ping"], ExecOutput::success("UP"));
        engine.answer_once("slurmbox-controller", &["scontrol"], ExecOutput::success("first"));
        engine.answer_once(ANY_CONTAINER, &["scontrol"], ExecOutput::success("second"));

        let stdout = |c: &'static str, spec: ExecSpec| {
            let engine = &engine;
            async move { engine.exec(c, &spec).await.unwrap().stdout }
        };
        assert_eq!(
            stdout("slurmbox-controller", ping.clone()).await,
            "first",
            "one-time answers first, in order"
        );
        assert_eq!(stdout("slurmbox-node1", ping.clone()).await, "second");
        assert_eq!(stdout("slurmbox-controller", ping.clone()).await, "UP", "the last persistent match");
        assert_eq!(stdout("slurmbox-node1", ping.clone()).await, "any");
        assert_eq!(
            stdout("slurmbox-node1", ExecSpec::new(["scontro"])).await,
            "",
            "prefixes are whole words"
        );
        assert_eq!(engine.exec("slurmbox-node1", &ExecSpec::new(["ls"])).await.unwrap().code, 127);
        assert_eq!(engine.exec_attached("slurmbox-node1", &ExecSpec::new(["ls"]), true).await.unwrap(), 127);

        let root = ExecSpec { user: Some("root".into()), ..ExecSpec::new(["id"]) };
        engine.exec("slurmbox-node2", &root).await.unwrap();
        assert_eq!(
            engine.calls().last(),
            Some(&Call::Exec {
                container: "slurmbox-node2".into(),
                cmd: vec!["id".into()],
                user: Some("root".into())
            })
        );
        assert_eq!(
            engine.exec_log()[..2],
            ["slurmbox-login: scontrol ping", "slurmbox-controller: scontrol ping"]
        );
    }

    #[tokio::test]
    async fn exec_needs_a_running_container() {
        let engine = RecordingEngine::new();
        let plan = plan();
        engine.insert_planned(plan.controller(), false);
        let e = engine.exec(&plan.controller().name, &ExecSpec::new(["true"])).await.unwrap_err();
        assert!(e.to_string().contains("is not running"), "{e}");
        let e = engine.exec("gone", &ExecSpec::new(["true"])).await.unwrap_err();
        assert!(matches!(e, EngineError::NoContainer(ref n) if n == "gone"), "{e}");
    }

    #[tokio::test]
    async fn an_unreachable_engine_fails_every_call_and_records_it() {
        let (engine, plan) = running_cluster();
        engine.set_unreachable(true);
        let e = engine.list_containers(&plan.cluster).await.unwrap_err();
        assert!(matches!(e, EngineError::Unreachable(_)), "{e}");
        assert!(matches!(engine.info().await, Err(EngineError::Unreachable(_))));
        assert!(matches!(engine.remove_container("slurmbox-node1").await, Err(EngineError::Unreachable(_))));
        assert_eq!(engine.containers().len(), 5, "nothing changed");
        assert_eq!(engine.take_calls().len(), 3);

        engine.set_unreachable(false);
        assert_eq!(engine.list_containers(&plan.cluster).await.unwrap().len(), 5);
        assert_eq!(engine.calls().len(), 1, "take_calls left none");
    }

    #[tokio::test]
    async fn a_chosen_call_fails() {
        let (engine, _) = running_cluster();
        engine.fail_when(
            |c| matches!(c, Call::RemoveContainer { name } if name == "slurmbox-node2"),
            || api_error("remove container slurmbox-node2", 500, "device busy"),
        );
        engine.remove_container("slurmbox-node1").await.unwrap();
        let e = engine.remove_container("slurmbox-node2").await.unwrap_err();
        assert!(e.to_string().contains("device busy"), "{e}");
        assert!(engine.container("slurmbox-node2").is_some(), "a failed call changes nothing");
        engine.clear_failures();
        engine.remove_container("slurmbox-node2").await.unwrap();
        assert!(engine.container("slurmbox-node2").is_none());
        assert_eq!(engine.calls().len(), 3);
    }

    #[tokio::test]
    async fn images_are_imported_tagged_sent_and_removed() {
        let here = RecordingEngine::named("here");
        let there = RecordingEngine::named("pi2");
        let changes = vec!["ENV LANG=C.UTF-8".to_string()];
        let id = here.import_image(&changes, "linux/arm64", tar(&[b"abc", b"de"])).await.unwrap();
        here.tag_image(&id, IMAGE).await.unwrap();
        assert!(here.image_exists(IMAGE).await.unwrap());
        assert!(!there.image_exists(IMAGE).await.unwrap());

        here.send_image(IMAGE, &there).await.unwrap();
        assert!(there.has_image(IMAGE));
        assert_eq!(
            here.calls(),
            [
                Call::ImportImage { changes, platform: "linux/arm64".into(), bytes: 5 },
                Call::TagImage { id: id.clone(), image: IMAGE.into() },
                Call::ImageExists { image: IMAGE.into() },
                Call::SendImage { image: IMAGE.into(), to: "pi2".into() },
            ]
        );
        assert_eq!(there.calls()[1], Call::ReceiveImage { image: IMAGE.into(), from: "here".into() });
        assert!(here.send_image("slurmbox/none:1", &there).await.is_err());

        here.remove_image(&id).await.unwrap();
        assert!(!here.has_image(IMAGE) && !here.has_image(&id), "removing by id takes its tags");
        assert!(here.tag_image(&id, IMAGE).await.is_err());

        let broken =
            futures_util::stream::iter([Ok(Bytes::from_static(b"ab")), Err(std::io::Error::other("cut"))]);
        let e = here.import_image(&[], "linux/amd64", broken).await.unwrap_err();
        assert!(e.to_string().contains("import an image"), "{e}");
        assert!(matches!(here.calls().last(), Some(Call::ImportImage { bytes: 2, .. })));
    }

    #[tokio::test]
    async fn networks_and_volumes_are_ensured_and_removed_by_cluster() {
        let engine = RecordingEngine::new();
        let plan = plan();
        for net in &plan.networks {
            engine.ensure_network(net).await.unwrap();
            engine.ensure_network(net).await.unwrap();
        }
        for vol in &plan.volumes {
            engine.ensure_volume(vol).await.unwrap();
        }
        assert!(engine.has_network("slurmbox-net") && engine.has_volume("slurmbox-munge"));
        let mut foreign = plan.volumes[0].clone();
        foreign.labels.insert(LABEL_CLUSTER.into(), "other".into());
        let e = engine.ensure_volume(&foreign).await.unwrap_err();
        assert!(matches!(e, EngineError::Foreign { what: "volume", .. }), "{e}");

        assert_eq!(engine.remove_network("other").await.unwrap(), Vec::<String>::new());
        assert_eq!(engine.remove_network(&plan.cluster).await.unwrap(), ["slurmbox-net"]);
        let removed = engine.remove_volumes(&plan.cluster).await.unwrap();
        assert_eq!(removed.len(), plan.volumes.len());
        assert!(!engine.has_volume("slurmbox-munge"));
    }

    #[tokio::test]
    async fn uploads_and_logs_are_kept_per_container() {
        let (engine, _) = running_cluster();
        let key = FileUpload { path: "/etc/munge/munge.key".into(), contents: b"key".to_vec(), mode: 0o400 };
        engine.upload("slurmbox-node1", &[key]).await.unwrap();
        assert_eq!(engine.file("slurmbox-node1", "/etc/munge/munge.key").as_deref(), Some(&b"key"[..]));
        assert_eq!(engine.file("slurmbox-node2", "/etc/munge/munge.key"), None);
        assert!(matches!(engine.upload("gone", &[]).await, Err(EngineError::NoContainer(_))));

        engine.set_logs("slurmbox-node1", "one\ntwo\nthree\n").unwrap();
        assert_eq!(engine.logs("slurmbox-node1", "2").await.unwrap(), "two\nthree\n");
        assert_eq!(engine.logs("slurmbox-node1", "all").await.unwrap(), "one\ntwo\nthree\n");
        assert!(engine.set_logs("gone", "").is_err());
    }

    // Examples: code that is generic over `Engine`, tested without Docker.

    #[tokio::test]
    async fn example_delete_nodes_ignores_nodes_slurm_does_not_know() {
        let (engine, plan) = running_cluster();
        let controller = &plan.controller().name;
        engine.answer(
            controller,
            &["scontrol", "delete", "nodename=gone"],
            ExecOutput::failure(1, "scontrol: error: Invalid node name specified"),
        );
        let nodes = ["node2".to_string(), "gone".to_string()];
        crate::components::compute::delete_nodes(&engine, controller, &nodes).await.unwrap();
        assert_eq!(
            engine.exec_log(),
            [
                "slurmbox-controller: scontrol delete nodename=node2",
                "slurmbox-controller: scontrol delete nodename=gone"
            ]
        );

        // Any other failure is an error, naming the command.
        engine.answer(
            controller,
            &["scontrol"],
            ExecOutput::failure(1, "Unable to contact slurm controller"),
        );
        let e = crate::components::compute::delete_nodes(&engine, controller, &nodes).await.unwrap_err();
        assert!(e.to_string().contains("scontrol delete nodename=node2"), "{e}");
    }

    #[tokio::test]
    async fn example_delete_nodes_on_a_host_that_does_not_answer() {
        let (engine, plan) = running_cluster();
        engine.set_unreachable(true);
        let e = crate::components::compute::delete_nodes(&engine, &plan.controller().name, &["node1".into()])
            .await;
        assert!(
            matches!(
                e,
                Err(crate::components::PartError::Slurm(crate::slurm::SlurmError::Engine(
                    EngineError::Unreachable(_)
                )))
            ),
            "{:?}",
            e.err()
        );
    }

    #[tokio::test]
    async fn example_wait_for_controller_polls_until_it_is_up() {
        let (engine, plan) = running_cluster();
        let controller = &plan.controller().name;
        let ping = ["scontrol", "ping"];
        // What `scontrol ping --json` says of a controller that is down, and of one up.
        let down = ExecOutput {
            code: 1,
            stdout: include_str!("../../slurm/fixtures/24.11-ping-down.json").into(),
            stderr: "".into(),
        };
        engine.answer_once(controller, &ping, down.clone());
        engine.answer_once(controller, &ping, down.clone());
        engine.answer(
            controller,
            &ping,
            ExecOutput::success(include_str!("../../slurm/fixtures/24.11-ping-up.json")),
        );
        crate::components::controller::wait_for_controller(&engine, controller, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(engine.exec_log().len(), 3);

        engine.answer(controller, &ping, down);
        let e = crate::components::controller::wait_for_controller(&engine, controller, Duration::ZERO)
            .await
            .unwrap_err();
        assert!(matches!(e, crate::components::PartError::ControllerDown(0)), "{e}");
    }

    #[tokio::test]
    async fn example_images_reach_only_the_hosts_that_lack_them() {
        let (here, pi2, pi3) =
            (RecordingEngine::named("here"), RecordingEngine::named("pi2"), RecordingEngine::named("pi3"));
        here.insert_image(IMAGE);
        pi3.insert_image(IMAGE);
        let progress = crate::progress::Progress::new(true);
        for (host, target) in [("pi2", &pi2), ("pi3", &pi3)] {
            crate::image::send_if_missing(&here, target, host, IMAGE, "Image", &progress).await.unwrap();
        }
        let sends: Vec<Call> =
            here.calls().into_iter().filter(|c| matches!(c, Call::SendImage { .. })).collect();
        assert_eq!(sends, [Call::SendImage { image: IMAGE.into(), to: "pi2".into() }]);
        assert!(pi2.has_image(IMAGE));
    }
}
