//! Accounting: who ran what, and fair share. slurmdbd and a real MariaDB (Debian's) in
//! their own containers on the controller's host, the database on the `NAME-db` volume,
//! its password made by the database container from the kernel's RNG into the
//! `NAME-db-secret` volume the two share (mode 0600, root's; in no image, variable or
//! plan). No port is published: on the cluster's network only Slurm's containers reach
//! them, and on a host's network MariaDB listens on the host's loopback alone.
//!
//! Once they run, the accounts of the spec (`[[account]]`: a research group, its users,
//! its fair-share weight and limits) and an association for every user are made with
//! `sacctmgr`, also for users added later (`slurmbox user add` converges like `up`).

use std::time::Duration;

use super::PartError;
use super::{Config, Layout, NODE_CAPS, munge};
use crate::apply::Apply;
use crate::cluster::{Cluster, Model, running_node};
use crate::contract;
use crate::engine::ContainerInfo;
use crate::engine::{Engine, EngineError, ExecFailed, ExecSpec, FileUpload, checked, decode_base64};
use crate::image::{self, Recipe};
use crate::plan::{
    ContainerPlan, LABEL_NODE, LABEL_ROLE, MountPlan, MountSource, Plan, PlannedFile, Role, VolumePlan,
};
use crate::render::{AccountingConf, SlurmdbdConf};
use crate::slurm::{self, SacctmgrChange, Slurm, SlurmError};
use crate::spec::{AccountSpec, Arch, DEFAULT_ACCOUNT, SlurmVersion};
use crate::wait::{self, Poll, Waited};

/// Host names of the two containers on the cluster's network.
pub const DB_HOST: &str = "db";
pub const DBD_HOST: &str = "dbd";
/// MariaDB's port on a host's network: not 3306, which the host may use itself.
const HOST_NETWORK_DB_PORT: u16 = 6816;

/// slurm.conf sends accounting to slurmdbd; fair share needs every user to have an
/// association, which users from a directory have only once an admin adds them.
pub fn configure(layout: &Layout, config: &mut Config) {
    if !layout.spec.accounting {
        return;
    }
    let host = match layout.controller_addr(layout.controller()) {
        Some(addr) if layout.on_host_network => addr,
        _ => DBD_HOST.to_string(),
    };
    let enforce = if layout.spec.ldap.is_some() { "" } else { "associations,limits,safe" };
    config.slurm_conf.accounting = Some(AccountingConf { host, enforce: enforce.into() });
}

fn volume(layout: &Layout, what: &str) -> String {
    format!("{}-{what}", layout.cluster)
}

