//! GPUs: a host's device files (`gpu_devices`, in its `[[host]]` table or in `[compute]`
//! for a cluster without them) go to its compute nodes and nowhere else, each node
//! getting its share in order when a host runs several. A node sees each device under
//! its own file name in /dev (the host's /srv/fake/nvidia1 is the node's /dev/nvidia1),
//! registers the GPUs as Slurm GRES (`Gres=gpu:N`, plus `shard:N×S` with
//! `gpu_shards = S`), and carries the `gpu` feature, which makes the `gpu` partition.
//! gres.conf names each node's files; with limits on, `ConstrainDevices` keeps a job
//! to the GPUs it was given.

use super::{Config, Layout, Placed};
use crate::engine::EngineInfo;
use crate::render::{GresConf, GresLine, NodeSetDef, PartitionDef};

/// The feature GPU nodes register with, and the partition made of them.
pub const GPU_FEATURE: &str = "gpu";

/// `(on the host, in the node)` for each GPU of the node at `placed`.
pub fn of_node(layout: &Layout, placed: &Placed) -> Vec<(String, String)> {
    let devices = match layout.spec.hosts.get(placed.host) {
        Some(host) => &host.gpu_devices,
        None => &layout.spec.compute.gpu_devices,
    };
    if devices.is_empty() {
        return vec![];
    }
    // This node's place among its host's nodes, and its equal share of the devices.
    let index = layout.nodes.iter().filter(|n| n.host == placed.host).position(|n| n.name == placed.name);
    let per_node = devices.len() / layout.spec.compute.count.max(1) as usize;
    let start = index.unwrap_or(0) * per_node;
    devices[start..start + per_node]
        .iter()
        .map(|d| {
            let name = d.rsplit('/').next().unwrap_or(d);
            (d.clone(), format!("/dev/{name}"))
        })
        .collect()
}

/// What a host's engine says about GPUs: the NVIDIA container toolkit registered as a
/// runtime, and the GPUs its CDI driver found. slurmbox gives nodes device files only
/// (`gpu_devices`); this is what `up` and `doctor` point out on a host whose GPUs the
/// spec does not list.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GpuHost {
    pub nvidia_runtime: bool,
    /// CDI names of GPUs ("nvidia.com/gpu=0"), without the "all" alias.
    pub cdi_gpus: Vec<String>,
}

impl GpuHost {
    pub fn from_engine(info: &EngineInfo) -> GpuHost {
        GpuHost {
            nvidia_runtime: info.runtimes.iter().any(|r| r == "nvidia"),
            cdi_gpus: info
                .cdi_devices
                .iter()
                .filter(|d| d.contains("/gpu=") && !d.ends_with("=all"))
                .cloned()
                .collect(),
        }
    }

    /// A line on this host's GPUs, given the device files the spec lists for it; `None`
    /// for a host with none either way.
    pub fn describe(&self, listed: &[String]) -> Option<String> {
        if !listed.is_empty() {
            return Some(format!("{} GPU(s) from the spec: {}", listed.len(), listed.join(", ")));
        }
        let hint = "list their device files in its gpu_devices (e.g. [\"/dev/nvidia0\"]) to share them through Slurm";
        if !self.cdi_gpus.is_empty() {
            return Some(format!(
                "its engine knows {} GPU(s) ({}) that are not given to Slurm: {hint}",
                self.cdi_gpus.len(),
                self.cdi_gpus.join(", ")
            ));
        }
        self.nvidia_runtime.then(|| {
            format!("the NVIDIA container toolkit is registered with its engine, but no GPU is given to Slurm: {hint}")
        })
    }
}

/// The GRES a node with `gpus` GPUs registers with.
pub fn gres(layout: &Layout, gpus: usize) -> Vec<(String, u32)> {
    if gpus == 0 {
        return vec![];
    }
    let mut gres = vec![("gpu".to_string(), gpus as u32)];
    if layout.spec.compute.gpu_shards > 0 {
        gres.push(("shard".to_string(), gpus as u32 * layout.spec.compute.gpu_shards));
    }
    gres
}

/// slurm.conf's GresTypes and the `gpu` partition, gres.conf's lines: only when some
/// node has GPUs.
pub fn configure(layout: &Layout, config: &mut Config) {
    let shards = layout.spec.compute.gpu_shards;
    let mut lines = Vec::new();
    for placed in &layout.nodes {
        for (_, file) in of_node(layout, placed) {
            lines.push(GresLine {
                node: placed.name.clone(),
                name: "gpu".into(),
                file: file.clone(),
                count: None,
            });
            if shards > 0 {
                lines.push(GresLine {
                    node: placed.name.clone(),
                    name: "shard".into(),
                    file,
                    count: Some(shards),
                });
            }
        }
    }
    if lines.is_empty() {
        return;
    }
    let conf = &mut config.slurm_conf;
    conf.gres_types.push("gpu".into());
    if shards > 0 {
        conf.gres_types.push("shard".into());
    }
    conf.node_sets.push(NodeSetDef { name: GPU_FEATURE.into(), feature: GPU_FEATURE.into() });
    conf.partitions.push(PartitionDef {
        name: GPU_FEATURE.into(),
        nodes: GPU_FEATURE.into(),
        default: false,
    });
    config.gres_conf = GresConf { lines };
}

