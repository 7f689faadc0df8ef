//! Many researchers on one cluster: accounts added to a running cluster, each logging in
//! to the login node with their own key over the published ssh port (a real OpenSSH
//! client), submitting jobs that run as their own UID, and each forbidden action a
//! shared machine must refuse tried and refused. And users from a real LDAP directory
//! (Debian's slapd) logging in with the key stored there.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::ldap::LdapServer;
use common::{ClusterGuard, Run, remove_container, slurmbox};

/// A TCP port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A user's side: their key pair, and the ssh settings `slurmbox ssh-config` printed.
struct Researcher {
    name: String,
    key: PathBuf,
    config: PathBuf,
    known_hosts: PathBuf,
}

impl Researcher {
    /// Makes `name`'s key pair in `dir`.
    fn new(dir: &Path, name: &str) -> Researcher {
        let key = dir.join(name);
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", &format!("{name}@laptop"), "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(made.success());
        Researcher {
            name: name.into(),
            config: dir.join(format!("{name}.ssh_config")),
            known_hosts: dir.join(format!("{name}.known_hosts")),
            key,
        }
    }

    fn public_key(&self) -> String {
        std::fs::read_to_string(self.key.with_extension("pub")).unwrap().trim().to_string()
    }

    /// Takes the block and the known_hosts line `slurmbox ssh-config` prints.
    fn configure(&self, spec: &str) {
        let block = slurmbox(&["ssh-config", &self.name, "-f", spec]).ok().stdout;
        assert!(block.contains(&format!("    User {}\n", self.name)), "{block}");
        std::fs::write(&self.config, block).unwrap();
        let known = slurmbox(&["ssh-config", &self.name, "-f", spec, "--known-hosts"]).ok().stdout;
        assert!(known.contains(" ssh-ed25519 "), "{known}");
        std::fs::write(&self.known_hosts, known).unwrap();
    }