pub fn add(layout: &Layout, config: &Config, plan: &mut Plan) {
    if !layout.spec.accounting {
        return;
    }
    let host = layout.controller().host;
    let Some(image) = layout.facts[host].accounting_image.clone() else {
        return;
    };
    let (data, secret) = (volume(layout, "db"), volume(layout, "db-secret"));
    for name in [&data, &secret] {
        plan.volumes.push(VolumePlan { host, name: name.clone(), labels: layout.labels(&[]) });
    }
    let mount = |source: &str, target: &str, read_only| MountPlan {
        source: MountSource::Volume(source.into()),
        target: target.into(),
        read_only,
        propagation: None,
    };
    let (bind, port, storage_host) = match layout.on_host_network {
        true => ("127.0.0.1", HOST_NETWORK_DB_PORT, "127.0.0.1"),
        false => ("0.0.0.0", 3306, DB_HOST),
    };
    let container = |role: Role, hostname: &str| ContainerPlan {
        host,
        name: format!("{}-{hostname}", layout.cluster),
        hostname: hostname.into(),
        role,
        image: image.clone(),
        command: vec![],
        env: vec![],
        mounts: vec![],
        cap_add: NODE_CAPS.iter().map(|(c, _)| c.to_string()).collect(),
        network: layout.network.clone(),
        ip: None,
        files: vec![],
        labels: layout.labels(&[(LABEL_ROLE, role.as_str()), (LABEL_NODE, hostname)]),
        devices: vec![],
        security_opt: vec![],
        cgroupns_private: false,
        memory_mib: None,
        health: None,
        ports: vec![],
    };
    let mut db = container(Role::Database, DB_HOST);
    db.command = vec![contract::DB_PATH.into()];
    db.env = vec![
        contract::env::var(contract::env::DB_BIND, bind),
        contract::env::var(contract::env::DB_PORT, port),
    ];
    db.mounts = vec![mount(&data, "/var/lib/mysql", false), mount(&secret, contract::DB_SECRET_DIR, false)];
    db.files = vec![PlannedFile {
        path: contract::DB_PATH.into(),
        mode: 0o755,
        contents: contract::DB_SCRIPT.into(),
    }];

    let mut dbd = container(Role::Dbd, DBD_HOST);
    dbd.command = vec![contract::INIT_PATH.into(), Role::Dbd.as_str().into()];
    dbd.mounts = vec![munge::mount(layout, true), mount(&secret, contract::DB_SECRET_DIR, true)];
    let conf = SlurmdbdConf {
        dbd_host: DBD_HOST.into(),
        storage_host: storage_host.into(),
        storage_port: port,
        jwt_key: config.slurm_conf.jwt_key.clone(),
    };
    dbd.files = vec![
        PlannedFile { path: contract::INIT_PATH.into(), mode: 0o755, contents: contract::INIT_SCRIPT.into() },
        PlannedFile { path: contract::SLURMDBD_TEMPLATE.into(), mode: 0o600, contents: conf.to_string() },
    ];
    plan.containers.extend([db, dbd]);
    plan.slurm_accounts = accounts(layout);
}

/// Every spec account, then the default account with the users in none.
fn accounts(layout: &Layout) -> Vec<AccountSpec> {
    let mut accounts = layout.spec.accounts.clone();
    let homeless: Vec<String> = layout
        .spec
        .users
        .iter()
        .filter(|u| !accounts.iter().any(|a| a.users.contains(&u.name)))
        .map(|u| u.name.clone())
        .collect();
    if !accounts.iter().any(|a| a.name == DEFAULT_ACCOUNT) {
        accounts.push(AccountSpec {
            name: DEFAULT_ACCOUNT.into(),
            users: vec![],
            fairshare: 1,
            grp_tres: None,
            max_jobs: None,
        });
    }
    let default = accounts.iter_mut().find(|a| a.name == DEFAULT_ACCOUNT).expect("added above");
    default.users.extend(homeless);
    accounts
}

/// The `sacctmgr` changes that make the cluster, its accounts and every user's
/// association what `accounts` say (adding what is missing, setting what changed):
/// every account before any user.
pub fn sacctmgr_changes(cluster: &str, accounts: &[AccountSpec]) -> Vec<SacctmgrChange> {
    let mut changes = vec![SacctmgrChange::AddCluster { name: cluster.into() }];
    for a in accounts {
        // (A GrpTRES cap the spec no longer names stays until `sacctmgr modify` clears it.)
        changes.push(SacctmgrChange::AddAccount { name: a.name.clone(), cluster: cluster.into() });
        changes.push(SacctmgrChange::ModifyAccount {
            name: a.name.clone(),
            cluster: cluster.into(),
            fairshare: a.fairshare,
            grp_tres: a.grp_tres.clone(),
            max_jobs: a.max_jobs,
        });
    }
    // A user's first account is their default one.
    let mut seen: Vec<&str> = Vec::new();
    for a in accounts {
        for user in &a.users {
            changes.push(SacctmgrChange::AddUser {
                name: user.clone(),
                account: a.name.clone(),
                cluster: cluster.into(),
                default_account: !seen.contains(&user.as_str()),
            });
            seen.push(user);
        }
    }
    changes
}

