//! A cluster spread over several hosts of a test lab ([`super::lab::Lab`]), driven the
//! way a user would drive it (the slurmbox binary with a spec file) and checked from
//! inside its containers through each host's engine.

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::lab::{Lab, SHARED_MOUNT};

/// A cluster spread over a lab's first hosts: `pi1` on host0 (controller and login),
/// `pi2` on host1, ..., /home on the folder every host shares. Its spec file lives in
/// a folder of its own; `down --purge` runs when it is dropped, on panic too.
pub struct LabCluster<'a> {
    pub lab: &'a Lab,
    pub name: String,
    dir: TempDir,
}

impl<'a> LabCluster<'a> {
    /// Writes the spec of a cluster on the lab's hosts `0..hosts` (nothing starts yet).
    pub fn new(lab: &'a Lab, tag: &str, hosts: usize) -> LabCluster<'a> {
        LabCluster::with(lab, tag, hosts, "")
    }

    /// Like [`LabCluster::new`], with `more` (TOML tables) at the end of the spec.
    pub fn with(lab: &'a Lab, tag: &str, hosts: usize, more: &str) -> LabCluster<'a> {
        LabCluster::with_home(lab, tag, hosts, &format!("host_path = \"{SHARED_MOUNT}/home\""), more)
    }

    /// Like [`LabCluster::new`], with the GlusterFS /home slurmbox provides.
    pub fn glusterfs(lab: &'a Lab, tag: &str, hosts: usize) -> LabCluster<'a> {
        LabCluster::with_home(lab, tag, hosts, "shared = \"glusterfs\"", "")
    }

    /// A cluster whose spec `text` writes, given the cluster's unique name.
    pub fn custom(lab: &'a Lab, tag: &str, text: impl Fn(&str) -> String) -> LabCluster<'a> {
        let name = super::unique_name(tag);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cluster.toml"), text(&name)).unwrap();
        LabCluster { lab, name, dir }
    }

    /// Like [`LabCluster::new`], with a backup controller on `pi2` and the controllers'
    /// state on the GlusterFS volume slurmbox runs for it (no `state_path`).
    pub fn with_backup(lab: &'a Lab, tag: &str, hosts: usize) -> LabCluster<'a> {
        LabCluster::build(
            lab,
            tag,
            hosts,
            |_| {
                format!(
                    "[controller]\nhost = \"pi1\"\nbackup = \"pi2\"\n[home]\nhost_path = \"{SHARED_MOUNT}/home\"\n"
                )
            },
            "",
        )
    }

    fn with_home(lab: &'a Lab, tag: &str, hosts: usize, home: &str, more: &str) -> LabCluster<'a> {
        LabCluster::build(lab, tag, hosts, |_| format!("controller = \"pi1\"\n[home]\n{home}\n"), more)
    }

    /// The spec of a cluster on the lab's hosts `0..hosts` named `pi1`, `pi2`, ...:
    /// its name, what `tables` gives for that name, the hosts, then `more` (which may
    /// add keys to the last host).
    fn build(
        lab: &'a Lab,
        tag: &str,
        hosts: usize,
        tables: impl Fn(&str) -> String,
        more: &str,
    ) -> LabCluster<'a> {
        let name = super::unique_name(tag);
        let mut text = format!("name = \"{name}\"\n{}", tables(&name));
        for i in 0..hosts {
            text.push_str(&format!("[[host]]\nname = \"pi{}\"\nengine = \"{}\"\n", i + 1, lab.engine_url(i)));
        }
        text.push_str(more);
        std::fs::create_dir_all(lab.shared_dir().join("home")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cluster.toml"), text).unwrap();
        LabCluster { lab, name, dir }
    }

    pub fn spec(&self) -> PathBuf {
        self.dir.path().join("cluster.toml")
    }

    /// `slurmbox CMD... -f SPEC ARGS...` with the lab's ssh settings.
    pub fn slurmbox(&self, cmd: &[&str], args: &[&str]) -> super::Run {
        let spec = self.spec();
        let mut all: Vec<&str> = cmd.to_vec();
        all.extend(["-f", spec.to_str().unwrap()]);
        all.extend(args);
        let path = self.lab.path_env();
        super::slurmbox_env(&all, &[("PATH", path.as_str())])
    }

    /// Runs `script` with bash in one of the cluster's containers on lab host `host`,
    /// straight through that host's engine (not through slurmbox, which would wait for
    /// every host's engine, a cut-off one included). `user`: None for root, else the
    /// account, in its home.
    pub fn docker_exec(&self, host: usize, node: &str, user: Option<&str>, script: &str) -> Output {
        assert!(!script.contains('\''), "scripts here cannot hold single quotes: {script}");
        // The cluster's users are in its accounts volume, not the image's /etc/passwd
        // where the engine looks them up: switch to them inside, as slurmbox does.
        let (workdir, runuser) = match user {
            Some(u) => (format!("-w /home/{u}"), format!("runuser -u {u} --")),
            None => (String::new(), String::new()),
        };
        let cmd = format!("docker exec {workdir} {}-{node} {runuser} bash -c '{script}'", self.name);
        let out = self.lab.ssh(host, &cmd);
        // Exit 126 is the engine failing to start the process, seen now and then on a
        // busy machine; it says nothing about the cluster. Once more, and say so.
        if out.status.code() == Some(126) {
            eprintln!(
                "`{cmd}` on lab host {host}: exit 126, trying again\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_secs(1));
            return self.lab.ssh(host, &cmd);
        }
        out
    }

    /// Like [`LabCluster::docker_exec`] on lab host 0; returns the trimmed stdout and
    /// panics with everything printed on failure.
    fn docker_exec_ok(&self, node: &str, user: Option<&str>, script: &str) -> String {
        let out = self.docker_exec(0, node, user, script);
        assert!(
            out.status.success(),
            "`{script}` on {node} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs `script` on the controller as root; panics on failure.
    pub fn on_controller(&self, script: &str) -> String {
        self.docker_exec_ok("controller", None, script)
    }

    /// Runs `script` on the login node as the default user; panics on failure.
    pub fn as_user(&self, script: &str) -> String {
        self.docker_exec_ok("login", Some("researcher"), script)
    }

    /// Slurm's state of `node` ("idle", "down*", ...; empty if Slurm does not know it).
    pub fn node_state(&self, node: &str) -> String {
        self.on_controller(&format!("sinfo -h -N -n {node} -o %T"))
    }

    /// Waits until `node`'s state is one of `states`; returns how long that took.
    pub fn wait_node(&self, node: &str, states: &[&str], timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let state = self.node_state(node);
            if states.contains(&state.as_str()) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "{node} is {state:?}, not one of {states:?}, after {timeout:?}\n{}",
                self.on_controller("sinfo -N -o \"%N %T %E\"")
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Node names that a `srun -N{n} hostname` answered with, sorted.
    pub fn srun_hostnames(&self, n: usize) -> Vec<String> {
        let out = self.as_user(&format!("srun -N{n} hostname"));
        let mut names: Vec<String> = out.lines().map(String::from).collect();
        names.sort();
        names
    }
}

impl Drop for LabCluster<'_> {
    fn drop(&mut self) {
        let out = self.slurmbox(&["down"], &["--purge", "--yes", "--quiet"]);
        if out.code != 0 {
            eprintln!("cleanup of {} failed: {}", self.name, out.stderr);
        }
    }
}
