//! The contract between slurmbox and the scripts it puts in its containers, declared
//! once: the environment variables, paths, arguments and output the scripts in
//! `assets/` read, rely on or print, and which Rust code names too.
//!
//! The scripts are [`INIT_SCRIPT`] (`slurmbox-init`, every Slurm node's main process)
//! and [`STORAGE_SCRIPT`] (`slurmbox-storage`, the GlusterFS /home's containers). Their
//! text is part of every container's spec hash, so they are never rewritten from here;
//! instead the tests below read them and fail when a name on either side changes alone.

/// The init script every node container runs under tini (assets/slurmbox-init.sh).
pub const INIT_SCRIPT: &str = include_str!("../assets/slurmbox-init.sh");
/// Where the init script is placed in a node container (its command).
pub const INIT_PATH: &str = "/usr/local/sbin/slurmbox-init";
/// The roles the init script takes as its argument (`slurmbox-init ROLE`).
pub const INIT_ROLES: &[&str] = &["controller", "compute", "login", "dbd"];

/// The database container's script (assets/slurmbox-db.sh).
pub const DB_SCRIPT: &str = include_str!("../assets/slurmbox-db.sh");
/// Where it is placed in the database container.
pub const DB_PATH: &str = "/usr/local/sbin/slurmbox-db";
/// The volume the database password lives in, mounted in the db and dbd containers.
pub const DB_SECRET_DIR: &str = "/var/lib/slurmbox/secret";
/// Made by slurmbox-db once the database answers; slurmdbd starts only when it exists.
pub const DB_READY: &str = "/var/lib/slurmbox/secret/db-ready";
/// Where `slurmbox restore` leaves a backup's accounting database in the db container.
pub const RESTORE_DB: &str = "/var/lib/slurmbox/restore/accounting.sql.gz";
/// Where `slurmbox restore` leaves a backup's controller state: slurmbox-init puts it in
/// place of the state volume's before slurmctld starts again.
pub const RESTORE_STATE: &str = "/var/lib/slurmbox/restore/slurmctld-state.tar.gz";
/// slurmdbd's settings without the password; slurmbox-init adds it at start.
pub const SLURMDBD_TEMPLATE: &str = "/etc/slurm/slurmdbd.conf.template";

/// The login node's AuthorizedKeysCommand for users from LDAP (assets/slurmbox-ldap-keys.sh).
pub const LDAP_KEYS_SCRIPT: &str = include_str!("../assets/slurmbox-ldap-keys.sh");
/// Where it is placed on the login node.
pub const LDAP_KEYS_PATH: &str = "/usr/local/sbin/slurmbox-ldap-keys";

/// The storage containers' script (assets/slurmbox-storage.sh).
pub const STORAGE_SCRIPT: &str = include_str!("../assets/slurmbox-storage.sh");
/// Where the storage script is placed in a storage container.
pub const STORAGE_PATH: &str = "/usr/local/sbin/slurmbox-storage";

/// slurmbox-init's subcommand for the engine's health check (`slurmbox-init health ROLE`).
pub const HEALTH: &str = "health";
/// slurmbox-init's subcommand that makes users' homes on the login node
/// (`slurmbox-init homes NAME:UID:GID ...`).
pub const HOMES: &str = "homes";
/// slurmbox-init's subcommand that keeps the controllers' last known addresses in
/// /etc/hosts while it runs (`slurmbox-init addresses`; the REST container's script
/// starts it beside slurmrestd).
pub const ADDRESSES: &str = "addresses";

/// Host names of the controller and the login node inside the cluster.
pub const CONTROLLER_HOST: &str = "controller";
/// The backup controller's node name (`[controller] backup`): second in slurm.conf.
pub const BACKUP_CONTROLLER_HOST: &str = "controller2";
pub const LOGIN_HOST: &str = "login";

