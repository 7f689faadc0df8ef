//! Slurm's compute nodes as slurmbox reads them: [`Node`] and its typed [`NodeState`],
//! parsed from `scontrol show nodes --json` and `sinfo --json` (data_parser v0.0.42).

use std::fmt;

use serde::Deserialize;

/// A node's base state, the part of Slurm's state that is one value at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeBase {
    Idle,
    Mixed,
    Allocated,
    Down,
    Future,
    Error,
    Unknown,
}

/// What Slurm adds to the base state (v0.0.42's flag names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeFlag {
    Drain,
    Completing,
    NotResponding,
    Fail,
    Maintenance,
    RebootRequested,
    RebootIssued,
    PoweredDown,
    PoweringUp,
    PoweringDown,
    PowerDown,
    Planned,
    Reserved,
    PerfCtrs,
    InvalidReg,
    /// Any other flag (DYNAMIC_NORM, CLOUD, ...), as Slurm names it; it does not change
    /// how the state reads.
    Other(String),
}

impl NodeFlag {
    fn parse(name: &str) -> NodeFlag {
        match name {
            "DRAIN" => NodeFlag::Drain,
            "COMPLETING" => NodeFlag::Completing,
            "NOT_RESPONDING" => NodeFlag::NotResponding,
            "FAIL" => NodeFlag::Fail,
            "MAINTENANCE" => NodeFlag::Maintenance,
            "REBOOT_REQUESTED" => NodeFlag::RebootRequested,
            "REBOOT_ISSUED" => NodeFlag::RebootIssued,
            "POWERED_DOWN" => NodeFlag::PoweredDown,
            "POWERING_UP" => NodeFlag::PoweringUp,
            "POWERING_DOWN" => NodeFlag::PoweringDown,
            "POWER_DOWN" => NodeFlag::PowerDown,
            "PLANNED" => NodeFlag::Planned,
            "RESERVED" => NodeFlag::Reserved,
            "PERFCTRS" => NodeFlag::PerfCtrs,
            "INVALID_REG" => NodeFlag::InvalidReg,
            other => NodeFlag::Other(other.to_string()),
        }
    }
}

/// A node's state: its base state and flags. [`Display`](fmt::Display) reads it the
/// way `sinfo -o %T` does ("idle", "down*", "drained", "draining", "completing", ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub base: NodeBase,
    pub flags: Vec<NodeFlag>,
}

impl NodeState {
    /// From v0.0.42's list of names: the base state and the flags, in any order.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> NodeState {
        let mut base = NodeBase::Unknown;
        let mut flags = Vec::new();
        for name in names {
            match name.as_ref() {
                "IDLE" => base = NodeBase::Idle,
                "MIXED" => base = NodeBase::Mixed,
                "ALLOCATED" => base = NodeBase::Allocated,
                "DOWN" => base = NodeBase::Down,
                "FUTURE" => base = NodeBase::Future,
                "ERROR" => base = NodeBase::Error,
                "UNKNOWN" => base = NodeBase::Unknown,
                flag => flags.push(NodeFlag::parse(flag)),
            }
        }
        NodeState { base, flags }
    }

    pub fn has(&self, flag: &NodeFlag) -> bool {
        self.flags.contains(flag)
    }

    /// The node answers and takes jobs: idle or mixed (also while the backfill
    /// scheduler has it planned for a pending job), allocated, or completing (still
    /// finishing an earlier job). A drained, down or unresponsive node is not.
    pub fn is_ready(&self) -> bool {
        // "planned" and "mixed-": the backfill scheduler has set the node aside for a
        // pending job (the mark stays until its next pass); the node still takes jobs.
        matches!(
            self.to_string().as_str(),
            "idle" | "planned" | "mixed" | "mixed-" | "allocated" | "completing"
        )
    }

    /// Taken out of service, by hand or by Slurm: down, drained or draining, failing,
    /// or not answering.
    pub fn is_unavailable(&self) -> bool {
        self.base == NodeBase::Down
            || self.has(&NodeFlag::Drain)
            || self.has(&NodeFlag::Fail)
            || self.has(&NodeFlag::NotResponding)
    }

    /// The symbol Slurm appends for power saving, maintenance, reboots and nodes that
    /// do not answer (the first that applies).
    fn suffix(&self) -> &'static str {
        use NodeFlag::*;
        [
            (Maintenance, "$"),
            (RebootRequested, "@"),
            (PoweringUp, "#"),
            (PoweringDown, "%"),
            (PoweredDown, "~"),
            (PowerDown, "!"),
            (NotResponding, "*"),
        ]
        .into_iter()
        .find(|(flag, _)| self.has(flag))
        .map_or("", |(_, s)| s)
    }

    /// Slurm's long name of the state (`node_state_string`), lowercased as sinfo's
    /// `%T` prints it.
    fn long_form(&self) -> String {
        use NodeFlag::*;
        let has = |f: NodeFlag| self.has(&f);
        let no_resp = if has(NotResponding) { "*" } else { "" };
        let busy = matches!(self.base, NodeBase::Allocated | NodeBase::Mixed);
        if has(InvalidReg) {
            return "inval".into();
        }
        if has(Maintenance) && !(has(Drain) || busy || self.base == NodeBase::Down) {
            return format!("maint{no_resp}");
        }
        if !busy && has(RebootIssued) {
            return "reboot_issued".into();
        }
        if !busy && has(RebootRequested) {
            return "reboot_requested".into();
        }
        let suffix = self.suffix();
        if has(Drain) {
            let what = if has(Completing) || busy { "draining" } else { "drained" };
            return format!("{what}{suffix}");
        }
        if has(Fail) {
            let what = if has(Completing) || self.base == NodeBase::Allocated { "failing" } else { "fail" };
            return format!("{what}{no_resp}");
        }
        match self.base {
            NodeBase::Down => format!("down{suffix}"),
            NodeBase::Allocated if suffix.is_empty() && has(Completing) => "allocated+".into(),
            NodeBase::Allocated => format!("allocated{suffix}"),
            _ if has(Completing) => format!("completing{suffix}"),
            NodeBase::Idle if !suffix.is_empty() => format!("idle{suffix}"),
            NodeBase::Idle if has(PerfCtrs) => "perfctrs".into(),
            NodeBase::Idle if has(Reserved) => "reserved".into(),
            NodeBase::Idle if has(Planned) => "planned".into(),
            NodeBase::Idle => "idle".into(),
            NodeBase::Mixed if suffix.is_empty() && has(Planned) => "mixed-".into(),
            NodeBase::Mixed => format!("mixed{suffix}"),
            NodeBase::Future => format!("future{no_resp}"),
            NodeBase::Error => format!("error{no_resp}"),
            NodeBase::Unknown => format!("unknown{no_resp}"),
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.long_form())
    }
}

