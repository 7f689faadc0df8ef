//! Running programs on a Docker engine: a command in a running container, captured or
//! wired to this terminal; a short-lived probe container given the host's GPUs; a
//! container's log.

use std::io::Write as _;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, LogsOptions, StartContainerOptions, WaitContainerOptions,
};
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::{AsyncWriteExt, stdout};

use super::{api, container, device_request, is_status};
use crate::engine::{EngineError, ExecOutput, ExecSpec, Result};
use crate::plan::GpuRequest;

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

/// Starts `spec` in `container`: the exec's id and its output (and input) streams.
async fn start(
    docker: &Docker,
    container: &str,
    spec: &ExecSpec,
    tty: bool,
    attach_stdin: bool,
) -> Result<(String, StartExecResults)> {
    let options = CreateExecOptions {
        attach_stdin: Some(attach_stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(tty),
        cmd: Some(spec.cmd.clone()),
        user: spec.user.clone(),
        working_dir: spec.workdir.clone(),
        env: (!spec.env.is_empty()).then(|| spec.env.clone()),
        ..Default::default()
    };
    let exec = docker.create_exec(container, options).await.map_err(|e| {
        if is_status(&e, 404) {
            EngineError::NoContainer(container.to_string())
        } else {
            api(format!("run a command in {container}"))(e)
        }
    })?;
    let started = docker
        .start_exec(&exec.id, Some(StartExecOptions { detach: false, tty, output_capacity: None }))
        .await
        .map_err(api(format!("run a command in {container}")))?;
    Ok((exec.id, started))
}

async fn exit_code(docker: &Docker, exec_id: &str) -> Result<i64> {
    let inspect = docker.inspect_exec(exec_id).await.map_err(api("read an exit code"))?;
    Ok(inspect.exit_code.unwrap_or(-1))
}

/// Whether the container runtime failed to start the process at all (it never ran):
/// runc answers 126 and says so when its init process is lost while a loaded engine
/// sets the process up, which is seen on busy hosts running engines inside containers.
fn never_started(out: &ExecOutput) -> bool {
    out.code == 126
        && [&out.stdout, &out.stderr]
            .iter()
            .any(|s| s.contains("OCI runtime exec failed") && s.contains("unable to start container process"))
}

/// Runs `spec` in `container` and captures its output. A process the runtime failed to
/// start never ran, so it is started again (twice at most, half a second apart).
pub(super) async fn captured(docker: &Docker, container: &str, spec: &ExecSpec) -> Result<ExecOutput> {
    let mut out = captured_once(docker, container, spec).await?;
    for _ in 0..2 {
        if !never_started(&out) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        out = captured_once(docker, container, spec).await?;
    }
    Ok(out)
}

async fn captured_once(docker: &Docker, container: &str, spec: &ExecSpec) -> Result<ExecOutput> {
    let (id, started) = start(docker, container, spec, false, false).await?;
    let chunks: Vec<LogOutput> = match started {
        StartExecResults::Attached { output, .. } => {
            output.try_collect().await.map_err(api(format!("read output from {container}")))?
        }
        StartExecResults::Detached => Vec::new(),
    };
    Ok(output_of(exit_code(docker, &id).await?, chunks))
}

pub(super) async fn attached(docker: &Docker, container: &str, spec: &ExecSpec, tty: bool) -> Result<i64> {
    let (id, started) = start(docker, container, spec, tty, true).await?;
    let StartExecResults::Attached { mut output, mut input } = started else {
        return exit_code(docker, &id).await;
    };
    let _raw = tty.then(RawTerminal::enable);
    if tty && let Ok((cols, rows)) = crossterm::terminal::size() {
        let resize = bollard::exec::ResizeExecOptions { height: rows, width: cols };
        let _ = docker.resize_exec(&id, resize).await;
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
    exit_code(docker, &id).await
}

pub(super) async fn logs(docker: &Docker, container: &str, tail: &str) -> Result<String> {
    let options = LogsOptions { stdout: true, stderr: true, tail: tail.to_string(), ..Default::default() };
    let chunks: Vec<LogOutput> = docker.logs(container, Some(options)).try_collect().await.map_err(|e| {
        if is_status(&e, 404) {
            EngineError::NoContainer(container.to_string())
        } else {
            api(format!("read logs of {container}"))(e)
        }
    })?;
    let bytes: Vec<u8> = chunks.into_iter().flat_map(|c| c.into_bytes()).collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The probe container's body: `cmd` in `image`, given `gpus`, with nothing else.
fn probe_body(image: &str, cmd: &[String], gpus: &GpuRequest) -> ContainerCreateBody {
    ContainerCreateBody {
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
    }
}

pub(super) async fn probe(
    docker: &Docker,
    name: &str,
    image: &str,
    cmd: &[String],
    gpus: &GpuRequest,
) -> Result<ExecOutput> {
    // One left behind by an interrupted `up` goes first.
    container::remove(docker, name).await?;
    let options = CreateContainerOptions { name: Some(name.into()), ..Default::default() };
    docker
        .create_container(Some(options), probe_body(image, cmd, gpus))
        .await
        .map_err(api(format!("create container {name}")))?;
    let ran = run_to_end(docker, name).await;
    let removed = container::remove(docker, name).await;
    let output = ran?;
    removed?;
    Ok(output)
}

/// Starts the created container `name`, waits for its end and reads its output.
async fn run_to_end(docker: &Docker, name: &str) -> Result<ExecOutput> {
    docker
        .start_container(name, None::<StartContainerOptions>)
        .await
        .map_err(api(format!("start container {name} with the host's GPUs")))?;
    // A non-zero exit comes as an error here; the exit code is read below.
    let wait = WaitContainerOptions { condition: "not-running".into() };
    let _ = docker.wait_container(name, Some(wait)).try_collect::<Vec<_>>().await;
    let inspect = docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .map_err(api(format!("inspect {name}")))?;
    let code = inspect.state.and_then(|s| s.exit_code).unwrap_or(-1);
    let options = LogsOptions { stdout: true, stderr: true, ..Default::default() };
    let chunks: Vec<LogOutput> = docker
        .logs(name, Some(options))
        .try_collect()
        .await
        .map_err(api(format!("read output of {name}")))?;
    Ok(output_of(code, chunks))
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
    use super::*;

    fn out(code: i64, stdout: &str) -> ExecOutput {
        ExecOutput { code, stdout: stdout.into(), stderr: String::new() }
    }

    #[test]
    fn only_a_process_the_runtime_never_started_is_started_again() {
        let lost = "OCI runtime exec failed: exec failed: unable to start container process: \
                    waiting for init preliminary setup: read init-p: connection reset by peer: unknown";
        assert!(never_started(&out(126, lost)));
        // The program's own 126 (found but not executable) and its own words are its answer.
        assert!(!never_started(&out(126, "bash: ./x: Permission denied")));
        assert!(!never_started(&out(1, lost)));
        assert!(!never_started(&out(0, "")));
    }
}
