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
