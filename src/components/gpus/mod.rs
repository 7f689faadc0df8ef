//! GPUs: each host's GPUs go to its compute nodes and nowhere else, each node getting
//! its share in order when a host runs several. They come one of two ways:
//!
//! - **Device files** the spec lists (`gpu_devices`, in a `[[host]]` table or in
//!   `[compute]` for a cluster without them). A node sees each under its own file
//!   name in /dev (the host's /srv/fake/nvidia1 is the node's /dev/nvidia1).
//! - **Through the engine** on a host whose spec lists none: where its engine has the
//!   NVIDIA container toolkit (the `nvidia` runtime) or NVIDIA CDI devices, `up` runs a
//!   short probe container with the engine's GPU device request ([`probe_request`])
//!   and reads what it sees ([`ProbedGpus::parse`]): the GPU device files, their model
//!   and UUID from nvidia-smi, whether the driver's /proc files are there. Each compute
//!   node then asks its engine for its share by the same kind of request, and the
//!   engine (not slurmbox) puts in the device files and the driver's tools and
//!   libraries. `gpus = "none"` keeps a host's engine GPUs out of Slurm.
//!
//! Either way a GPU node registers the GPUs as Slurm GRES (`Gres=gpu:N`, or
//! `gpu:TYPE:N` where the model is known, plus `shard:N×S` with `gpu_shards = S`), and
//! carries the `gpu` feature, which makes the `gpu` partition. gres.conf names each
//! node's files (`AutoDetect=nvidia` where the driver's files are visible); with limits
//! on, `ConstrainDevices` keeps a job to the GPUs it was given.

mod probe;

pub use probe::{CDI_ALL, EngineGpu, GpuDriver, GpuHost, PROBE_SCRIPT, ProbedGpus, probe_request};

use super::{Config, Layout, Placed};
use crate::cluster::Model;
use crate::cluster::report::DoctorReport;
use crate::plan::Device;
use crate::plan::LABEL_GPUS;
use crate::render::{GresConf, GresLine, NodeSetDef, PartitionDef};
use crate::spec::{ClusterSpec, EngineGpus};

/// The feature GPU nodes register with, and the partition made of them.
pub const GPU_FEATURE: &str = "gpu";

/// A node's GPUs: device files from the spec, or its share of those its host's engine
/// gives.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeGpus<'a> {
    /// `(on the host, in the node)` for each file.
    Files(Vec<(String, String)>),
    Engine {
        probed: &'a ProbedGpus,
        gpus: &'a [EngineGpu],
    },
}

