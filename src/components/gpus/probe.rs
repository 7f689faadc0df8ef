//! What a host's engine offers in GPUs, found before anything is planned: its engine's
//! facts ([`GpuHost`]), the device request a probe container is made with
//! ([`probe_request`]), and what that container saw ([`ProbedGpus`]).

use crate::engine::EngineInfo;
use crate::plan::GpuRequest;
use crate::spec::EngineGpus;

/// What a probe container runs: one line per fact, read by [`ProbedGpus::parse`].
/// `file PATH` for each GPU device file; `smi INDEX, NAME, UUID, BUS` for each GPU
/// nvidia-smi lists (the toolkit puts nvidia-smi in with the "utility" capability);
/// `minor BUS N` from the driver's /proc files, which tie a GPU to its /dev/nvidiaN;
/// `proc` when those files are there at all.
pub const PROBE_SCRIPT: &str = r#"for f in /dev/nvidia[0-9]*; do [ -c "$f" ] && echo "file $f"; done
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=index,name,uuid,pci.bus_id --format=csv,noheader | sed 's/^/smi /'
fi
for d in /proc/driver/nvidia/gpus/*; do
  [ -f "$d/information" ] && echo "minor ${d##*/} $(sed -n 's/^Device Minor:[[:space:]]*//p' "$d/information")"
done
[ -d /proc/driver/nvidia/gpus ] && echo proc
exit 0
"#;

/// The CDI name asking for every NVIDIA GPU a host's CDI specs list.
pub const CDI_ALL: &str = "nvidia.com/gpu=all";

/// How an engine gives GPUs to containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuDriver {
    /// The NVIDIA container toolkit's hook (`docker run --gpus`).
    Nvidia,
    /// The engine's CDI driver (`docker run --device nvidia.com/gpu=0`, Docker 25+).
    Cdi,
}

impl GpuDriver {
    pub fn as_str(self) -> &'static str {
        match self {
            GpuDriver::Nvidia => "nvidia",
            GpuDriver::Cdi => "cdi",
        }
    }
}

/// The GPUs a host's engine gives containers, as its probe container saw them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProbedGpus {
    pub driver: GpuDriver,
    /// In index order.
    pub gpus: Vec<EngineGpu>,
    /// The driver's /proc/driver/nvidia/gpus was visible: slurmd can find the GPUs
    /// itself (`AutoDetect=nvidia`), and checks them against gres.conf's lines.
    pub driver_files: bool,
}

/// One GPU given through the engine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EngineGpu {
    /// nvidia-smi's index (or the device file's number where nvidia-smi is missing).
    pub index: u32,
    /// Its device file, the same on the host and in the node: `/dev/nvidia0`.
    pub file: String,
    /// nvidia-smi's name: "NVIDIA H200".
    pub model: Option<String>,
    /// What a device request names it by: its UUID or index ("nvidia"), its CDI name
    /// ("cdi").
    pub id: String,
}

impl EngineGpu {
    /// Its Slurm GRES type: the model lowercased, spaces as underscores ("NVIDIA H200"
    /// → "nvidia_h200"), which is what slurmd's `AutoDetect=nvidia` derives too.
    pub fn gres_type(&self) -> Option<String> {
        let model = self.model.as_deref()?.trim();
        (!model.is_empty()).then(|| model.to_lowercase().replace(' ', "_"))
    }
}

/// The device request a probe container is made with on a host whose spec lists no
/// GPU device files; `None` where its engine has no GPUs to give (or `gpus = "none"`).
pub fn probe_request(info: &EngineInfo, setting: EngineGpus, listed: &[String]) -> Option<GpuRequest> {
    if !listed.is_empty() || setting == EngineGpus::None {
        return None;
    }
    let host = GpuHost::from_engine(info);
    let cdi = |ids: Vec<String>| GpuRequest {
        driver: GpuDriver::Cdi.as_str().into(),
        device_ids: ids,
        all: false,
        capabilities: vec![],
    };
    if !host.cdi_gpus.is_empty() {
        return Some(cdi(host.cdi_gpus));
    }
    if setting == EngineGpus::Cdi || info.cdi_devices.iter().any(|d| d == CDI_ALL) {
        return Some(cdi(vec![CDI_ALL.into()]));
    }
    host.nvidia_runtime.then(|| GpuRequest {
        driver: GpuDriver::Nvidia.as_str().into(),
        device_ids: vec![],
        all: true,
        capabilities: vec!["gpu".into(), "utility".into()],
    })
}

