//! Integration tests: real clusters on the local Docker engine, real jobs.

mod common;

use std::time::{Duration, Instant};

use common::{
    ClusterGuard, article_job, container_identities, labelled_objects, remove_container, slurmbox,
    slurmbox_with_input,
};

/// The default cluster passes `verify`, runs the article's own MPI job unchanged (where
/// the article is there), passes stdio and exit codes through `exec`, is left alone by
/// a second `up`, and `down --purge` leaves nothing behind.
#[test]
fn default_cluster_runs_the_article_job_and_converges() {
    let cluster = ClusterGuard::new("default");
    let up = cluster.run(&["up"], &[]).ok();
    assert!(up.stderr.contains("Waiting for 2 compute nodes to be idle"), "{}", up.stderr);

    let verify = cluster.run(&["verify"], &[]).ok();
    for check in ["sinfo", "scontrol show node", "srun -N2 hostname", "MPI pi"] {
        let row = verify
            .stdout
            .lines()
            .find(|l| l.contains(check))
            .unwrap_or_else(|| panic!("{check} row:\n{}", verify.stdout));
        assert!(row.contains(" ok "), "{row}");
    }

    // Limits hold on the default cluster too: memory and processes; its nodes declare
    // 4 CPUs each, so on a smaller machine their jobs' cores are confined but shared.
    let doctor = cluster.run(&["doctor"], &["--json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&doctor.stdout).unwrap();
    for node in report["nodes"].as_array().unwrap() {
        let limits = &node["limits"]["Ok"];
        for limit in ["memory", "cores", "processes"] {
            assert_eq!(limits[limit]["enforced"], true, "{limit}: {report:#}");
        }
        // Two nodes on one host share its cores, whatever its size.
        assert_eq!(limits["exclusive_cores"], false, "{report:#}");
    }

    // exec: default user, in their home; stdin in, stdout/stderr out, exit code back.
    let who = cluster.sh("id -un; id -u; pwd").ok();
    assert_eq!(who.stdout, "researcher\n1000\n/home/researcher\n");
    let echo =
        slurmbox_with_input(&["exec", "--name", &cluster.name, "--", "tr", "a-z", "A-Z"], b"from stdin\n")
            .ok();
    assert_eq!(echo.stdout, "FROM STDIN\n");
    let failing = cluster.sh("echo to-stderr >&2; exit 7");
    assert_eq!(failing.code, 7);
    assert!(failing.stderr.contains("to-stderr"), "{}", failing.stderr);
    let root = cluster.run(&["exec"], &["--user", "root", "--node", "node1", "--", "id", "-u"]).ok();
    assert_eq!(root.stdout, "0\n");
    // A daemon account starts where its passwd entry says (slurm's home does not exist).
    let slurm = cluster.run(&["exec"], &["--user", "slurm", "--", "sh", "-c", "id -un; pwd"]).ok();
    assert_eq!(slurm.stdout, "slurm\n/\n");

    // The munge key: munge's alone, read-only, and out of users' reach.
    let key = cluster
        .run(
            &["exec"],
            &["--user", "root", "--node", "node1", "--", "stat", "-c", "%a %U", "/etc/munge/munge.key"],
        )
        .ok();
    assert_eq!(key.stdout, "400 munge\n");
    assert_ne!(cluster.sh("cat /etc/munge/munge.key").code, 0);

    // The article's calc.py and script.sh, unchanged: --ntasks=8 -N2 on nodes that
    // declare 4 CPUs each on whatever this machine has. (verify's own MPI job above
    // runs wherever the article is not there.)
    if let Some((calc, script)) = article_job() {
        runs_the_article_job(&cluster, &calc, &script);
    }

    // A second `up` with the same spec restarts nothing.
    let before = container_identities(&cluster.name);
    let again = cluster.run(&["up"], &[]).ok();
    assert!(again.stderr.contains("9 kept"), "{}", again.stderr);
    assert_eq!(container_identities(&cluster.name), before);

    // status --json lists the queue: a held job, with its id, its user and its state.
    let held = cluster.sh("sbatch --parsable --hold --wrap=true").ok();
    let held_id: u64 = held.stdout.trim().parse().unwrap();
    let status = cluster.run(&["status"], &["--json"]).ok();
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let jobs = doc["jobs"].as_array().unwrap();
    let job =
        jobs.iter().find(|j| j["id"] == held_id).unwrap_or_else(|| panic!("job {held_id} not in {jobs:?}"));
    assert_eq!((job["user"].as_str(), job["state"].as_str()), (Some("researcher"), Some("PENDING")), "{job}");
    let table = cluster.run(&["status"], &[]).ok();
    assert!(table.stdout.contains("1 pending (researcher)"), "{}", table.stdout);
    cluster.sh(&format!("scancel {held_id}")).ok();
    let nodes = doc["nodes"].as_array().unwrap();
    let mut roles: Vec<&str> = nodes.iter().map(|n| n["role"].as_str().unwrap()).collect();
    roles.sort_unstable();
    assert_eq!(roles, ["compute", "compute", "controller", "db", "dbd", "login", "metrics", "rest", "web"]);
    for n in nodes.iter().filter(|n| n["role"] == "compute") {
        assert_eq!(n["slurm_state"], "idle", "{n}");
        assert_eq!(n["container_state"], "running", "{n}");
    }

    // A daemon that dies takes its container down with it; Docker restarts the
    // container and the node returns to idle with no one stepping in.
    let node1 = format!("{}-node1", cluster.name);
    assert_eq!(common::restart_count(&node1), 0);
    let _ = cluster.run(&["exec"], &["--user", "root", "--node", "node1", "--", "pkill", "-x", "slurmd"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let states =
            cluster.run(&["exec"], &["--node", "controller", "--", "sinfo", "-h", "-n", "node1", "-o", "%T"]);
        if common::restart_count(&node1) >= 1 && states.stdout.trim() == "idle" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node1 did not come back: {} {}",
            states.stdout,
            states.stderr
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    let logs = cluster.run(&["logs"], &["controller"]).ok();
    assert!(logs.stdout.contains("slurmctld"), "{}", logs.stdout);

    // Purging deletes the accounting history: a script must say --yes.
    let unconfirmed = cluster.run(&["down"], &["--purge"]);
    assert_eq!(unconfirmed.code, 1, "{}", unconfirmed.stderr);
    assert!(unconfirmed.stderr.contains("pass --yes"), "{}", unconfirmed.stderr);
    assert!(!labelled_objects(&cluster.name).is_empty(), "nothing goes without confirmation");
    cluster.run(&["down"], &["--purge", "--yes"]).ok();
    assert_eq!(labelled_objects(&cluster.name), Vec::<String>::new());
}

/// Runs the article's job as it is (its calc.py and script.sh in the default user's
/// home, `sbatch --wait`), and checks the value of pi it prints.
fn runs_the_article_job(cluster: &ClusterGuard, calc: &str, script: &str) {
    slurmbox_with_input(
        &["exec", "--name", &cluster.name, "--", "bash", "-c", "cat > calc.py"],
        calc.as_bytes(),
    )
    .ok();
    slurmbox_with_input(
        &["exec", "--name", &cluster.name, "--", "bash", "-c", "cat > script.sh"],
        script.as_bytes(),
    )
    .ok();
    let job = cluster.sh("sbatch --wait script.sh >/dev/null && cat slurm-*.out").ok();
    let line = job
        .stdout
        .lines()
        .find(|l| l.starts_with("pi is approximately"))
        .unwrap_or_else(|| panic!("job output:\n{}", job.stdout));
    let pi: f64 = line.split_whitespace().nth(3).unwrap().trim_end_matches(',').parse().unwrap();
    assert!((pi - std::f64::consts::PI).abs() < 1e-10, "{line}");
}

/// Growing and shrinking a cluster touches only the nodes that change, a host folder
/// serves as /home, users from the spec exist on every node, and a second cluster
/// lives beside the first.
#[test]
fn spec_changes_converge_and_clusters_live_side_by_side() {
    let cluster = ClusterGuard::new("grow");
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let spec_path = dir.path().join("cluster.toml");
    let write_spec = |count: u32| {
        let text = format!(
            "name = \"{}\"\n[compute]\ncount = {count}\ncpus = 2\n[home]\nhost_path = \"{}\"\n[[user]]\nname = \"alice\"\nuid = 2001\n",
            cluster.name,
            home.display()
        );
        std::fs::write(&spec_path, text).unwrap();
    };
    let spec = spec_path.to_str().unwrap();

    write_spec(1);
    slurmbox(&["up", "-f", spec]).ok();
    let who = cluster.sh("id -un; id -u; echo hello > greeting; srun -N1 hostname").ok();
    assert_eq!(who.stdout, "alice\n2001\nnode1\n");
    let on_host = std::fs::read_to_string(home.join("alice/greeting")).unwrap();
    assert_eq!(on_host, "hello\n");

    // A second cluster beside it, with its own name, network and nodes.
    let other = ClusterGuard::new("beside");
    let other_spec = dir.path().join("other.toml");
    std::fs::write(&other_spec, format!("name = \"{}\"\n[compute]\ncount = 1\n", other.name)).unwrap();
    slurmbox(&["up", "-f", other_spec.to_str().unwrap()]).ok();
    assert_eq!(other.sh("srun -N1 hostname").ok().stdout, "node1\n");

    // Grow to 2: node1, the controller and the login node keep running.
    let before = container_identities(&cluster.name);
    write_spec(2);
    let grown = slurmbox(&["up", "-f", spec]).ok();
    assert!(grown.stderr.contains("1 created, 8 kept"), "{}", grown.stderr);
    let after = container_identities(&cluster.name);
    for kept in &before {
        assert!(after.contains(kept), "{kept:?} was restarted");
    }
    let mut hosts: Vec<String> =
        cluster.sh("srun -N2 hostname").ok().stdout.lines().map(String::from).collect();
    hosts.sort();
    assert_eq!(hosts, ["node1", "node2"]);

    // Shrink back to 1: node2 goes, from Docker and from Slurm.
    write_spec(1);
    let shrunk = slurmbox(&["up", "-f", spec]).ok();
    assert!(shrunk.stderr.contains("1 removed"), "{}", shrunk.stderr);
    assert_eq!(cluster.sh("sinfo -h -N -o %N").ok().stdout, "node1\n");

    // Slurm's state lives on a volume: a queued job survives `down` and `up`, and a
    // controller container removed behind slurmbox's back is replaced by the next `up`
    // without touching the others.
    let job = cluster.sh("sbatch --hold --parsable --wrap 'sleep 1'").ok().stdout.trim().to_string();
    cluster.run(&["down"], &[]).ok();
    slurmbox(&["up", "-f", spec]).ok();
    let queued = cluster.sh(&format!("squeue -h -j {job} -o %T")).ok();
    assert_eq!(queued.stdout.trim(), "PENDING");
    cluster.sh(&format!("scancel {job}")).ok();
    remove_container(&format!("{}-controller", cluster.name));
    let healed = slurmbox(&["up", "-f", spec]).ok();
    assert!(healed.stderr.contains("1 created, 7 kept"), "{}", healed.stderr);
    assert_eq!(cluster.sh("srun -N1 hostname").ok().stdout, "node1\n");

    // Each cluster has its own munge key.
    let key_of = |c: &ClusterGuard| {
        c.run(
            &["exec"],
            &["--user", "root", "--node", "controller", "--", "sha256sum", "/etc/munge/munge.key"],
        )
        .ok()
        .stdout
    };
    assert_ne!(key_of(&cluster), key_of(&other));

    // The other cluster was not disturbed, and taking it down leaves this one running.
    assert_eq!(other.sh("srun -N1 hostname").ok().stdout, "node1\n");
    drop(other);
    assert_eq!(cluster.sh("srun -N1 hostname").ok().stdout, "node1\n");
}

/// `slurm = "26.05"` gives the latest Slurm (Debian forky), and it passes `verify`.
#[test]
fn latest_slurm_release_passes_verify() {
    let cluster = ClusterGuard::new("latest");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    std::fs::write(&spec, format!("name = \"{}\"\nslurm = \"26.05\"\n", cluster.name)).unwrap();
    slurmbox(&["up", "-f", spec.to_str().unwrap()]).ok();
    let version = cluster.sh("sinfo -V").ok();
    assert!(version.stdout.starts_with("slurm-wlm 26.05"), "{}", version.stdout);
    let verify = cluster.run(&["verify"], &[]).ok();
    assert!(verify.stdout.contains("MPI pi"), "{}", verify.stdout);
}

/// `scontrol reconfigure` (what an admin runs after a configuration change) returns
/// within seconds, the controller answers right after it, and a running job goes on.
/// On Slurm 24.11.5 slurmctld used to hang for good: it waits for every open connection
/// before reconfiguring, and each node's init script held one open (issue 13).
fn reconfigure_keeps_the_cluster_answering(tag: &str, slurm: &str) {
    let cluster = ClusterGuard::new(tag);
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    std::fs::write(&spec, format!("name = \"{}\"\nslurm = \"{slurm}\"\n", cluster.name)).unwrap();
    slurmbox(&["up", "-f", spec.to_str().unwrap()]).ok();
    let version = cluster.sh("sinfo -V").ok();
    assert!(version.stdout.starts_with(&format!("slurm-wlm {slurm}.")), "{}", version.stdout);

    let job = cluster.sh("sbatch --parsable --wrap 'sleep 300'").ok().stdout.trim().to_string();
    let state = format!("squeue -h -j {job} -o '%T %N'");
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = loop {
        let out = cluster.sh(&state).ok().stdout;
        if out.starts_with("RUNNING ") {
            break out;
        }
        assert!(Instant::now() < deadline, "job {job} not running after 30 s: {out:?}");
        std::thread::sleep(Duration::from_millis(500));
    };

    // Twice: the controller that the first one re-executed must reconfigure too.
    for round in 1..=2 {
        let start = Instant::now();
        let reconf = cluster.run(&["exec"], &["--user", "root", "--", "scontrol", "reconfigure"]);
        let took = start.elapsed();
        assert_eq!(reconf.code, 0, "reconfigure {round} failed after {took:?}: {}", reconf.stderr);
        assert!(took < Duration::from_secs(5), "reconfigure {round} took {took:?}");
        let start = Instant::now();
        cluster.sh("sinfo -h").ok();
        let took = start.elapsed();
        assert!(took < Duration::from_secs(5), "sinfo after reconfigure {round} took {took:?}");
    }
    assert_eq!(cluster.sh(&state).ok().stdout, before, "job {job} after reconfigure");
}

#[test]
fn reconfigure_keeps_the_cluster_answering_on_24_11() {
    reconfigure_keeps_the_cluster_answering("reconf2411", "24.11");
}

#[test]
fn reconfigure_keeps_the_cluster_answering_on_26_05() {
    reconfigure_keeps_the_cluster_answering("reconf2605", "26.05");
}

/// A spec with a mistake is refused with its location, the help that says what to
/// write instead, exit code 2, and nothing made.
#[test]
fn bad_spec_exits_2_with_location_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let name = common::unique_name("bad");
    for (text, location, help) in [
        (
            format!("name = \"{name}\"\n[compute]\ncuont = 2\n"),
            "cluster.toml:3:1",
            "help: check the spelling; the README lists every key slurmbox understands",
        ),
        (
            format!("name = \"{name}\"\n[compute]\ncount = \"two\"\n"),
            "cluster.toml:3:9",
            "help: see the README for the form of each key",
        ),
        (
            format!("name = \"{name}\"\n[compute]\ncount = 0\n"),
            "cluster.toml:3:9",
            "help: compute.count must be between 1 and 128",
        ),
        (
            format!("name = \"{name}\"\nslurm = \"21.08\"\n"),
            "cluster.toml:2:9",
            "help: use \"24.11\" (Debian trixie, the default) or \"26.05\"",
        ),
        (
            format!("name = \"{name}\"\n[home]\nhost_path = \"/etc\"\n"),
            "cluster.toml:3:13",
            "help: users' homes are made (and handed to their owners) inside it: name a folder of its own",
        ),
        (
            format!("name = \"{name}\"\n[compute]\nmemory_mb = 1\n"),
            "cluster.toml:3:13",
            "help: compute.memory_mb must be between 256 and",
        ),
    ] {
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, &text).unwrap();
        let out = slurmbox(&["up", "-f", path.to_str().unwrap()]);
        assert_eq!(out.code, 2, "{text}\n{}", out.stderr);
        assert!(out.stderr.contains(location), "expected {location} in:\n{}", out.stderr);
        // The report wraps long lines to the terminal's width: compare words.
        let words = out.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(words.contains(help), "expected {help:?} in:\n{}", out.stderr);
        assert_eq!(labelled_objects(&name), Vec::<String>::new());
    }
}

/// `config render` prints the Slurm files for a spec without creating anything.
#[test]
fn config_render_prints_slurm_conf_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let name = common::unique_name("render");
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, format!("name = \"{name}\"\n[compute]\ncount = 3\ncpus = 4\n")).unwrap();
    let out = slurmbox(&["config", "render", "-f", path.to_str().unwrap()]).ok();
    assert!(out.stdout.contains(&format!("ClusterName={name}")), "{}", out.stdout);
    assert!(out.stdout.contains("PartitionName=debug Nodes=compute"), "{}", out.stdout);
    assert!(out.stdout.contains("CPUs=4 Sockets=1 CoresPerSocket=4"), "{}", out.stdout);
    // This engine's cgroup version decides the plugin (v1 here, v2 on most hosts).
    assert!(out.stdout.contains("CgroupPlugin=cgroup/v"), "{}", out.stdout);
    assert!(out.stdout.contains("ConstrainRAMSpace=yes"), "{}", out.stdout);
    assert!(out.stdout.contains("TaskPlugin=task/cgroup,task/affinity"), "{}", out.stdout);
    assert_eq!(labelled_objects(&name), Vec::<String>::new());
}

