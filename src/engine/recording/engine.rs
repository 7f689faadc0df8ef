//! [`Engine`] for [`RecordingEngine`]: each call is recorded, then acts on the
//! in-memory [`State`] the way Docker would (what exists, what runs).

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::state::{ensure_labelled, new_container, remove_labelled, start};
use super::{Call, RecordingEngine, api_error};
use crate::engine::{
    ContainerInfo, Engine, EngineError, EngineInfo, ExecOutput, ExecSpec, FileUpload, Result,
};
use crate::plan::{ContainerPlan, GpuRequest, LABEL_CLUSTER, NetworkPlan, VolumePlan};

impl Engine for RecordingEngine {
    async fn info(&self) -> Result<EngineInfo> {
        let state = self.record(Call::Info)?;
        Ok(state.info.clone().unwrap_or_else(|| EngineInfo {
            version: "recording".into(),
            cpus: 4,
            memory_mib: 8192,
            arch: "x86_64".into(),
            cgroup_version: "2".into(),
            cgroup_driver: "systemd".into(),
            security_options: vec!["name=seccomp,profile=builtin".into(), "name=cgroupns".into()],
            runtimes: vec!["runc".into()],
            cdi_devices: vec![],
        }))
    }

    async fn image_exists(&self, image: &str) -> Result<bool> {
        let state = self.record(Call::ImageExists { image: image.into() })?;
        Ok(state.images.contains_key(image))
    }

