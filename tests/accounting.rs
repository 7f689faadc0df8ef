//! Accounting and fair share on a real cluster: slurmdbd and MariaDB in their own
//! containers, every job in `sacct` under its user's account, `sshare` and `sreport`
//! answering, an account's limits holding its jobs back (`max_jobs`, `grp_tres`), and
//! fair share ordering the queue: a user who has used the cluster waits behind one who
//! has not, and an account's `fairshare` weight outweighs more use. The database
//! password is in no container's configuration.

mod common;

use std::time::{Duration, Instant};

use common::{ClusterGuard, slurmbox};

/// `sbatch --parsable ARGS` as `user`: the job's id.
fn submit_as(cluster: &ClusterGuard, user: &str, args: &str) -> String {
    cluster.sh_as(user, &format!("sbatch --parsable {args}")).trim().to_string()
}

/// A job's state and the reason it waits (`squeue`'s `%T %r`).
fn state_and_reason(cluster: &ClusterGuard, job: &str) -> String {
    cluster.sh(&format!("squeue -h -j {job} -o '%T %r'")).stdout.trim().to_string()
}

/// `user` may run one job at a time, or hold one CPU (the node has two): the second
/// job waits for the limit, named as its reason, with a CPU free; it starts once the
/// first is cancelled.
fn second_job_waits_for(cluster: &ClusterGuard, user: &str, reason: &str) {
    let first = submit_as(cluster, user, "-J first --wrap 'sleep 300'");
    cluster
        .wait_for(&format!("squeue -h -j {first} -o %T"), "the first job to run", |o| o.trim() == "RUNNING");
    let second = submit_as(cluster, user, "-J second --wrap 'sleep 300'");
    let want = format!("PENDING {reason}");
    cluster.wait_for(
        &format!("squeue -h -j {second} -o '%T %r'"),
        &format!("{user}'s second job to wait: {want}"),
        |o| o.trim() == want,
    );
    // Not for want of CPUs: one of the node's two is free all along.
    let cpus = cluster.sh("sinfo -h -o %C").ok().stdout;
    assert_eq!(cpus.trim(), "1/1/0/2", "allocated/idle/other/total while {user}'s second job waits");
    assert_eq!(state_and_reason(cluster, &second), want, "still waiting, with a CPU free");
    cluster.sh_as(user, &format!("scancel {first}"));
    cluster.wait_for(
        &format!("squeue -h -j {second} -o %T"),
        &format!("{user}'s second job to start"),
        |o| o.trim() == "RUNNING",
    );
    cluster.sh_as(user, &format!("scancel {second}"));
    cluster.wait_for(&format!("squeue -h -u {user}"), &format!("{user}'s jobs to leave"), |o| {
        o.trim().is_empty()
    });
}

/// Waits until Slurm's fair-share factors (`sshare`) order the users as `order`, the
/// highest first.
fn wait_for_fair_share(cluster: &ClusterGuard, order: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let share = cluster.sh_as("alice", "sshare -n -P -a -o user,fairshare");
        let of = |u: &str| -> f64 {
            share
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{u}|")))
                .and_then(|f| f.parse().ok())
                .unwrap_or(-1.0)
        };
        if order.windows(2).all(|w| of(w[0]) > of(w[1])) {
            return;
        }
        assert!(Instant::now() < deadline, "fair share never ordered the users {order:?}:\n{share}");
        std::thread::sleep(Duration::from_secs(3));
    }
}