/// Environment variables slurmbox sets on containers for their scripts.
pub mod env {
    /// `1` on nodes that resolve users from LDAP: slurmbox-init starts nslcd.
    pub const LDAP: &str = "SLURMBOX_LDAP";
    /// The controller's host name or address, for compute and login nodes.
    pub const CONTROLLER: &str = "SLURMBOX_CONTROLLER";
    /// `1` on a backup controller: it waits for the primary's munge key.
    pub const BACKUP: &str = "SLURMBOX_BACKUP";
    /// This node's Slurm name (a compute node registers with it).
    pub const NODE: &str = "SLURMBOX_NODE";
    /// What a compute node registers with (`CPUs=4 RealMemory=... Feature=...`).
    pub const NODE_CONF: &str = "SLURMBOX_NODE_CONF";
    /// [`SHARED_HOME_GLUSTERFS`] when /home is the GlusterFS volume the host's storage
    /// container mounts: compute and login nodes wait for it.
    pub const SHARED_HOME: &str = "SLURMBOX_SHARED_HOME";
    /// The value of [`SHARED_HOME`] for a GlusterFS /home.
    pub const SHARED_HOME_GLUSTERFS: &str = "glusterfs";
    /// `1` on compute nodes that enforce limits: slurmbox-init makes the container's
    /// own cgroup mounts writable for slurmd.
    pub const CGROUP_WRITABLE: &str = "SLURMBOX_CGROUP_WRITABLE";
    /// [`SHARED_HOME_GLUSTERFS`] on controllers whose state is the GlusterFS volume
    /// [`super::STATE_VOLUME`] their host's storage container mounts: they wait for it.
    pub const SHARED_STATE: &str = "SLURMBOX_SHARED_STATE";
    /// How the other hosts reach this storage container's host.
    pub const STORAGE_ADDRESS: &str = "SLURMBOX_STORAGE_ADDRESS";
    /// The GlusterFS volumes a storage container mounts for its host, by name.
    pub const STORAGE_MOUNTS: &str = "SLURMBOX_STORAGE_MOUNTS";

    /// The variables slurmbox-init reads.
    pub const INIT: &[&str] =
        &[LDAP, CONTROLLER, BACKUP, NODE, NODE_CONF, SHARED_HOME, SHARED_STATE, CGROUP_WRITABLE];
    /// The variables slurmbox-storage reads.
    pub const STORAGE: &[&str] = &[STORAGE_ADDRESS, STORAGE_MOUNTS];
    /// The address and port the accounting database listens on (slurmbox-db).
    pub const DB_BIND: &str = "SLURMBOX_DB_BIND";
    pub const DB_PORT: &str = "SLURMBOX_DB_PORT";
    /// The variables slurmbox-db reads.
    pub const DB: &[&str] = &[DB_BIND, DB_PORT];

    /// `NAME=value`, as a container's environment lists it.
    pub fn var(name: &str, value: impl std::fmt::Display) -> String {
        format!("{name}={value}")
    }
}

/// The users' homes in node containers (slurmbox makes `/home/NAME`; for a GlusterFS
/// /home slurmbox-init waits for the volume mounted there).
pub const HOME: &str = "/home";
/// Where every Slurm node reads the cluster's accounts (its host's accounts volume):
/// libnss-extrausers' `passwd`, `group` and `shadow`, and sshd's `ssh/NAME` key files.
pub const ACCOUNTS_DIR: &str = "/var/lib/extrausers";
/// The login node's sshd host keys (a volume: they outlive the container), made by
/// slurmbox-init on first start.
pub const SSH_HOST_KEYS: &str = "/var/lib/slurmbox/ssh";
/// slurmbox's sshd settings on the login node.
pub const SSHD_CONF: &str = "/etc/ssh/sshd_config.d/slurmbox.conf";
/// nslcd's settings (LDAP), with the bind password: root's alone.
pub const NSLCD_CONF: &str = "/etc/nslcd.conf";
/// The munge volume's mount point in node containers.
pub const MUNGE_DIR: &str = "/etc/munge";
/// The cluster's munge key: the controller's slurmbox-init makes it; slurmbox copies
/// it to nodes on other hosts, where slurmbox-init hands it to munge.
pub const MUNGE_KEY: &str = "/etc/munge/munge.key";
/// Slurm's configuration. A login node given its own copy runs no sackd
/// (slurmbox-init checks whether this file exists).
pub const SLURM_CONF: &str = "/etc/slurm/slurm.conf";
/// Cgroup settings, beside slurm.conf (the controller serves both).
pub const CGROUP_CONF: &str = "/etc/slurm/cgroup.conf";
/// The compute nodes' GPUs (the controller serves it too).
pub const GRES_CONF: &str = "/etc/slurm/gres.conf";
/// slurmctld's state (the state volume's mount point); slurmbox-init hands it to the
/// slurm account.
pub const STATE_SAVE_LOCATION: &str = "/var/spool/slurmctld";

