//! What a [`RecordingEngine`](super::RecordingEngine) holds: its containers, networks,
//! volumes and images, the answers and failures a test registered, and the calls made.
//! Plain data and the small rules every call shares (a container must exist, and run
//! to take a command; objects belong to the cluster on their label).

use std::collections::{BTreeMap, VecDeque};

use super::{ANY_CONTAINER, Call, api_error};
use crate::engine::{ContainerInfo, EngineError, EngineInfo, ExecOutput, Result};
use crate::plan::{ContainerPlan, LABEL_CLUSTER};

pub(super) struct Answer {
    pub(super) container: String,
    pub(super) prefix: Vec<String>,
    pub(super) output: ExecOutput,
}

impl Answer {
    pub(super) fn matches(&self, container: &str, cmd: &[String]) -> bool {
        (self.container == ANY_CONTAINER || self.container == container) && cmd.starts_with(&self.prefix)
    }
}

pub(super) type Predicate = Box<dyn Fn(&Call) -> bool + Send>;
pub(super) type MakeError = Box<dyn Fn() -> EngineError + Send>;

pub(super) struct Container {
    pub(super) info: ContainerInfo,
    pub(super) plan: Option<ContainerPlan>,
    pub(super) files: BTreeMap<String, Vec<u8>>,
    pub(super) logs: String,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) calls: Vec<Call>,
    pub(super) containers: BTreeMap<String, Container>,
    /// Name → labels.
    pub(super) networks: BTreeMap<String, BTreeMap<String, String>>,
    pub(super) volumes: BTreeMap<String, BTreeMap<String, String>>,
    /// Image ids and tags → the image's id.
    pub(super) images: BTreeMap<String, String>,
    /// What a registry this engine reaches holds: image name to id.
    pub(super) registry: BTreeMap<String, String>,
    pub(super) answers: Vec<Answer>,
    pub(super) once: VecDeque<Answer>,
    pub(super) failures: Vec<(Predicate, MakeError)>,
    pub(super) unreachable: bool,
    pub(super) info: Option<EngineInfo>,
    pub(super) next_id: u64,
}

impl State {
    pub(super) fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:012}", self.next_id)
    }

    pub(super) fn container(&mut self, name: &str) -> Result<&mut Container> {
        self.containers.get_mut(name).ok_or_else(|| EngineError::NoContainer(name.into()))
    }

    pub(super) fn running(&mut self, name: &str) -> Result<&mut Container> {
        let c = self.container(name)?;
        if c.info.running() {
            Ok(c)
        } else {
            Err(api_error(
                &format!("run a command in {name}"),
                409,
                &format!("container {name} is not running"),
            ))
        }
    }

    pub(super) fn answer(&mut self, container: &str, cmd: &[String]) -> ExecOutput {
        if let Some(i) = self.once.iter().position(|a| a.matches(container, cmd)) {
            return self.once.remove(i).expect("the position is in the queue").output;
        }
        self.answers
            .iter()
            .rev()
            .find(|a| a.matches(container, cmd))
            .map_or_else(|| ExecOutput::success(""), |a| a.output.clone())
    }
}

pub(super) fn words(prefix: &[&str]) -> Vec<String> {
    prefix.iter().map(|w| w.to_string()).collect()
}

pub(super) fn new_container(state: &mut State, plan: &ContainerPlan) -> Container {
    let info = ContainerInfo {
        host: 0,
        name: plan.name.clone(),
        id: state.new_id(""),
        image: plan.image.clone(),
        labels: plan.labels.clone(),
        state: "created".into(),
        status: "Created".into(),
    };
    Container { info, plan: Some(plan.clone()), files: BTreeMap::new(), logs: String::new() }
}

pub(super) fn start(info: &mut ContainerInfo) {
    info.state = "running".into();
    info.status = "Up Less than a second".into();
}

/// The names of the objects labelled with `cluster`, removed from `objects`.
pub(super) fn remove_labelled(
    objects: &mut BTreeMap<String, BTreeMap<String, String>>,
    cluster: &str,
) -> Vec<String> {
    let ours: Vec<String> = objects
        .iter()
        .filter(|(_, labels)| labels.get(LABEL_CLUSTER).map(String::as_str) == Some(cluster))
        .map(|(name, _)| name.clone())
        .collect();
    for name in &ours {
        objects.remove(name);
    }
    ours
}

/// Creates the object `name` with `labels` in `objects`, or accepts one that has the
/// same cluster label; another is [`EngineError::Foreign`].
pub(super) fn ensure_labelled(
    objects: &mut BTreeMap<String, BTreeMap<String, String>>,
    what: &'static str,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<()> {
    match objects.get(name) {
        Some(found) if found.get(LABEL_CLUSTER) == labels.get(LABEL_CLUSTER) => Ok(()),
        Some(_) => Err(EngineError::Foreign { what, name: name.into() }),
        None => {
            objects.insert(name.into(), labels.clone());
            Ok(())
        }
    }
}