#[test]
fn jobs_are_accounted_limited_and_fair_share_orders_the_queue() {
    let cluster = ClusterGuard::new("acct");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    // One node of two CPUs. Fair share is recomputed every minute (Slurm's default:
    // five). Biology's weight is a hundred times the others'.
    let users: String = ["alice", "bob", "carol", "dave", "erin"]
        .iter()
        .map(|u| format!("[[user]]\nname = \"{u}\"\n"))
        .collect();
    std::fs::write(
        &spec,
        format!(
            "name = \"{}\"\n[compute]\ncount = 1\ncpus = 2\n{users}\
             [[account]]\nname = \"physics\"\nusers = [\"alice\"]\n[[account]]\nname = \"chemistry\"\nusers = [\"bob\"]\n\
             [[account]]\nname = \"biology\"\nusers = [\"carol\"]\nfairshare = 100\n\
             [[account]]\nname = \"astro\"\nusers = [\"dave\"]\nmax_jobs = 1\n\
             [[account]]\nname = \"geo\"\nusers = [\"erin\"]\ngrp_tres = \"cpu=1\"\n\
             [slurm_conf]\nPriorityCalcPeriod = 1\n",
            cluster.name
        ),
    )
    .unwrap();
    slurmbox(&["up", "-f", spec.to_str().unwrap()]).ok();

    // Alice uses one CPU for 3 s, Carol one for 6 s: twice Alice's use, but a hundred
    // times her share. Bob uses nothing.
    std::thread::scope(|s| {
        s.spawn(|| cluster.sh_as("alice", "srun sleep 3"));
        s.spawn(|| cluster.sh_as("carol", "srun sleep 6"));
    });

    // Meanwhile the limits: astro runs one job at a time (GrpJobs), geo holds one CPU
    // (GrpTRES).
    let limits = cluster.sh_as("alice", "sacctmgr -n -P show assoc format=account,user,grpjobs,grptres");
    assert!(limits.contains("astro||1|\n") && limits.contains("geo|||cpu=1\n"), "{limits}");
    second_job_waits_for(&cluster, "dave", "AssocGrpJobsLimit");
    second_job_waits_for(&cluster, "erin", "AssocGrpCpuLimit");

    // Once Slurm has recomputed fair share: Bob (no use) above Carol (her weight),
    // above Alice. Were the weights all one, Alice (less use) would be above Carol.
    wait_for_fair_share(&cluster, &["bob", "carol", "alice"]);

    // Dave holds the node; Alice floods the queue, then Carol and Bob submit one job
    // each. Once the node is free, the jobs start in fair-share order.
    let hold = submit_as(&cluster, "dave", "-J hold -c 2 --wrap 'sleep 300'");
    cluster.wait_for(&format!("squeue -h -j {hold} -o %T"), "the node to be held", |o| o.trim() == "RUNNING");
    for _ in 0..3 {
        submit_as(&cluster, "alice", "-J flood -c 2 --wrap 'sleep 1'");
    }
    submit_as(&cluster, "carol", "-J weighted -c 2 --wrap 'sleep 1'");
    submit_as(&cluster, "bob", "-J later -c 2 --wrap 'sleep 1'");
    cluster.sh_as("dave", &format!("scancel {hold}"));
    cluster.wait_for("squeue -h", "the queue to empty", |o| o.trim().is_empty());

    // Every job is in sacct, under its user's account; the queued ones COMPLETED, Bob's
    // first, then Carol's, then Alice's.
    let deadline = Instant::now() + Duration::from_secs(60);
    let jobs = loop {
        let out =
            cluster.sh_as("alice", "sacct -a -X -n -P -o jobname,user,account,state,start -S now-1hour");
        if out.lines().filter(|l| l.contains("|COMPLETED|")).count() >= 7 {
            break out;
        }
        assert!(Instant::now() < deadline, "sacct lacks jobs:\n{out}");
        std::thread::sleep(Duration::from_secs(1));
    };
    let rows: Vec<Vec<&str>> = jobs.lines().map(|l| l.split('|').collect()).collect();
    let accounts = [
        ("alice", "physics"),
        ("bob", "chemistry"),
        ("carol", "biology"),
        ("dave", "astro"),
        ("erin", "geo"),
    ];
    for row in &rows {
        let account = accounts.iter().find(|(u, _)| *u == row[1]).map(|(_, a)| *a);
        assert_eq!(Some(row[2]), account, "{jobs}");
    }
    let mut queued: Vec<&Vec<&str>> =
        rows.iter().filter(|r| ["flood", "weighted", "later"].contains(&r[0])).collect();
    assert!(queued.iter().all(|r| r[3] == "COMPLETED") && queued.len() == 5, "{jobs}");
    queued.sort_by_key(|r| r[4]);
    let order: Vec<&str> = queued.iter().map(|r| r[0]).collect();
    assert_eq!(order, ["later", "weighted", "flood", "flood", "flood"], "start order:\n{jobs}");

    // The other reports answer for everyone. (sreport's figures come from slurmdbd's
    // hourly rollup: a cluster this young has a report, with nothing in it yet.)
    let report = cluster.sh_as("bob", "sreport cluster utilization start=now-1hour");
    assert!(report.contains("Cluster Utilization"), "{report}");
    let assoc = cluster.sh_as("bob", "sacctmgr -n -P show assoc format=account,user");
    assert!(assoc.contains("physics|alice") && assoc.contains("chemistry|bob"), "{assoc}");

    // The database password is in no container's configuration, and users cannot read it.
    let inspect = std::process::Command::new("docker")
        .args(["inspect", &format!("{}-db", cluster.name), &format!("{}-dbd", cluster.name)])
        .output()
        .unwrap();
    let secret = cluster
        .run(
            &["exec"],
            &["--node", "dbd", "--user", "root", "--", "cat", "/var/lib/slurmbox/secret/db-password"],
        )
        .ok()
        .stdout;
    assert!(secret.trim().len() >= 32, "a password from the RNG");
    assert!(!String::from_utf8_lossy(&inspect.stdout).contains(secret.trim()));
    let conf = cluster
        .run(
            &["exec"],
            &["--node", "dbd", "--user", "root", "--", "stat", "-c", "%U %a", "/etc/slurm/slurmdbd.conf"],
        )
        .ok()
        .stdout;
    assert_eq!(conf.trim(), "slurm 600");

    // slurmdbd's connection to MariaDB is encrypted with the database's own certificate,
    // whose key only MariaDB's account reads.
    let tls = cluster
        .run(
            &["exec"],
            &[
                "--node",
                "db",
                "--user",
                "root",
                "--",
                "bash",
                "-c",
                "stat -c '%U %a' /var/lib/mysql/slurmbox-tls-key.pem && mariadb --protocol=socket -N -B -e \
                 \"select @@ssl_cert; show global status like 'Ssl_finished_accepts'\"",
            ],
        )
        .ok()
        .stdout;
    let lines: Vec<&str> = tls.lines().collect();
    assert_eq!(lines.len(), 3, "{tls}");
    assert_eq!(lines[..2], ["mysql 600", "/var/lib/mysql/slurmbox-tls-cert.pem"], "{tls}");
    let accepted: u64 = lines[2].trim_start_matches("Ssl_finished_accepts").trim().parse().expect("a count");
    assert!(accepted >= 1, "slurmdbd connected without TLS: {tls}");
}

