//! Helpers for integration tests: run the real `slurmbox` binary against the local
//! Docker engine, with a unique cluster name per test and a guard that removes the
//! cluster (containers, volumes, network) even when the test fails.

#![allow(dead_code)]

pub mod baseline;
pub mod browser;
pub mod gpus;
pub mod http;
pub mod images;
pub mod lab;
pub mod lab_cluster;
pub mod ldap;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, ListNetworksOptions, ListVolumesOptions};

pub const BIN: &str = env!("CARGO_BIN_EXE_slurmbox");

/// A cluster name no other test (or earlier run) uses.
pub fn unique_name(tag: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("it-{tag}-{}-{:04x}", std::process::id(), nanos & 0xffff)
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics with everything the command printed unless it exited 0.
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "command failed\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }
}

/// Runs `slurmbox ARGS...` with `stdin` fed to it.
pub fn slurmbox_with_input(args: &[&str], stdin: &[u8]) -> Run {
    slurmbox_full(args, stdin, &[])
}

/// Runs `slurmbox ARGS...` with extra environment variables (e.g. a lab's PATH).
pub fn slurmbox_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    slurmbox_full(args, b"", env)
}

fn slurmbox_full(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run slurmbox");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    Run::from(child.wait_with_output().unwrap())
}

pub fn slurmbox(args: &[&str]) -> Run {
    slurmbox_with_input(args, b"")
}

/// The tag of the current node image for Slurm `slurm` ("24.11"), which
/// `slurmbox image build` makes first when the engine lacks it.
pub fn node_image(slurm: &str) -> String {
    slurmbox(&["image", "build", "--quiet", "--slurm", slurm]).ok().stdout.trim().to_string()
}

/// Owns a cluster name for one test; `down --purge` runs when it goes out of scope,
/// on success and on panic alike.
pub struct ClusterGuard {
    pub name: String,
}

impl ClusterGuard {
    pub fn new(tag: &str) -> ClusterGuard {
        ClusterGuard { name: unique_name(tag) }
    }

    /// `slurmbox CMD --name NAME ARGS...`
    pub fn run(&self, cmd: &[&str], args: &[&str]) -> Run {
        let mut all: Vec<&str> = cmd.to_vec();
        all.extend(["--name", &self.name]);
        all.extend(args);
        slurmbox(&all)
    }

    /// `slurmbox exec --name NAME -- bash -c SCRIPT` as the default user.
    pub fn sh(&self, script: &str) -> Run {
        self.run(&["exec"], &["--", "bash", "-c", script])
    }

    /// `slurmbox exec --name NAME --user USER -- bash -c SCRIPT`; its output, or a panic
    /// with everything it printed when it fails.
    pub fn sh_as(&self, user: &str, script: &str) -> String {
        self.run(&["exec"], &["--user", user, "--", "bash", "-c", script]).ok().stdout
    }

    /// Runs `script` (as the default user) until its output satisfies `done`, for at
    /// most 60 s; returns that output, or panics saying `what` did not happen. The
    /// script may fail meanwhile (a file not there yet): only its output counts.
    pub fn wait_for(&self, script: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
        self.poll(|| self.sh(script).stdout, what, std::time::Duration::from_secs(60), done)
    }

    /// [`ClusterGuard::wait_for`] as `user`, for at most 90 s.
    pub fn wait_as(&self, user: &str, script: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
        let run = || self.run(&["exec"], &["--user", user, "--", "bash", "-c", script]).stdout;
        self.poll(run, what, std::time::Duration::from_secs(90), done)
    }

    fn poll(
        &self,
        run: impl Fn() -> String,
        what: &str,
        limit: std::time::Duration,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let out = run();
            if done(&out) {
                return out;
            }
            assert!(std::time::Instant::now() < deadline, "{what} after {limit:?}: {out:?}");
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        let out = slurmbox(&["down", "--purge", "--yes", "--quiet", "--name", &self.name]);
        if out.code != 0 {
            eprintln!("cleanup of {} failed: {}", self.name, out.stderr);
        }
    }
}

