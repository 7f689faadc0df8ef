//! [`Engine`] over the Docker API (bollard).

use std::collections::HashMap;
use std::io::Write as _;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest, EndpointIpamConfig, EndpointSettings, HealthConfig,
    HostConfig, HostConfigCgroupnsModeEnum, Ipam, IpamConfig, Mount, MountType, NetworkCreateRequest,
    NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, ListContainersOptions,
    ListNetworksOptions, ListVolumesOptions, LogsOptions, RemoveContainerOptions, RemoveVolumeOptions,
    StartContainerOptions, StopContainerOptions, UploadToContainerOptions, WaitContainerOptions,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use tokio::io::{AsyncWriteExt, stdout};

use super::ssh::{SshTarget, SshTunnel};
use super::{ContainerInfo, Engine, EngineError, EngineInfo, ExecOutput, ExecSpec, FileUpload, Result};
use crate::plan::{
    ContainerPlan, Device, GpuRequest, HOST_NETWORK, LABEL_CLUSTER, MountSource, NetworkDriver, NetworkPlan,
    Propagation, VolumePlan,
};

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

/// Longest a single engine request may take (an image transfer, a long `exec`).
const REQUEST_TIMEOUT_S: u64 = 1800;

/// Seconds a container gets to shut down cleanly before it is killed.
const STOP_TIMEOUT_S: i32 = 20;

pub struct DockerEngine {
    docker: Docker,
    /// The one ssh connection every request to an `ssh://` engine goes through; ssh
    /// stops when the last clone of the engine's client is gone.
    _tunnel: Option<std::sync::Arc<SshTunnel>>,
}

