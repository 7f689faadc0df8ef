//! A cluster on a remote engine reached over ssh: slurmbox deploys into a lab "host"
//! (a container with its own Docker engine and sshd on its own address) exactly as it
//! would to a real machine, using nothing but ssh access and the engine.

mod common;

use std::time::{Duration, Instant};

use common::lab::Lab;
use common::{slurmbox_env, unique_name};

/// Writes a spec of one cluster `name` with one compute node on lab host 0; returns its path.
fn one_node_spec(lab: &Lab, name: &str, dir: &std::path::Path) -> String {
    let spec = dir.join("cluster.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"{name}\"\n[[host]]\nname = \"lab1\"\nengine = \"{}\"\n[compute]\nper_host = 1\n",
            lab.engine_url(0)
        ),
    )
    .unwrap();
    spec.to_str().unwrap().to_string()
}

/// Issue 13, item 1: sshd with its defaults (MaxStartups 10:30:100, MaxSessions 10)
/// holds against slurmbox: twenty `up`/`status`/`down` cycles, none failing, each `up`
/// over one ssh connection only.
#[test]
fn twenty_up_status_down_cycles_against_default_sshd() {
    const CYCLES: usize = 20;
    let lab = Lab::start("cycles", 1);
    let path = lab.path_env();
    let env = [("PATH", path.as_str())];
    let name = unique_name("cycles");
    let dir = tempfile::tempdir().unwrap();
    let spec = one_node_spec(&lab, &name, dir.path());
    let spec = spec.as_str();
    let _down = SpecGuard { spec, env: &env };
    // The first `up` sends the image; the cycles reuse it.
    slurmbox_env(&["up", "-f", spec], &env).ok();
    slurmbox_env(&["down", "-f", spec], &env).ok();

    let (mut connections, mut times) = (Vec::new(), Vec::new());
    for cycle in 1..=CYCLES {
        let seen = lab.sshd_connections(0);
        let started = Instant::now();
        let up = slurmbox_env(&["up", "-f", spec], &env);
        assert_eq!(up.code, 0, "cycle {cycle}: up failed\n{}", up.stderr);
        times.push(started.elapsed());
        connections.push(lab.sshd_connections(0) - seen);

        let status = slurmbox_env(&["status", "-f", spec, "--json"], &env);
        assert_eq!(status.code, 0, "cycle {cycle}: status failed\n{}", status.stderr);
        let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
        let nodes = doc["nodes"].as_array().unwrap();
        // controller, login, node1, accounting's database and slurmdbd, slurmrestd,
        // Prometheus and the dashboard
        assert_eq!(nodes.len(), 8, "cycle {cycle}: {doc}");
        assert!(nodes.iter().all(|n| n["container_state"] == "running"), "cycle {cycle}: {doc}");

        let down = slurmbox_env(&["down", "-f", spec], &env);
        assert_eq!(down.code, 0, "cycle {cycle}: down failed\n{}", down.stderr);
    }
    let mean = times.iter().sum::<Duration>() / CYCLES as u32;
    eprintln!("ssh connections per up: {connections:?}; warm up took {mean:.2?} on average ({times:.1?})");
    assert!(connections.iter().all(|&n| n == 1), "one ssh connection per up: {connections:?}");
}