/// The database, slurmdbd and the controller before the others, all at once: the
/// database's first start takes a second, the longest of any container's, slurmdbd
/// waits for it and for the munge key the controller makes as it starts, and slurmctld
/// for slurmdbd (each by itself). Started one after the other, slurmdbd waited for the
/// key until the controller started with the rest, 2 s in all.
pub async fn on_created<E: Engine>(apply: &mut Apply<'_, E>) -> Result<(), PartError> {
    apply.start_controller().await?;
    Ok(())
}

/// Once slurmdbd answers: the accounts and associations.
pub async fn after_start<E: Engine>(apply: &mut Apply<'_, E>) -> Result<(), PartError> {
    if apply.plan.slurm_accounts.is_empty() {
        return Ok(());
    }
    let step = apply.progress.step("Accounting: accounts and users");
    let controller = apply.plan.controller();
    let slurm = Slurm::new(apply.control(), &controller.name);
    // slurmdbd answers once MariaDB is up and its tables are made (a minute at most
    // on a small machine the first time).
    let answers = wait::until(Duration::from_secs(180), Duration::from_millis(100), async || {
        let up = slurm.accounting_answers_within(20).await?;
        Ok::<_, EngineError>(if up { Poll::Ready(()) } else { Poll::NotYet(()) })
    });
    answers.await.map_err(|waited| {
        waited.or_timeout(|_| {
            step.fail("slurmdbd did not answer");
            PartError::ExecFailed(ExecFailed {
                cmd: "sacctmgr list cluster".into(),
                container: controller.name.clone(),
                code: 1,
                said:
                    "slurmdbd did not answer within 180 s: `slurmbox logs dbd` and `slurmbox logs db` say why"
                        .into(),
            })
        })
    })?;
    let changes = sacctmgr_changes(&apply.plan.cluster, &apply.plan.slurm_accounts);
    slurm.apply(&changes).await?;
    // slurmctld hears of new associations from slurmdbd a moment later; until then
    // it refuses the users' jobs ("Invalid account").
    let mut users: Vec<&str> =
        apply.plan.slurm_accounts.iter().flat_map(|a| a.users.iter().map(String::as_str)).collect();
    users.sort_unstable();
    users.dedup();
    let learnt = wait::until(Duration::from_secs(60), Duration::from_millis(100), async || {
        match slurm.controller_associations().await {
            Ok(known) if slurm::controller_knows(&known, &users) => Ok(Poll::Ready(())),
            Ok(_) | Err(SlurmError::Failed { .. } | SlurmError::Unreadable { .. }) => Ok(Poll::NotYet(())),
            Err(e) => Err(e),
        }
    });
    match learnt.await {
        Ok(()) => {}
        Err(Waited::TimedOut(_)) => step.fail("the controller did not learn the users' associations"),
        Err(Waited::Failed(e)) => return Err(e.into()),
    }
    let users = users.len();
    step.done_with(format!("{} accounts, {users} users", apply.plan.slurm_accounts.len()));
    Ok(())
}

/// The accounting database in a backup: a consistent dump, gzipped SQL.
pub const BACKUP_FILE: &str = "accounting.sql.gz";

/// The database's and slurmdbd's containers, when the cluster has accounting.
fn containers(model: &Model) -> Option<(&ContainerInfo, Option<&ContainerInfo>)> {
    let db = model.containers.iter().find(|c| c.node() == Some(DB_HOST))?;
    Some((db, model.containers.iter().find(|c| c.node() == Some(DBD_HOST))))
}

/// For `slurmbox backup`: the database's dump; `None` without accounting.
pub async fn backup(cluster: &Cluster, model: &Model) -> Result<Option<Vec<u8>>, PartError> {
    if containers(model).is_none() {
        return Ok(None);
    }
    let db = running_node(&cluster.name, &model.containers, DB_HOST)?;
    Ok(Some(dump(cluster.engine(db), &db.name).await?))
}

