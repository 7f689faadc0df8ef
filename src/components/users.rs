//! The cluster's users: accounts with the same name, UID and GID on every node, their
//! homes on the shared /home, and the public keys the login node's sshd accepts.
//!
//! The accounts live in a volume per host, mounted on every Slurm node of that host
//! where glibc's NSS reads it (`libnss-extrausers`: `/var/lib/extrausers/passwd`,
//! `group`, `shadow`; the keys in `ssh/NAME`). So `slurmbox user add` reaches every
//! node by writing one small set of files per host: no node restarts, no job is
//! disturbed, and a node created later mounts the same volume. Nothing here is in a
//! container's spec hash.

use futures_util::future::try_join_all;

use super::Layout;
use super::PartError;
use crate::apply::Apply;
use crate::contract;
use crate::engine::{CheckedError, Engine, EngineError, ExecFailed, ExecSpec, FileUpload, checked};
use crate::plan::{Accounts, ContainerPlan, MountPlan, MountSource, Plan, VolumePlan};
use crate::spec::UserSpec;

fn volume(layout: &Layout) -> String {
    format!("{}-accounts", layout.cluster)
}

/// The accounts volume of the container's host, where NSS reads it.
pub fn mount(layout: &Layout, read_only: bool) -> MountPlan {
    MountPlan {
        source: MountSource::Volume(volume(layout)),
        target: contract::ACCOUNTS_DIR.into(),
        read_only,
        propagation: None,
    }
}

/// Every Slurm node reads the accounts of its host's volume; slurmbox writes them
/// through whichever of its containers runs (hence not read-only).
pub fn add(layout: &Layout, plan: &mut Plan) {
    for host in 0..layout.hosts.len() {
        plan.volumes.push(VolumePlan { host, name: volume(layout), labels: layout.labels(&[]) });
    }
    let mount = mount(layout, false);
    for c in plan.containers.iter_mut().filter(|c| c.role.is_slurm_node()) {
        c.mounts.push(mount.clone());
    }
    plan.accounts = Accounts { users: layout.spec.users.clone() };
}

/// Every file, as written into a host's accounts volume.
pub fn files(accounts: &Accounts) -> Vec<FileUpload> {
    let file = |name: &str, contents: String, mode: u32| FileUpload {
        path: format!("{}/{name}", contract::ACCOUNTS_DIR),
        contents: contents.into_bytes(),
        mode,
    };
    let mut files = vec![
        file("passwd", accounts.passwd(), 0o644),
        file("group", accounts.group(), 0o644),
        // Read by sshd (root) only.
        file("shadow", accounts.shadow(), 0o600),
    ];
    files.extend(accounts.keys().into_iter().map(|(name, keys)| file(&format!("ssh/{name}"), keys, 0o644)));
    files
}

/// Once the containers run: the accounts on every host, and every user's home.
pub async fn after_start<E: Engine>(apply: &mut Apply<'_, E>) -> Result<(), PartError> {
    write(apply.engines, apply.plan, &apply.plan.accounts).await?;
    make_homes(apply.engines, apply.plan, &apply.plan.accounts.users).await?;
    Ok(())
}

/// One container per host that mounts the host's accounts volume.
fn writers(plan: &Plan) -> Vec<&ContainerPlan> {
    (0..plan.hosts.len())
        .filter_map(|host| plan.containers.iter().find(|c| c.host == host && c.role.is_slurm_node()))
        .collect()
}

/// Writes `accounts` into every host's volume: every node of the cluster then knows them.
pub async fn write<E: Engine>(engines: &[E], plan: &Plan, accounts: &Accounts) -> Result<(), EngineError> {
    let files = files(accounts);
    try_join_all(writers(plan).into_iter().map(|c| engines[c.host].upload(&c.name, &files))).await?;
    Ok(())
}

/// Makes the homes of `users` that do not exist yet on the shared /home: a copy of
/// /etc/skel, owned by the user, mode 0700 (nobody else reads it). Existing homes are
/// left as they are.
pub async fn make_homes<E: Engine>(engines: &[E], plan: &Plan, users: &[UserSpec]) -> Result<(), PartError> {
    let login = plan.login();
    let mut cmd = vec![contract::INIT_PATH.to_string(), contract::HOMES.to_string()];
    cmd.extend(users.iter().filter(|u| u.login).map(|u| format!("{}:{}:{}", u.name, u.uid, u.gid)));
    // Named by what it does, not by its arguments (a word per user).
    checked(&engines[login.host], &login.name, &ExecSpec::new(cmd)).await.map_err(|e| match e {
        CheckedError::Failed(e) => {
            CheckedError::Failed(ExecFailed { cmd: "make the users' homes".into(), ..e })
        }
        e => e,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_render_for_nss_and_sshd() {
        let accounts = Accounts {
            users: vec![
                UserSpec {
                    ssh_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@lab".into()],
                    ..UserSpec::new("alice", 1001)
                },
                UserSpec { gid: 1001, ..UserSpec::new("bob", 1002) },
                UserSpec { login: false, ..UserSpec::new("carol", 1003) },
            ],
        };
        assert_eq!(
            accounts.passwd(),
            "alice:x:1001:1001::/home/alice:/bin/bash\nbob:x:1002:1001::/home/bob:/bin/bash\ncarol:x:1003:1003::/home/carol:/usr/sbin/nologin\n"
        );
        assert_eq!(accounts.group(), "alice:x:1001:\ncarol:x:1003:\n", "bob's primary group is alice's");
        assert!(accounts.shadow().contains("carol:!*:"));
        assert!(accounts.shadow().starts_with("alice:*:"));
        let keys = accounts.keys();
        assert_eq!(keys[0].1, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@lab\n");
        assert_eq!(keys[2], ("carol".to_string(), String::new()), "no key of a user without login is kept");
        let shadow = files(&accounts).into_iter().find(|f| f.path.ends_with("/shadow")).unwrap();
        assert_eq!(shadow.mode, 0o600);
    }
}