/// Issue 13, item 9: a host cut off the network is reported in slurmbox's own words;
/// nothing of ssh's own (its connection sharing's lines included) reaches the terminal.
#[test]
fn cut_off_host_is_reported_in_slurmbox_words_only() {
    let lab = Lab::start("cutoff", 1);
    let path = lab.path_env();
    let env = [("PATH", path.as_str())];
    let name = unique_name("cutoff");
    let dir = tempfile::tempdir().unwrap();
    let spec = one_node_spec(&lab, &name, dir.path());
    let spec = spec.as_str();
    // A host that answers but has no engine at the socket given (or the default one).
    let elsewhere = dir.path().join("elsewhere.toml");
    let text = std::fs::read_to_string(spec)
        .unwrap()
        .replace(&lab.engine_url(0), &format!("{}/run/nothing.sock", lab.engine_url(0)));
    std::fs::write(&elsewhere, text).unwrap();
    let out = slurmbox_env(&["status", "-f", elsewhere.to_str().unwrap()], &env);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let flat = out.stderr.replace('│', " ").split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("the host refused a connection to its engine's socket"), "{}", out.stderr);
    assert!(flat.contains("ssh://user@host/run/user/UID/docker.sock"), "{}", out.stderr);

    // Nothing is created: the host does not answer from the start.
    lab.disconnect(0);
    let runs: Vec<_> = [vec!["up", "-f", spec], vec!["status", "-f", spec]]
        .into_iter()
        .map(|args| (args.join(" "), slurmbox_env(&args, &env)))
        .collect();
    lab.reconnect(0);
    for (args, out) in runs {
        eprintln!("--- {args}\n{}", out.stderr);
        assert_eq!(out.code, 1, "{args}: {}", out.stderr);
        assert!(out.stderr.contains("cannot be reached at ssh://"), "{args}: {}", out.stderr);
        let raw: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| {
                let l = l.trim_start();
                l.starts_with("ssh: ") || l.contains("mux_client") || l.contains("kex_exchange")
            })
            .collect();
        assert!(raw.is_empty(), "{args}: ssh's own lines on stderr: {raw:?}\n{}", out.stderr);
    }
}

#[test]
fn cluster_on_a_remote_engine_over_ssh() {
    let lab = Lab::start_empty("remote", 1);
    let path = lab.path_env();
    let env = [("PATH", path.as_str())];
    let name = unique_name("remote");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"{name}\"\n[[host]]\nname = \"lab1\"\nengine = \"{}\"\n[compute]\nper_host = 2\ncpus = 4\n",
            lab.engine_url(0)
        ),
    )
    .unwrap();
    let spec = spec.to_str().unwrap();

    // The host starts with an empty engine: the image is streamed to it, then the
    // cluster comes up there.
    let up = slurmbox_env(&["up", "-f", spec], &env).ok();
    assert!(up.stderr.contains("Image on lab1 (sent"), "{}", up.stderr);
    assert!(up.stderr.contains("Docker engine on lab1 (ssh://"), "{}", up.stderr);
    let containers =
        lab.ssh(0, &format!("docker ps --filter label=io.slurmbox.cluster={name} --format '{{{{.Names}}}}'"));
    let mut names: Vec<String> =
        String::from_utf8_lossy(&containers.stdout).lines().map(String::from).collect();
    names.sort();
    assert_eq!(
        names,
        [
            format!("{name}-controller"),
            format!("{name}-db"),
            format!("{name}-dbd"),
            format!("{name}-login"),
            format!("{name}-metrics"),
            format!("{name}-node1"),
            format!("{name}-node2"),
            format!("{name}-rest"),
            format!("{name}-web")
        ]
    );

    // Everything else works through the same spec file, over ssh.
    let verify = slurmbox_env(&["verify", "-f", spec], &env).ok();
    assert!(verify.stdout.contains("MPI pi"), "{}", verify.stdout);
    let hosts = slurmbox_env(&["exec", "-f", spec, "--", "srun", "-N2", "hostname"], &env).ok();
    let mut hosts: Vec<&str> = hosts.stdout.lines().collect();
    hosts.sort();
    assert_eq!(hosts, ["node1", "node2"]);
    let failing = slurmbox_env(&["exec", "-f", spec, "--", "bash", "-c", "exit 3"], &env);
    assert_eq!(failing.code, 3);

    // A second `up` finds the image there and changes nothing.
    let again = slurmbox_env(&["up", "-f", spec], &env).ok();
    assert!(again.stderr.contains("present"), "{}", again.stderr);
    assert!(again.stderr.contains("9 kept"), "{}", again.stderr);

    slurmbox_env(&["down", "--purge", "--yes", "-f", spec], &env).ok();
    let left = lab.ssh(0, &format!("docker ps -aq --filter label=io.slurmbox.cluster={name}; docker volume ls -q --filter label=io.slurmbox.cluster={name}"));
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "");
}