#[test]
fn accounting_can_be_turned_off() {
    let cluster = ClusterGuard::new("noacct");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    std::fs::write(&spec, format!("name = \"{}\"\naccounting = false\n[compute]\ncount = 1\n", cluster.name))
        .unwrap();
    slurmbox(&["up", "-f", spec.to_str().unwrap()]).ok();
    let out = cluster.sh("sacct 2>&1; true").stdout;
    assert!(out.contains("accounting storage is disabled"), "{out}");
    let names: Vec<String> = common::labelled_objects(&cluster.name);
    assert!(!names.iter().any(|n| n.ends_with("-db") || n.ends_with("-dbd")), "{names:?}");
}

/// Every job of `ids` is in sacct exactly once (`-D`: every time it ran), COMPLETED.
fn each_completed_once(cluster: &ClusterGuard, ids: &[String], what: &str) {
    let list = ids.join(",");
    let script = format!("sacct -a -D -X -n -P -o jobid,state -j {list}");
    let want: String = ids.iter().map(|id| format!("{id}|COMPLETED\n")).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = cluster.sh(&script).stdout;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: sacct has\n{got}\nnot each of {list} COMPLETED once");
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn submit(cluster: &ClusterGuard, n: usize, args: &str) -> Vec<String> {
    (0..n).map(|_| cluster.sh(&format!("sbatch --parsable {args}")).ok().stdout.trim().to_string()).collect()
}

/// Kills a container's main process from the host, as a crash would (`docker kill` is a
/// stop Docker knows of); Docker's restart policy brings it back.
fn crash(container: &str) {
    let pid = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{.State.Pid}}", container])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&pid.stdout).trim().to_string();
    assert!(
        std::process::Command::new("kill").args(["-KILL", &pid]).status().unwrap().success(),
        "kill {pid}"
    );
}