impl NodeGpus<'_> {
    pub fn len(&self) -> usize {
        match self {
            NodeGpus::Files(files) => files.len(),
            NodeGpus::Engine { gpus, .. } => gpus.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(device file in the node, GRES type)` for each GPU.
    pub fn files(&self) -> Vec<(String, Option<String>)> {
        match self {
            NodeGpus::Files(files) => files.iter().map(|(_, node)| (node.clone(), None)).collect(),
            NodeGpus::Engine { gpus, .. } => {
                // Typed only when every GPU's model is known: one node, one way.
                let typed = gpus.iter().all(|g| g.gres_type().is_some());
                gpus.iter().map(|g| (g.file.clone(), g.gres_type().filter(|_| typed))).collect()
            }
        }
    }

    /// A line on these GPUs, for `status` and `doctor`.
    pub fn describe(&self) -> String {
        match self {
            NodeGpus::Files(files) => {
                let files: Vec<&str> = files.iter().map(|(_, node)| node.as_str()).collect();
                format!("{} from the spec", files.join(", "))
            }
            NodeGpus::Engine { probed, gpus } => {
                ProbedGpus { gpus: gpus.to_vec(), ..(*probed).clone() }.describe()
            }
        }
    }

    /// What the node's container gets.
    pub fn devices(&self) -> Vec<Device> {
        match self {
            NodeGpus::Files(files) => files
                .iter()
                .map(|(host, node)| {
                    Device::File(if host == node { host.clone() } else { format!("{host}:{node}") })
                })
                .collect(),
            NodeGpus::Engine { probed, gpus } => vec![Device::Gpus(probed.request(gpus))],
        }
    }

    /// slurmd finds the GPUs itself (`AutoDetect=nvidia`): the driver's files are
    /// visible in the node. (Debian's Slurm 24.11 and later carry the gpu/nvidia
    /// plugin that reads them; it needs no NVML.)
    pub fn autodetect(&self) -> bool {
        matches!(self, NodeGpus::Engine { probed, .. } if probed.driver_files)
    }
}

/// The GPUs the node at `placed` gets.
pub fn of_node<'a>(layout: &'a Layout, placed: &Placed) -> NodeGpus<'a> {
    // This node's place among its host's nodes; each gets an equal share, in order.
    let index = layout.nodes.iter().filter(|n| n.host == placed.host).position(|n| n.name == placed.name);
    let share = |len: usize| {
        let per_node = len / layout.spec.compute.count.max(1) as usize;
        let start = index.unwrap_or(0) * per_node;
        start..start + per_node
    };
    let devices = layout.spec.gpu_devices(placed.host);
    if !devices.is_empty() {
        return NodeGpus::Files(
            devices[share(devices.len())]
                .iter()
                .map(|d| {
                    let name = d.rsplit('/').next().unwrap_or(d);
                    (d.clone(), format!("/dev/{name}"))
                })
                .collect(),
        );
    }
    match layout.facts.get(placed.host).and_then(|f| f.gpus.as_ref()) {
        // (GPUs left over when the nodes cannot share them evenly go to none.)
        Some(probed) if layout.spec.engine_gpus(placed.host) != EngineGpus::None => {
            NodeGpus::Engine { probed, gpus: &probed.gpus[share(probed.gpus.len())] }
        }
        _ => NodeGpus::Files(vec![]),
    }
}

/// The GRES a node with `gpus` registers with: `gpu:N`, or `gpu:TYPE:N` for each
/// model where models are known, and `shard:N×S` with `gpu_shards = S`.
pub fn gres(layout: &Layout, gpus: &NodeGpus) -> Vec<(String, u32)> {
    let mut gres: Vec<(String, u32)> = Vec::new();
    for (_, typ) in gpus.files() {
        let name = typ.map_or("gpu".to_string(), |t| format!("gpu:{t}"));
        match gres.iter_mut().find(|(n, _)| *n == name) {
            Some((_, count)) => *count += 1,
            None => gres.push((name, 1)),
        }
    }
    if !gres.is_empty() && layout.spec.compute.gpu_shards > 0 {
        gres.push(("shard".to_string(), gpus.len() as u32 * layout.spec.compute.gpu_shards));
    }
    gres
}

/// slurm.conf's GresTypes and the `gpu` partition, gres.conf's lines: only when some
/// node has GPUs.
pub fn configure(layout: &Layout, config: &mut Config) {
    let shards = layout.spec.compute.gpu_shards;
    let mut lines = Vec::new();
    for placed in &layout.nodes {
        let gpus = of_node(layout, placed);
        // On the node's first line: slurmd finds its GPUs itself and checks them
        // against the lines.
        let mut autodetect = gpus.autodetect().then(|| "nvidia".to_string());
        for (file, typ) in gpus.files() {
            lines.push(GresLine {
                node: placed.name.clone(),
                autodetect: autodetect.take(),
                name: "gpu".into(),
                typ,
                file: file.clone(),
                count: None,
            });
            if shards > 0 {
                lines.push(GresLine {
                    node: placed.name.clone(),
                    autodetect: None,
                    name: "shard".into(),
                    typ: None,
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
/// For `doctor`: per host, what its compute nodes were given (the model where known),
/// else what its engine offers.
pub fn doctor(model: &Model, spec: &ClusterSpec, report: &mut DoctorReport) {
    for (i, (host, info)) in report.hosts.iter_mut().zip(&model.infos).enumerate() {
        let given: Vec<String> = model
            .containers
            .iter()
            .filter(|c| c.host == i)
            .filter_map(|c| Some(format!("{}: {}", c.node()?, c.labels.get(LABEL_GPUS)?)))
            .collect();
        host.gpus = match given.is_empty() {
            false => Some(given.join("; ")),
            true => info.as_ref().ok().and_then(|info| {
                GpuHost::from_engine(info).describe(spec.gpu_devices(i), spec.engine_gpus(i))
            }),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::{EngineGpu, GpuDriver, GpuHost, ProbedGpus, probe_request};
    use crate::components::HostFacts;
    use crate::components::limits::CgroupHost;
    use crate::engine::EngineInfo;
    use crate::plan::{Device, GpuRequest, Plan, Role};
    use crate::spec::{Arch, ClusterSpec, EngineGpus};

    fn facts() -> HostFacts {
        HostFacts {
            cpus: 8,
            memory_mib: 16000,
            arch: Arch::Amd64,
            emulated: false,
            image: "slurmbox/node:24.11-test".into(),
            storage_image: None,
            accounting_image: None,
            controller_image: None,
            metrics_image: None,
            web_image: None,
            cgroup: CgroupHost::v2(),
            ssh_port: crate::spec::DEFAULT_SSH_PORT,
            rest_port: crate::spec::DEFAULT_REST_PORT,
            web_port: crate::spec::DEFAULT_WEB_PORT,
            gpus: None,
        }
    }

    fn plan(text: &str) -> Plan {
        let spec = ClusterSpec::parse("c.toml", text).unwrap();
        crate::components::plan(&spec, &vec![facts(); spec.hosts.len().max(1)])
    }

    fn info(runtimes: &[&str], cdi: &[&str]) -> EngineInfo {
        EngineInfo {
            version: "28.3".into(),
            cpus: 16,
            memory_mib: 131072,
            arch: "x86_64".into(),
            cgroup_version: "2".into(),
            cgroup_driver: "systemd".into(),
            security_options: vec![],
            runtimes: runtimes.iter().map(|s| s.to_string()).collect(),
            cdi_devices: cdi.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// What the probe prints on a host with two H200s through the toolkit (the second
    /// GPU's device file is /dev/nvidia3, as the driver numbers it).
    const TWO_H200: &str = "file /dev/nvidia0\nfile /dev/nvidia3\n\
        smi 0, NVIDIA H200, GPU-aaaa, 00000000:1B:00.0\n\
        smi 1, NVIDIA H200, GPU-bbbb, 00000000:9A:00.0\n\
        minor 0000:1b:00.0 0\nminor 0000:9a:00.0 3\nproc\n";

    fn toolkit_gpus() -> ProbedGpus {
        let request = probe_request(&info(&["nvidia", "runc"], &[]), EngineGpus::Auto, &[]).unwrap();
        ProbedGpus::parse(&request, TWO_H200).unwrap()
    }

    #[test]
    fn the_probe_asks_the_engine_the_way_it_gives_gpus() {
        // A plain engine, or GPUs the spec lists, or `gpus = "none"`: no probe.
        assert_eq!(probe_request(&info(&["runc"], &[]), EngineGpus::Auto, &[]), None);
        let toolkit = info(&["nvidia", "runc"], &[]);
        assert_eq!(probe_request(&toolkit, EngineGpus::Auto, &["/dev/nvidia0".into()]), None);
        assert_eq!(probe_request(&toolkit, EngineGpus::None, &[]), None);
        // The toolkit: every GPU, with nvidia-smi.
        assert_eq!(
            probe_request(&toolkit, EngineGpus::Auto, &[]).unwrap(),
            GpuRequest {
                driver: "nvidia".into(),
                device_ids: vec![],
                all: true,
                capabilities: vec!["gpu".into(), "utility".into()],
            }
        );
        // CDI devices the engine lists (Docker 28.2+), by name; "all" where it lists
        // no single GPU, or where the spec says "cdi" (Docker 25 to 28.1).
        let cdi = info(&["runc"], &["nvidia.com/gpu=0", "nvidia.com/gpu=1", "nvidia.com/gpu=all"]);
        let r = probe_request(&cdi, EngineGpus::Auto, &[]).unwrap();
        assert_eq!(
            (r.driver.as_str(), r.device_ids.as_slice()),
            ("cdi", &["nvidia.com/gpu=0".to_string(), "nvidia.com/gpu=1".into()][..])
        );
        assert!(r.capabilities.is_empty() && !r.all);
        let all = probe_request(&info(&["runc"], &["nvidia.com/gpu=all"]), EngineGpus::Auto, &[]).unwrap();
        assert_eq!(all.device_ids, ["nvidia.com/gpu=all"]);
        let asked = probe_request(&info(&["runc"], &[]), EngineGpus::Cdi, &[]).unwrap();
        assert_eq!(
            (asked.driver.as_str(), asked.device_ids.as_slice()),
            ("cdi", &["nvidia.com/gpu=all".to_string()][..])
        );
    }

    #[test]
    fn probe_output_gives_each_gpu_its_file_model_and_id() {
        let probed = toolkit_gpus();
        assert_eq!(probed.driver, GpuDriver::Nvidia);
        assert!(probed.driver_files);
        assert_eq!(
            probed.gpus,
            [
                EngineGpu {
                    index: 0,
                    file: "/dev/nvidia0".into(),
                    model: Some("NVIDIA H200".into()),
                    id: "GPU-aaaa".into()
                },
                // Its file by its bus in the driver's /proc files, not by nvidia-smi's index.
                EngineGpu {
                    index: 1,
                    file: "/dev/nvidia3".into(),
                    model: Some("NVIDIA H200".into()),
                    id: "GPU-bbbb".into()
                },
            ]
        );
        assert_eq!(probed.gpus[0].gres_type().as_deref(), Some("nvidia_h200"));
        assert_eq!(probed.describe(), "2 × NVIDIA H200 through its engine (NVIDIA container toolkit)");
        // Nothing seen (the toolkit registered on a machine whose GPUs are gone).
        assert_eq!(ProbedGpus::parse(&probed.request(&[]), "\n"), None);
    }

    #[test]
    fn cdi_gpus_without_nvidia_smi_are_their_device_files() {
        // A site's own CDI spec naming device nodes: no nvidia-smi, no driver files.
        let cdi = info(&["runc"], &["nvidia.com/gpu=0", "nvidia.com/gpu=1"]);
        let request = probe_request(&cdi, EngineGpus::Auto, &[]).unwrap();
        let probed = ProbedGpus::parse(&request, "file /dev/nvidia0\nfile /dev/nvidia1\n").unwrap();
        assert_eq!(probed.driver, GpuDriver::Cdi);
        assert!(!probed.driver_files);
        let ids: Vec<(&str, &str, Option<&str>)> =
            probed.gpus.iter().map(|g| (g.file.as_str(), g.id.as_str(), g.model.as_deref())).collect();
        assert_eq!(
            ids,
            [("/dev/nvidia0", "nvidia.com/gpu=0", None), ("/dev/nvidia1", "nvidia.com/gpu=1", None)]
        );
        // Asked for "all": each GPU by the name `nvidia-ctk cdi generate` gives it.
        let all = probe_request(&info(&["runc"], &[]), EngineGpus::Cdi, &[]).unwrap();
        let probed = ProbedGpus::parse(&all, "file /dev/nvidia0\n").unwrap();
        assert_eq!(probed.gpus[0].id, "nvidia.com/gpu=0");
        // Listed by UUID: matched by nvidia-smi's UUID.
        let by_uuid =
            probe_request(&info(&["runc"], &["nvidia.com/gpu=GPU-bbbb"]), EngineGpus::Auto, &[]).unwrap();
        let probed = ProbedGpus::parse(&by_uuid, "smi 1, NVIDIA H200, GPU-bbbb, 00000000:9A:00.0\n").unwrap();
        assert_eq!(
            (probed.gpus[0].id.as_str(), probed.gpus[0].file.as_str()),
            ("nvidia.com/gpu=GPU-bbbb", "/dev/nvidia1")
        );
    }

    #[test]
    fn engine_gpus_go_to_compute_nodes_by_device_request_typed() {
        let spec = ClusterSpec::parse(
            "c.toml",
            "name = \"dept\"\n[home]\nhost_path = \"/gfsv/home\"\n[compute]\ngpu_shards = 2\n\
             [[host]]\nname = \"gpu1\"\nengine = \"ssh://admin@10.0.0.1\"\n\
             [[host]]\nname = \"pi1\"\nengine = \"ssh://pi@10.0.0.2\"\n",
        )
        .unwrap();
        let plan =
            crate::components::plan(&spec, &[HostFacts { gpus: Some(toolkit_gpus()), ..facts() }, facts()]);
        insta::assert_snapshot!(plan.gres_conf.to_string());
        let slurm = plan.slurm_conf.to_string();
        assert!(slurm.contains("GresTypes=gpu,shard\n"), "{slurm}");
        assert!(slurm.contains("PartitionName=gpu Nodes=gpu MaxTime=INFINITE State=UP\n"), "{slurm}");
        for c in &plan.containers {
            let conf =
                c.env.iter().find(|e| e.starts_with("SLURMBOX_NODE_CONF=")).cloned().unwrap_or_default();
            if c.role == Role::Compute && c.hostname == "gpu1" {
                assert_eq!(
                    c.devices,
                    [Device::Gpus(GpuRequest {
                        driver: "nvidia".into(),
                        device_ids: vec!["GPU-aaaa".into(), "GPU-bbbb".into()],
                        all: false,
                        capabilities: vec!["gpu".into(), "utility".into(), "compute".into()],
                    })]
                );
                assert!(conf.ends_with("Feature=compute,amd64,gpu Gres=gpu:nvidia_h200:2,shard:4"), "{conf}");
                assert_eq!(c.labels["io.slurmbox.gres"], "gpu:nvidia_h200:2,shard:4");
                // What `status` and `doctor` show.
                assert_eq!(
                    c.labels["io.slurmbox.gpus"],
                    "2 × NVIDIA H200 through its engine (NVIDIA container toolkit)"
                );
            } else {
                // Only compute containers, and only the GPU host's.
                assert!(c.devices.iter().all(|d| matches!(d, Device::File(_))), "{}", c.name);
                assert!(!conf.contains("Gres="), "{conf}");
            }
        }
        // `gpus = "none"`: the probe's GPUs (were there any) stay out of Slurm.
        let none = ClusterSpec::parse("c.toml", "[compute]\ngpus = \"none\"\n").unwrap();
        let plan = crate::components::plan(&none, &[HostFacts { gpus: Some(toolkit_gpus()), ..facts() }]);
        assert!(plan.gres_conf.lines.is_empty());
        assert!(plan.containers.iter().all(|c| c.devices.is_empty()));
    }

    #[test]
    fn several_nodes_share_engine_gpus_in_order() {
        let spec = ClusterSpec::parse("c.toml", "[compute]\ncount = 2\n").unwrap();
        let plan = crate::components::plan(&spec, &[HostFacts { gpus: Some(toolkit_gpus()), ..facts() }]);
        let requests: Vec<(&str, Vec<String>)> = plan
            .containers
            .iter()
            .filter(|c| c.role == Role::Compute)
            .map(|c| {
                let ids = c.devices.iter().flat_map(|d| match d {
                    Device::Gpus(r) => r.device_ids.clone(),
                    Device::File(f) => vec![f.clone()],
                });
                (c.hostname.as_str(), ids.collect())
            })
            .collect();
        assert_eq!(
            requests,
            [("node1", vec!["GPU-aaaa".to_string()]), ("node2", vec!["GPU-bbbb".to_string()])]
        );
        let gres = plan.gres_conf.to_string();
        assert!(
            gres.contains("NodeName=node1 AutoDetect=nvidia Name=gpu Type=nvidia_h200 File=/dev/nvidia0\n"),
            "{gres}"
        );
        assert!(
            gres.contains("NodeName=node2 AutoDetect=nvidia Name=gpu Type=nvidia_h200 File=/dev/nvidia3\n"),
            "{gres}"
        );
    }

    #[test]
    fn cdi_gpus_of_unknown_model_are_untyped_without_autodetect() {
        let request = probe_request(&info(&["runc"], &["nvidia.com/gpu=0"]), EngineGpus::Auto, &[]).unwrap();
        let probed = ProbedGpus::parse(&request, "file /dev/nvidia0\n").unwrap();
        let plan = crate::components::plan(
            &ClusterSpec::parse("c.toml", "[compute]\ncount = 1\n").unwrap(),
            &[HostFacts { gpus: Some(probed), ..facts() }],
        );
        assert_eq!(
            plan.gres_conf.to_string().lines().nth(1),
            Some("NodeName=node1 Name=gpu File=/dev/nvidia0")
        );
        let node = plan.containers.iter().find(|c| c.role == Role::Compute).unwrap();
        assert_eq!(node.labels["io.slurmbox.gres"], "gpu:1");
        assert!(
            matches!(&node.devices[..], [Device::Gpus(r)] if r.driver == "cdi" && r.device_ids == ["nvidia.com/gpu=0"] && r.capabilities.is_empty())
        );
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
                assert_eq!(c.labels["io.slurmbox.gpus"], "/dev/nvidia0, /dev/nvidia1 from the spec");
            } else {
                assert!(c.devices.is_empty(), "{}", c.name);
                assert!(!conf.contains("Gres="), "{conf}");
            }
        }
    }

    #[test]
    fn several_nodes_on_a_host_share_its_gpus_in_order() {
        let plan = plan("[compute]\ncount = 2\ngpu_devices = [\"/dev/nvidia0\", \"/dev/nvidia1\"]\n");
        let devices: Vec<(&str, &[Device])> = plan
            .containers
            .iter()
            .filter(|c| c.role == Role::Compute)
            .map(|c| (c.hostname.as_str(), c.devices.as_slice()))
            .collect();
        assert_eq!(
            devices,
            [("node1", &[Device::from("/dev/nvidia0")][..]), ("node2", &[Device::from("/dev/nvidia1")][..])]
        );
        assert!(!plan.slurm_conf.to_string().contains("shard"));
    }

    #[test]
    fn hosts_say_what_gpus_their_engines_know() {
        // A plain host: nothing to say.
        assert_eq!(GpuHost::from_engine(&info(&["runc"], &[])).describe(&[], EngineGpus::Auto), None);
        // The toolkit registered as a runtime.
        let toolkit = GpuHost::from_engine(&info(&["nvidia", "runc"], &[]));
        assert!(toolkit.nvidia_runtime);
        assert_eq!(
            toolkit.describe(&[], EngineGpus::Auto).unwrap(),
            "the NVIDIA container toolkit is registered with its engine; its compute nodes get them"
        );
        // CDI (Docker 28.2+): the GPUs by name, "all" left out.
        let cdi = GpuHost::from_engine(&info(
            &["runc"],
            &["nvidia.com/gpu=0", "nvidia.com/gpu=1", "nvidia.com/gpu=all"],
        ));
        assert_eq!(cdi.cdi_gpus, ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]);
        assert_eq!(
            cdi.describe(&[], EngineGpus::None).unwrap(),
            "its engine gives 2 GPU(s) through CDI (nvidia.com/gpu=0, nvidia.com/gpu=1); kept out of Slurm (gpus = \"none\")"
        );
        // Listed in the spec: that is what counts.
        assert_eq!(
            cdi.describe(&["/dev/nvidia0".into()], EngineGpus::Auto).unwrap(),
            "1 GPU(s) from the spec: /dev/nvidia0"
        );
    }

    #[test]
    fn no_gpus_no_gres() {
        let plan = plan("");
        assert!(plan.gres_conf.lines.is_empty());
        assert!(!plan.slurm_conf.to_string().contains("GresTypes"));
    }
}