/// The article's set-up with one machine more: three hosts, one compute node each on
/// the host's own network, /home on a folder every host shares (the article's
/// GlusterFS mount at /gfsv), and jobs that span all of them.
#[test]
fn cluster_across_three_hosts_runs_jobs_on_all_of_them() {
    let lab = Lab::start("multi", 3);
    let path = lab.path_env();
    let env = [("PATH", path.as_str())];
    let name = unique_name("multi");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    let mut text = format!("name = \"{name}\"\ncontroller = \"pi1\"\n[home]\nhost_path = \"/gfsv/home\"\n");
    for i in 0..3 {
        text.push_str(&format!("[[host]]\nname = \"pi{}\"\nengine = \"{}\"\n", i + 1, lab.engine_url(i)));
    }
    std::fs::write(&spec, text).unwrap();
    let spec = spec.to_str().unwrap();

    // /home must exist on the shared mount of every host first.
    let refused = slurmbox_env(&["up", "-f", spec], &env);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("/gfsv/home does not exist on the host of"), "{}", refused.stderr);
    std::fs::create_dir(lab.shared_dir().join("home")).unwrap();

    let up = slurmbox_env(&["up", "-f", spec], &env).ok();
    assert!(up.stderr.contains("3 compute nodes on 3 hosts"), "{}", up.stderr);

    let hosts = slurmbox_env(&["exec", "-f", spec, "--", "srun", "-N3", "hostname"], &env).ok();
    let mut hosts: Vec<&str> = hosts.stdout.lines().collect();
    hosts.sort();
    assert_eq!(hosts, ["pi1", "pi2", "pi3"]);

    let status = slurmbox_env(&["status", "-f", spec, "--json"], &env).ok();
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let mut placed: Vec<(String, String)> = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["role"] == "compute")
        .map(|n| {
            // Just after the srun above a node may still be finishing its step.
            assert!(["idle", "completing"].contains(&n["slurm_state"].as_str().unwrap_or("")), "{n}");
            (n["node"].as_str().unwrap().to_string(), n["host"].as_str().unwrap().to_string())
        })
        .collect();
    placed.sort();
    let expected: Vec<(String, String)> = (1..=3).map(|i| (format!("pi{i}"), format!("pi{i}"))).collect();
    assert_eq!(placed, expected);

    // exec and logs reach nodes on every host.
    let there =
        slurmbox_env(&["exec", "-f", spec, "--node", "pi3", "--user", "root", "--", "hostname"], &env).ok();
    assert_eq!(there.stdout, "pi3\n");
    let logs = slurmbox_env(&["logs", "-f", spec, "pi2"], &env).ok();
    assert!(logs.stdout.contains("slurmd"), "{}", logs.stdout);

    // Files written on the login node are in the shared folder every host mounts.
    slurmbox_env(&["exec", "-f", spec, "--", "bash", "-c", "echo shared > note"], &env).ok();
    let note = std::fs::read_to_string(lab.shared_dir().join("home/researcher/note")).unwrap();
    assert_eq!(note, "shared\n");

    // The article's checks across the hosts, the MPI job spanning all three.
    let verify = slurmbox_env(&["verify", "-f", spec], &env).ok();
    assert!(verify.stdout.contains("ranks on pi1,pi2,pi3"), "{}", verify.stdout);

    // This machine remembers the cluster: by name alone, from another folder (the
    // tests run in the repository; the spec is in a folder of its own), it is found on
    // its hosts.
    let listed = slurmbox_env(&["list", "--json"], &env).ok();
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let entry = listed.as_array().unwrap().iter().find(|c| c["name"] == name.as_str()).expect("listed");
    assert_eq!(entry["hosts"], serde_json::json!(["pi1", "pi2", "pi3"]));
    let status = slurmbox_env(&["status", "--name", &name, "--json"], &env).ok();
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(doc["hosts"].as_array().unwrap().len(), 3, "{doc}");
    let there = slurmbox_env(&["exec", "--name", &name, "--node", "pi2", "--", "hostname"], &env).ok();
    assert_eq!(there.stdout, "pi2\n");
    let down = slurmbox_env(&["down", "--purge", "--yes", "--name", &name], &env).ok();
    assert!(down.stderr.contains("10 removed"), "{}", down.stderr);
    let gone = slurmbox_env(&["status", "--name", &name], &env);
    assert_eq!(gone.code, 1, "a forgotten cluster is not found: {}", gone.stderr);
    for i in 0..3 {
        let left = lab.ssh(i, &format!("docker ps -aq --filter label=io.slurmbox.cluster={name}"));
        assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "", "host {i}");
    }
}