fn api(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> EngineError {
    let action = action.into();
    move |source| EngineError::Api { action, source }
}

/// `registry:5000/slurmbox/node:24.11-abc` as ("registry:5000/slurmbox/node", "24.11-abc"):
/// the tag follows the last colon after the last slash.
fn split_tag(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

/// bollard's form of a [`GpuRequest`].
fn device_request(r: &GpuRequest) -> DeviceRequest {
    DeviceRequest {
        driver: Some(r.driver.clone()),
        count: r.all.then_some(-1),
        device_ids: (!r.device_ids.is_empty()).then(|| r.device_ids.clone()),
        capabilities: (!r.capabilities.is_empty()).then(|| vec![r.capabilities.clone()]),
        options: None,
    }
}

/// A finished process's output, its stderr apart from the rest.
fn output_of(code: i64, chunks: Vec<LogOutput>) -> ExecOutput {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    for chunk in chunks {
        match chunk {
            LogOutput::StdErr { message } => err.extend_from_slice(&message),
            other => out.extend_from_slice(&other.into_bytes()),
        }
    }
    ExecOutput {
        code,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

fn is_status(e: &bollard::errors::Error, code: u16) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == code)
}

fn cluster_filter(cluster: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{LABEL_CLUSTER}={cluster}")])])
}

fn hash_map(labels: &std::collections::BTreeMap<String, String>) -> HashMap<String, String> {
    labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl DockerEngine {
    /// The containers labelled `label=value`, stopped ones too, by name.
    async fn list_label(&self, label: &str, value: &str) -> Result<Vec<ContainerInfo>> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{label}={value}")])]);
        let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let found = self.docker.list_containers(Some(options)).await.map_err(api("list containers"))?;
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

    /// Connects to the engine at `url` (`ssh://user@host` through the user's own ssh
    /// setup, one ssh connection for every request: see [`super::ssh`];
    /// `tcp://host:port`, `unix:///path`), or, without one, the way the docker CLI does
    /// (DOCKER_HOST, else the local socket). Agrees on an API version both sides speak.
    pub async fn connect(url: Option<&str>) -> Result<DockerEngine> {
        let from_env = std::env::var("DOCKER_HOST").ok().filter(|h| h.starts_with("ssh://"));
        let url = url.or(from_env.as_deref());
        let unreachable = |e: String| {
            EngineError::Unreachable(match url {
                Some(url) => format!("{url}: {e}"),
                None => e,
            })
        };
        let tunnel = match url.and_then(SshTarget::parse) {
            Some(target) => Some(std::sync::Arc::new(SshTunnel::open(&target).await.map_err(unreachable)?)),
            None if url.is_some_and(|u| u.starts_with("ssh://")) => {
                return Err(unreachable("not an ssh://user@host[:port] address".into()));
            }
            None => None,
        };
        let docker = match (&tunnel, url) {
            (Some(tunnel), _) => {
                let socket = tunnel.socket().to_str().expect("the tunnel's socket path is UTF-8");
                Docker::connect_with_unix(socket, REQUEST_TIMEOUT_S, bollard::API_DEFAULT_VERSION)
            }
            (None, Some(url)) => Docker::connect_with_host(url),
            (None, None) => Docker::connect_with_defaults(),
        }
        .map_err(|e| unreachable(e.to_string()))?
        // Image transfers and `verify`'s MPI job take longer than bollard's default.
        .with_timeout(std::time::Duration::from_secs(REQUEST_TIMEOUT_S));
        let docker = match docker.negotiate_version().await {
            Ok(docker) => docker,
            // ssh logged in but the host refused the forward: no engine socket there
            // (rootless Docker listens elsewhere), or forwarding is turned off.
            Err(e) => {
                let refusal = match &tunnel {
                    Some(tunnel) => tunnel.forward_refusal().await,
                    None => None,
                };
                return Err(unreachable(match refusal {
                    Some(line) => format!(
                        "the host refused a connection to its engine's socket ({line}); for rootless Docker \
                         give its socket: ssh://user@host/run/user/UID/docker.sock"
                    ),
                    None => e.to_string(),
                }));
            }
        };
        Ok(DockerEngine { docker, _tunnel: tunnel })
    }

    async fn run_exec(
        &self,
        container: &str,
        spec: &ExecSpec,
        tty: bool,
        attach_stdin: bool,
    ) -> Result<(String, StartExecResults)> {
        let exec = self
            .docker
            .create_exec(
                container,
                CreateExecOptions {
                    attach_stdin: Some(attach_stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(tty),
                    cmd: Some(spec.cmd.clone()),
                    user: spec.user.clone(),
                    working_dir: spec.workdir.clone(),
                    env: (!spec.env.is_empty()).then(|| spec.env.clone()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| {
                if is_status(&e, 404) {
                    EngineError::NoContainer(container.to_string())
                } else {
                    api(format!("run a command in {container}"))(e)
                }
            })?;
        let started = self
            .docker
            .start_exec(&exec.id, Some(StartExecOptions { detach: false, tty, output_capacity: None }))
            .await
            .map_err(api(format!("run a command in {container}")))?;
        Ok((exec.id, started))
    }

    async fn exit_code(&self, exec_id: &str) -> Result<i64> {
        let inspect = self.docker.inspect_exec(exec_id).await.map_err(api("read an exit code"))?;
        Ok(inspect.exit_code.unwrap_or(-1))
    }
}

impl Engine for DockerEngine {
    async fn info(&self) -> Result<EngineInfo> {
        let info = self.docker.info().await.map_err(|e| EngineError::Unreachable(e.to_string()))?;
        Ok(EngineInfo {
            version: info.server_version.unwrap_or_default(),
            cpus: info.ncpu.unwrap_or(1).max(1) as u32,
            memory_mib: (info.mem_total.unwrap_or(0).max(0) as u64) / (1024 * 1024),
            arch: info.architecture.unwrap_or_default(),
            cgroup_version: info.cgroup_version.map(|v| v.to_string()).unwrap_or_default(),
            cgroup_driver: info.cgroup_driver.map(|d| d.to_string()).unwrap_or_default(),
            security_options: info.security_options.unwrap_or_default(),
            runtimes: {
                let mut names: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
                names.sort();
                names
            },
            cdi_devices: info
                .discovered_devices
                .unwrap_or_default()
                .into_iter()
                .filter(|d| d.source.as_deref() == Some("cdi"))
                .filter_map(|d| d.id)
                .collect(),
        })
    }

    async fn image_exists(&self, image: &str) -> Result<bool> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, 404) => Ok(false),
            Err(e) => Err(api(format!("inspect image {image}"))(e)),
        }
    }

    async fn import_image(
        &self,
        changes: &[String],
        platform: &str,
        tar: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    ) -> Result<String> {
        let options = CreateImageOptions {
            from_src: Some("-".into()),
            changes: changes.to_vec(),
            platform: platform.to_string(),
            ..Default::default()
        };
        let mut progress = self.docker.create_image(Some(options), Some(bollard::body_try_stream(tar)), None);
        // The engine answers an import with the new image's id as the last status.
        let mut id = String::new();
        while let Some(item) = progress.next().await {
            let info = item.map_err(api("import an image"))?;
            if let Some(status) = info.status.filter(|s| s.starts_with("sha256:")) {
                id = status;
            }
        }
        Ok(id)
    }

    async fn pull_image(&self, image: &str) -> Result<()> {
        let (repo, tag) = split_tag(image);
        let options =
            CreateImageOptions { from_image: Some(repo.into()), tag: Some(tag.into()), ..Default::default() };
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(item) = progress.next().await {
            item.map_err(api(format!("pull {image}")))?;
        }
        Ok(())
    }

    async fn push_image(&self, image: &str) -> Result<()> {
        let (repo, tag) = split_tag(image);
        let options = bollard::query_parameters::PushImageOptions { tag: Some(tag.into()), platform: None };
        let mut progress = self.docker.push_image(repo, Some(options), None);
        while let Some(item) = progress.next().await {
            item.map_err(api(format!("push {image}")))?;
        }
        Ok(())
    }

    async fn build_image(
        &self,
        dockerfile: &str,
        tag: &str,
        line: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<()> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(dockerfile.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
            .expect("writing a tar into memory cannot fail");
        let context = builder.into_inner().expect("writing a tar into memory cannot fail");
        let options = bollard::query_parameters::BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: Some(tag.into()),
            rm: true,
            forcerm: true,
            ..Default::default()
        };
        let mut progress = self.docker.build_image(options, None, Some(bollard::body_full(context.into())));
        while let Some(item) = progress.next().await {
            let info = item.map_err(api(format!("build {tag}")))?;
            for text in info.stream.iter().chain(info.status.iter()) {
                for l in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    line(l);
                }
            }
        }
        Ok(())
    }

    async fn tag_image(&self, id: &str, image: &str) -> Result<()> {
        let (repo, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
        let options =
            bollard::query_parameters::TagImageOptions { repo: Some(repo.into()), tag: Some(tag.into()) };
        self.docker.tag_image(id, Some(options)).await.map_err(api(format!("tag image {image}")))
    }

    async fn send_image(&self, image: &str, to: &Self) -> Result<()> {
        // The export runs in its own task and hands chunks over a small channel, so the
        // image is never held in memory or written to disk on the way.
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
        let (docker, name) = (self.docker.clone(), image.to_string());
        let pump = tokio::spawn(async move {
            let mut export = docker.export_image(&name);
            while let Some(chunk) = export.next().await {
                let chunk = chunk.map_err(std::io::Error::other);
                let failed = chunk.is_err();
                if tx.send(chunk).await.is_err() || failed {
                    break;
                }
            }
        });
        let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
        let options = bollard::query_parameters::ImportImageOptions { quiet: true, ..Default::default() };
        let mut load = to.docker.import_image_stream(options, body, None);
        while let Some(item) = load.next().await {
            item.map_err(api(format!("load image {image}")))?;
        }
        let _ = pump.await;
        Ok(())
    }

    async fn remove_image(&self, id: &str) -> Result<()> {
        match self.docker.remove_image(id, None::<bollard::query_parameters::RemoveImageOptions>, None).await
        {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(api(format!("remove image {id}"))(e)),
        }
    }

    async fn ensure_network(&self, net: &NetworkPlan) -> Result<()> {
        match self
            .docker
            .inspect_network(&net.name, None::<bollard::query_parameters::InspectNetworkOptions>)
            .await
        {
            Ok(found) => {
                let ours =
                    found.labels.unwrap_or_default().get(LABEL_CLUSTER) == net.labels.get(LABEL_CLUSTER);
                if ours {
                    Ok(())
                } else {
                    Err(EngineError::Foreign { what: "network", name: net.name.clone() })
                }
            }
            Err(e) if is_status(&e, 404) => {
                let request = match &net.driver {
                    NetworkDriver::Bridge => NetworkCreateRequest {
                        name: net.name.clone(),
                        driver: Some("bridge".into()),
                        labels: Some(hash_map(&net.labels)),
                        ..Default::default()
                    },
                    NetworkDriver::Macvlan { parent, subnet, gateway, ip_range } => NetworkCreateRequest {
                        name: net.name.clone(),
                        driver: Some("macvlan".into()),
                        options: Some(HashMap::from([("parent".to_string(), parent.clone())])),
                        ipam: Some(Ipam {
                            config: Some(vec![IpamConfig {
                                subnet: Some(subnet.clone()),
                                gateway: gateway.clone(),
                                ip_range: Some(ip_range.clone()),
                                ..Default::default()
                            }]),
                            ..Default::default()
                        }),
                        labels: Some(hash_map(&net.labels)),
                        ..Default::default()
                    },
                };
                match self.docker.create_network(request).await {
                    Ok(_) => Ok(()),
                    // Another `up` of the same cluster made it a moment ago.
                    Err(e) if is_status(&e, 409) => Ok(()),
                    Err(e) => Err(api(format!("create network {}", net.name))(e)),
                }
            }
            Err(e) => Err(api(format!("inspect network {}", net.name))(e)),
        }
    }

    async fn ensure_volume(&self, vol: &VolumePlan) -> Result<()> {
        match self.docker.inspect_volume(&vol.name).await {
            Ok(found) => {
                if found.labels.get(LABEL_CLUSTER) == vol.labels.get(LABEL_CLUSTER) {
                    Ok(())
                } else {
                    Err(EngineError::Foreign { what: "volume", name: vol.name.clone() })
                }
            }
            Err(e) if is_status(&e, 404) => {
                let request = VolumeCreateRequest {
                    name: Some(vol.name.clone()),
                    labels: Some(hash_map(&vol.labels)),
                    ..Default::default()
                };
                self.docker
                    .create_volume(request)
                    .await
                    .map(|_| ())
                    .map_err(api(format!("create volume {}", vol.name)))
            }
            Err(e) => Err(api(format!("inspect volume {}", vol.name))(e)),
        }
    }

    async fn list_containers(&self, cluster: &str) -> Result<Vec<ContainerInfo>> {
        self.list_label(LABEL_CLUSTER, cluster).await
    }

    async fn list_labelled(&self, label: &str, value: &str) -> Result<Vec<ContainerInfo>> {
        self.list_label(label, value).await
    }

    async fn create_container(&self, c: &ContainerPlan) -> Result<()> {
        let body = create_body(c);
        let options = CreateContainerOptions { name: Some(c.name.clone()), ..Default::default() };
        match self.docker.create_container(Some(options), body).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 409) => {
                Err(EngineError::Foreign { what: "container", name: c.name.clone() })
            }
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

    async fn upload(&self, container: &str, files: &[FileUpload]) -> Result<()> {
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
        self.docker
            .upload_to_container(container, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(api(format!("copy files into {container}")))
    }

    async fn start_container(&self, name: &str) -> Result<()> {
        match self.docker.start_container(name, None::<StartContainerOptions>).await {
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
            Err(e)
                if e.to_string().contains("already allocated")
                    || e.to_string().contains("already in use") =>
            {
                Err(EngineError::PortTaken { port: bound_port(&e.to_string()), container: name.to_string() })
            }
            Err(e) => Err(api(format!("start container {name}"))(e)),
        }
    }

    async fn remove_container(&self, name: &str) -> Result<()> {
        // Stop first: SIGTERM lets slurmctld write its state (queued jobs) to its volume,
        // which a forced removal (SIGKILL) would lose.
        let stop = StopContainerOptions { t: Some(STOP_TIMEOUT_S), signal: None };
        match self.docker.stop_container(name, Some(stop)).await {
            Ok(()) => {}
            Err(e) if is_status(&e, 304) || is_status(&e, 404) => {}
            Err(e) => return Err(api(format!("stop container {name}"))(e)),
        }
        let options = RemoveContainerOptions { force: true, v: false, link: false };
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(api(format!("remove container {name}"))(e)),
        }
    }

    async fn run_probe(
        &self,
        name: &str,
        image: &str,
        cmd: &[String],
        gpus: &GpuRequest,
    ) -> Result<ExecOutput> {
        let body = ContainerCreateBody {
            image: Some(image.into()),
            entrypoint: Some(cmd[..1].to_vec()),
            cmd: Some(cmd[1..].to_vec()),
            host_config: Some(HostConfig {
                // It only looks: no network, no capabilities.
                network_mode: Some("none".into()),
                cap_drop: Some(vec!["ALL".into()]),
                device_requests: Some(vec![device_request(gpus)]),
                ..Default::default()
            }),
            ..Default::default()
        };
        // One left behind by an interrupted `up` goes first.
        self.remove_container(name).await?;
        let options = CreateContainerOptions { name: Some(name.into()), ..Default::default() };
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(api(format!("create container {name}")))?;
        let ran = async {
            self.docker
                .start_container(name, None::<StartContainerOptions>)
                .await
                .map_err(api(format!("start container {name} with the host's GPUs")))?;
            // A non-zero exit comes as an error here; the exit code is read below.
            let wait = WaitContainerOptions { condition: "not-running".into() };
            let _ = self.docker.wait_container(name, Some(wait)).try_collect::<Vec<_>>().await;
            let inspect = self
                .docker
                .inspect_container(name, None::<InspectContainerOptions>)
                .await
                .map_err(api(format!("inspect {name}")))?;
            let code = inspect.state.and_then(|s| s.exit_code).unwrap_or(-1);
            let options = LogsOptions { stdout: true, stderr: true, ..Default::default() };
            let chunks: Vec<LogOutput> = self
                .docker
                .logs(name, Some(options))
                .try_collect()
                .await
                .map_err(api(format!("read output of {name}")))?;
            Ok(output_of(code, chunks))
        }
        .await;
        let removed = self.remove_container(name).await;
        let output = ran?;
        removed?;
        Ok(output)
    }

    async fn exec(&self, container: &str, spec: &ExecSpec) -> Result<ExecOutput> {
        let (id, started) = self.run_exec(container, spec, false, false).await?;
        let chunks: Vec<LogOutput> = match started {
            StartExecResults::Attached { output, .. } => {
                output.try_collect().await.map_err(api(format!("read output from {container}")))?
            }
            StartExecResults::Detached => Vec::new(),
        };
        Ok(output_of(self.exit_code(&id).await?, chunks))
    }

    async fn exec_attached(&self, container: &str, spec: &ExecSpec, tty: bool) -> Result<i64> {
        let (id, started) = self.run_exec(container, spec, tty, true).await?;
        let StartExecResults::Attached { mut output, mut input } = started else {
            return self.exit_code(&id).await;
        };
        let _raw = tty.then(RawTerminal::enable);
        if tty && let Ok((cols, rows)) = crossterm::terminal::size() {
            let resize = bollard::exec::ResizeExecOptions { height: rows, width: cols };
            let _ = self.docker.resize_exec(&id, resize).await;
        }
        // stdin → command. When stdin ends the command sees end-of-file.
        let feeder = tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let _ = tokio::io::copy(&mut stdin, &mut input).await;
            let _ = input.shutdown().await;
        });
        let mut out = stdout();
        while let Some(chunk) = output.next().await {
            match chunk.map_err(api(format!("read output from {container}")))? {
                LogOutput::StdErr { message } => {
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(&message);
                    let _ = err.flush();
                }
                other => {
                    let _ = out.write_all(&other.into_bytes()).await;
                    let _ = out.flush().await;
                }
            }
        }
        feeder.abort();
        self.exit_code(&id).await
    }

    async fn logs(&self, container: &str, tail: &str) -> Result<String> {
        let options =
            LogsOptions { stdout: true, stderr: true, tail: tail.to_string(), ..Default::default() };
        let chunks: Vec<LogOutput> =
            self.docker.logs(container, Some(options)).try_collect().await.map_err(|e| {
                if is_status(&e, 404) {
                    EngineError::NoContainer(container.to_string())
                } else {
                    api(format!("read logs of {container}"))(e)
                }
            })?;
        let bytes: Vec<u8> = chunks.into_iter().flat_map(|c| c.into_bytes()).collect();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn remove_network(&self, cluster: &str) -> Result<Vec<String>> {
        let options = ListNetworksOptions { filters: Some(cluster_filter(cluster)) };
        let nets = self.docker.list_networks(Some(options)).await.map_err(api("list networks"))?;
        let mut removed = Vec::new();
        for name in nets.into_iter().filter_map(|n| n.name) {
            match self.docker.remove_network(&name).await {
                Ok(()) => removed.push(name),
                Err(e) if is_status(&e, 404) => {}
                Err(e) => return Err(api(format!("remove network {name}"))(e)),
            }
        }
        Ok(removed)
    }

    async fn remove_volumes(&self, cluster: &str) -> Result<Vec<String>> {
        let options = ListVolumesOptions { filters: Some(cluster_filter(cluster)) };
        let vols = self.docker.list_volumes(Some(options)).await.map_err(api("list volumes"))?;
        let mut removed = Vec::new();
        for v in vols.volumes.unwrap_or_default() {
            match self.docker.remove_volume(&v.name, Some(RemoveVolumeOptions { force: true })).await {
                Ok(()) => removed.push(v.name),
                Err(e) if is_status(&e, 404) => {}
                Err(e) => return Err(api(format!("remove volume {}", v.name))(e)),
            }
        }
        Ok(removed)
    }
}

/// bollard's create body for a planned container.
fn create_body(c: &ContainerPlan) -> ContainerCreateBody {
    // A folder a storage container mounts the shared /home on (and its nodes see
    // it through): given as a bind ("SRC:DST:rshared"), which every engine version
    // creates on the host when missing (a mount's create_mountpoint needs API 1.42).
    let (propagated, plain): (Vec<_>, Vec<_>) = c.mounts.iter().partition(|m| m.propagation.is_some());
    let binds: Vec<String> = propagated
        .iter()
        .map(|m| {
            let source = match &m.source {
                MountSource::Volume(v) | MountSource::HostPath(v) => v,
            };
            let propagation = match m.propagation {
                Some(Propagation::Shared) => "rshared",
                _ => "rslave",
            };
            let mode = if m.read_only { "ro" } else { "rw" };
            format!("{source}:{}:{mode},{propagation}", m.target)
        })
        .collect();
    let mounts: Vec<Mount> = plain
        .iter()
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
        .collect();
    let (mut files, mut gpus) = (Vec::new(), Vec::new());
    for d in &c.devices {
        match d {
            Device::File(f) => files.push(f),
            Device::Gpus(r) => gpus.push(r),
        }
    }
    ContainerCreateBody {
        image: Some(c.image.clone()),
        hostname: Some(c.hostname.clone()),
        cmd: Some(c.command.clone()),
        env: Some(c.env.clone()),
        labels: Some(hash_map(&c.labels)),
        healthcheck: c.health.as_ref().map(|cmd| {
            let mut test = vec!["CMD".to_string()];
            test.extend(cmd.iter().cloned());
            let secs = |s: i64| s * 1_000_000_000;
            HealthConfig {
                test: Some(test),
                // "unhealthy" after about 15 s; slurmbox-init's watchdog restarts
                // the daemon after 30.
                interval: Some(secs(5)),
                timeout: Some(secs(6)),
                retries: Some(2),
                start_period: Some(secs(30)),
                ..Default::default()
            }
        }),
        host_config: Some(HostConfig {
            mounts: Some(mounts),
            binds: (!binds.is_empty()).then_some(binds),
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
            devices: (!files.is_empty()).then(|| {
                files
                    .iter()
                    .map(|d| {
                        let (host, node) = d.split_once(':').unwrap_or((d, d));
                        DeviceMapping {
                            path_on_host: Some(host.into()),
                            path_in_container: Some(node.into()),
                            cgroup_permissions: Some("rwm".into()),
                        }
                    })
                    .collect()
            }),
            // GPUs the engine's device driver gives (compute nodes of a GPU host).
            device_requests: (!gpus.is_empty()).then(|| gpus.iter().map(|r| device_request(r)).collect()),
            security_opt: (!c.security_opt.is_empty()).then(|| c.security_opt.clone()),
            cgroupns_mode: c.cgroupns_private.then_some(HostConfigCgroupnsModeEnum::PRIVATE),
            // No swap beyond the limit: memory and swap together are the limit.
            memory: c.memory_mib.map(|m| (m * 1024 * 1024) as i64),
            memory_swap: c.memory_mib.map(|m| (m * 1024 * 1024) as i64),
            port_bindings: (!c.ports.is_empty()).then(|| {
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
            }),
            ..Default::default()
        }),
        exposed_ports: (!c.ports.is_empty())
            .then(|| c.ports.iter().map(|p| format!("{}/tcp", p.container_port)).collect()),
        // On the cluster's own network the node is found by its name; on the host's
        // network it has the host's address and needs no alias.
        networking_config: (c.network != HOST_NETWORK).then(|| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                c.network.clone(),
                EndpointSettings {
                    aliases: Some(vec![c.hostname.clone()]),
                    // Its fixed address on a macvlan network.
                    ipam_config: c.ip.as_ref().map(|ip| EndpointIpamConfig {
                        ipv4_address: Some(ip.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    }
}

/// Puts the local terminal in raw mode for an interactive shell; restores it on drop.
struct RawTerminal;

impl RawTerminal {
    fn enable() -> RawTerminal {
        let _ = crossterm::terminal::enable_raw_mode();
        RawTerminal
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
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