/// Commands against a cluster that does not exist say so and how to create it.
#[test]
fn missing_cluster_is_reported_with_a_hint() {
    let name = common::unique_name("missing");
    let out = slurmbox(&["exec", "--name", &name, "--", "true"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("slurmbox up --name {name}")), "{}", out.stderr);
    // `down` never reports success for a cluster it did not find.
    for purge in [&["down", "--name", &name][..], &["down", "--purge", "--yes", "--name", &name]] {
        let out = slurmbox(purge);
        assert_eq!(out.code, 1, "{purge:?}: {}", out.stderr);
        assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    }
}

/// `shell` gives an interactive login shell (on a terminal) on the login node, as the
/// default user, and hands back its exit status.
#[test]
fn shell_is_an_interactive_login_on_the_login_node() {
    let cluster = ClusterGuard::new("shell");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    std::fs::write(&spec, format!("name = \"{}\"\n[compute]\ncount = 1\n", cluster.name)).unwrap();
    slurmbox(&["up", "-f", spec.to_str().unwrap()]).ok();
    // `script` gives the shell a real terminal, as a person at a keyboard would.
    let mut child = std::process::Command::new("script")
        .args(["-qec", &format!("{} shell --name {}", common::BIN, cluster.name), "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run script(1)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo \"I am $(id -un) on $(hostname) tty=$(tty)\"; exit 5\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("I am researcher on login tty=/dev/pts/"), "{text}");
    assert_eq!(out.status.code(), Some(5), "{text}");
}

/// CI runs exactly the test command the README gives, and that command installs what
/// it needs itself (a fresh machine has only Docker and Rust).
#[test]
fn ci_runs_the_readmes_test_command() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let section = readme.split("## The two commands").nth(1).unwrap().split("\n## ").next().unwrap();
    let blocks: Vec<&str> =
        section.split("```sh\n").skip(1).map(|b| b.split("```").next().unwrap().trim()).collect();
    assert_eq!(blocks.len(), 2, "{section}");
    let ci = std::fs::read_to_string(format!("{root}/.ci/run")).unwrap();
    assert_eq!(ci.lines().rfind(|l| !l.starts_with('#')), Some(format!("exec {}", blocks[1]).as_str()));
    let test = std::fs::read_to_string(format!("{root}/{}", blocks[1])).unwrap();
    assert!(
        test.lines().any(|l| l == "./scripts/prerequisites"),
        "the test command installs its prerequisites"
    );
}

/// A daemon that stops answering while its process lives (frozen here with SIGSTOP,
/// as a hung slurmctld looked on 24.11.5) is seen and restarted: slurmbox-init's
/// watchdog kills it after 30 s without an answer, Docker restarts the node, and a
/// node the restarted controller no longer knows starts again to register.
#[test]
fn a_hung_daemon_is_restarted() {
    let cluster = ClusterGuard::new("hung");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    std::fs::write(&spec, format!("name = \"{}\"\n[compute]\ncount = 1\n", cluster.name)).unwrap();
    slurmbox(&["up", "-f", spec.to_str().unwrap()]).ok();
    let restarts = |node: &str| -> u32 {
        let out = std::process::Command::new("docker")
            .args(["inspect", "-f", "{{.RestartCount}}", &format!("{}-{node}", cluster.name)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let freeze = |node: &str, daemon: &str| {
        let out = std::process::Command::new("docker")
            .args(["exec", &format!("{}-{node}", cluster.name), "pkill", "-STOP", "-x", daemon])
            .output()
            .unwrap();
        assert!(out.status.success(), "could not freeze {daemon} on {node}");
    };
    let back = |node: &str, within: Duration| {
        let start = Instant::now();
        loop {
            let idle = cluster.sh("sinfo -h -n node1 -o %T");
            if restarts(node) >= 1 && idle.code == 0 && idle.stdout.trim() == "idle" {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "{node} not back after {within:?}: restarts {}",
                restarts(node)
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    };
    // Armed once the daemons have answered.
    std::thread::sleep(Duration::from_secs(3));

    freeze("node1", "slurmd");
    let took = back("node1", Duration::from_secs(120));
    eprintln!("hung slurmd: node1 idle again after {took:?}");

    freeze("controller", "slurmctld");
    let took = back("controller", Duration::from_secs(180));
    eprintln!("hung slurmctld: controller answering and node1 idle again after {took:?}");
    assert_eq!(cluster.sh("srun hostname").ok().stdout, "node1\n");
    let logs = cluster.run(&["logs"], &["controller"]).ok();
    assert!(
        logs.stdout.contains("has not answered for 30 s")
            || logs.stderr.contains("has not answered for 30 s")
    );
    // The engine's health check shows the node's state in `status`.
    let start = Instant::now();
    loop {
        let status = cluster.run(&["status"], &["--json"]).ok().stdout;
        let report: serde_json::Value = serde_json::from_str(&status).unwrap();
        let controller =
            report["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "controller").unwrap().clone();
        if controller["container_status"].as_str().unwrap().ends_with("(healthy)") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "controller never healthy: {controller}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Changing `slurm = "24.11"` to `"26.05"` on a running cluster: every node is made
/// again from the 26.05 image, munge (the same UID in every image) reads the cluster's
/// key, and the queue carries over: a held job is still there and runs once released.
#[test]
fn a_running_cluster_moves_from_24_11_to_26_05() {
    let cluster = ClusterGuard::new("upgrade");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    let write = |slurm: &str| {
        std::fs::write(
            &spec,
            format!("name = \"{}\"\nslurm = \"{slurm}\"\n[compute]\ncount = 1\n", cluster.name),
        )
        .unwrap()
    };
    write("24.11");
    slurmbox(&["up", "-f", spec.to_str().unwrap()]).ok();
    assert!(cluster.sh("sinfo -V").ok().stdout.starts_with("slurm-wlm 24.11"));
    // A finished job in the accounting database, which the upgrade keeps (slurmdbd
    // 26.05 converts its tables).
    let before = cluster.sh("sbatch --parsable --wait --wrap true").ok().stdout.trim().to_string();
    let job =
        cluster.sh("sbatch --parsable --hold --wrap 'echo ran > held.out'").ok().stdout.trim().to_string();
    // slurmctld saves its state at most every few seconds; the job must be in it.
    std::thread::sleep(Duration::from_secs(6));

    write("26.05");
    slurmbox(&["up", "-f", spec.to_str().unwrap()]).ok();
    assert!(cluster.sh("sinfo -V").ok().stdout.starts_with("slurm-wlm 26.05"));
    for node in ["controller", "login", "node1"] {
        let id = cluster.run(&["exec"], &["--user", "root", "--node", node, "--", "id", "-u", "munge"]).ok();
        assert_eq!(id.stdout, "900\n", "munge's UID on {node}");
    }
    assert_eq!(cluster.sh(&format!("squeue -h -j {job} -o %T")).ok().stdout.trim(), "PENDING");
    cluster.run(&["exec"], &["--user", "root", "--", "scontrol", "release", &job]).ok();
    cluster
        .wait_for("cat held.out 2>/dev/null", "the held job to run after the upgrade", |out| out == "ran\n");
    let history = format!("sacct -n -X -P -o jobid,state -j {before},{job}");
    cluster.wait_for(&history, "both jobs in sacct after the upgrade", |out| {
        out == format!("{before}|COMPLETED\n{job}|COMPLETED\n")
    });
}
