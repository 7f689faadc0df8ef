//! Clusters over several lab hosts that change while they run: a host joins and leaves
//! (`slurmbox host add/remove`), and a host falls off the network and comes back.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::lab::Lab;
use common::lab_cluster::LabCluster;
use common::runs_of;

/// The id of a batch job submitted as the default user with `sbatch --parsable ARGS`.
fn submit(cluster: &LabCluster, args: &str) -> String {
    cluster.as_user(&format!("sbatch --parsable {args}"))
}

/// Slurm's state of a job ("RUNNING", "COMPLETED", ...).
fn job_state(cluster: &LabCluster, job: &str) -> String {
    let out = cluster.on_controller(&format!("scontrol show job {job}"));
    out.split_whitespace().find_map(|w| w.strip_prefix("JobState=")).unwrap_or("").to_string()
}

fn wait_job(cluster: &LabCluster, job: &str, state: &str, timeout: Duration) {
    let start = Instant::now();
    // (A look that fails says so rather than end the test: it only explains.)
    let why = || {
        let out = cluster.docker_exec(
            0,
            "controller",
            None,
            &format!(
                "scontrol show job {job}; echo \"--- queue\"; squeue -a -o \"%i %T %r %S %N\"; \
                 echo \"--- nodes\"; sinfo -N -o \"%N %T %E\""
            ),
        );
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    // A job that waits 10 s to start is unusual here: what it waits for is printed once,
    // even when it then starts in time (a later failure may stem from it).
    let mut told = false;
    loop {
        let now = job_state(cluster, job);
        if now == state {
            return;
        }
        if start.elapsed() >= timeout {
            panic!("job {job} is {now}, not {state}, after {timeout:?}:\n{}", why());
        }
        if !told && state == "RUNNING" && start.elapsed() >= Duration::from_secs(10) {
            eprintln!("job {job} is still {now}, not {state}, after 10 s:\n{}", why());
            told = true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Container id and start time of each of the cluster's containers on lab host `host`.
fn identities(cluster: &LabCluster, host: usize) -> Vec<String> {
    let list = cluster.lab.ssh_ok(
        host,
        &format!(
            "docker ps -q --filter label=io.slurmbox.cluster={} | xargs -r docker inspect --format '{{{{.Name}}}} {{{{.Id}}}} {{{{.State.StartedAt}}}}'",
            cluster.name
        ),
    );
    let mut lines: Vec<String> = list.lines().map(String::from).collect();
    lines.sort();
    lines
}

/// Issue acceptance 3: a fourth host joins a running three-host cluster and takes
/// jobs; then it leaves, after the job it runs has finished. Neither disturbs the
/// controller or a job running elsewhere.
#[test]
fn hosts_join_and_leave_a_running_cluster() {
    let lab = Lab::start("join", 4);
    let cluster = LabCluster::new(&lab, "join", 3);
    cluster.slurmbox(&["up"], &[]).ok();
    let before = identities(&cluster, 0);
    // Long enough to outlast the join on a loaded machine (seen to take over 25 s while
    // the node image was sent to the new host).
    let running = submit(&cluster, "-w pi2 --wrap \"sleep 60\"");
    wait_job(&cluster, &running, "RUNNING", Duration::from_secs(30));

    let add = cluster.slurmbox(&["host", "add", "pi4"], &["--engine", &lab.engine_url(3)]).ok();
    assert!(add.stderr.contains("Added host \"pi4\""), "{}", add.stderr);
    assert!(add.stderr.contains("1 created"), "only pi4's node is made: {}", add.stderr);
    let spec = std::fs::read_to_string(cluster.spec()).unwrap();
    assert!(spec.contains(&format!("name = \"pi4\"\nengine = \"{}\"", lab.engine_url(3))), "{spec}");
    assert_eq!(identities(&cluster, 0), before, "the controller and login node were not restarted");
    assert_eq!(job_state(&cluster, &running), "RUNNING", "the job on pi2 goes on");
    assert_eq!(cluster.as_user("srun -w pi4 hostname"), "pi4");
    assert_eq!(cluster.srun_hostnames(4), ["pi1", "pi2", "pi3", "pi4"]);

    // A host with jobs leaves once they are done; no new job lands on it meanwhile.
    let last = submit(&cluster, "-w pi4 --wrap \"sleep 8; hostname > on-pi4.txt\"");
    // Seen once to wait over 30 s while the other lab tests loaded this 2-core machine
    // (it starts at once alone): given a minute, and its reason printed if it waits on.
    wait_job(&cluster, &last, "RUNNING", Duration::from_secs(60));
    let remove = cluster.slurmbox(&["host", "remove", "pi4"], &[]).ok();
    assert!(remove.stderr.contains("Draining pi4"), "{}", remove.stderr);
    wait_job(&cluster, &last, "COMPLETED", Duration::from_secs(5));
    let note = std::fs::read_to_string(lab.shared_dir().join("home/researcher/on-pi4.txt")).unwrap();
    assert_eq!(note, "pi4\n");
    assert_eq!(cluster.node_state("pi4"), "", "Slurm forgot pi4");
    let left = lab.ssh_ok(
        3,
        &format!(
            "docker ps -aq --filter label=io.slurmbox.cluster={0}; docker volume ls -q --filter label=io.slurmbox.cluster={0}",
            cluster.name
        ),
    );
    assert_eq!(left.trim(), "", "nothing of the cluster is left on the fourth host");
    let spec = std::fs::read_to_string(cluster.spec()).unwrap();
    assert!(!spec.contains("pi4"), "{spec}");
    wait_job(&cluster, &running, "COMPLETED", Duration::from_secs(75));
    assert_eq!(identities(&cluster, 0), before, "the controller and login node were not restarted");

    // The controller's host cannot leave; a host the spec does not list is named. Both
    // are usage mistakes (exit 2).
    let refused = cluster.slurmbox(&["host", "remove", "pi1"], &[]);
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("runs the controller"), "{}", refused.stderr);
    let unknown = cluster.slurmbox(&["host", "remove", "pi9"], &[]);
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("has no host \"pi9\" (it has: pi1, pi2, pi3)"), "{}", unknown.stderr);

    // A host that does not answer leaves only by force: Slurm forgets its node, the
    // others go on, and the admin is told what stays on it.
    let on_pi3 =
        format!("docker ps -a --format '{{{{.Names}}}}' --filter label=io.slurmbox.cluster={}", cluster.name);
    let kept = lab.ssh_ok(2, &on_pi3);
    assert_eq!(kept.trim(), format!("{}-pi3", cluster.name));
    lab.disconnect(2);
    let refused = cluster.slurmbox(&["host", "remove", "pi3"], &[]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("host \"pi3\" cannot be reached"), "{}", refused.stderr);
    assert_ne!(cluster.node_state("pi3"), "", "Slurm still knows pi3 without --force");
    let forced = cluster.slurmbox(&["host", "remove", "pi3"], &["--force"]);
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    // (The report is wrapped to the terminal's width.)
    let said = forced.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    let left = format!("pi3 did not answer: its containers ({}-pi3) and volumes", cluster.name);
    assert!(said.contains(&left) && said.contains("docker rm -f"), "{}", forced.stderr);
    assert_eq!(cluster.on_controller("sinfo -h -N -o %N | sort -u"), "pi1\npi2", "Slurm forgot pi3");
    assert_eq!(cluster.srun_hostnames(2), ["pi1", "pi2"]);
    let job = submit(&cluster, "-N2 --wrap \"srun hostname\"");
    // (Seen to wait 31 s for Resources right after the srun above: given 90 s.)
    wait_job(&cluster, &job, "COMPLETED", Duration::from_secs(90));
    let spec = std::fs::read_to_string(cluster.spec()).unwrap();
    assert!(!spec.contains("pi3"), "{spec}");
    // What the message named is what is left there.
    lab.reconnect(2);
    assert_eq!(lab.ssh_ok(2, &on_pi3).trim(), kept.trim(), "pi3 keeps its container");
}

/// Issue acceptance 2: a host cut off the network while a job runs elsewhere. Its
/// node goes down within seconds, the other job finishes, new jobs run on the hosts
/// left; once it is plugged back in, the node returns to service by itself.
#[test]
fn host_cut_off_the_network_goes_down_and_comes_back_by_itself() {
    let lab = Lab::start("cut", 3);
    let cluster = LabCluster::new(&lab, "cut", 3);
    cluster.slurmbox(&["up"], &[]).ok();
    let job = submit(&cluster, "-w pi2 --wrap \"sleep 30; echo finished > after-cut.txt\"");
    wait_job(&cluster, &job, "RUNNING", Duration::from_secs(30));

    lab.disconnect(2);
    let cut = Instant::now();
    cluster.wait_node("pi3", &["down*"], Duration::from_secs(90));
    eprintln!("pi3 marked down {:.1}s after it was cut off", cut.elapsed().as_secs_f64());

    // The other hosts go on: the running job finishes, new jobs run there.
    wait_job(&cluster, &job, "COMPLETED", Duration::from_secs(60));
    let out = std::fs::read_to_string(lab.shared_dir().join("home/researcher/after-cut.txt")).unwrap();
    assert_eq!(out, "finished\n");
    // Users go on working through slurmbox: the login node's host answers.
    let out = cluster.slurmbox(&["exec"], &["--", "srun", "-N2", "hostname"]).ok();
    let mut names: Vec<&str> = out.stdout.lines().collect();
    names.sort();
    assert_eq!(names, ["pi1", "pi2"]);

    // status names the host that does not answer, and still shows the others.
    let doc = status_json(&cluster);
    let hosts = doc["hosts"].as_array().unwrap();
    let reachable: Vec<(String, bool)> = hosts
        .iter()
        .map(|h| (h["host"].as_str().unwrap().to_string(), h["reachable"].as_bool().unwrap()))
        .collect();
    assert_eq!(reachable, [("pi1".into(), true), ("pi2".into(), true), ("pi3".into(), false)]);
    let pi3 = doc["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "pi3").unwrap();
    assert_eq!(pi3["slurm_state"], "down*", "{pi3}");

    lab.reconnect(2);
    let back = cluster.wait_node("pi3", &["idle"], Duration::from_secs(240));
    eprintln!("pi3 idle again {:.1}s after it was reconnected", back.as_secs_f64());
    assert_eq!(cluster.srun_hostnames(3), ["pi1", "pi2", "pi3"]);
}

/// The article's networking: every container on the hosts' LAN at a fixed address of
/// a macvlan network, two compute nodes per host.
#[test]
fn macvlan_gives_every_node_an_address_on_the_hosts_lan() {
    let lab = Lab::start("macvlan", 2);
    let [a, b, c, _] = lab.hosts()[0].ip.octets();
    let network = format!(
        "[compute]\nper_host = 2\ncpus = 1\n[network]\nmode = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"{a}.{b}.{c}.0/24\"\ngateway = \"{a}.{b}.{c}.1\"\nip_range = \"{a}.{b}.{c}.192/28\"\n"
    );
    let cluster = LabCluster::with(&lab, "macvlan", 2, &network);
    cluster.slurmbox(&["up"], &[]).ok();

    // Controller and login first, then the nodes host by host.
    let expected = [
        (0, "controller", 192),
        (0, "login", 193),
        (0, "pi1-1", 194),
        (0, "pi1-2", 195),
        (1, "pi2-1", 196),
        (1, "pi2-2", 197),
    ];
    for (host, node, last) in expected {
        let ip = lab.ssh_ok(
            host,
            &format!(
                "docker inspect --format '{{{{range .NetworkSettings.Networks}}}}{{{{.IPAddress}}}}{{{{end}}}}' {}-{node}",
                cluster.name
            ),
        );
        assert_eq!(ip.trim(), format!("{a}.{b}.{c}.{last}"), "{node}");
    }
    assert_eq!(cluster.srun_hostnames(4), ["pi1-1", "pi1-2", "pi2-1", "pi2-2"]);
    // The article's checks, the MPI job's ranks on both hosts.
    let verify = cluster.slurmbox(&["verify"], &[]).ok();
    assert!(verify.stdout.contains("ranks on pi1-1,pi1-2,pi2-1,pi2-2"), "{}", verify.stdout);
}

/// A Pi lab plus an x86 box: one host runs the arm64 node image (on this x86 machine
/// through qemu-user emulation, as an x86 build machine makes it), the other amd64.
#[test]
fn mixed_amd64_and_arm64_hosts_run_one_cluster() {
    // scripts/test builds the arm64 image while the other tests run.
    common::lab::await_arm64_image();
    let lab = Lab::start("mixed", 2);
    // Appended after the last [[host]] table: it sets pi2's architecture.
    let cluster = LabCluster::with(&lab, "mixed", 2, "arch = \"arm64\"\n");
    cluster.slurmbox(&["up"], &[]).ok();

    let out = cluster.as_user("srun -N2 bash -c \"echo \\$(hostname) \\$(uname -m)\"");
    let mut machines: Vec<&str> = out.lines().collect();
    machines.sort();
    assert_eq!(machines, ["pi1 x86_64", "pi2 aarch64"]);
    // Each node carries its architecture as a Slurm feature.
    assert_eq!(cluster.as_user("srun -C arm64 uname -m"), "aarch64");
    assert_eq!(cluster.as_user("srun -C amd64 uname -m"), "x86_64");
    // The article's checks, its MPI job with ranks on both architectures (slow here:
    // the arm64 ranks run under emulation).
    let verify = cluster.slurmbox(&["verify"], &[]).ok();
    assert!(verify.stdout.contains("ranks on pi1,pi2"), "{}", verify.stdout);

    let doc = status_json(&cluster);
    // Each host's node image (the controller's host has the accounting image too).
    let images: Vec<Vec<String>> = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["images"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_string()).collect())
        .collect();
    assert!(images[0].iter().any(|i| i.starts_with("slurmbox/node:24.11-")), "{images:?}");
    assert!(images[1].iter().any(|i| i.starts_with("slurmbox/node-arm64:24.11-")), "{images:?}");
    assert!(
        !images[1].iter().any(|i| i.starts_with("slurmbox/accounting")),
        "only the controller's host: {images:?}"
    );
}

/// The shared /home slurmbox provides itself: a GlusterFS volume replicated to every
/// host. What a job writes on one host is read on the others and every host's brick
/// holds a copy; a joining host gets a copy of what is there, a leaving one takes
/// nothing with it, and a host whose storage container restarts mounts /home again by
/// itself.
#[test]
fn glusterfs_home_is_shared_and_replicated_across_hosts() {
    let lab = Lab::start("gluster", 3);
    let cluster = LabCluster::glusterfs(&lab, "gluster", 2);
    // A host whose root mount does not share mounts with containers (not systemd's
    // default) cannot pass /home on: `up` says what to run there.
    lab.ssh_ok(1, "mount --make-rprivate /");
    let refused = cluster.slurmbox(&["up"], &[]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    // (The report is wrapped to the terminal's width.)
    let flat = refused.stderr.replace('│', " ").split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("pi2 does not share mounts under"), "{}", refused.stderr);
    assert!(flat.contains("run `mount --make-rshared /` on that host"), "{}", refused.stderr);
    lab.ssh_ok(1, "mount --make-rshared /");
    let up = cluster.slurmbox(&["up"], &[]).ok();
    assert!(up.stderr.contains("Shared /home (GlusterFS on 2 hosts)"), "{}", up.stderr);
    assert!(up.stderr.contains("created volume home on"), "{}", up.stderr);
    // Waits until host `host`'s brick (the volume's copy there) holds `file` with
    // `text`: a client that has not reached every brick yet writes to those it has, and
    // GlusterFS's self-heal copies the file to the others moments later. Returns the wait.
    let on_brick = |host: usize, file: &str, text: &str| {
        let start = Instant::now();
        let storage = format!("storage-pi{}", host + 1);
        loop {
            let out =
                cluster.docker_exec(host, &storage, None, &format!("cat /srv/brick/home/researcher/{file}"));
            if String::from_utf8_lossy(&out.stdout).trim() == text {
                return start.elapsed();
            }
            assert!(start.elapsed() < Duration::from_secs(90), "{file} never reached pi{}'s brick", host + 1);
            std::thread::sleep(Duration::from_millis(500));
        }
    };

    cluster.as_user("srun -w pi2 bash -c \"hostname > from-pi2.txt\"");
    assert_eq!(cluster.as_user("cat from-pi2.txt"), "pi2", "written on pi2, read on pi1's login node");
    for host in [0, 1] {
        let waited = on_brick(host, "from-pi2.txt", "pi2");
        eprintln!("from-pi2.txt on pi{}'s brick after {:.1}s", host + 1, waited.as_secs_f64());
    }
    // status: each host's nodes have the volume, both bricks answer.
    let doc = status_json(&cluster);
    let mounted: Vec<&serde_json::Value> =
        doc["hosts"].as_array().unwrap().iter().map(|h| &h["home_mounted"]).collect();
    assert_eq!(mounted, [true, true], "{doc}");
    let home = &doc["shared_home"];
    assert_eq!(
        (home["volume"].as_str(), home["bricks"].as_u64(), home["online"].as_u64()),
        (Some("Started"), Some(2), Some(2)),
        "{doc}"
    );
    assert_eq!(home["split_brain"], 0, "{doc}");
    // The article's checks, the MPI job's output on the shared /home.
    let verify = cluster.slurmbox(&["verify"], &[]).ok();
    assert!(verify.stdout.contains("ranks on pi1,pi2"), "{}", verify.stdout);

    // A GlusterFS /home on one host is a one-brick volume; another cluster's on a host
    // that already holds one is refused before anything is made (GlusterFS's ports).
    let on_host = |host: usize| {
        let engine = lab.engine_url(host);
        move |name: &str| {
            format!(
                "name = \"{name}\"\n[home]\nshared = \"glusterfs\"\n[[host]]\nname = \"pi{}\"\nengine = \"{engine}\"\n",
                host + 1
            )
        }
    };
    let solo = LabCluster::custom(&lab, "solo", on_host(2));
    let up = solo.slurmbox(&["up"], &[]).ok();
    assert!(up.stderr.contains("Shared /home (GlusterFS on 1 host)"), "{}", up.stderr);
    let wrote =
        solo.slurmbox(&["exec"], &["--", "bash", "-c", "echo solo > solo.txt && srun cat solo.txt"]).ok();
    assert_eq!(wrote.stdout, "solo\n");
    let taken = LabCluster::custom(&lab, "taken", on_host(0));
    let refused = taken.slurmbox(&["up"], &[]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    // (The report is wrapped to the terminal's width, names too.)
    let squashed: String = refused.stderr.chars().filter(|c| !c.is_whitespace() && *c != '│').collect();
    let said = format!("alreadyholdstheGlusterFS/homeofcluster\"{}\"", cluster.name);
    assert!(squashed.contains(&said), "{}", refused.stderr);
    let made = lab.ssh_ok(0, &format!("docker ps -aq --filter label=io.slurmbox.cluster={}", taken.name));
    assert_eq!(made, "", "nothing of the refused cluster was made");
    solo.slurmbox(&["down"], &["--purge", "--yes"]).ok();

    // A third host joins: its brick is added and filled with what is already there.
    let add = cluster.slurmbox(&["host", "add", "pi3"], &["--engine", &lab.engine_url(2)]).ok();
    assert!(add.stderr.contains("brick to home (replica 3)"), "{}", add.stderr);
    assert_eq!(cluster.as_user("srun -w pi3 cat from-pi2.txt"), "pi2");
    let waited = on_brick(2, "from-pi2.txt", "pi2");
    eprintln!("pi3's brick had the existing files {:.1}s after it joined", waited.as_secs_f64());
    cluster.as_user("srun -w pi3 bash -c \"hostname > from-pi3.txt\"");

    // pi2's storage container restarts: pi2's node gets /home back by itself.
    lab.ssh_ok(1, &format!("docker restart {}-storage-pi2", cluster.name));
    let start = Instant::now();
    loop {
        let out = cluster.docker_exec(1, "pi2", Some("researcher"), "cat /home/researcher/from-pi3.txt");
        if String::from_utf8_lossy(&out.stdout).trim() == "pi3" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "pi2 has no /home after its storage restarted");
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!("pi2's /home back {:.1}s after its storage container restarted", start.elapsed().as_secs_f64());

    // pi3 leaves: what it wrote stays, on the two bricks left.
    cluster.slurmbox(&["host", "remove", "pi3"], &[]).ok();
    assert_eq!(cluster.as_user("cat from-pi3.txt"), "pi3");
    on_brick(1, "from-pi3.txt", "pi3");
    let info = cluster.docker_exec(0, "storage-pi1", None, "gluster volume info home");
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("Number of Bricks: 1 x 2 = 2"), "{info}");
    // pi2's brick came back with its storage container moments ago: status says so once
    // its glusterd has started it again.
    let start = Instant::now();
    loop {
        let status = cluster.slurmbox(&["status"], &[]).ok();
        if status.stdout.contains("shared /home: GlusterFS volume started, 2 of 2 bricks online") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "pi2's brick is not back:\n{}", status.stdout);
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// What `slurmbox status --json` says about the cluster now.
fn status_json(cluster: &LabCluster) -> serde_json::Value {
    let status = cluster.slurmbox(&["status"], &["--json"]).ok();
    serde_json::from_str(&status.stdout).unwrap()
}

/// `status --json`'s controllers as (name, in charge), and its hosts that answer.
fn controllers_and_hosts(doc: &serde_json::Value) -> (Vec<(String, bool)>, Vec<String>) {
    let controllers = doc["controllers"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|c| {
            (c["name"].as_str().unwrap_or_default().to_string(), c["in_charge"].as_bool().unwrap_or(false))
        })
        .collect();
    let hosts = doc["hosts"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .filter(|h| h["reachable"].as_bool() == Some(true))
        .map(|h| h["host"].as_str().unwrap_or_default().to_string())
        .collect();
    (controllers, hosts)
}

/// Issue 23's lab acceptance: the backup controller on a second host, the controllers'
/// state on the GlusterFS volume slurmbox runs on the three hosts (a brick on each).
/// The primary's host is lost twice while jobs run and wait elsewhere: first cut off
/// the network (its slurmctld, slurmdbd and login node run on, alone: the state takes
/// no writes there, so slurmbox-init stops that slurmctld), then its power cut
/// (everything on it stops at once). Each time the backup takes charge; the queue goes
/// on and a job submitted meanwhile runs; accounting waits for slurmdbd. The host comes
/// back: the primary takes charge again, and every job ran exactly once.
#[test]
fn backup_controller_on_another_host_outlives_the_primarys_host() {
    // Takeovers are timed, and Slurm's timeouts (MessageTimeout 10 s) are short: in the
    // whole suite this lab waits until the arm64 image, built under emulation beside
    // the tests, is there, rather than share the cores with that build (the other labs
    // take their turns meanwhile).
    common::lab::await_arm64_image();
    let lab = Lab::start("hostha", 3);
    let cluster = LabCluster::with_backup(&lab, "hostha", 3);
    let up = cluster.slurmbox(&["up"], &[]);
    if up.code != 0 {
        let logs = |node: &str| cluster.slurmbox(&["logs", node], &["--tail", "40"]);
        let primary = logs("controller");
        let on_pi2 = lab.ssh(
            1,
            &format!(
                "docker ps -a --format '{{{{.Names}}}} {{{{.Status}}}}'; docker logs --tail 40 {}-controller2",
                cluster.name
            ),
        );
        panic!(
            "up failed:\n{}\n--- controller\n{}{}\n--- pi2's host\n{}{}",
            up.stderr,
            primary.stdout,
            primary.stderr,
            String::from_utf8_lossy(&on_pi2.stdout),
            String::from_utf8_lossy(&on_pi2.stderr)
        );
    }
    let ping = cluster.on_controller("scontrol ping");
    assert!(ping.contains(" at controller is UP") && ping.contains(" at controller2 is UP"), "{ping}");
    let backup = lab.ssh_ok(
        1,
        &format!("docker ps --format '{{{{.Names}}}}' --filter name={}-controller2", cluster.name),
    );
    assert_eq!(backup.trim(), format!("{}-controller2", cluster.name), "the backup runs on pi2's host");
    let (controllers, _) = controllers_and_hosts(&status_json(&cluster));
    assert_eq!(controllers, [("controller".to_string(), true), ("controller2".to_string(), false)]);
    // The state is on GlusterFS with a brick on each host, and both controllers see it.
    let doctor = cluster.slurmbox(&["doctor"], &[]);
    assert!(
        doctor.stdout.contains("controllers' state: /var/spool/slurmctld shared by")
            && doctor.stdout.contains("GlusterFS volume ctld Started: 3 of 3 bricks online"),
        "doctor:\n{}{}",
        doctor.stdout,
        doctor.stderr
    );

    let mut jobs = loses_the_primarys_host(&cluster, Loss::CutOff);
    jobs.extend(loses_the_primarys_host(&cluster, Loss::PoweredOff));
    version_move_across_hosts(&cluster, &jobs);
}

/// How the primary's host is lost.
#[derive(Debug, Clone, Copy)]
enum Loss {
    /// Off the network, everything on it running on.
    CutOff,
    /// Its power cut: everything on it stops at once.
    PoweredOff,
}

impl Loss {
    fn start(self, lab: &Lab) {
        match self {
            Loss::CutOff => lab.disconnect(0),
            Loss::PoweredOff => lab.power_off(0),
        }
    }

    fn end(self, lab: &Lab) {
        match self {
            Loss::CutOff => lab.reconnect(0),
            Loss::PoweredOff => lab.power_on(0),
        }
    }
}

/// With a job running on each of pi2 and pi3 and six queued, the primary's host is
/// lost (`loss`), then back; returns the jobs, each of which ran exactly once.
fn loses_the_primarys_host(cluster: &LabCluster, loss: Loss) -> Vec<String> {
    let lab = cluster.lab;
    // A job running on each of pi2 and pi3, six waiting behind them (none on pi1): the
    // running ones hold their nodes whole, so nothing starts or ends until the host is
    // lost, and the state the backup reads is the queue as it is.
    let mut jobs = vec![
        submit(cluster, "-w pi2 --exclusive -o /dev/null --wrap \"sleep 40\""),
        submit(cluster, "-w pi3 --exclusive -o /dev/null --wrap \"sleep 40\""),
    ];
    for _ in 0..6 {
        jobs.push(submit(cluster, "-x pi1 -o /dev/null --wrap \"sleep 1\""));
    }
    let submitted = Instant::now();
    wait_job(cluster, &jobs[0], "RUNNING", Duration::from_secs(60));
    wait_job(cluster, &jobs[1], "RUNNING", Duration::from_secs(60));
    // (Once, on the loaded CI machine, the first was seen running only after the
    // second, 40 s long, had ended: the time is printed.)
    eprintln!("hostha: both long jobs ran {:.1?} after their submission ({loss:?})", submitted.elapsed());
    // slurmctld writes its queue a few seconds after it changes (README, "High
    // availability"): the host is lost once the queue of eight is written.
    cluster.on_controller(
        "m=$(mktemp) && for _ in $(seq 100); do [ /var/spool/slurmctld/job_state -nt \"$m\" ] && break; sleep 0.1; done",
    );

    // A lock on the state volume held by pi1's host (as its controller holds one while
    // it writes its state): once the host is cut off, the other bricks must let it go
    // before the backup takes charge, or every write to the state waits for it.
    let held = matches!(loss, Loss::CutOff).then(|| StateLock::hold(cluster));
    loss.start(lab);
    let lost = Instant::now();
    if let Some(held) = &held {
        held.taken_on_pi2_after_the_cut(lost);
    }
    // Users on pi2 go on: the backup answers squeue and takes a job. (Within 30 s is
    // bench/takeover.sh's target on one host; here it takes 22-25 s. Now and then, on the
    // loaded CI machine, the backup in charge stopped answering until slurmbox-init's
    // watchdog restarted it 30 s later, and it took charge again: README, "High
    // availability". 100 s covers that; the time is printed.)
    let on_pi2 = |script: &str| cluster.docker_exec(1, "pi2", Some("researcher"), script);
    let (mut during, mut said) = (None, String::new());
    while during.is_none() && lost.elapsed() < Duration::from_secs(100) {
        let out = on_pi2("squeue -h -o %i >/dev/null && sbatch --parsable -x pi1 -o /dev/null --wrap true");
        if out.status.success() {
            during = Some(String::from_utf8_lossy(&out.stdout).trim().to_string());
        } else {
            said =
                format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let during = during.unwrap_or_else(|| {
        let backup = lab.ssh(
            1,
            &format!(
                "docker logs {}-controller2 2>&1 | grep -v 'PersistInit\\|persist_conn\\|Registering slurmctld' | tail -40",
                cluster.name
            ),
        );
        panic!(
            "no sbatch and squeue on pi2 within 100 s of pi1's host {loss:?}; the last try said:\n{said}\n\
             --- the backup's log\n{}",
            String::from_utf8_lossy(&backup.stdout)
        )
    });
    eprintln!("hostha: the backup took a job {:.1?} after the primary's host was {loss:?}", lost.elapsed());
    jobs.push(during);
    // (`status` asks the controllers that run, and names the backup in charge: within
    // 30 s, or 100 s when the backup stalls after its first answers and slurmbox-init's
    // watchdog restarts it, as above; the time is printed.)
    let asked = Instant::now();
    let deadline = asked + Duration::from_secs(100);
    loop {
        let (controllers, hosts) = controllers_and_hosts(&status_json(cluster));
        assert_eq!(hosts, ["pi2", "pi3"], "status names the hosts that answer");
        if controllers.contains(&("controller2".to_string(), true)) {
            eprintln!("hostha: status named the backup in charge after {:.1?}", asked.elapsed());
            break;
        }
        if Instant::now() > deadline {
            let ping = lab.ssh(1, &format!("docker exec {}-controller2 scontrol ping", cluster.name));
            let log = backup_log(cluster);
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "status: the backup in charge: {controllers:?}\n--- scontrol ping on pi2: {ping:?}\n--- the backup's log, last lines first\n{}",
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }

    // Every job leaves the queue while the host is away, the one submitted meanwhile too.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let out = on_pi2("squeue -h -o %i");
        if out.status.success() && String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the queue did not empty under the backup: {out:?}");
        std::thread::sleep(Duration::from_secs(2));
    }

    // The host comes back: the primary takes charge again, pi1 returns to service.
    loss.end(lab);
    if let Some(held) = held {
        held.release();
    }
    let back_at = unix_time_on(lab, 1);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (controllers, _) = controllers_and_hosts(&status_json(cluster));
        if controllers.first().is_some_and(|(name, in_charge)| name == "controller" && *in_charge) {
            break;
        }
        assert!(Instant::now() < deadline, "the primary is not in charge again: {controllers:?}");
        std::thread::sleep(Duration::from_secs(2));
    }
    cluster.wait_node("pi1", &["idle"], Duration::from_secs(120));
    srun_on_all_three_after_the_return(cluster);

    // Nothing lost, nothing run twice: slurmdbd has every job's one run, the records the
    // backup kept while slurmdbd was away included. (A controller back from a crash may
    // record a queued job's submission again: such a record stays PENDING; only runs
    // count.)
    let ids = jobs.join(",");
    let deadline = Instant::now() + Duration::from_secs(120);
    let runs = loop {
        let runs = cluster.on_controller(&format!("sacct -n -X -D -P -j {ids} -o JobID,State"));
        if jobs.iter().all(|j| runs_of(&runs, j).iter().any(|r| !r.ends_with("RUNNING"))) {
            break runs;
        }
        assert!(Instant::now() < deadline, "not every job's run is in the accounting records:\n{runs}");
        std::thread::sleep(Duration::from_secs(2));
    };
    for job in &jobs {
        assert_eq!(
            runs_of(&runs, job),
            [format!("{job}|COMPLETED")],
            "job {job} ran other than once:\n{runs}"
        );
    }

    // The backup that handed charge back starts afresh 20 s later (or sooner, when its
    // watchdog finds it still handing over after 30 s), and only then could it take
    // charge again with slurmdbd lost as well (README, "High availability"): the next
    // loss waits for that start, and for the backup to stand by.
    let deadline = Instant::now() + Duration::from_secs(120);
    let started = format!(
        "date -d \"$(docker inspect -f '{{{{.State.StartedAt}}}}' {}-controller2)\" +%s",
        cluster.name
    );
    loop {
        let at = String::from_utf8_lossy(&lab.ssh(1, &started).stdout).trim().parse::<u64>().unwrap_or(0);
        let doc = status_json(cluster);
        let (controllers, _) = controllers_and_hosts(&doc);
        let standing_by = controllers.iter().any(|(name, in_charge)| name == "controller2" && !in_charge)
            && controllers.iter().any(|(name, in_charge)| name == "controller" && *in_charge);
        if at > back_at && standing_by && responding(&doc, "controller2") {
            break;
        }
        if Instant::now() > deadline {
            let log = backup_log(cluster);
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "the backup did not start afresh after handing charge back ({controllers:?}, started at {at}, \
                 the host back at {back_at}); its log, last lines first:\n{}",
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }

    jobs
}

/// Seconds since the epoch on lab host `i`.
/// A lock on a file of the controllers' state volume, held from pi1's host.
struct StateLock<'a> {
    cluster: &'a LabCluster<'a>,
    /// pi1's storage container, which holds it.
    holder: String,
}

impl<'a> StateLock<'a> {
    /// The file, at the volume's root in each host's storage container.
    const FILE: &'static str = "/srv/ctld/.slurmbox-test-lock";

    fn hold(cluster: &'a LabCluster<'a>) -> Self {
        let holder = format!("{}-storage-pi1", cluster.name);
        cluster.lab.ssh_ok(0, &format!("docker exec -d {holder} flock -o {} sleep 900", Self::FILE));
        let lock = StateLock { cluster, holder };
        // Held: pi2 cannot take it (flock -n exits 1).
        let deadline = Instant::now() + Duration::from_secs(10);
        while lock.try_on_pi2("-n").status.code() != Some(1) {
            assert!(Instant::now() < deadline, "pi1's storage container does not hold {}", Self::FILE);
            std::thread::sleep(Duration::from_millis(200));
        }
        lock
    }

    fn try_on_pi2(&self, wait: &str) -> Output {
        self.cluster.docker_exec(1, "storage-pi2", None, &format!("flock {wait} {} true", Self::FILE))
    }

    /// pi2 takes the lock within 20 s of the cut (GlusterFS's defaults: about 40 s).
    fn taken_on_pi2_after_the_cut(&self, cut: Instant) {
        let out = self.try_on_pi2("-w 90");
        let after = cut.elapsed();
        eprintln!("hostha: pi2 took the lock pi1's host held {after:.1?} after the cut");
        assert!(out.status.success(), "pi2 could not take the lock pi1's host held: {out:?}");
        assert!(
            after < Duration::from_secs(20),
            "pi2 took the lock pi1's host held only {after:.1?} after the cut"
        );
    }

    /// Once the host is back: its holder ends, and the file goes (from pi2: pi1's client
    /// is still finding the bricks again, its own too, as the host's address was gone).
    fn release(self) {
        let holder = &self.holder;
        self.cluster.lab.ssh_ok(
            0,
            &format!("docker exec {holder} sh -c \"pkill -x flock; pkill -fx 'sleep 900'; true\""),
        );
        let out = self.cluster.docker_exec(1, "storage-pi2", None, &format!("rm -f {}", Self::FILE));
        assert!(out.status.success(), "pi2 could not remove {}: {out:?}", Self::FILE);
    }
}

fn unix_time_on(lab: &Lab, i: usize) -> u64 {
    let out = lab.ssh(i, "date +%s");
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("date +%s")
}

/// Whether `status --json` (`doc`) says the controller `name` answers.
fn responding(doc: &serde_json::Value, name: &str) -> bool {
    doc["controllers"].as_array().is_some_and(|cs| {
        cs.iter().any(|c| c["name"].as_str() == Some(name) && c["responding"].as_bool() == Some(true))
    })
}

/// `srun -N3 hostname` reaches pi1, pi2 and pi3 once pi1's host is back and pi1 idle.
/// In CI (this lab beside cluster tests and an image build, on two cores) the first
/// launch on pi1 timed out once ("Socket timed out on send/recv operation": its slurmd
/// took longer than MessageTimeout to answer, while the controllers handed charge
/// back). It is tried once more 10 s later, and the first failure printed with pi1's
/// slurmd log; a second failure fails the test.
fn srun_on_all_three_after_the_return(cluster: &LabCluster) {
    let srun = || cluster.docker_exec(0, "login", Some("researcher"), "srun -N3 hostname");
    let mut out = srun();
    if !out.status.success() {
        let pi1 = cluster.lab.ssh(0, &format!("docker logs --tail 30 {}-pi1 2>&1", cluster.name));
        eprintln!(
            "hostha: `srun -N3 hostname` right after the return failed ({}), once more in 10 s:\n{}\n--- pi1's log\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&pi1.stdout)
        );
        std::thread::sleep(Duration::from_secs(10));
        out = srun();
    }
    assert!(out.status.success(), "`srun -N3 hostname` failed twice: {out:?}");
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    names.sort();
    assert_eq!(names, ["pi1", "pi2", "pi3"]);
}

/// What the backup controller's container (on pi2) has logged.
fn backup_log(cluster: &LabCluster) -> String {
    let out = cluster.lab.ssh(1, &format!("docker logs {}-controller2 2>&1", cluster.name));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Issue 23's version move in the lab: 24.11 -> 26.05 on the three hosts, a job
/// running on each of pi2 and pi3. slurmdbd first, the backup controller then the
/// primary (one at a time), the login node, then the nodes one by one once their jobs
/// end: both jobs complete, their output whole; every node ends on 26.05; the
/// accounting history from before stays; both controllers answer.
fn version_move_across_hosts(cluster: &LabCluster, earlier: &[String]) {
    let counting = |name: &str, node: &str| {
        submit(
            cluster,
            &format!(
                "-J {name} -w {node} -o {name}.out --wrap \"for i in \\$(seq 40); do echo \\$i; sleep 1; done\""
            ),
        )
    };
    let jobs = [counting("move-a", "pi2"), counting("move-b", "pi3")];
    for job in &jobs {
        wait_job(cluster, job, "RUNNING", Duration::from_secs(60));
    }
    let spec = std::fs::read_to_string(cluster.spec()).unwrap();
    let (first, rest) = spec.split_once('\n').unwrap();
    std::fs::write(cluster.spec(), format!("{first}\nslurm = \"26.05\"\n{rest}")).unwrap();
    let up = cluster.slurmbox(&["up"], &[]).ok();
    assert!(up.stderr.contains("Changing 3 running compute nodes"), "{}", up.stderr);

    for job in &jobs {
        assert_eq!(job_state(cluster, job), "COMPLETED", "job {job} after the move");
    }
    for name in ["move-a", "move-b"] {
        let out =
            std::fs::read_to_string(cluster.lab.shared_dir().join(format!("home/researcher/{name}.out")))
                .unwrap();
        assert_eq!(out.lines().count(), 40, "{name}.out: {out}");
    }
    let versions = cluster.on_controller("sinfo -h -N -o \"%N %v\" | sort -u");
    let lines: Vec<&str> = versions.lines().collect();
    assert!(lines.len() == 3 && lines.iter().all(|l| l.contains(" 26.05.")), "{versions}");
    let ping = cluster.on_controller("scontrol ping");
    assert!(ping.contains(" at controller is UP") && ping.contains(" at controller2 is UP"), "{ping}");
    let history = cluster.on_controller(&format!("sacct -X -n -P -o State -j {}", earlier[0]));
    assert_eq!(history.trim(), "COMPLETED", "job {} from 24.11", earlier[0]);
    assert_eq!(cluster.srun_hostnames(3), ["pi1", "pi2", "pi3"]);
}