/// A node as the controller knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub state: NodeState,
    /// Why it is down or drained, as an admin or Slurm gave it; `None` when there is none.
    pub reason: Option<String>,
    pub cpus: u32,
    /// Memory it offers to jobs (RealMemory), in MiB.
    pub memory_mib: u64,
    pub features: Vec<String>,
    pub partitions: Vec<String>,
}

/// How the reason of a node slurmbox drained for a change begins ("slurmbox: memory
/// 4096 -> 2048 MiB"): `up` finishes the change, `status` names it.
pub const CHANGE_REASON: &str = "slurmbox:";

impl Node {
    /// Whether slurmbox drained it for a change (see [`CHANGE_REASON`]).
    pub fn drained_for_change(&self) -> bool {
        self.state.has(&NodeFlag::Drain)
            && self.reason.as_deref().is_some_and(|r| r.starts_with(CHANGE_REASON))
    }
}

fn reason(text: String) -> Option<String> {
    Some(text).filter(|r| !r.is_empty() && r != "none")
}

#[derive(Deserialize)]
struct NodesDoc {
    nodes: Vec<NodeJson>,
}

#[derive(Deserialize)]
struct NodeJson {
    name: String,
    state: Vec<String>,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    cpus: u32,
    #[serde(default)]
    real_memory: u64,
    #[serde(default)]
    features: Vec<String>,
    #[serde(default)]
    partitions: Vec<String>,
}

/// Parses `scontrol show nodes --json=v0.0.42`.
pub fn parse_nodes(json: &str) -> Result<Vec<Node>, serde_json::Error> {
    let doc: NodesDoc = serde_json::from_str(json)?;
    Ok(doc
        .nodes
        .into_iter()
        .map(|n| Node {
            state: NodeState::from_names(&n.state),
            reason: reason(n.reason),
            name: n.name,
            cpus: n.cpus,
            memory_mib: n.real_memory,
            features: n.features,
            partitions: n.partitions,
        })
        .collect())
}

/// One node as `sinfo` lists it: its name, state and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinfoNode {
    pub name: String,
    pub state: NodeState,
    pub reason: Option<String>,
}

#[derive(Deserialize)]
struct SinfoDoc {
    sinfo: Vec<SinfoGroup>,
}

#[derive(Deserialize)]
struct SinfoGroup {
    node: SinfoState,
    nodes: SinfoNames,
    #[serde(default)]
    reason: SinfoReason,
}

#[derive(Deserialize)]
struct SinfoState {
    state: Vec<String>,
}

#[derive(Deserialize)]
struct SinfoNames {
    nodes: Vec<String>,
}

#[derive(Deserialize, Default)]
struct SinfoReason {
    #[serde(default)]
    description: String,
}