/// The faults a shared cluster meets, one after another on one cluster: a host
/// reboot (`down`, `up`), MariaDB restarting while jobs finish, slurmctld killed
/// (SIGKILL from the host, its container brought back by its restart policy) with jobs
/// running and queued, and a compute node killed under a running job. No job is lost or
/// run twice, and sacct has each of them.
#[test]
fn no_job_is_lost_or_run_twice_through_restarts_and_crashes() {
    let cluster = ClusterGuard::new("faults");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    // Two slots: two jobs running keep the rest queued.
    std::fs::write(&spec, format!("name = \"{}\"\n[compute]\ncount = 2\ncpus = 1\n", cluster.name)).unwrap();
    let spec = spec.to_str().unwrap();
    slurmbox(&["up", "-f", spec]).ok();

    // 1. Down and up again: queued jobs stay queued, then run; history stays.
    let done = submit(&cluster, 2, "--wait --wrap true");
    let held = submit(&cluster, 4, "--hold --wrap true");
    std::thread::sleep(Duration::from_secs(6)); // slurmctld saves its queue every few seconds
    slurmbox(&["down", "-f", spec]).ok();
    slurmbox(&["up", "-f", spec]).ok();
    cluster.run(&["exec"], &["--user", "root", "--", "scontrol", "release", &held.join(",")]).ok();
    cluster.wait_for("squeue -h", "the released jobs to run", |o| o.trim().is_empty());
    each_completed_once(&cluster, &[done, held].concat(), "after down and up");

    // 2. MariaDB restarts while jobs finish: slurmctld keeps their records meanwhile.
    let quick = submit(&cluster, 8, "--wrap 'sleep 1'");
    let restarted = std::process::Command::new("docker")
        .args(["restart", "-t", "2", &format!("{}-db", cluster.name)])
        .status()
        .unwrap();
    assert!(restarted.success());
    cluster.wait_for("squeue -h", "the jobs around the database restart", |o| o.trim().is_empty());
    each_completed_once(&cluster, &quick, "after MariaDB restarted");

    // 3. slurmctld crashes with 2 jobs running and 20 queued, more than 5 s after the
    //    queue last changed (it saves its state at most every 5 s).
    let running = submit(&cluster, 2, "--wrap 'sleep 25'");
    let queued = submit(&cluster, 20, "--wrap 'sleep 1'");
    cluster.wait_for("squeue -h -t R -o %i | wc -l", "two jobs running", |o| o.trim() == "2");
    std::thread::sleep(Duration::from_secs(7));
    let controller = format!("{}-controller", cluster.name);
    crash(&controller);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let out = cluster.sh("squeue -h 2>/dev/null | wc -l; scontrol ping 2>/dev/null | grep -c UP").stdout;
        if out.lines().collect::<Vec<_>>() == ["0", "1"] {
            break;
        }
        assert!(Instant::now() < deadline, "the queue did not drain after the controller's crash: {out}");
        std::thread::sleep(Duration::from_secs(2));
    }
    assert_eq!(common::restart_count(&controller), 1, "Docker brought the controller back once");
    each_completed_once(&cluster, &[running, queued].concat(), "after slurmctld was killed");
    // The admin is told what such a crash may have cost, and what to check.
    let status = slurmbox(&["status", "-f", spec]).ok().stdout;
    assert!(status.contains("from an unclean stop") && status.contains("sacct -D -X"), "{status}");
    let doctor = slurmbox(&["doctor", "-f", spec]).ok().stdout;
    assert!(doctor.contains("controller: the controller came back at"), "{doctor}");
    // A node Slurm drains for a job it finds running twice goes back into service.
    cluster
        .run(
            &["exec"],
            &[
                "--user",
                "root",
                "--",
                "scontrol",
                "update",
                "nodename=node2",
                "state=drain",
                "reason=Duplicate jobid",
            ],
        )
        .ok();
    cluster.wait_for("sinfo -h -n node2 -o %T", "node2 back in service", |o| o.trim() == "idle");

    // 4. A compute node is killed under a running batch job: the job is requeued and
    //    runs to its end (on either node), and the node comes back into service.
    let job = submit(&cluster, 1, "--wrap 'sleep 8'").remove(0);
    let node = cluster
        .wait_for(&format!("squeue -h -j {job} -t R -o %N"), "the job to run", |o| !o.trim().is_empty());
    std::thread::sleep(Duration::from_secs(2));
    let crashed = Instant::now();
    crash(&format!("{}-{}", cluster.name, node.trim()));
    cluster.wait_for(&format!("sacct -n -X -P -o state -j {job}"), "the requeued job to complete", |o| {
        o.trim() == "COMPLETED"
    });
    eprintln!("job {job}: completed {:.0} s after its node was killed", crashed.elapsed().as_secs_f64());
    let requeues = cluster.sh(&format!("sacct -D -X -n -P -o state -j {job}")).ok().stdout;
    assert!(requeues.lines().count() >= 2 && requeues.lines().last() == Some("COMPLETED"), "{requeues}");
    cluster.wait_for(&format!("sinfo -h -n {} -o %T", node.trim()), "the killed node back in service", |o| {
        o.trim() == "idle"
    });
}