/// A storage container's brick volume's mount point (a volume NAME's brick is
/// `BRICK_DIR/NAME`).
pub const BRICK_DIR: &str = "/srv/brick";
/// Where a storage container mounts the GlusterFS volumes (`/srv/NAME`): host folders
/// its host's containers see, the shared /home as [`HOME`], the controllers' state as
/// [`STATE_SAVE_LOCATION`].
pub const STORAGE_MOUNT_DIR: &str = "/srv";
/// The GlusterFS volume holding the shared /home (what `gluster volume` commands name).
pub const STORAGE_VOLUME: &str = "home";
/// The GlusterFS volume holding the controllers' state, across hosts.
pub const STATE_VOLUME: &str = "ctld";
/// Where a controller whose state is that volume sees its host's folder of the cluster
/// (the one the storage container mounts the volume in, as `ctld`); slurmbox-init makes
/// [`STATE_SAVE_LOCATION`] a link to the volume there. (The folder, not the volume's
/// mount point: the engine could not start the container again while the volume's
/// client is gone.)
pub const SHARED_STATE_MOUNT: &str = "/var/lib/slurmbox/shared";
/// slurmbox-storage's subcommands: the container's main process, making the volume
/// span the given addresses, taking one address's brick out, and reporting.
pub const STORAGE_RUN: &str = "run";
pub const STORAGE_CONVERGE: &str = "converge";
pub const STORAGE_REMOVE: &str = "remove";
pub const STORAGE_STATUS: &str = "status";
/// `status --volume`: report on the volume too, not only this host's mount.
pub const STORAGE_STATUS_VOLUME: &str = "--volume";
/// The `key=value` lines `slurmbox-storage status [--volume]` prints.
pub const STORAGE_STATUS_KEYS: &[&str] =
    &["mounted", "volume", "bricks", "online", "heal_pending", "split_brain"];
