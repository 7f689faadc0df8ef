//! A cluster that outlives its controller: `[controller] backup = true` on one engine
//! runs a second slurmctld beside the first, sharing its state volume. The primary's
//! container is killed outright (its PID 1 gets SIGKILL from the host, as a crash
//! would; `docker kill` counts as a stop the restart policy honours): the backup takes
//! over, the queue goes on, no job runs twice, and the primary comes back by the
//! container's restart policy and takes charge again.

mod common;

use std::time::{Duration, Instant};

use common::{ClusterGuard, restart_count, runs_of, slurmbox};
use serde_json::Value;

/// Kills a container's main process from the host, as a crash would.
fn crash(container: &str) {
    let out = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{.State.Pid}}", container])
        .output()
        .expect("docker inspect");
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(pid.parse::<u32>().is_ok_and(|p| p > 0), "{container} has no process: {pid:?}");
    let kill = std::process::Command::new("kill").args(["-KILL", &pid]).status().expect("kill");
    assert!(kill.success(), "kill -KILL {pid} ({container})");
}

/// `status --json`'s controllers: (name, in charge, responding).
fn controllers(cluster: &ClusterGuard) -> Vec<(String, bool, bool)> {
    let status: Value = serde_json::from_str(&cluster.run(&["status"], &["--json"]).ok().stdout).unwrap();
    status["controllers"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["in_charge"].as_bool().unwrap_or(false),
                c["responding"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

#[test]
fn a_backup_controller_takes_over_when_the_primary_dies() {
    let cluster = ClusterGuard::new("ha");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    std::fs::write(&spec, format!("name = \"{}\"\n[controller]\nbackup = true\n", cluster.name)).unwrap();
    slurmbox(&["up", "-f", spec.to_str().unwrap()]).ok();

    // Both answer; slurm.conf names both, and the primary is in charge.
    let ping = cluster.sh("scontrol ping").ok().stdout;
    assert!(ping.contains(" at controller is UP") && ping.contains(" at controller2 is UP"), "{ping}");
    assert_eq!(
        controllers(&cluster),
        [("controller".to_string(), true, true), ("controller2".to_string(), false, true)]
    );
    let status = cluster.run(&["status"], &[]).ok().stdout;
    assert!(status.contains("controllers: controller (primary) in charge; controller2 ("), "{status}");
    let doctor = cluster.run(&["doctor"], &[]).ok().stdout;
    assert!(doctor.contains("controllers' state: /var/spool/slurmctld shared by"), "{doctor}");

    // The primary lost right after `up`: the backup knows every node (`up` waited until
    // the primary had written them to the shared state), so it runs jobs on both.
    let primary = format!("{}-controller", cluster.name);
    crash(&primary);
    let crashed = Instant::now();
    let mut both = None;
    while both.is_none() && crashed.elapsed() < Duration::from_secs(60) {
        let out = cluster.sh("srun -N2 -t 1 hostname");
        if out.code == 0 {
            both = Some(out.stdout);
        } else {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let both = both.unwrap_or_else(|| panic!("no srun -N2 within 60 s of a crash right after `up`"));
    let mut names: Vec<&str> = both.lines().collect();
    names.sort();
    assert_eq!(names, ["node1", "node2"]);
    let deadline = Instant::now() + Duration::from_secs(90);
    while !controllers(&cluster).first().is_some_and(|(_, in_charge, _)| *in_charge) {
        assert!(Instant::now() < deadline, "the primary is not in charge again after its crash");
        std::thread::sleep(Duration::from_secs(2));
    }

    // Two jobs running (a whole node each), twenty queued behind them.
    let submit = "sbatch --parsable --exclusive -N1 -o /dev/null";
    let mut jobs: Vec<String> = Vec::new();
    for _ in 0..2 {
        jobs.push(cluster.sh(&format!("{submit} --wrap 'sleep 20'")).ok().stdout.trim().to_string());
    }
    for _ in 0..20 {
        jobs.push(cluster.sh(&format!("{submit} --wrap 'sleep 1'")).ok().stdout.trim().to_string());
    }
    cluster.wait_for("squeue -h -t RUNNING -o %i | wc -l", "two jobs running", |s| s.trim() == "2");

    // slurmctld writes its queue to the state folder a few seconds after it changes: a
    // crash before that loses the jobs submitted last (README, "High availability").
    // The crash comes once the queue of 22 is written (or 10 s passed with nothing
    // left to write).
    let saved = "m=$(mktemp) && for _ in $(seq 100); do [ /var/spool/slurmctld/job_state -nt \"$m\" ] && break; \
                 sleep 0.1; done";
    std::process::Command::new("docker").args(["exec", &primary, "bash", "-c", saved]).status().unwrap();
    let restarts = restart_count(&primary);
    crash(&primary);
    let killed = Instant::now();
    // The cluster takes jobs and answers from the login node again. (30 s
    // is bench/takeover.sh's target; here a loaded machine gets twice that.)
    let mut during = None;
    while killed.elapsed() < Duration::from_secs(60) {
        let out = cluster.sh("squeue -h -o %i >/dev/null && sbatch --parsable -o /dev/null --wrap true");
        if out.code == 0 {
            during = Some(out.stdout.trim().to_string());
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let during = during.unwrap_or_else(|| panic!("no sbatch and squeue within 60 s of the primary's crash"));
    eprintln!("ha: sbatch and squeue answered {:.1?} after the primary's crash", killed.elapsed());
    jobs.push(during);

    // Every job completes, exactly once (`sacct -D` lists each run of a job).
    let deadline = Instant::now() + Duration::from_secs(240);
    while !cluster.sh("squeue -h -o %i").ok().stdout.trim().is_empty() {
        assert!(Instant::now() < deadline, "the queue did not empty after the takeover");
        std::thread::sleep(Duration::from_secs(2));
    }
    // (slurmdbd hears of the last ones a moment after the queue empties. A controller
    // back from a crash may record a queued job's submission again: such a record of a
    // job that never started stays PENDING; only runs count.)
    let ids = jobs.join(",");
    let runs = cluster.wait_for(
        &format!("sacct -n -X -D -P -j {ids} -o JobID,State"),
        "every job's run in the accounting records",
        |runs| jobs.iter().all(|j| !runs_of(runs, j).is_empty()),
    );
    for job in &jobs {
        assert_eq!(
            runs_of(&runs, job),
            [format!("{job}|COMPLETED")],
            "job {job} ran other than once:\n{runs}"
        );
    }

    // The primary came back by its restart policy and is in charge again.
    assert!(restart_count(&primary) > restarts, "the engine did not start {primary} again");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = controllers(&cluster);
        if now.first().is_some_and(|(name, in_charge, _)| name == "controller" && *in_charge) {
            break;
        }
        assert!(Instant::now() < deadline, "the primary is not in charge again: {now:?}");
        std::thread::sleep(Duration::from_secs(2));
    }

    // A primary that is frozen (its host suspended, or hung on its storage) while the
    // backup takes charge and starts a job, then thawed. Slurm's primary would take
    // charge back with the queue it held in memory, where that job is still pending,
    // and start it again. slurmbox-init notices the absence and restarts it at once,
    // and it reads the shared state first. (Slurm's commands, and slurmd's reports,
    // wait for a frozen primary, which accepts their connections, rather than go to the
    // backup: sacct, which asks slurmdbd, shows what happens meanwhile. The restart
    // comes an instant after the thaw, in which the stale primary may already act:
    // README, "High availability".)
    let job = cluster.sh("sbatch --parsable -o /dev/null --begin=now+15 --wrap 'sleep 5'").ok().stdout;
    let job = job.trim().to_string();
    std::process::Command::new("docker").args(["exec", &primary, "bash", "-c", saved]).status().unwrap();
    let restarts = restart_count(&primary);
    let paused = std::process::Command::new("docker").args(["pause", &primary]).status().unwrap();
    assert!(paused.success());
    let frozen = Instant::now();
    cluster.wait_for(&format!("sacct -n -X -P -j {job} -o State"), "the backup starting the job", |s| {
        s.lines().any(|l| l == "RUNNING")
    });
    eprintln!("ha: the backup started a job {:.1?} after the primary froze", frozen.elapsed());
    let unpaused = std::process::Command::new("docker").args(["unpause", &primary]).status().unwrap();
    assert!(unpaused.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while restart_count(&primary) == restarts {
        assert!(Instant::now() < deadline, "the thawed primary was not made to read the shared state");
        std::thread::sleep(Duration::from_millis(500));
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    while !controllers(&cluster).first().is_some_and(|(_, in_charge, _)| *in_charge) {
        assert!(Instant::now() < deadline, "the primary is not in charge again after its freeze");
        std::thread::sleep(Duration::from_secs(2));
    }
    // The job leaves the queue: the restarted primary took it over as running. (Where the
    // thawed primary launched it again in its instant, Slurm may requeue it, which takes
    // longer on a loaded machine.)
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let queued =
            cluster.sh(&format!("squeue -h -j {job} -t PENDING,CONFIGURING,RUNNING -o '%T %r'")).stdout;
        if queued.trim().is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let shown = cluster
                .sh(&format!("scontrol show job {job}; sacct -D -X -j {job} -o JobID,State,Reason,NodeList"))
                .stdout;
            let log = std::process::Command::new("docker")
                .args(["logs", "--tail", "60", &primary])
                .output()
                .unwrap();
            panic!(
                "the job is still queued 150 s after the primary's restart: {queued}\n{shown}\n--- the primary's log\n{}{}",
                String::from_utf8_lossy(&log.stdout),
                String::from_utf8_lossy(&log.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let runs = cluster.sh(&format!("sacct -n -X -D -P -j {job} -o State")).ok().stdout;
    eprintln!("ha: the job's runs after the thaw: {:?}", runs.lines().collect::<Vec<_>>());

    // A primary that stays away (stopped: the engine leaves it down): the backup takes
    // charge, says so, and the queue goes on; `up` brings the primary back.
    let stopped = std::process::Command::new("docker").args(["stop", &primary]).status().unwrap();
    assert!(stopped.success());
    let stopped_at = Instant::now();
    let mut job = None;
    while job.is_none() && stopped_at.elapsed() < Duration::from_secs(60) {
        let out = cluster.sh("sbatch --parsable -o /dev/null --wrap 'sleep 2'");
        if out.code == 0 {
            job = Some(out.stdout.trim().to_string());
        } else {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let job = job.unwrap_or_else(|| panic!("no sbatch within 60 s of the primary's stop"));
    eprintln!("ha: the backup took a job {:.1?} after the primary stopped", stopped_at.elapsed());
    // While the primary is away, commands answer at once: its name, which Docker forgets,
    // is not looked up again and again (Debian's Slurm tries ten times, a second apart:
    // 10 s for each sbatch, 20 s for squeue).
    for command in ["squeue", "sbatch -o /dev/null --wrap true"] {
        let t = Instant::now();
        let out = cluster.sh(command);
        let took = t.elapsed();
        assert_eq!(out.code, 0, "{command} with the primary away: {}", out.stderr);
        assert!(
            !out.stderr.contains("getaddrinfo"),
            "{command} looked the primary's name up: {}",
            out.stderr
        );
        assert!(took < Duration::from_secs(6), "{command} took {took:.1?} with the primary away");
        eprintln!("ha: {command} answered in {took:.1?} with the primary away");
    }
    // slurmrestd's container too still finds the primary's last address.
    let rest = std::process::Command::new("docker")
        .args(["exec", &format!("{}-rest", cluster.name), "getent", "hosts", "controller"])
        .output()
        .unwrap();
    assert!(rest.status.success(), "the REST container lost the primary's address: {rest:?}");
    let now = controllers(&cluster);
    assert_eq!(now, [("controller".to_string(), false, false), ("controller2".to_string(), true, true)]);
    let status = cluster.run(&["status"], &[]).ok().stdout;
    assert!(status.contains("controllers: controller (primary) DOWN; controller2 ("), "{status}");
    assert!(status.contains(") in charge"), "{status}");
    cluster.wait_for(&format!("sacct -n -X -P -j {job} -o State"), "the job done under the backup", |s| {
        s.trim() == "COMPLETED"
    });
    cluster.run(&["up"], &[]).ok();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !controllers(&cluster).first().is_some_and(|(_, in_charge, _)| *in_charge) {
        assert!(Instant::now() < deadline, "the primary is not in charge after `up`");
        std::thread::sleep(Duration::from_secs(2));
    }
    // Still one cluster: a job runs on both nodes.
    cluster.sh("srun -N2 hostname").ok();

    // A change that makes both controllers again (slurm.conf): the backup is replaced
    // first, then the primary, and the cluster takes a job every second throughout.
    let ids = |name: &str| -> String {
        let out =
            std::process::Command::new("docker").args(["inspect", "-f", "{{.Id}}", name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let backup = format!("{}-controller2", cluster.name);
    let before = (ids(&primary), ids(&backup));
    std::fs::write(
        &spec,
        format!("name = \"{}\"\n[controller]\nbackup = true\n[slurm_conf]\nMinJobAge = 301\n", cluster.name),
    )
    .unwrap();
    let changing = std::sync::atomic::AtomicBool::new(true);
    let (up, refused) = std::thread::scope(|s| {
        let submissions = s.spawn(|| {
            let mut refused = Vec::new();
            let mut n = 0;
            while changing.load(std::sync::atomic::Ordering::SeqCst) {
                let t = Instant::now();
                let out = cluster.sh("sbatch --parsable -o /dev/null --wrap true");
                n += 1;
                if out.code != 0 {
                    refused.push(format!("{}{}", out.stdout, out.stderr));
                }
                std::thread::sleep(Duration::from_secs(1).saturating_sub(t.elapsed()));
            }
            eprintln!("ha: {n} submissions during the change, {} refused", refused.len());
            refused
        });
        let up = slurmbox(&["up", "-f", spec.to_str().unwrap()]);
        changing.store(false, std::sync::atomic::Ordering::SeqCst);
        (up, submissions.join().unwrap())
    });
    let up = up.ok();
    assert!(refused.is_empty(), "sbatch refused during the change: {refused:?}\n{}", up.stderr);
    let after = (ids(&primary), ids(&backup));
    assert!(after.0 != before.0 && after.1 != before.1, "both controllers made again: {before:?} {after:?}");
    let config = cluster.sh("scontrol show config").ok().stdout;
    assert!(config.lines().any(|l| l.starts_with("MinJobAge") && l.contains("= 301")), "{config}");
    let deadline = Instant::now() + Duration::from_secs(90);
    while !controllers(&cluster).first().is_some_and(|(_, in_charge, _)| *in_charge) {
        assert!(Instant::now() < deadline, "the primary is not in charge after the change");
        std::thread::sleep(Duration::from_secs(2));
    }
}
