//! GPUs, shared job by job, on a machine without one: the tests make fake GPUs, device
//! nodes with NVIDIA's major number (195) in a folder they own, and give them to a node
//! as its host's `gpu_devices`. Opening such a device without a driver fails with ENXIO
//! ("No such device or address"); a device the job was not given fails with EPERM
//! ("Operation not permitted", the device cgroup): that difference is the isolation check.

mod common;

use std::process::Command;

use common::gpus::fake_gpus;
use common::lab::Lab;
use common::lab_cluster::LabCluster;
use common::{ClusterGuard, slurmbox};

fn up(cluster: &ClusterGuard, dir: &tempfile::TempDir, compute: &str) {
    let spec = dir.path().join("cluster.toml");
    std::fs::write(&spec, format!("name = \"{}\"\n[compute]\ncount = 1\n{compute}", cluster.name)).unwrap();
    let up = slurmbox(&["up", "-f", spec.to_str().unwrap()]).ok();
    // A step that failed without failing `up` (the controller not learning the users'
    // associations in time: jobs then get "Invalid account") shows here, with its cause.
    assert!(!up.stderr.contains('✗'), "up reported a failed step:\n{}", up.stderr);
}

/// What a job prints about its GPUs: its environment, then for each device whether it
/// opens, and why not.
const PROBE: &str = r#"echo "gpus=$SLURM_JOB_GPUS cuda=$CUDA_VISIBLE_DEVICES"
for d in /dev/nvidia0 /dev/nvidia1; do
    python3 -c 'import os, sys
try:
    os.open(sys.argv[1], os.O_RDWR)
    print(sys.argv[1], "opened")
except OSError as e:
    print(sys.argv[1], e.strerror)' "$d"
done
"#;