/// How slurmbox-storage starts each line it writes to stderr, the changes it made
/// among them.
pub const STORAGE_LOG_PREFIX: &str = "slurmbox-storage: ";

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::process::Command;
    use std::time::Duration;

    /// Every `SLURMBOX_*` name a script mentions.
    fn slurmbox_names(script: &str) -> BTreeSet<&str> {
        script
            .match_indices("SLURMBOX_")
            .map(|(start, _)| {
                let rest = &script[start..];
                let end = rest.find(|c: char| !(c.is_ascii_uppercase() || c == '_')).unwrap_or(rest.len());
                &rest[..end]
            })
            .collect()
    }

    /// Whether a shell script reads variable `name` (`$NAME` or `${NAME...}`).
    fn reads(script: &str, name: &str) -> bool {
        script.contains(&format!("${{{name}:"))
            || script.contains(&format!("${{{name}-"))
            || script.contains(&format!("${{{name}}}"))
            || script.contains(&format!("${name}"))
    }

    #[test]
    fn every_variable_a_script_names_is_declared_for_it() {
        for (script, declared) in
            [(INIT_SCRIPT, env::INIT), (STORAGE_SCRIPT, env::STORAGE), (DB_SCRIPT, env::DB)]
        {
            let named = slurmbox_names(script);
            let declared: BTreeSet<&str> = declared.iter().copied().collect();
            assert_eq!(named, declared, "the SLURMBOX_* names of a script and of env::INIT/env::STORAGE");
        }
    }

    #[test]
    fn every_declared_variable_is_read_by_its_script() {
        for name in env::INIT {
            assert!(reads(INIT_SCRIPT, name), "slurmbox-init does not read {name}");
            assert!(
                !STORAGE_SCRIPT.contains(name),
                "slurmbox-storage names {name}, declared for slurmbox-init"
            );
        }
        for name in env::STORAGE {
            assert!(reads(STORAGE_SCRIPT, name), "slurmbox-storage does not read {name}");
        }
        let all: BTreeSet<&str> = env::INIT.iter().chain(env::STORAGE).copied().collect();
        let each = [
            env::LDAP,
            env::CONTROLLER,
            env::BACKUP,
            env::NODE,
            env::NODE_CONF,
            env::SHARED_HOME,
            env::SHARED_STATE,
            env::CGROUP_WRITABLE,
            env::STORAGE_ADDRESS,
            env::STORAGE_MOUNTS,
        ];
        assert_eq!(all, each.into_iter().collect(), "each variable is listed for the script that reads it");
        // The one value a script compares with.
        let test = format!("\"${{{}:-}}\" = {} ]", env::SHARED_HOME, env::SHARED_HOME_GLUSTERFS);
        assert!(INIT_SCRIPT.contains(&test), "slurmbox-init no longer tests `{test}`");
        let test = format!("\"${{{}:-}}\" = {} ]", env::SHARED_STATE, env::SHARED_HOME_GLUSTERFS);
        assert!(INIT_SCRIPT.contains(&test), "slurmbox-init no longer tests `{test}`");
        assert_eq!(env::var(env::NODE, "node1"), "SLURMBOX_NODE=node1");
        assert_eq!(env::var(env::NODE_CONF, 4), "SLURMBOX_NODE_CONF=4");
    }

    #[test]
    fn the_init_scripts_paths_and_roles() {
        assert!(INIT_SCRIPT.contains(SLURMDBD_TEMPLATE) && INIT_SCRIPT.contains(DB_SECRET_DIR));
        assert!(DB_SCRIPT.contains(&format!("secret={DB_SECRET_DIR}/db-password")));
        assert!(DB_SCRIPT.contains(&format!("ready={DB_READY}\n")) && INIT_SCRIPT.contains(DB_READY));
        assert!(INIT_SCRIPT.contains(&format!("restore={RESTORE_STATE}\n")));
        for path in [
            HOME,
            MUNGE_DIR,
            MUNGE_KEY,
            SLURM_CONF,
            STATE_SAVE_LOCATION,
            SHARED_STATE_MOUNT,
            SSH_HOST_KEYS,
            SSHD_CONF,
        ] {
            assert!(INIT_SCRIPT.contains(path), "slurmbox-init does not use {path}");
        }
        assert!(
            INIT_SCRIPT.contains(&format!("key={MUNGE_KEY}\n")),
            "slurmbox-init's munge key is {MUNGE_KEY}"
        );
        assert!(
            INIT_SCRIPT.contains(&format!("[ -s {SLURM_CONF} ]")),
            "slurmbox-init tests for {SLURM_CONF}"
        );
        assert!(MUNGE_KEY.starts_with(&format!("{MUNGE_DIR}/")));
        let name = INIT_PATH.rsplit('/').next().unwrap();
        assert!(INIT_SCRIPT.contains(&format!("# Usage: {name} {}\n", INIT_ROLES.join("|"))));
        for role in INIT_ROLES {
            let arm = INIT_SCRIPT
                .lines()
                .any(|l| l.strip_suffix(')').is_some_and(|pattern| pattern.split(" | ").any(|p| p == *role)));
            assert!(arm, "slurmbox-init has no case for role {role}");
        }
    }

    #[test]
    fn the_init_scripts_subcommands() {
        for sub in [HEALTH, HOMES, ADDRESSES] {
            assert!(
                INIT_SCRIPT.contains(&format!("if [ \"$role\" = {sub} ]; then")),
                "slurmbox-init has no {sub}"
            );
        }
        let rest = include_str!("../assets/slurmbox-rest.sh");
        assert!(
            rest.contains(&format!("{INIT_PATH} {ADDRESSES} &")),
            "slurmbox-rest starts {INIT_PATH} {ADDRESSES}"
        );
    }

    #[test]
    fn the_node_roles_are_the_ones_the_init_script_takes() {
        use crate::plan::Role;
        for role in [Role::Controller, Role::Login, Role::Compute, Role::Dbd] {
            assert!(INIT_ROLES.contains(&role.as_str()), "{role:?}");
        }
        assert!(!INIT_ROLES.contains(&Role::Storage.as_str()), "storage containers run slurmbox-storage");
    }

    #[test]
    fn the_storage_scripts_paths_commands_and_output() {
        assert!(STORAGE_SCRIPT.contains(&format!("brick_dir() {{ echo \"{BRICK_DIR}/$1\"; }}\n")));
        assert!(STORAGE_SCRIPT.contains(&format!("mnt() {{ echo \"{STORAGE_MOUNT_DIR}/$1\"; }}\n")));
        let name = STORAGE_PATH.rsplit('/').next().unwrap();
        assert!(STORAGE_SCRIPT.contains(&format!("# {name}: ")));
        for cmd in [STORAGE_RUN, STORAGE_CONVERGE, STORAGE_REMOVE, STORAGE_STATUS] {
            assert!(
                STORAGE_SCRIPT.contains(&format!("\n{cmd}) ")),
                "slurmbox-storage has no subcommand {cmd}"
            );
        }
        assert!(STORAGE_SCRIPT.contains(&format!("\"${{1:-}}\" = {STORAGE_STATUS_VOLUME} ]")));
        for key in STORAGE_STATUS_KEYS {
            assert!(STORAGE_SCRIPT.contains(&format!("{key}=")), "slurmbox-storage status prints no {key}=");
        }
        assert!(STORAGE_SCRIPT.contains(&format!("log() {{ echo \"{STORAGE_LOG_PREFIX}$*\" >&2; }}")));
    }

    /// The init script's probe of the controller's port, as written in the script.
    /// slurmbox-init's function that probes the controllers' port, and a call of it.
    fn controller_probe() -> String {
        let start = INIT_SCRIPT
            .find("\ncontroller_listens() {")
            .expect("the init script probes the controllers' port");
        let body = &INIT_SCRIPT[start..];
        let end = body.find("\n}\n").expect("the function ends") + 3;
        assert!(INIT_SCRIPT.contains("wait_for controller_listens "), "slurmbox-init waits with it");
        format!("{}controller_listens", &body[..end])
    }

    /// A probe must not hold its connection open: the shell that runs it goes on to
    /// start slurmd and sackd, which would inherit it, and slurmctld 24.11.5 waits for
    /// an idle connection forever when `scontrol reconfigure` quiesces (issue 13).
    #[test]
    fn controller_probe_closes_its_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let probe = controller_probe().replace("6817", &port.to_string());
        // Run the probe in a shell that lingers, as the script does while its daemons
        // run; the first controller refuses (down), the second listens.
        let mut shell = Command::new("bash")
            .args(["-c", &format!("set -euo pipefail\ncontroller=127.0.0.2,127.0.0.1\n{probe}\nsleep 3\n")])
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

    #[test]
    fn the_storage_script_names_the_volume_slurmbox_asks_gluster_about() {
        assert!(STORAGE_SCRIPT.contains(&format!("\nvolume={STORAGE_VOLUME}\n")));
    }
}