/// Parses `sinfo --json=v0.0.42`: sinfo groups nodes alike (per partition, state,
/// reason, ...); this lists each node once, sorted by name, as `sinfo -N` would.
pub fn parse_sinfo(json: &str) -> Result<Vec<SinfoNode>, serde_json::Error> {
    let doc: SinfoDoc = serde_json::from_str(json)?;
    let mut nodes: Vec<SinfoNode> = Vec::new();
    for group in doc.sinfo {
        let state = NodeState::from_names(&group.node.state);
        for name in group.nodes.nodes {
            // A node in several partitions appears in a group for each.
            if !nodes.iter().any(|n| n.name == name) {
                let reason = reason(group.reason.description.clone());
                nodes.push(SinfoNode { name, state: state.clone(), reason });
            }
        }
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERSIONS: [&str; 2] = ["24.11", "26.05"];

    #[test]
    fn only_a_drain_for_a_change_reads_as_one() {
        for version in VERSIONS {
            let mut nodes = parse_nodes(fixture(version, "nodes-draining")).unwrap();
            let drained = nodes.iter_mut().find(|n| n.state.has(&NodeFlag::Drain)).unwrap();
            assert!(!drained.drained_for_change(), "another reason: {:?}", drained.reason);
            drained.reason = Some("slurmbox: memory 4096 -> 2048 MiB".into());
            assert!(drained.drained_for_change());
            drained.state = NodeState::from_names(&["IDLE"]);
            assert!(!drained.drained_for_change(), "resumed, the reason left over");
        }
    }

    /// A captured fixture (src/slurm/fixtures/VERSION-NAME.json) for each version.
    fn fixture(version: &str, name: &str) -> &'static str {
        match (version, name) {
            ("24.11", "nodes-idle") => include_str!("fixtures/24.11-nodes-idle.json"),
            ("24.11", "nodes-busy") => include_str!("fixtures/24.11-nodes-busy.json"),
            ("24.11", "nodes-draining") => include_str!("fixtures/24.11-nodes-draining.json"),
            ("24.11", "nodes-drained") => include_str!("fixtures/24.11-nodes-drained.json"),
            ("24.11", "nodes-not-responding") => include_str!("fixtures/24.11-nodes-not-responding.json"),
            ("24.11", "nodes-down") => include_str!("fixtures/24.11-nodes-down.json"),
            ("24.11", "sinfo-busy") => include_str!("fixtures/24.11-sinfo-busy.json"),
            ("24.11", "sinfo-down") => include_str!("fixtures/24.11-sinfo-down.json"),
            ("26.05", "nodes-idle") => include_str!("fixtures/26.05-nodes-idle.json"),
            ("26.05", "nodes-busy") => include_str!("fixtures/26.05-nodes-busy.json"),
            ("26.05", "nodes-draining") => include_str!("fixtures/26.05-nodes-draining.json"),
            ("26.05", "nodes-drained") => include_str!("fixtures/26.05-nodes-drained.json"),
            ("26.05", "nodes-not-responding") => include_str!("fixtures/26.05-nodes-not-responding.json"),
            ("26.05", "nodes-down") => include_str!("fixtures/26.05-nodes-down.json"),
            ("26.05", "sinfo-busy") => include_str!("fixtures/26.05-sinfo-busy.json"),
            ("26.05", "sinfo-down") => include_str!("fixtures/26.05-sinfo-down.json"),
            _ => panic!("no fixture {version}-{name}"),
        }
    }

    fn states(nodes: &[Node]) -> Vec<(String, String)> {
        nodes.iter().map(|n| (n.name.clone(), n.state.to_string())).collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn scontrol_nodes_read_as_sinfo_prints_them() {
        for v in VERSIONS {
            let read = |name| states(&parse_nodes(fixture(v, name)).unwrap());
            assert_eq!(read("nodes-idle"), pairs(&[("node1", "idle"), ("node2", "idle")]), "{v}");
            assert_eq!(read("nodes-busy"), pairs(&[("node1", "mixed"), ("node2", "allocated")]), "{v}");
            assert_eq!(
                read("nodes-draining"),
                pairs(&[("node1", "draining"), ("node2", "allocated")]),
                "{v}"
            );
            assert_eq!(read("nodes-drained"), pairs(&[("node1", "drained"), ("node2", "allocated")]), "{v}");
            assert_eq!(read("nodes-not-responding"), pairs(&[("node1", "idle"), ("node2", "idle*")]), "{v}");
            assert_eq!(read("nodes-down"), pairs(&[("node1", "idle"), ("node2", "down*")]), "{v}");
        }
    }

    #[test]
    fn nodes_carry_resources_features_and_reasons() {
        for v in VERSIONS {
            let nodes = parse_nodes(fixture(v, "nodes-drained")).unwrap();
            let node1 = &nodes[0];
            assert_eq!((node1.cpus, node1.memory_mib), (4, 24105), "{v}");
            assert_eq!(node1.features, ["compute", "amd64"], "{v}");
            assert_eq!(node1.partitions, ["debug"], "{v}");
            assert_eq!(node1.reason.as_deref(), Some("host pi3 leaving the cluster"), "{v}");
            assert!(node1.state.has(&NodeFlag::Drain) && node1.state.is_unavailable(), "{v}");
            assert_eq!(nodes[1].reason, None, "{v}");
            let down = &parse_nodes(fixture(v, "nodes-down")).unwrap()[1];
            assert_eq!(down.reason.as_deref(), Some("Not responding"), "{v}");
            assert_eq!(down.state.base, NodeBase::Down, "{v}");
        }
    }

    #[test]
    fn ready_means_what_the_bring_up_waits_for() {
        for v in VERSIONS {
            let ready = |name| {
                parse_nodes(fixture(v, name)).unwrap().iter().map(|n| n.state.is_ready()).collect::<Vec<_>>()
            };
            assert_eq!(ready("nodes-idle"), [true, true], "{v}");
            assert_eq!(ready("nodes-busy"), [true, true], "{v}");
            assert_eq!(ready("nodes-draining"), [false, true], "{v}");
            assert_eq!(ready("nodes-not-responding"), [true, false], "{v}");
            assert_eq!(ready("nodes-down"), [true, false], "{v}");
        }
        // Finishing an earlier job still counts; allocated and completing at once does not
        // read as any of the four (sinfo says "allocated+").
        let state = |names: &[&str]| NodeState::from_names(names);
        assert!(state(&["IDLE", "COMPLETING", "DYNAMIC_NORM"]).is_ready());
        assert_eq!(state(&["IDLE", "COMPLETING"]).to_string(), "completing");
        assert_eq!(state(&["ALLOCATED", "COMPLETING"]).to_string(), "allocated+");
        assert!(!state(&["FUTURE"]).is_ready());
    }

    #[test]
    fn flags_read_like_slurms_long_state_names() {
        let read = |names: &[&str]| NodeState::from_names(names).to_string();
        assert_eq!(read(&["DOWN", "DRAIN", "NOT_RESPONDING"]), "drained*");
        assert_eq!(read(&["ALLOCATED", "DRAIN", "NOT_RESPONDING"]), "draining*");
        assert_eq!(read(&["IDLE", "DRAIN", "COMPLETING"]), "draining");
        assert_eq!(read(&["DOWN"]), "down");
        assert_eq!(read(&["IDLE", "POWERED_DOWN"]), "idle~");
        assert_eq!(read(&["IDLE", "MAINTENANCE"]), "maint");
        assert_eq!(read(&["IDLE", "FAIL"]), "fail");
        assert_eq!(read(&["ALLOCATED", "FAIL", "NOT_RESPONDING"]), "failing*");
        assert_eq!(read(&["IDLE", "REBOOT_REQUESTED"]), "reboot_requested");
        assert_eq!(read(&["MIXED", "PLANNED"]), "mixed-");
        assert!(NodeState::from_names(&["IDLE", "PLANNED"]).is_ready());
        assert_eq!(read(&["IDLE", "RESERVED"]), "reserved");
        assert_eq!(read(&["FUTURE", "DYNAMIC_FUTURE"]), "future");
        assert_eq!(read(&["UNKNOWN", "NOT_RESPONDING"]), "unknown*");
        assert_eq!(read(&["IDLE", "INVALID_REG"]), "inval");
    }

    #[test]
    fn sinfo_lists_each_node_once() {
        for v in VERSIONS {
            let nodes = parse_sinfo(fixture(v, "sinfo-busy")).unwrap();
            let read: Vec<_> = nodes.iter().map(|n| (n.name.clone(), n.state.to_string())).collect();
            assert_eq!(read, pairs(&[("node1", "mixed"), ("node2", "allocated")]), "{v}");
            let nodes = parse_sinfo(fixture(v, "sinfo-down")).unwrap();
            assert_eq!(nodes[1].state.to_string(), "down*", "{v}");
            assert_eq!(nodes[1].reason.as_deref(), Some("Not responding"), "{v}");
        }
        let doc = r#"{"sinfo": [{"node": {"state": ["IDLE"]}, "nodes": {"nodes": ["b", "a"]}},
                               {"node": {"state": ["IDLE"]}, "nodes": {"nodes": ["a"]}}]}"#;
        let names: Vec<_> = parse_sinfo(doc).unwrap().into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn text_that_is_not_the_json_is_an_error() {
        assert!(parse_nodes("node1 idle").is_err());
        assert!(parse_sinfo("{\"nodes\": []}").is_err());
    }
}