/// A backup's database goes only into a cluster whose database and slurmdbd run.
pub fn restorable(cluster: &Cluster, model: &Model, share: Option<&[u8]>) -> Result<(), PartError> {
    let running = |node| running_node(&cluster.name, &model.containers, node).is_ok();
    match share {
        Some(_) if !(running(DB_HOST) && running(DBD_HOST)) => {
            Err(PartError::NoAccounting(cluster.name.clone()))
        }
        _ => Ok(()),
    }
}

/// slurmdbd stops before anything is put back, so that what slurmctld sends as it stops
/// waits in the state that the backup's replaces.
pub async fn before_restore(cluster: &Cluster, model: &Model, share: Option<&[u8]>) -> Result<(), PartError> {
    let (Some(_), Some((db, Some(dbd)))) = (share, containers(model)) else {
        return Ok(());
    };
    stop_dbd(cluster.engine(db), &db.name, &dbd.name).await
}

/// For `slurmbox restore`: the database takes the backup's dump.
pub async fn restore(cluster: &Cluster, model: &Model, dump: &[u8]) -> Result<(), PartError> {
    let db = running_node(&cluster.name, &model.containers, DB_HOST)?;
    load(cluster.engine(db), &db.name, dump).await
}

/// `slurmbox backup`: the accounting database as one consistent, gzipped SQL dump (one
/// transaction: slurmdbd goes on writing meanwhile).
pub async fn dump<E: Engine>(engine: &E, db: &str) -> Result<Vec<u8>, PartError> {
    let script = "set -o pipefail; mariadb-dump --protocol=socket --single-transaction --hex-blob \
                  --add-drop-database --databases slurm_acct_db | gzip | base64 -w0";
    let out = checked(engine, db, &ExecSpec::new(["bash", "-c", script])).await?;
    Ok(decode_base64(db, "the accounting database", &out.stdout)?)
}

/// `slurmbox restore`, first: slurmdbd stops and, started again by Docker, waits for
/// the database's ready mark, which is taken away until [`load`] has put the dump in.
/// Meanwhile slurmctld keeps what it would send.
pub async fn stop_dbd<E: Engine>(engine: &E, db: &str, dbd: &str) -> Result<(), PartError> {
    checked(engine, db, &ExecSpec::new(["rm", "-f", contract::DB_READY])).await?;
    checked(engine, dbd, &ExecSpec::new(["pkill", "-TERM", "-x", "slurmdbd"])).await?;
    Ok(())
}

/// `slurmbox restore`, then: the backup's dump replaces the database, and slurmdbd
/// starts on it.
pub async fn load<E: Engine>(engine: &E, db: &str, dump: &[u8]) -> Result<(), PartError> {
    let file = FileUpload { path: contract::RESTORE_DB.into(), contents: dump.to_vec(), mode: 0o600 };
    engine.upload(db, &[file]).await?;
    let load = format!(
        "set -o pipefail; gunzip -c {f} | mariadb --protocol=socket; s=$?; rm -f {f}; [ $s = 0 ] && touch {ready}; exit $s",
        f = contract::RESTORE_DB,
        ready = contract::DB_READY
    );
    checked(engine, db, &ExecSpec::new(["bash", "-c", &load])).await?;
    Ok(())
}

/// Debian packages in the accounting image: MariaDB's server and slurmdbd (of the same
/// release as the cluster's Slurm) with its JWT plugin, munge to authenticate slurmctld.
pub const IMAGE_PACKAGES: &[&str] = &[
    "mariadb-server",
    "slurmdbd",
    // slurmdbd takes JWT tokens beside munge where the cluster has its REST API.
    "slurm-wlm-jwt-plugin",
    "munge",
    "procps",
    "tini",
    "ca-certificates",
    // slurmbox-db makes the database's TLS key and certificate with it.
    "openssl",
];