/// Tests 1 and 2: a node with two GPUs shows gpu:2; two 1-GPU jobs run at once, each
/// with its own GPU and denied the other's; a third waits for Resources and runs when
/// one ends; more GPUs than any node has is refused at submit.
#[test]
fn two_gpus_shared_by_jobs_one_each() {
    let devices = tempfile::tempdir().unwrap();
    let gpus = fake_gpus(devices.path(), 2);
    let cluster = ClusterGuard::new("gpus");
    let dir = tempfile::tempdir().unwrap();
    up(&cluster, &dir, &format!("cpus = 2\nmemory_mb = 1024\ngpu_devices = {gpus:?}\n"));

    assert_eq!(cluster.sh("sinfo -h -o '%N %G'").ok().stdout.trim(), "node1 gpu:2");
    // The node has them under their own names; the login node has none.
    assert_ne!(cluster.sh("ls /dev/nvidia0").code, 0, "the login node got a GPU");

    cluster.sh(&format!("cat > probe.sh <<'EOF'\n#!/bin/bash\n{PROBE}sleep 6\nEOF\nchmod +x probe.sh")).ok();
    let submit =
        "rm -f gpu-*.out; for i in 1 2 3; do sbatch --parsable --gres=gpu:1 -o gpu-$i.out probe.sh; done";
    let jobs: Vec<String> = cluster.sh(submit).ok().stdout.lines().map(String::from).collect();
    // Two run at once; the third waits for a GPU.
    let queue = cluster.wait_for("squeue -h -o '%i %t %r' | sort -n", "two GPU jobs running", |q| {
        q.lines().filter(|l| l.contains(" R ")).count() == 2
    });
    let third = queue.lines().find(|l| l.starts_with(&jobs[2])).unwrap_or_default().to_string();
    assert!(third.contains(" PD Resources"), "{queue}");
    // It runs when one ends.
    cluster.wait_for("ls gpu-*.out 2>/dev/null | wc -l", "the third job to start", |n| n.trim() == "3");
    cluster.wait_for("squeue -h | wc -l", "the GPU jobs to end", |n| n.trim() == "0");

    let mut seen = Vec::new();
    for i in 1..=2 {
        let out = cluster.sh(&format!("cat gpu-{i}.out")).ok().stdout;
        let gpu: usize = out
            .lines()
            .find_map(|l| l.strip_prefix("gpus="))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|g| g.parse().ok())
            .unwrap_or_else(|| panic!("job {i} printed no GPU: {out}"));
        let other = 1 - gpu;
        assert!(out.contains(&format!("/dev/nvidia{gpu} No such device or address")), "job {i}: {out}");
        assert!(out.contains(&format!("/dev/nvidia{other} Operation not permitted")), "job {i}: {out}");
        // Inside the job its one GPU is CUDA device 0.
        assert!(out.contains("cuda=0"), "job {i}: {out}");
        seen.push(gpu);
    }
    seen.sort();
    assert_eq!(seen, [0, 1], "the two jobs that ran at once had the same GPU");
    // doctor and status say the same.
    let doctor = cluster.run(&["doctor"], &["--json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&doctor.stdout).unwrap();
    let gpus = &report["nodes"][0]["limits"]["Ok"]["gpus"];
    assert_eq!(gpus["enforced"], true, "{report:#}");
    assert!(gpus["detail"].as_str().unwrap().starts_with("gpu:2: a job can open only"), "{report:#}");
    let status = cluster.run(&["status"], &["--json"]).ok();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let node1 = status["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "node1").unwrap();
    assert_eq!(node1["gres"], "gpu:2", "{status:#}");

    for ask in ["sbatch --gres=gpu:3 --wrap true", "srun --gres=gpu:3 true"] {
        let refused = cluster.sh(ask);
        assert_ne!(refused.code, 0, "{ask} was accepted");
        assert!(
            refused.stderr.contains("Requested node configuration is not available"),
            "{}",
            refused.stderr
        );
    }
}

/// Test 3: `gpu_shards = 4` on a one-GPU node: four jobs share it at once.
#[test]
fn shards_let_four_jobs_share_one_gpu() {
    let devices = tempfile::tempdir().unwrap();
    let gpus = fake_gpus(devices.path(), 1);
    let cluster = ClusterGuard::new("shards");
    let dir = tempfile::tempdir().unwrap();
    up(&cluster, &dir, &format!("cpus = 4\nmemory_mb = 1024\ngpu_devices = {gpus:?}\ngpu_shards = 4\n"));
    assert_eq!(cluster.sh("sinfo -h -o '%G'").ok().stdout.trim(), "gpu:1,shard:4");
    cluster
        .sh("rm -f shard-*; for i in 1 2 3 4; do sbatch --gres=shard:1 -o shard-$i.out \
             --wrap 'touch shard-$SLURM_JOB_ID.started; while [ $(ls shard-*.started | wc -l) -lt 4 ]; do sleep 0.2; done; \
             echo cuda=$CUDA_VISIBLE_DEVICES'; done")
        .ok();
    // Each job waits until all four have started: they only end if they ran at once.
    cluster.wait_for("squeue -h | wc -l", "four shard jobs to run at once and end", |n| n.trim() == "0");
    let out = cluster.sh("cat shard-*.out").ok().stdout;
    assert_eq!(out.lines().filter(|l| *l == "cuda=0").count(), 4, "{out}");
}

/// Test 4: a GPU host and a CPU-only host in one cluster (lab hosts over ssh): only the
/// GPU host's node has GPUs, `--gres=gpu:1` lands there, the `gpu` partition holds it,
/// and `verify` passes.
#[test]
fn gpu_jobs_land_on_the_gpu_host_of_a_mixed_cluster() {
    let lab = Lab::start("gpuhost", 2);
    lab.ssh_ok(0, "mkdir -p /srv/fake && mknod -m 666 /srv/fake/nvidia0 c 195 0 && mknod -m 666 /srv/fake/nvidia1 c 195 1");
    let cluster = LabCluster::custom(&lab, "gpumix", |name| {
        format!(
            "name = \"{name}\"\n[home]\nhost_path = \"{}/home\"\n\
             [[host]]\nname = \"gpu1\"\nengine = \"{}\"\ngpu_devices = [\"/srv/fake/nvidia0\", \"/srv/fake/nvidia1\"]\n\
             [[host]]\nname = \"cpu1\"\nengine = \"{}\"\n",
            common::lab::SHARED_MOUNT,
            lab.engine_url(0),
            lab.engine_url(1)
        )
    });
    std::fs::create_dir_all(lab.shared_dir().join("home")).unwrap();
    cluster.slurmbox(&["up"], &[]).ok();
    let gres = cluster.on_controller("sinfo -h -N -o \"%N %G %P\" | sort");
    assert_eq!(gres, "cpu1 (null) debug*\ngpu1 gpu:2 debug*\ngpu1 gpu:2 gpu", "{gres}");
    for _ in 0..3 {
        assert_eq!(cluster.as_user("srun --gres=gpu:1 hostname"), "gpu1");
    }
    assert_eq!(cluster.as_user("srun -p gpu hostname"), "gpu1");
    let verify = cluster.slurmbox(&["verify"], &[]).ok();
    assert!(verify.stdout.contains("MPI pi"), "{}", verify.stdout);
}

/// GPUs through the engine: a host whose admin has set up CDI (Docker 25+, the
/// `cdi` feature; NVIDIA's `nvidia-ctk cdi generate` writes the spec) gets its GPUs
/// from the engine's CDI driver, not from device files in the spec. The spec here names
/// the fake GPUs (and the `all` device NVIDIA's tool adds); the probe container finds
/// them, the compute node gets them by a CDI device request, and Slurm shares them job by
/// job as with device files.
#[test]
fn gpus_through_the_engines_cdi_driver() {
    let lab = Lab::start("gpucdi", 1);
    let devices: Vec<String> = (0..2)
        .map(|i| {
            format!(
                "  - name: \"{i}\"\n    containerEdits:\n      deviceNodes:\n      - path: /dev/nvidia{i}\n"
            )
        })
        .collect();
    let cdi = format!(
        "cdiVersion: \"0.6.0\"\nkind: nvidia.com/gpu\ndevices:\n{}  - name: all\n    containerEdits:\n      deviceNodes:\n      - path: /dev/nvidia0\n      - path: /dev/nvidia1\n",
        devices.concat()
    );
    lab.ssh_ok(
        0,
        &format!(
            "mkdir -p /etc/cdi /etc/docker && printf '%s' '{cdi}' > /etc/cdi/nvidia.yaml && \
             printf '{{\"features\": {{\"cdi\": true}}}}\n' > /etc/docker/daemon.json"
        ),
    );
    lab.restart_host(0);
    lab.ssh_ok(0, "mknod -m 666 /dev/nvidia0 c 195 0 && mknod -m 666 /dev/nvidia1 c 195 1");
    let cluster = LabCluster::custom(&lab, "gpucdi", |name| {
        format!(
            "name = \"{name}\"\n[[host]]\nname = \"gpu1\"\nengine = \"{}\"\ngpus = \"cdi\"\n",
            lab.engine_url(0)
        )
    });
    let up = cluster.slurmbox(&["up"], &[]).ok();
    assert!(
        up.stderr.contains("GPUs on gpu1: 2 × GPU of unknown model through its engine (CDI)"),
        "{}",
        up.stderr
    );
    assert_eq!(cluster.on_controller("sinfo -h -o \"%N %G\""), "node1 gpu:2");
    // The engine gave the node both GPUs by their CDI names; no device file is in the spec.
    let requests = lab.ssh_ok(
        0,
        &format!("docker inspect --format '{{{{json .HostConfig.DeviceRequests}}}}' {}-node1", cluster.name),
    );
    assert!(requests.contains("nvidia.com/gpu=0") && requests.contains("nvidia.com/gpu=1"), "{requests}");
    // One GPU for the job: it opens its own (no driver: ENXIO) and is denied the other.
    let job = cluster.slurmbox(&["exec"], &["--", "srun", "--gres=gpu:1", "bash", "-c", PROBE]).ok().stdout;
    let opened = job.lines().filter(|l| l.ends_with("No such device or address")).count();
    let denied = job.lines().filter(|l| l.ends_with("Operation not permitted")).count();
    assert_eq!((opened, denied), (1, 1), "{job}");
}

/// The GPU probe on an engine without NVIDIA's container toolkit (this machine's): the
/// engine refuses the GPU request, the probe says why (and `up` would go on without
/// engine GPUs), and no probe container is left behind.
#[test]
fn a_gpu_probe_the_engine_cannot_serve_says_why_and_leaves_nothing() {
    use slurmbox::engine::docker::DockerEngine;
    use slurmbox::plan::GpuRequest;
    let image = common::node_image("24.11");
    let cluster = format!("gpuprobe{}", std::process::id());
    let request = GpuRequest {
        driver: "nvidia".into(),
        device_ids: vec![],
        all: true,
        capabilities: vec!["gpu".into(), "utility".into()],
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let why = runtime.block_on(async {
        let engine = DockerEngine::connect(slurmbox::settings::Settings::from_env().local_engine())
            .await
            .expect("the local engine");
        slurmbox::deploy::hosts::probe(&engine, &cluster, &image, &request).await.unwrap_err()
    });
    assert!(why.contains("nvidia"), "{why}");
    let left = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("name={cluster}-gpu-probe")])
        .output()
        .expect("run docker");
    assert!(left.stdout.is_empty(), "a probe container was left: {}", String::from_utf8_lossy(&left.stdout));
}