    async fn import_image(
        &self,
        changes: &[String],
        platform: &str,
        tar: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    ) -> Result<String> {
        // The stream is read to its end before the call is recorded (with its size),
        // as the engine does: a stream that fails is an import that fails.
        let mut tar = std::pin::pin!(tar);
        let mut bytes = 0;
        let mut failed = None;
        while let Some(chunk) = tar.next().await {
            match chunk {
                Ok(chunk) => bytes += chunk.len(),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let call = Call::ImportImage { changes: changes.to_vec(), platform: platform.into(), bytes };
        let mut state = self.record(call)?;
        if let Some(err) = failed {
            return Err(EngineError::Api {
                action: "import an image".into(),
                source: bollard::errors::Error::IOError { err },
            });
        }
        let id = format!("sha256:{}", state.new_id("rec"));
        state.images.insert(id.clone(), id.clone());
        Ok(id)
    }

    async fn tag_image(&self, id: &str, image: &str) -> Result<()> {
        let mut state = self.record(Call::TagImage { id: id.into(), image: image.into() })?;
        let Some(found) = state.images.get(id).cloned() else {
            return Err(api_error(&format!("tag image {image}"), 404, &format!("No such image: {id}")));
        };
        state.images.insert(image.into(), found);
        Ok(())
    }

    async fn send_image(&self, image: &str, to: &Self) -> Result<()> {
        let id = {
            let state = self.record(Call::SendImage { image: image.into(), to: to.name.clone() })?;
            state.images.get(image).cloned()
        };
        let Some(id) = id else {
            return Err(api_error(&format!("load image {image}"), 404, &format!("No such image: {image}")));
        };
        let mut theirs = to.record(Call::ReceiveImage { image: image.into(), from: self.name.clone() })?;
        theirs.images.insert(id.clone(), id);
        theirs.images.insert(image.into(), image.into());
        Ok(())
    }

    async fn remove_image(&self, id: &str) -> Result<()> {
        let mut state = self.record(Call::RemoveImage { id: id.into() })?;
        // By id: the image and its tags; by tag: that tag. A missing one is no error.
        state.images.retain(|name, found| name != id && found != id);
        Ok(())
    }

    // A registry this engine reaches holds what [`RecordingEngine::offer`] put there.
    async fn pull_image(&self, image: &str) -> Result<()> {
        let mut state = self.record(Call::PullImage { image: image.into() })?;
        let Some(id) = state.registry.get(image).cloned() else {
            return Err(api_error(&format!("pull {image}"), 404, &format!("manifest for {image} not found")));
        };
        state.images.insert(image.into(), id);
        Ok(())
    }

    async fn push_image(&self, image: &str) -> Result<()> {
        let mut state = self.record(Call::PushImage { image: image.into() })?;
        let Some(id) = state.images.get(image).cloned() else {
            return Err(api_error(&format!("push {image}"), 404, &format!("No such image: {image}")));
        };
        state.registry.insert(image.into(), id);
        Ok(())
    }

    async fn build_image(
        &self,
        dockerfile: &str,
        tag: &str,
        line: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<()> {
        let mut state = self.record(Call::BuildImage { tag: tag.into(), dockerfile: dockerfile.into() })?;
        let base = dockerfile.lines().find_map(|l| l.strip_prefix("FROM ")).unwrap_or_default().to_string();
        if !state.images.contains_key(&base) {
            return Err(api_error(&format!("build {tag}"), 404, &format!("pull access denied for {base}")));
        }
        line("Step 1/1");
        let id = format!("sha256:built-{}", state.images.len());
        state.images.insert(tag.into(), id);
        Ok(())
    }

    async fn ensure_network(&self, net: &NetworkPlan) -> Result<()> {
        let mut state = self.record(Call::EnsureNetwork { name: net.name.clone() })?;
        ensure_labelled(&mut state.networks, "network", &net.name, &net.labels)
    }

    async fn ensure_volume(&self, vol: &VolumePlan) -> Result<()> {
        let mut state = self.record(Call::EnsureVolume { name: vol.name.clone() })?;
        ensure_labelled(&mut state.volumes, "volume", &vol.name, &vol.labels)
    }

    async fn list_containers(&self, cluster: &str) -> Result<Vec<ContainerInfo>> {
        let state = self.record(Call::ListContainers { cluster: cluster.into() })?;
        // By name, like the real engine's list.
        Ok(state
            .containers
            .values()
            .filter(|c| c.info.labels.get(LABEL_CLUSTER).map(String::as_str) == Some(cluster))
            .map(|c| c.info.clone())
            .collect())
    }

    async fn list_labelled(&self, label: &str, value: &str) -> Result<Vec<ContainerInfo>> {
        let state = self.record(Call::ListLabelled { label: label.into(), value: value.into() })?;
        Ok(state
            .containers
            .values()
            .filter(|c| c.info.labels.get(label).map(String::as_str) == Some(value))
            .map(|c| c.info.clone())
            .collect())
    }

    async fn create_container(&self, c: &ContainerPlan) -> Result<()> {
        let call = Call::CreateContainer { name: c.name.clone(), image: c.image.clone() };
        let mut state = self.record(call)?;
        if state.containers.contains_key(&c.name) {
            return Err(EngineError::Foreign { what: "container", name: c.name.clone() });
        }
        if !state.images.contains_key(&c.image) {
            let message = format!("No such image: {}", c.image);
            return Err(api_error(&format!("create container {}", c.name), 404, &message));
        }
        let container = new_container(&mut state, c);
        state.containers.insert(c.name.clone(), container);
        Ok(())
    }

    async fn upload(&self, container: &str, files: &[FileUpload]) -> Result<()> {
        let paths = files.iter().map(|f| f.path.clone()).collect();
        let mut state = self.record(Call::Upload { container: container.into(), paths })?;
        let found = state.container(container)?;
        for f in files {
            found.files.insert(f.path.clone(), f.contents.clone());
        }
        Ok(())
    }

    async fn start_container(&self, name: &str) -> Result<()> {
        let mut state = self.record(Call::StartContainer { name: name.into() })?;
        let Some(found) = state.containers.get_mut(name) else {
            return Err(api_error(
                &format!("start container {name}"),
                404,
                &format!("No such container: {name}"),
            ));
        };
        // Starting a running container is no error (304 to the real engine).
        start(&mut found.info);
        Ok(())
    }

    async fn remove_container(&self, name: &str) -> Result<()> {
        let mut state = self.record(Call::RemoveContainer { name: name.into() })?;
        // A missing container is no error, as with the real engine.
        state.containers.remove(name);
        Ok(())
    }

    /// Answered like [`Engine::exec`], from fixtures for the probe's name (or any
    /// container) and command; the image must be there.
    async fn run_probe(
        &self,
        name: &str,
        image: &str,
        cmd: &[String],
        gpus: &GpuRequest,
    ) -> Result<ExecOutput> {
        let call =
            Call::RunProbe { name: name.into(), image: image.into(), cmd: cmd.to_vec(), gpus: gpus.clone() };
        let mut state = self.record(call)?;
        if !state.images.contains_key(image) {
            let message = format!("No such image: {image}");
            return Err(api_error(&format!("create container {name}"), 404, &message));
        }
        Ok(state.answer(name, cmd))
    }

    async fn exec(&self, container: &str, spec: &ExecSpec) -> Result<ExecOutput> {
        let call = Call::Exec { container: container.into(), cmd: spec.cmd.clone(), user: spec.user.clone() };
        let mut state = self.record(call)?;
        state.running(container)?;
        Ok(state.answer(container, &spec.cmd))
    }

    async fn exec_attached(&self, container: &str, spec: &ExecSpec, tty: bool) -> Result<i64> {
        let call = Call::ExecAttached { container: container.into(), cmd: spec.cmd.clone(), tty };
        let mut state = self.record(call)?;
        state.running(container)?;
        Ok(state.answer(container, &spec.cmd).code)
    }

    async fn logs(&self, container: &str, tail: &str) -> Result<String> {
        let mut state = self.record(Call::Logs { container: container.into(), tail: tail.into() })?;
        let logs = &state.container(container)?.logs;
        Ok(match tail.parse::<usize>() {
            Ok(n) => {
                let lines: Vec<&str> = logs.lines().collect();
                lines[lines.len().saturating_sub(n)..].iter().map(|l| format!("{l}\n")).collect()
            }
            Err(_) => logs.clone(),
        })
    }

    async fn remove_network(&self, cluster: &str) -> Result<Vec<String>> {
        let mut state = self.record(Call::RemoveNetwork { cluster: cluster.into() })?;
        Ok(remove_labelled(&mut state.networks, cluster))
    }

    async fn remove_volumes(&self, cluster: &str) -> Result<Vec<String>> {
        let mut state = self.record(Call::RemoveVolumes { cluster: cluster.into() })?;
        Ok(remove_labelled(&mut state.volumes, cluster))
    }
}