/// The accounting image shares the node image's account IDs (the munge key volume).
pub const IMAGE_HOOKS: &[&str] = &[
    image::SHARED_IDS_HOOK,
    image::NO_MUNGE_KEY_HOOK,
    // The database files on the cluster's volume belong to the mysql account: the same
    // ID in every release's image (Debian's differs between them), so a cluster moving
    // to another Slurm release keeps its database.
    r#"chroot "$1" sh -ec 'u=$(id -u mysql); g=$(id -g mysql); groupmod -g 901 mysql; usermod -u 901 -g 901 mysql; find / -xdev -uid "$u" -exec chown -h 901 {} +; find / -xdev -gid "$g" -exec chgrp -h 901 {} +'"#,
    // What slurmdbd asks of MariaDB (Slurm's accounting guide), sized for a small
    // cluster's machine, and no name lookups for connecting clients.
    r#"printf '[mysqld]\ninnodb_buffer_pool_size = 256M\ninnodb_log_file_size = 64M\ninnodb_lock_wait_timeout = 900\ninnodb_snapshot_isolation = OFF\nmax_allowed_packet = 64M\nskip_name_resolve = ON\n' > "$1/etc/mysql/mariadb.conf.d/90-slurmbox.cnf""#,
    // An empty database (root by socket only, no password anywhere) in the image:
    // Docker copies it into each cluster's new volume, which saves its first start. It is
    // made here with a 4 MB redo log (Debian's package for 24.11 makes one with a 96 MB
    // log, the one for 26.05 none): the copy is 48 MB instead of 140 (0.9 s of the
    // engine's work before the database can start, on a small machine), and MariaDB's
    // first start makes the 64 MB log set above anyway. (--force: the build's chroot
    // cannot look its host name up, which only a check of the script needs.) Every file
    // is the mysql account's, the package's own marks too: slurmbox-db need not hand
    // them over at each new cluster's first start.
    r#"chroot "$1" sh -ec 'install -d -o mysql -g mysql -m 0755 /var/lib/mysql; find /var/lib/mysql -mindepth 1 -maxdepth 1 ! -name "debian-*.flag" -exec rm -rf {} +; mariadb-install-db --force --user=mysql --datadir=/var/lib/mysql --skip-test-db --auth-root-authentication-method=socket --innodb-log-file-size=4M >/dev/null; chown -R mysql:mysql /var/lib/mysql'"#,
];

/// The accounting image's recipe for `slurm` on `arch` (the Debian release that
/// carries that Slurm): what [`image::ensure`] builds for it.
pub fn image_recipe(slurm: SlurmVersion, arch: Arch) -> Recipe {
    Recipe {
        kind: image::Kind::Accounting(slurm),
        arch,
        suite: slurm.debian_suite(),
        packages: IMAGE_PACKAGES,
        hooks: IMAGE_HOOKS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Existing accounting images are found by their tag: it stays what it was.
    #[test]
    fn the_accounting_images_tag_stays_the_same() {
        let tag = image_recipe(SlurmVersion::V24_11, Arch::Amd64).tag();
        assert_eq!(tag, "slurmbox/accounting:24.11-094032a16563");
    }

    #[test]
    fn every_user_gets_an_association_under_their_first_account() {
        let physics = AccountSpec {
            name: "physics".into(),
            users: vec!["alice".into()],
            fairshare: 3,
            grp_tres: Some("cpu=8".into()),
            max_jobs: None,
        };
        let users = AccountSpec {
            name: DEFAULT_ACCOUNT.into(),
            users: vec!["alice".into(), "bob".into()],
            fairshare: 1,
            grp_tres: None,
            max_jobs: None,
        };
        let changes: Vec<String> =
            sacctmgr_changes("lab", &[physics, users]).iter().map(|c| c.args().join(" ")).collect();
        assert_eq!(
            changes,
            [
                "add cluster lab",
                "add account physics cluster=lab description=physics organization=physics",
                "modify account where name=physics cluster=lab set fairshare=3 grptres=cpu=8 grpjobs=-1",
                "add account users cluster=lab description=users organization=users",
                "modify account where name=users cluster=lab set fairshare=1 grpjobs=-1",
                "add user alice account=physics cluster=lab defaultaccount=physics",
                "add user alice account=users cluster=lab",
                "add user bob account=users cluster=lab defaultaccount=users",
            ]
        );
    }
}
