//! A cluster's containers on a Docker engine: bollard's create body built from a
//! [`ContainerPlan`] (each part of it by one small function below), and creating,
//! listing, filling with files, starting and removing them, with the engine's
//! refusals turned into errors a user can act on.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest, EndpointIpamConfig, EndpointSettings, HealthConfig,
    HostConfig, HostConfigCgroupnsModeEnum, Mount, MountType, NetworkingConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, RemoveContainerOptions, StartContainerOptions,
    StopContainerOptions, UploadToContainerOptions,
};

use super::{api, device_request, hash_map, is_status};
use crate::engine::{ContainerInfo, EngineError, FileUpload, Result};
use crate::plan::{ContainerPlan, Device, HOST_NETWORK, MountPlan, MountSource, Propagation};

/// Seconds a container gets to shut down cleanly before it is killed.
const STOP_TIMEOUT_S: i32 = 20;

/// bollard's create body for a planned container.
pub(super) fn create_body(c: &ContainerPlan) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(c.image.clone()),
        hostname: Some(c.hostname.clone()),
        cmd: Some(c.command.clone()),
        env: Some(c.env.clone()),
        labels: Some(hash_map(&c.labels)),
        healthcheck: c.health.as_deref().map(health_check),
        host_config: Some(host_config(c)),
        exposed_ports: (!c.ports.is_empty())
            .then(|| c.ports.iter().map(|p| format!("{}/tcp", p.container_port)).collect()),
        networking_config: networking_config(c),
        ..Default::default()
    }
}

/// The engine's health check running `cmd`.
fn health_check(cmd: &[String]) -> HealthConfig {
    let mut test = vec!["CMD".to_string()];
    test.extend(cmd.iter().cloned());
    let secs = |s: i64| s * 1_000_000_000;
    HealthConfig {
        test: Some(test),
        // "unhealthy" after about 15 s; slurmbox-init's watchdog restarts the daemon
        // after 30.
        interval: Some(secs(5)),
        timeout: Some(secs(6)),
        retries: Some(2),
        start_period: Some(secs(30)),
        ..Default::default()
    }
}

fn host_config(c: &ContainerPlan) -> HostConfig {
    HostConfig {
        mounts: Some(mounts(c)),
        binds: binds(c),
        // Start from no capabilities and add back only the named ones (see
        // plan::BASE_CAPS for why each is needed). Never --privileged.
        cap_drop: Some(vec!["ALL".into()]),
        cap_add: Some(c.cap_add.clone()),
        // The init script exits when a daemon dies; Docker brings the node back.
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
            maximum_retry_count: None,
        }),
        network_mode: Some(c.network.clone()),
        devices: device_files(c),
        // GPUs the engine's device driver gives (compute nodes of a GPU host).
        device_requests: gpu_requests(c),
        security_opt: (!c.security_opt.is_empty()).then(|| c.security_opt.clone()),
        cgroupns_mode: c.cgroupns_private.then_some(HostConfigCgroupnsModeEnum::PRIVATE),
        // No swap beyond the limit: memory and swap together are the limit.
        memory: c.memory_mib.map(|m| (m * 1024 * 1024) as i64),
        memory_swap: c.memory_mib.map(|m| (m * 1024 * 1024) as i64),
        port_bindings: port_bindings(c),
        ..Default::default()
    }
}

/// Mounts with a propagation: a folder a storage container mounts the shared /home on
/// (and its nodes see it through). Given as binds ("SRC:DST:rw,rshared"), which every
/// engine version creates on the host when missing (a mount's create_mountpoint needs
/// API 1.42).
fn binds(c: &ContainerPlan) -> Option<Vec<String>> {
    let binds: Vec<String> = c.mounts.iter().filter(|m| m.propagation.is_some()).map(bind).collect();
    (!binds.is_empty()).then_some(binds)
}

fn bind(m: &MountPlan) -> String {
    let source = match &m.source {
        MountSource::Volume(v) | MountSource::HostPath(v) => v,
    };
    let propagation = match m.propagation {
        Some(Propagation::Shared) => "rshared",
        _ => "rslave",
    };
    let mode = if m.read_only { "ro" } else { "rw" };
    format!("{source}:{}:{mode},{propagation}", m.target)
}

/// The other mounts: volumes and host folders.
fn mounts(c: &ContainerPlan) -> Vec<Mount> {
    c.mounts
        .iter()
        .filter(|m| m.propagation.is_none())
        .map(|m| {
            let (typ, source) = match &m.source {
                MountSource::Volume(v) => (MountType::VOLUME, v.clone()),
                MountSource::HostPath(p) => (MountType::BIND, p.clone()),
            };
            Mount {
                target: Some(m.target.clone()),
                source: Some(source),
                typ: Some(typ),
                read_only: Some(m.read_only),
                ..Default::default()
            }
        })
        .collect()
}

