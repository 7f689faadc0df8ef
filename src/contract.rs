//! The contract between slurmbox and the scripts its containers run
//! (assets/slurmbox-init.sh, assets/slurmbox-storage.sh): the variables they read and
//! the paths both sides name, declared once here. The tests below keep the scripts and
//! these names from drifting apart.

/// The init script every Slurm node's container runs under tini.
pub const INIT_SCRIPT: &str = include_str!("../assets/slurmbox-init.sh");
pub const INIT_PATH: &str = "/usr/local/sbin/slurmbox-init";
/// The storage containers' script (the GlusterFS /home).
pub const STORAGE_SCRIPT: &str = include_str!("../assets/slurmbox-storage.sh");
pub const STORAGE_PATH: &str = "/usr/local/sbin/slurmbox-storage";

/// Host names of the controller and the login node inside the cluster.
pub const CONTROLLER_HOST: &str = "controller";
pub const LOGIN_HOST: &str = "login";

/// `name:uid:gid ...`: the accounts every node creates with the same IDs.
pub const ENV_USERS: &str = "SLURMBOX_USERS";
/// Where the nodes reach the controller (its name, or its address).
pub const ENV_CONTROLLER: &str = "SLURMBOX_CONTROLLER";
/// The node's Slurm name.
pub const ENV_NODE: &str = "SLURMBOX_NODE";
/// What a compute node registers with (`slurmd -Z --conf`).
pub const ENV_NODE_CONF: &str = "SLURMBOX_NODE_CONF";
/// `glusterfs` when /home is the volume the host's storage container mounts.
pub const ENV_SHARED_HOME: &str = "SLURMBOX_SHARED_HOME";
/// How the other hosts reach a storage container.
pub const ENV_STORAGE_ADDRESS: &str = "SLURMBOX_STORAGE_ADDRESS";

/// The munge key's folder (a volume) and the key in it.
pub const MUNGE_DIR: &str = "/etc/munge";
pub const MUNGE_KEY: &str = "/etc/munge/munge.key";
/// The Slurm files the controller holds.
pub const SLURM_CONF: &str = "/etc/slurm/slurm.conf";
pub const CGROUP_CONF: &str = "/etc/slurm/cgroup.conf";

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::process::Command;
    use std::time::Duration;

    /// The init script's probe of the controller's port, as written in the script.
    fn controller_probe() -> String {
        let line = INIT_SCRIPT
            .lines()
            .find(|l| l.contains("/dev/tcp/") && l.contains("wait_for"))
            .expect("the init script probes the controller's port");
        line.split('"').nth(1).expect("wait_for \"PROBE\" ...").to_string()
    }

    /// A probe must not hold its connection open: the shell that runs it goes on to
    /// start slurmd and sackd, which would inherit it, and slurmctld 24.11.5 waits for
    /// an idle connection forever when `scontrol reconfigure` quiesces (issue 13).
    #[test]
    fn controller_probe_closes_its_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let probe = controller_probe().replace("$controller", "127.0.0.1").replace("6817", &port.to_string());
        // Run the probe the way wait_for does (eval in the script's shell), then linger
        // as the script does while its daemons run.
        let mut shell = Command::new("bash")
            .args(["-c", &format!("set -euo pipefail; eval {probe:?}; sleep 3")])
            .spawn()
            .expect("run bash");
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
        let mut buf = [0u8; 16];
        let read = conn.read(&mut buf);
        let _ = shell.kill();
        let _ = shell.wait();
        match read {
            Ok(0) => {}
            other => panic!("the probe {probe:?} left its connection open ({other:?})"),
        }
    }
}