#[cfg(test)]
mod tests {
    use super::GpuHost;
    use crate::components::limits::CgroupHost;
    use crate::engine::EngineInfo;
    use crate::plan::{HostFacts, Plan, Role};
    use crate::spec::{Arch, ClusterSpec};

    fn plan(text: &str) -> Plan {
        let spec = ClusterSpec::parse("c.toml", text).unwrap();
        let facts = HostFacts {
            cpus: 8,
            memory_mib: 16000,
            arch: Arch::Amd64,
            image: "slurmbox/node:24.11-test".into(),
            storage_image: None,
            accounting_image: None,
            cgroup: CgroupHost::v2(),
            ssh_port: crate::spec::DEFAULT_SSH_PORT,
        };
        Plan::new(&spec, &vec![facts; spec.hosts.len().max(1)])
    }

    #[test]
    fn a_gpu_host_beside_a_cpu_only_host() {
        let plan = plan(
            "name = \"dept\"\n[home]\nhost_path = \"/gfsv/home\"\n[compute]\ngpu_shards = 4\n\
             [[host]]\nname = \"gpu1\"\nengine = \"ssh://admin@10.0.0.1\"\n\
             gpu_devices = [\"/srv/fake/nvidia0\", \"/srv/fake/nvidia1\"]\n\
             [[host]]\nname = \"pi1\"\nengine = \"ssh://pi@10.0.0.2\"\n",
        );
        insta::assert_snapshot!(plan.gres_conf.to_string());
        let slurm = plan.slurm_conf.to_string();
        assert!(slurm.contains("GresTypes=gpu,shard\n"), "{slurm}");
        assert!(slurm.contains("NodeSet=gpu Feature=gpu\n"), "{slurm}");
        assert!(slurm.contains("PartitionName=gpu Nodes=gpu MaxTime=INFINITE State=UP\n"), "{slurm}");
        for c in plan.containers.iter().filter(|c| c.role.is_slurm_node()) {
            let conf =
                c.env.iter().find(|e| e.starts_with("SLURMBOX_NODE_CONF=")).cloned().unwrap_or_default();
            if c.hostname == "gpu1" {
                // Only the compute node gets them, under their own names in /dev.
                assert_eq!(c.devices, ["/srv/fake/nvidia0:/dev/nvidia0", "/srv/fake/nvidia1:/dev/nvidia1"]);
                assert!(conf.ends_with("Feature=compute,amd64,gpu Gres=gpu:2,shard:8"), "{conf}");
            } else {
                assert!(c.devices.is_empty(), "{}", c.name);
                assert!(!conf.contains("Gres="), "{conf}");
            }
        }
    }

    #[test]
    fn several_nodes_on_a_host_share_its_gpus_in_order() {
        let plan = plan("[compute]\ncount = 2\ngpu_devices = [\"/dev/nvidia0\", \"/dev/nvidia1\"]\n");
        let devices: Vec<(&str, &[String])> = plan
            .containers
            .iter()
            .filter(|c| c.role == Role::Compute)
            .map(|c| (c.hostname.as_str(), c.devices.as_slice()))
            .collect();
        assert_eq!(
            devices,
            [("node1", &["/dev/nvidia0".to_string()][..]), ("node2", &["/dev/nvidia1".to_string()][..])]
        );
        assert!(!plan.slurm_conf.to_string().contains("shard"));
    }

    #[test]
    fn hosts_say_what_gpus_their_engines_know() {
        let info = |runtimes: &[&str], cdi: &[&str]| EngineInfo {
            version: "28.3".into(),
            cpus: 16,
            memory_mib: 131072,
            arch: "x86_64".into(),
            cgroup_version: "2".into(),
            cgroup_driver: "systemd".into(),
            security_options: vec![],
            runtimes: runtimes.iter().map(|s| s.to_string()).collect(),
            cdi_devices: cdi.iter().map(|s| s.to_string()).collect(),
        };
        // A plain host: nothing to say.
        assert_eq!(GpuHost::from_engine(&info(&["runc"], &[])).describe(&[]), None);
        // The toolkit registered as a runtime, no GPUs listed.
        let toolkit = GpuHost::from_engine(&info(&["nvidia", "runc"], &[]));
        assert!(toolkit.nvidia_runtime);
        assert!(toolkit.describe(&[]).unwrap().starts_with("the NVIDIA container toolkit is registered"));
        // CDI (Docker 28.2+): the GPUs by name, "all" left out.
        let cdi = GpuHost::from_engine(&info(
            &["runc"],
            &["nvidia.com/gpu=0", "nvidia.com/gpu=1", "nvidia.com/gpu=all"],
        ));
        assert_eq!(cdi.cdi_gpus, ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]);
        assert!(cdi.describe(&[]).unwrap().contains("knows 2 GPU(s) (nvidia.com/gpu=0, nvidia.com/gpu=1)"));
        // Listed in the spec: that is what counts.
        assert_eq!(cdi.describe(&["/dev/nvidia0".into()]).unwrap(), "1 GPU(s) from the spec: /dev/nvidia0");
    }

    #[test]
    fn no_gpus_no_gres() {
        let plan = plan("");
        assert!(plan.gres_conf.lines.is_empty());
        assert!(!plan.slurm_conf.to_string().contains("GresTypes"));
    }
}