/// Host device files (`PATH`, or `HOST:NODE`).
fn device_files(c: &ContainerPlan) -> Option<Vec<DeviceMapping>> {
    let files: Vec<DeviceMapping> = c
        .devices
        .iter()
        .filter_map(|d| match d {
            Device::File(f) => Some(f),
            Device::Gpus(_) => None,
        })
        .map(|d| {
            let (host, node) = d.split_once(':').unwrap_or((d, d));
            DeviceMapping {
                path_on_host: Some(host.into()),
                path_in_container: Some(node.into()),
                cgroup_permissions: Some("rwm".into()),
            }
        })
        .collect();
    (!files.is_empty()).then_some(files)
}

fn gpu_requests(c: &ContainerPlan) -> Option<Vec<DeviceRequest>> {
    let gpus: Vec<DeviceRequest> = c
        .devices
        .iter()
        .filter_map(|d| match d {
            Device::Gpus(r) => Some(device_request(r)),
            Device::File(_) => None,
        })
        .collect();
    (!gpus.is_empty()).then_some(gpus)
}

/// Its TCP ports published on its host.
fn port_bindings(c: &ContainerPlan) -> Option<HashMap<String, Option<Vec<PortBinding>>>> {
    (!c.ports.is_empty()).then(|| {
        c.ports
            .iter()
            .map(|p| {
                let binding = PortBinding {
                    host_ip: Some(p.host_ip.clone()),
                    host_port: Some(p.host_port.to_string()),
                };
                (format!("{}/tcp", p.container_port), Some(vec![binding]))
            })
            .collect()
    })
}

/// On the cluster's own network the node is found by its name; on the host's network
/// it has the host's address and needs no alias.
fn networking_config(c: &ContainerPlan) -> Option<NetworkingConfig> {
    (c.network != HOST_NETWORK).then(|| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            c.network.clone(),
            EndpointSettings {
                aliases: Some(vec![c.hostname.clone()]),
                // Its fixed address on a macvlan network.
                ipam_config: c
                    .ip
                    .as_ref()
                    .map(|ip| EndpointIpamConfig { ipv4_address: Some(ip.clone()), ..Default::default() }),
                ..Default::default()
            },
        )])),
    })
}

pub(super) async fn create(docker: &Docker, c: &ContainerPlan) -> Result<()> {
    let options = CreateContainerOptions { name: Some(c.name.clone()), ..Default::default() };
    match docker.create_container(Some(options), create_body(c)).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 409) => Err(EngineError::Foreign { what: "container", name: c.name.clone() }),
        // A host folder (home.host_path) that is not there on this host.
        Err(e) if e.to_string().contains("bind source path does not exist") => {
            let path = c.mounts.iter().find_map(|m| match &m.source {
                MountSource::HostPath(p) if e.to_string().contains(p.as_str()) => Some(p.clone()),
                _ => None,
            });
            Err(EngineError::MissingPath { path: path.unwrap_or_default(), container: c.name.clone() })
        }
        Err(e) => Err(api(format!("create container {}", c.name))(e)),
    }
}