/// A host whose engine cannot be reached stops `up` with an error naming it, before
/// anything is created on the hosts that can be reached.
#[test]
fn unreachable_host_stops_up_before_anything_is_created() {
    let lab = Lab::start("unreachable", 1);
    let path = lab.path_env();
    let env = [("PATH", path.as_str())];
    let name = unique_name("unreachable");
    // An address on the lab's own network where no host answers.
    let ip = lab.hosts()[0].ip.octets();
    let nobody = format!("ssh://root@{}.{}.{}.99", ip[0], ip[1], ip[2]);
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"{name}\"\n[home]\nhost_path = \"/gfsv/home\"\n[[host]]\nname = \"pi1\"\nengine = \"{}\"\n[[host]]\nname = \"pi2\"\nengine = \"{nobody}\"\n",
            lab.engine_url(0)
        ),
    )
    .unwrap();
    // (Lab hosts start with the test images in their engine: those were there before.)
    let images =
        |lab: &Lab| String::from_utf8_lossy(&lab.ssh(0, "docker images -q | sort").stdout).to_string();
    let images_before = images(&lab);
    let out = slurmbox_env(&["up", "-f", spec.to_str().unwrap()], &env);
    assert!(out.stderr.contains("--skip-unreachable"), "the error names the way on: {}", out.stderr);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains(&format!("host \"pi2\" cannot be reached at {nobody}")), "{}", out.stderr);
    let made = lab.ssh(0, &format!("docker ps -aq --filter label=io.slurmbox.cluster={name}; docker volume ls -q --filter label=io.slurmbox.cluster={name}"));
    assert_eq!(String::from_utf8_lossy(&made.stdout).trim(), "", "something was created on pi1");
    assert_eq!(images(&lab), images_before, "an image was sent to pi1");

    // Asked to, `up` goes on with the hosts that answer.
    std::fs::create_dir_all(lab.shared_dir().join("home")).unwrap();
    let spec = spec.to_str().unwrap();
    let _down = SpecGuard { spec, env: &env };
    let up = slurmbox_env(&["up", "-f", spec, "--skip-unreachable"], &env).ok();
    assert!(up.stderr.contains("Skipping host \"pi2\""), "{}", up.stderr);
    let hosts = slurmbox_env(&["exec", "-f", spec, "--", "srun", "-N1", "hostname"], &env).ok();
    assert_eq!(hosts.stdout, "pi1\n");
}

/// Runs `down --purge -f SPEC` when dropped, on panic too.
struct SpecGuard<'a> {
    spec: &'a str,
    env: &'a [(&'a str, &'a str)],
}

impl Drop for SpecGuard<'_> {
    fn drop(&mut self) {
        let out = slurmbox_env(&["down", "--purge", "--yes", "--quiet", "-f", self.spec], self.env);
        if out.code != 0 {
            eprintln!("cleanup of {} failed: {}", self.spec, out.stderr);
        }
    }
}