    /// `ssh CLUSTER SCRIPT` as this user would type it, with their key and the
    /// settings slurmbox printed; the host key must be the one slurmbox said.
    fn ssh(&self, cluster: &str, extra: &[&str], script: &str) -> Run {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F").arg(&self.config).arg("-i").arg(&self.key);
        cmd.arg("-o").arg(format!("UserKnownHostsFile={}", self.known_hosts.display()));
        // The address, port and user are the printed block's, as they are.
        cmd.args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"]);
        cmd.args(["-o", "ConnectTimeout=10"]).args(extra).arg(cluster).arg(script);
        let out = cmd.output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// An interactive login (a terminal, a login shell) that types `input`.
    fn interactive(&self, cluster: &str, input: &str) -> Run {
        use std::io::Write;
        let mut cmd = Command::new("ssh");
        cmd.arg("-F").arg(&self.config).arg("-i").arg(&self.key).arg("-tt");
        cmd.arg("-o").arg(format!("UserKnownHostsFile={}", self.known_hosts.display()));
        cmd.args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"]);
        cmd.arg(cluster).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
        let mut child = cmd.stderr(std::process::Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `script` over ssh until its output satisfies `done` (60 s at most).
    fn wait_for(&self, cluster: &str, script: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.ssh(cluster, &[], script);
            if done(&out.stdout) {
                return out.stdout;
            }
            assert!(Instant::now() < deadline, "{what} after 60 s: {} {}", out.stdout, out.stderr);
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Asserts that `script`, run by `who` over ssh, fails for the reason `why` (words of
/// its error message): a command that fails for another reason (a file or a program
/// that is not there) proves nothing about what the user may do.
fn refused(who: &Researcher, cluster: &str, script: &str, why: &str) {
    let out = who.ssh(cluster, &[], script);
    assert_ne!(out.code, 0, "{} could run {script:?}: {}", who.name, out.stdout);
    assert!(out.stderr.contains(why), "{script:?} failed, but not with {why:?}:\n{}", out.stderr);
}

#[test]
fn researchers_log_in_with_their_keys_and_nothing_more() {
    let cluster = ClusterGuard::new("users");
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("cluster.toml");
    let port = free_port();
    std::fs::write(&spec_path, format!("name = \"{}\"\n[login]\nssh_port = {port}\n", cluster.name)).unwrap();
    let spec = spec_path.to_str().unwrap();
    slurmbox(&["up", "-f", spec]).ok();
    let name = cluster.name.as_str();

    // Two researchers join the running cluster: nothing restarts.
    let before = common::container_identities(name);
    let alice = Researcher::new(dir.path(), "alice");
    let bob = Researcher::new(dir.path(), "bob");
    for who in [&alice, &bob] {
        let key = who.key.with_extension("pub");
        let said = slurmbox(&["user", "add", &who.name, "--ssh-key", key.to_str().unwrap(), "-f", spec]).ok();
        assert!(said.stderr.contains("ssh-config"), "{}", said.stderr);
        who.configure(spec);
    }
    assert_eq!(common::container_identities(name), before, "user add restarted a container");
    let listed = slurmbox(&["user", "list", "-f", spec, "--json"]).ok().stdout;
    let users: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let uid_of =
        |n: &str| users.as_array().unwrap().iter().find(|u| u["name"] == n).unwrap()["uid"].as_u64().unwrap();
    let (alice_uid, bob_uid) = (uid_of("alice"), uid_of("bob"));
    assert_ne!(alice_uid, bob_uid);
    assert!(
        std::fs::read_to_string(&spec_path).unwrap().contains(&alice.public_key()),
        "the spec keeps the key"
    );

    // Each logs in with their key, and their jobs run as them.
    for (who, uid) in [(&alice, alice_uid), (&bob, bob_uid)] {
        let out = who.ssh(name, &[], "id -un; id -u; pwd; stat -c '%U %a' ~; srun -N2 id -u").ok();
        assert_eq!(
            out.stdout,
            format!("{0}\n{uid}\n/home/{0}\n{0} 700\n{uid}\n{uid}\n", who.name),
            "{}",
            out.stderr
        );
        let job = who.ssh(name, &[], "sbatch --parsable --wrap 'id -u > from-job.txt; touch mine'").ok();
        assert!(job.stdout.trim().parse::<u64>().is_ok(), "{}", job.stdout);
    }
    // A login shell on a terminal, as a researcher opens one.
    let session = alice.interactive(name, "echo \"shell of $(id -un) in $PWD\"\nexit\n");
    assert!(
        session.stdout.contains("shell of alice in /home/alice"),
        "{}\n{}",
        session.stdout,
        session.stderr
    );
    for who in [&alice, &bob] {
        who.wait_for(name, "cat from-job.txt", "the batch job's output", |o| !o.is_empty());
        let out = who.ssh(name, &[], "cat from-job.txt; stat -c '%U %a' mine").ok();
        assert_eq!(out.stdout.lines().nth(1), Some(format!("{} 644", who.name).as_str()), "{}", out.stdout);
    }

    // What nobody may do: read another's home, the munge key or any other secret of
    // the cluster, change the system, become root, act as Slurm's administrator, run a
    // job as someone else. Each of these is there to be refused (root can).
    let denied = "Permission denied";
    let secrets = [
        "/home/bob/from-job.txt",
        "/etc/munge/munge.key",
        "/var/lib/slurmbox/ssh/ssh_host_ed25519_key",
        "/var/lib/extrausers/shadow",
    ];
    for path in secrets {
        let there = cluster.run(&["exec"], &["--user", "root", "--", "test", "-s", path]);
        assert_eq!(there.code, 0, "{path} is not on the login node: nothing to refuse");
    }
    for (script, why) in [
        ("ls /home/bob", denied),
        ("cat /home/bob/from-job.txt", denied),
        ("cat /etc/munge/munge.key", denied),
        ("cat /var/lib/slurmbox/ssh/ssh_host_ed25519_key", denied),
        ("cat /var/lib/extrausers/shadow", denied),
        ("touch /etc/owned-by-alice", denied),
        ("cp /bin/true /usr/local/sbin/", denied),
        ("kill -0 1", "Operation not permitted"),
        ("su -c true root </dev/null", "Authentication failure"),
        // Slurm answers a user who is not its administrator "Invalid user id".
        ("scontrol update nodename=node1 state=drain reason=mine", "Invalid user id"),
        (&format!("sbatch --uid={bob_uid} --wrap true"), "--uid only permitted by root"),
    ] {
        refused(&alice, name, script, why);
    }
    let no_password = alice.ssh(
        name,
        &["-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive"],
        "true",
    );
    assert!(no_password.stderr.contains("Permission denied (publickey)"), "{}", no_password.stderr);
    let as_root = alice.ssh(name, &["-l", "root"], "true");
    assert!(as_root.stderr.contains("Permission denied (publickey)"), "root: {}", as_root.stderr);
    let wrong_key = bob.ssh(name, &["-l", "alice"], "true");
    assert_ne!(wrong_key.code, 0, "bob's key logged in as alice");

    // The login node is made again: ssh still trusts it (same host key). A compute node
    // made again still knows both users.
    remove_container(&format!("{name}-login"));
    remove_container(&format!("{name}-node1"));
    slurmbox(&["up", "-f", spec]).ok();
    for (who, uid) in [(&alice, alice_uid), (&bob, bob_uid)] {
        let out = who.ssh(name, &[], "srun -w node1 id -u").ok();
        assert_eq!(out.stdout.trim(), uid.to_string(), "{}", out.stderr);
    }

    // Bob leaves while a job of his runs: his login ends, the job is listed, not cancelled.
    let job = bob.ssh(name, &[], "sbatch --parsable --wrap 'sleep 300'").ok().stdout.trim().to_string();
    bob.wait_for(name, &format!("squeue -h -j {job} -o %T"), "bob's job running", |o| o.trim() == "RUNNING");
    let removed = slurmbox(&["user", "remove", "bob", "-f", spec]).ok();
    assert!(removed.stderr.contains(&format!("{job} (RUNNING)")), "{}", removed.stderr);
    let locked = bob.ssh(name, &[], "true");
    assert_ne!(locked.code, 0, "bob still logs in: {}", locked.stdout);
    let state = alice.ssh(name, &[], &format!("squeue -h -j {job} -o %T")).ok().stdout;
    assert_eq!(state.trim(), "RUNNING", "bob's job was left alone");
    let listed = slurmbox(&["user", "list", "-f", spec]).ok().stdout;
    assert!(listed.lines().any(|l| l.starts_with("bob ") && l.contains(" no ")), "{listed}");
    // His home goes only once his jobs are gone.
    let purge = slurmbox(&["user", "remove", "bob", "--purge-home", "-f", spec]);
    assert_ne!(purge.code, 0, "purged while a job runs");
    assert!(purge.stderr.contains(&job), "{}", purge.stderr);
    cluster.run(&["exec"], &["--user", "root", "--", "scancel", "-u", "bob"]).ok();
    cluster.wait_for("squeue -h -u bob", "bob's jobs gone", |o| o.trim().is_empty());
    slurmbox(&["user", "remove", "bob", "--purge-home", "-f", spec]).ok();
    let home = cluster.run(&["exec"], &["--user", "root", "--", "ls", "/home"]).ok().stdout;
    assert!(!home.lines().any(|l| l == "bob") && home.lines().any(|l| l == "alice"), "{home}");
    alice.ssh(name, &[], "true").ok();
}

#[test]
fn a_directory_user_logs_in_with_the_key_stored_in_ldap() {
    let cluster = ClusterGuard::new("ldap");
    // Dropped before the cluster: the directory leaves the cluster's network first.
    let ldap = LdapServer::start(&cluster.name);
    let dir = tempfile::tempdir().unwrap();
    let dora = Researcher::new(dir.path(), "dora");
    ldap.add_user("dora", 5001, &dora.public_key());
    let spec_path = dir.path().join("cluster.toml");
    let port = free_port();
    std::fs::write(
        &spec_path,
        format!(
            "name = \"{}\"\n[login]\nssh_port = {port}\n[ldap]\nuri = \"ldap://directory\"\nbase_dn = \"{}\"\n\
             bind_dn = \"{}\"\nbind_password_file = \"{}\"\n",
            cluster.name,
            ldap.base_dn,
            ldap.bind_dn,
            ldap.bind_password_file().display()
        ),
    )
    .unwrap();
    let spec = spec_path.to_str().unwrap();
    slurmbox(&["up", "-f", spec]).ok();
    ldap.connect(&format!("{}-net", cluster.name), "directory");
    dora.configure(spec);

    // Known on every node from the directory alone; her key is the one stored there.
    let out = cluster.wait_for("getent passwd dora", "dora from LDAP", |o| o.starts_with("dora:"));
    assert!(out.contains(":5001:5001:"), "{out}");
    let out = dora.ssh(&cluster.name, &[], "id -u; srun -N2 id -u");
    let keys =
        cluster.run(&["exec"], &["--user", "root", "--", "/usr/local/sbin/slurmbox-ldap-keys", "dora"]);
    let logs = cluster.run(&["logs"], &["login", "--tail", "30"]).stdout;
    assert_eq!(
        out.stdout, "5001\n5001\n5001\n",
        "{}\nkeys: {} {}\nlogin node: {logs}",
        out.stderr, keys.stdout, keys.stderr
    );
    // The bind password is root's alone, in no variable a user (or `docker inspect`) sees.
    refused(&dora, &cluster.name, "cat /etc/nslcd.conf", "Permission denied");
    let inspect =
        Command::new("docker").args(["inspect", &format!("{}-login", cluster.name)]).output().unwrap();
    assert!(!String::from_utf8_lossy(&inspect.stdout).contains(&ldap.bind_password));
}