/// Names of containers, volumes and networks carrying the cluster's label, asked of
/// the engine directly.
pub fn labelled_objects(cluster: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let docker = Docker::connect_with_defaults().unwrap().negotiate_version().await.unwrap();
        let filters = HashMap::from([("label".to_string(), vec![format!("io.slurmbox.cluster={cluster}")])]);
        let mut found = Vec::new();
        let containers = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .unwrap();
        found.extend(containers.into_iter().flat_map(|c| c.names.unwrap_or_default()));
        let volumes =
            docker.list_volumes(Some(ListVolumesOptions { filters: Some(filters.clone()) })).await.unwrap();
        found.extend(volumes.volumes.unwrap_or_default().into_iter().map(|v| v.name));
        let networks =
            docker.list_networks(Some(ListNetworksOptions { filters: Some(filters) })).await.unwrap();
        found.extend(networks.into_iter().filter_map(|n| n.name));
        found
    })
}

/// Container id and start time per container name, to tell whether `up` restarted it.
pub fn container_identities(cluster: &str) -> Vec<(String, String, String)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let docker = Docker::connect_with_defaults().unwrap().negotiate_version().await.unwrap();
        let filters = HashMap::from([("label".to_string(), vec![format!("io.slurmbox.cluster={cluster}")])]);
        let containers = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .unwrap();
        let mut out = Vec::new();
        for c in containers {
            let id = c.id.unwrap();
            let inspect = docker.inspect_container(&id, None).await.unwrap();
            let started = inspect.state.and_then(|s| s.started_at).unwrap_or_default();
            out.push((inspect.name.unwrap_or_default(), id, started));
        }
        out.sort();
        out
    })
}

/// Where the article this project started from lies: beside the repository, in
/// shared/ (a clone on its own has no such folder).
pub fn seed_article_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/seed/dockerized-slurm-on-raspberry-pis.md")
}

/// The article, or `None` (said on stderr) where this checkout has no copy of it.
pub fn seed_article() -> Option<String> {
    let path = seed_article_path();
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "skipped: the article's own job, as {} is not there (only a checkout with shared/ \
                 beside it has the article)",
                path.display()
            );
            None
        }
        Err(e) => panic!("read the article at {}: {e}", path.display()),
    }
}

/// The article's own files, cut out of it unchanged: its MPI program (calc.py) and its
/// batch script (script.sh); `None` where the article is not there.
pub fn article_job() -> Option<(String, String)> {
    let text = seed_article()?;
    let blocks: Vec<&str> = text
        .split("```")
        .skip(1)
        .step_by(2)
        .map(|b| b.split_once('\n').map_or("", |(_, body)| body))
        .collect();
    let calc = blocks.iter().find(|b| b.contains("from mpi4py import MPI")).expect("calc.py in the article");
    let script = blocks.iter().find(|b| b.contains("#SBATCH --ntasks=8")).expect("script.sh in the article");
    Some((calc.to_string(), script.to_string()))
}

/// How often Docker has restarted a container.
pub fn restart_count(container: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let docker = Docker::connect_with_defaults().unwrap().negotiate_version().await.unwrap();
        docker.inspect_container(container, None).await.unwrap().restart_count.unwrap_or(0)
    })
}

/// Removes a container behind slurmbox's back (a crash, a careless `docker rm`).
pub fn remove_container(container: &str) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let docker = Docker::connect_with_defaults().unwrap().negotiate_version().await.unwrap();
        let options = bollard::query_parameters::RemoveContainerOptions { force: true, ..Default::default() };
        docker.remove_container(container, Some(options)).await.unwrap();
    })
}

/// The runs of `job` in the output of `sacct -n -X -D -P -o JobID,State` ("ID|STATE"
/// lines), leaving out PENDING records: a controller back from a crash may record a
/// queued job's submission again, and such a record of a job that never started from
/// it stays PENDING; only runs count.
pub fn runs_of(runs: &str, job: &str) -> Vec<String> {
    runs.lines()
        .filter(|l| l.split('|').next() == Some(job) && !l.ends_with("|PENDING"))
        .map(str::to_string)
        .collect()
}