/// `backup` then `restore` into a new cluster of the same name: the old jobs are in
/// sacct, a held job is queued again and runs, and new jobs get IDs after the old ones.
/// The file is its owner's alone and holds neither the munge key nor the database
/// password.
#[test]
fn a_backup_restores_into_a_new_cluster() {
    let cluster = ClusterGuard::new("backup");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    std::fs::write(&spec, format!("name = \"{}\"\n[compute]\ncount = 1\ncpus = 1\n", cluster.name)).unwrap();
    let spec = spec.to_str().unwrap();
    slurmbox(&["up", "-f", spec]).ok();
    let done = submit(&cluster, 3, "--wait --wrap true");
    let held = submit(&cluster, 1, "--hold --wrap true").remove(0);
    each_completed_once(&cluster, &done, "before the backup");
    let password = std::process::Command::new("docker")
        .args(["exec", &format!("{}-db", cluster.name), "cat", "/var/lib/slurmbox/secret/db-password"])
        .output()
        .unwrap();
    let password = String::from_utf8_lossy(&password.stdout).trim().to_string();
    assert!(password.len() >= 20, "{password:?}");

    let file = dir.path().join("cluster.backup");
    let file_arg = file.to_str().unwrap();
    slurmbox(&["backup", "-f", spec, file_arg]).ok();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let contents = std::process::Command::new("bash")
        .args(["-c", &format!("tar -xOf {file_arg} accounting.sql.gz | gunzip; tar -xOf {file_arg} slurmctld-state.tar.gz | tar -xzO")])
        .output()
        .unwrap();
    assert!(
        contents.status.success() && contents.stdout.len() > 1000,
        "{}",
        String::from_utf8_lossy(&contents.stderr)
    );
    let text = String::from_utf8_lossy(&contents.stdout);
    assert!(text.contains("CREATE TABLE") && !text.contains(&password), "the dump holds the password");

    // The cluster is rebuilt from nothing, and runs a job of its own first.
    slurmbox(&["down", "--purge", "--yes", "-f", spec]).ok();
    slurmbox(&["up", "-f", spec]).ok();
    submit(&cluster, 1, "--wait --wrap true");
    let out = slurmbox(&["restore", "-f", spec, file_arg]).ok();
    assert!(out.stderr.contains("is restored from"), "{}", out.stderr);

    each_completed_once(&cluster, &done, "after the restore");
    let pending = cluster.sh(&format!("squeue -h -j {held} -o %T")).ok().stdout;
    assert_eq!(pending.trim(), "PENDING");
    cluster.run(&["exec"], &["--user", "root", "--", "scontrol", "release", &held]).ok();
    each_completed_once(&cluster, std::slice::from_ref(&held), "the held job, released after the restore");
    let next = submit(&cluster, 1, "--wait --wrap true").remove(0);
    let highest = held.parse::<u64>().unwrap();
    assert!(
        next.parse::<u64>().unwrap() > highest,
        "job {next} after the restore, the backup's last was {highest}"
    );
}