/// The containers labelled `label=value`, stopped ones too, by name.
pub(super) async fn list_labelled(docker: &Docker, label: &str, value: &str) -> Result<Vec<ContainerInfo>> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{label}={value}")])]);
    let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
    let found = docker.list_containers(Some(options)).await.map_err(api("list containers"))?;
    let mut out: Vec<ContainerInfo> = found
        .into_iter()
        .map(|c| ContainerInfo {
            host: 0,
            name: c
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            id: c.id.unwrap_or_default(),
            image: c.image.unwrap_or_default(),
            labels: c.labels.unwrap_or_default().into_iter().collect(),
            state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            status: c.status.unwrap_or_default(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub(super) async fn upload(docker: &Docker, container: &str, files: &[FileUpload]) -> Result<()> {
    let mut builder = tar::Builder::new(Vec::new());
    for f in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(f.contents.len() as u64);
        header.set_mode(f.mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, f.path.trim_start_matches('/'), f.contents.as_slice())
            .expect("writing a tar into memory cannot fail");
    }
    let tar = builder.into_inner().expect("writing a tar into memory cannot fail");
    let options = UploadToContainerOptions { path: "/".into(), ..Default::default() };
    docker
        .upload_to_container(container, Some(options), bollard::body_full(tar.into()))
        .await
        .map_err(api(format!("copy files into {container}")))
}

/// The port of the first `ADDRESS:PORT` in an engine's message (0 if none).
fn bound_port(text: &str) -> u16 {
    let bytes = text.as_bytes();
    text.match_indices(':')
        .filter(|(i, _)| *i > 0 && bytes[i - 1].is_ascii_digit())
        .filter_map(|(i, _)| {
            let digits: String = text[i + 1..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .next()
        .unwrap_or(0)
}

pub(super) async fn start(docker: &Docker, name: &str) -> Result<()> {
    match docker.start_container(name, None::<StartContainerOptions>).await {
        Ok(()) => Ok(()),
        Err(e) if is_status(&e, 304) => Ok(()),
        // Mount propagation (the GlusterFS /home) needs the host's mount under the
        // folder to be shared: "path P is mounted on / but it is not a shared mount".
        Err(e) if e.to_string().contains("is not a shared") => {
            let text = e.to_string();
            let path = text.split("path ").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or("");
            Err(EngineError::NotShared { path: path.to_string(), container: name.to_string() })
        }
        // A published port another container or program holds: "Bind for
        // 0.0.0.0:2222 failed: port is already allocated", "listen tcp4
        // 0.0.0.0:2222: bind: address already in use".
        Err(e) if e.to_string().contains("already allocated") || e.to_string().contains("already in use") => {
            Err(EngineError::PortTaken { port: bound_port(&e.to_string()), container: name.to_string() })
        }
        Err(e) => Err(api(format!("start container {name}"))(e)),
    }
}

/// Stops `name` cleanly, then removes it; one that is not there is no error.
pub(super) async fn remove(docker: &Docker, name: &str) -> Result<()> {
    // Stop first: SIGTERM lets slurmctld write its state (queued jobs) to its volume,
    // which a forced removal (SIGKILL) would lose.
    let stop = StopContainerOptions { t: Some(STOP_TIMEOUT_S), signal: None };
    match docker.stop_container(name, Some(stop)).await {
        Ok(()) => {}
        Err(e) if is_status(&e, 304) || is_status(&e, 404) => {}
        Err(e) => return Err(api(format!("stop container {name}"))(e)),
    }
    let options = RemoveContainerOptions { force: true, v: false, link: false };
    match docker.remove_container(name, Some(options)).await {
        Ok(()) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(api(format!("remove container {name}"))(e)),
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::{
        ContainerPlan, Device, GpuRequest, HOST_NETWORK, MountPlan, MountSource, PortPlan, Propagation, Role,
    };

    /// A container asking for everything the create body can say: both kinds of
    /// mount, a propagated one, device files and GPUs, a port, a health check, limits.
    fn everything() -> ContainerPlan {
        let mount = |source, target: &str, read_only, propagation| MountPlan {
            source,
            target: target.into(),
            read_only,
            propagation,
        };
        ContainerPlan {
            host: 0,
            name: "lab-node1".into(),
            hostname: "node1".into(),
            role: Role::Compute,
            image: "slurmbox/node:24.11-test".into(),
            command: vec!["/usr/local/sbin/slurmbox-init".into(), "compute".into()],
            env: vec!["A=1".into(), "B=2".into()],
            mounts: vec![
                mount(MountSource::Volume("lab-munge".into()), "/etc/munge", true, None),
                mount(MountSource::HostPath("/srv/data".into()), "/data", false, None),
                mount(MountSource::HostPath("/srv/home".into()), "/home", false, Some(Propagation::Shared)),
                mount(MountSource::Volume("lab-home".into()), "/mnt/home", true, Some(Propagation::Slave)),
            ],
            cap_add: vec!["SYS_ADMIN".into(), "SETUID".into()],
            network: "lab-net".into(),
            ip: Some("192.168.1.50".into()),
            files: vec![],
            labels: [("io.slurmbox.cluster".to_string(), "lab".to_string()), ("x".into(), "y".into())].into(),
            devices: vec![
                Device::File("/dev/fuse".into()),
                Device::File("/srv/fake/nvidia0:/dev/nvidia0".into()),
                Device::Gpus(GpuRequest {
                    driver: "nvidia".into(),
                    device_ids: vec!["0".into(), "1".into()],
                    all: false,
                    capabilities: vec!["gpu".into(), "utility".into()],
                }),
                Device::Gpus(GpuRequest {
                    driver: "cdi".into(),
                    device_ids: vec![],
                    all: true,
                    capabilities: vec![],
                }),
            ],
            security_opt: vec!["apparmor=unconfined".into()],
            cgroupns_private: true,
            memory_mib: Some(2048),
            health: Some(vec!["pgrep".into(), "slurmd".into()]),
            ports: vec![PortPlan { host_ip: "0.0.0.0".into(), host_port: 2222, container_port: 22 }],
        }
    }

    fn body_json(c: &ContainerPlan) -> serde_json::Value {
        serde_json::to_value(super::create_body(c)).unwrap()
    }

    /// The request bodies stay byte-for-byte what they were when this was written.
    #[test]
    fn the_create_body_is_pinned() {
        let full = everything();
        let got = body_json(&full);
        let want: serde_json::Value = serde_json::from_str(PINNED_FULL).unwrap();
        assert_eq!(got, want, "{}", serde_json::to_string_pretty(&got).unwrap());
        let bare = ContainerPlan {
            network: HOST_NETWORK.into(),
            ip: None,
            mounts: vec![],
            devices: vec![],
            security_opt: vec![],
            cgroupns_private: false,
            memory_mib: None,
            health: None,
            ports: vec![],
            cap_add: vec![],
            ..full
        };
        let got = body_json(&bare);
        let want: serde_json::Value = serde_json::from_str(PINNED_BARE).unwrap();
        assert_eq!(got, want, "{}", serde_json::to_string_pretty(&got).unwrap());
    }

    const PINNED_FULL: &str = r#"{
  "Cmd": [
    "/usr/local/sbin/slurmbox-init",
    "compute"
  ],
  "Env": [
    "A=1",
    "B=2"
  ],
  "ExposedPorts": {
    "22/tcp": {}
  },
  "Healthcheck": {
    "Interval": 5000000000,
    "Retries": 2,
    "StartPeriod": 30000000000,
    "Test": [
      "CMD",
      "pgrep",
      "slurmd"
    ],
    "Timeout": 6000000000
  },
  "HostConfig": {
    "Binds": [
      "/srv/home:/home:rw,rshared",
      "lab-home:/mnt/home:ro,rslave"
    ],
    "CapAdd": [
      "SYS_ADMIN",
      "SETUID"
    ],
    "CapDrop": [
      "ALL"
    ],
    "CgroupnsMode": "private",
    "DeviceRequests": [
      {
        "Capabilities": [
          [
            "gpu",
            "utility"
          ]
        ],
        "DeviceIDs": [
          "0",
          "1"
        ],
        "Driver": "nvidia"
      },
      {
        "Count": -1,
        "Driver": "cdi"
      }
    ],
    "Devices": [
      {
        "CgroupPermissions": "rwm",
        "PathInContainer": "/dev/fuse",
        "PathOnHost": "/dev/fuse"
      },
      {
        "CgroupPermissions": "rwm",
        "PathInContainer": "/dev/nvidia0",
        "PathOnHost": "/srv/fake/nvidia0"
      }
    ],
    "Memory": 2147483648,
    "MemorySwap": 2147483648,
    "Mounts": [
      {
        "ReadOnly": true,
        "Source": "lab-munge",
        "Target": "/etc/munge",
        "Type": "volume"
      },
      {
        "ReadOnly": false,
        "Source": "/srv/data",
        "Target": "/data",
        "Type": "bind"
      }
    ],
    "NetworkMode": "lab-net",
    "PortBindings": {
      "22/tcp": [
        {
          "HostIp": "0.0.0.0",
          "HostPort": "2222"
        }
      ]
    },
    "RestartPolicy": {
      "Name": "unless-stopped"
    },
    "SecurityOpt": [
      "apparmor=unconfined"
    ]
  },
  "Hostname": "node1",
  "Image": "slurmbox/node:24.11-test",
  "Labels": {
    "io.slurmbox.cluster": "lab",
    "x": "y"
  },
  "NetworkingConfig": {
    "EndpointsConfig": {
      "lab-net": {
        "Aliases": [
          "node1"
        ],
        "IPAMConfig": {
          "IPv4Address": "192.168.1.50"
        }
      }
    }
  }
}"#;
    const PINNED_BARE: &str = r#"{
  "Cmd": [
    "/usr/local/sbin/slurmbox-init",
    "compute"
  ],
  "Env": [
    "A=1",
    "B=2"
  ],
  "HostConfig": {
    "CapAdd": [],
    "CapDrop": [
      "ALL"
    ],
    "Mounts": [],
    "NetworkMode": "host",
    "RestartPolicy": {
      "Name": "unless-stopped"
    }
  },
  "Hostname": "node1",
  "Image": "slurmbox/node:24.11-test",
  "Labels": {
    "io.slurmbox.cluster": "lab",
    "x": "y"
  }
}"#;

    #[test]
    fn the_port_in_a_bind_error() {
        let taken = "driver failed programming external connectivity on endpoint it-users-12-login (3f2a): \
                     Bind for 0.0.0.0:2222 failed: port is already allocated";
        assert_eq!(super::bound_port(taken), 2222);
        let busy = "Error starting userland proxy: listen tcp4 0.0.0.0:2299: bind: address already in use";
        assert_eq!(super::bound_port(busy), 2299);
    }
}