impl ProbedGpus {
    /// What the probe container made with `request` printed ([`PROBE_SCRIPT`]); `None`
    /// when it saw no GPU.
    pub fn parse(request: &GpuRequest, output: &str) -> Option<ProbedGpus> {
        let driver =
            if request.driver == GpuDriver::Cdi.as_str() { GpuDriver::Cdi } else { GpuDriver::Nvidia };
        let (mut files, mut smi, mut minors, mut driver_files) = (vec![], vec![], vec![], false);
        for line in output.lines().map(str::trim) {
            let (what, rest) = line.split_once(' ').unwrap_or((line, ""));
            match what {
                "file" => files.push(rest.to_string()),
                "smi" => {
                    let fields: Vec<&str> = rest.split(',').map(str::trim).collect();
                    if let [index, name, uuid, bus, ..] = fields[..]
                        && let Ok(index) = index.parse::<u32>()
                    {
                        smi.push((index, name.to_string(), uuid.to_string(), bus_id(bus)));
                    }
                }
                "minor" => {
                    if let Some((bus, minor)) = rest.split_once(' ')
                        && let Ok(minor) = minor.trim().parse::<u32>()
                    {
                        minors.push((bus_id(bus), minor));
                    }
                }
                "proc" => driver_files = true,
                _ => {}
            }
        }
        let mut gpus: Vec<EngineGpu> = if smi.is_empty() {
            // No nvidia-smi: the device files alone, numbered as they are named.
            files
                .iter()
                .filter_map(|f| {
                    let index = f.strip_prefix("/dev/nvidia")?.parse().ok()?;
                    Some(EngineGpu { index, file: f.clone(), model: None, id: index.to_string() })
                })
                .collect()
        } else {
            smi.into_iter()
                .map(|(index, name, uuid, bus)| {
                    // nvidia-smi's index need not be the device file's number: the
                    // driver's /proc files say which file a GPU (by bus) is.
                    let minor = minors.iter().find(|(b, _)| *b == bus).map_or(index, |(_, m)| *m);
                    let id = if uuid.starts_with("GPU-") { uuid } else { index.to_string() };
                    EngineGpu { index, file: format!("/dev/nvidia{minor}"), model: Some(name), id }
                })
                .collect()
        };
        gpus.sort_by_key(|g| g.index);
        if driver == GpuDriver::Cdi {
            // Each GPU by its CDI name: the one the engine lists ending in its UUID or
            // index, else the name NVIDIA's `nvidia-ctk cdi generate` gives by index.
            let listed: Vec<&String> = request.device_ids.iter().filter(|d| d.as_str() != CDI_ALL).collect();
            for gpu in &mut gpus {
                let index = gpu.index.to_string();
                let named = listed.iter().find(|d| {
                    let suffix = d.rsplit('=').next().unwrap_or("");
                    suffix == gpu.id || suffix == index
                });
                gpu.id = match named {
                    Some(name) => name.to_string(),
                    None if listed.is_empty() => format!("nvidia.com/gpu={index}"),
                    None => continue,
                };
            }
            gpus.retain(|g| g.id.contains('='));
        }
        (!gpus.is_empty()).then_some(ProbedGpus { driver, gpus, driver_files })
    }

    /// The device request giving a node `gpus` (some of these).
    pub fn request(&self, gpus: &[EngineGpu]) -> GpuRequest {
        GpuRequest {
            driver: self.driver.as_str().into(),
            device_ids: gpus.iter().map(|g| g.id.clone()).collect(),
            all: false,
            // "compute": CUDA's libraries, for the jobs; "utility": nvidia-smi. The CDI
            // driver puts in what the host's CDI spec says instead.
            capabilities: match self.driver {
                GpuDriver::Nvidia => vec!["gpu".into(), "utility".into(), "compute".into()],
                GpuDriver::Cdi => vec![],
            },
        }
    }

    /// A line on these GPUs: "2 × NVIDIA H200 (nvidia runtime)".
    pub fn describe(&self) -> String {
        let mut models: Vec<(String, usize)> = Vec::new();
        for gpu in &self.gpus {
            let model = gpu.model.clone().unwrap_or_else(|| "GPU of unknown model".into());
            match models.iter_mut().find(|(m, _)| *m == model) {
                Some((_, n)) => *n += 1,
                None => models.push((model, 1)),
            }
        }
        let models: Vec<String> = models.into_iter().map(|(m, n)| format!("{n} × {m}")).collect();
        let via = match self.driver {
            GpuDriver::Nvidia => "NVIDIA container toolkit",
            GpuDriver::Cdi => "CDI",
        };
        format!("{} through its engine ({via})", models.join(", "))
    }
}

/// "00000000:1B:00.0" (nvidia-smi) and "0000:1b:00.0" (/proc) alike: "0000:1b:00.0".
fn bus_id(bus: &str) -> String {
    let bus = bus.trim().to_lowercase();
    let start = bus.len().saturating_sub(12);
    bus.get(start..).unwrap_or(&bus).to_string()
}

/// What a host's engine says about GPUs: the NVIDIA container toolkit registered as a
/// runtime, and the GPUs its CDI driver found. `up` probes such a host's GPUs
/// ([`probe_request`]); `doctor` points them out.
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
                .filter(|d| d.starts_with("nvidia.com/gpu=") && !d.ends_with("=all"))
                .cloned()
                .collect(),
        }
    }

    /// A line on this host's GPUs, given the device files the spec lists for it and
    /// whether its engine's GPUs go to Slurm; `None` for a host with none either way.
    pub fn describe(&self, listed: &[String], setting: EngineGpus) -> Option<String> {
        if !listed.is_empty() {
            return Some(format!("{} GPU(s) from the spec: {}", listed.len(), listed.join(", ")));
        }
        let known = if !self.cdi_gpus.is_empty() {
            format!(
                "its engine gives {} GPU(s) through CDI ({})",
                self.cdi_gpus.len(),
                self.cdi_gpus.join(", ")
            )
        } else if self.nvidia_runtime {
            "the NVIDIA container toolkit is registered with its engine".to_string()
        } else {
            return None;
        };
        Some(match setting {
            EngineGpus::None => format!("{known}; kept out of Slurm (gpus = \"none\")"),
            _ => format!("{known}; its compute nodes get them"),
        })
    }
}
