//! The plans the parts build together: whole-plan snapshots, and what changes when the
//! spec or the hosts change.

use super::limits::CgroupHost;
use super::plan as build;
use super::*;
use crate::plan::*;
use crate::spec::ClusterSpec;

const IMAGE: &str = "slurmbox/node:24.11-test";

/// A host as the plan tests assume it (every part's image there); parts' own tests
/// start from it too.
pub(super) fn facts() -> HostFacts {
    HostFacts {
        cpus: 2,
        memory_mib: 24000,
        arch: Arch::Amd64,
        emulated: false,
        image: IMAGE.into(),
        storage_image: None,
        accounting_image: Some("slurmbox/accounting:24.11-test".into()),
        controller_image: Some("slurmbox/controller:24.11-test".into()),
        metrics_image: Some("slurmbox/metrics:prometheus-test".into()),
        web_image: Some("slurmbox/web:nginx-test".into()),
        cgroup: CgroupHost::v2(),
        ssh_port: crate::spec::DEFAULT_SSH_PORT,
        rest_port: crate::spec::DEFAULT_REST_PORT,
        web_port: crate::spec::DEFAULT_WEB_PORT,
        gpus: None,
    }
}

fn existing(plan: &Plan) -> Vec<Existing> {
    plan.containers
        .iter()
        .map(|c| Existing {
            name: c.name.clone(),
            running: true,
            spec_hash: c.labels.get(LABEL_HASH).cloned(),
        })
        .collect()
}

/// Containers in jobs change nothing in a cluster without them; with them, the
/// controller serves oci.conf, compute nodes may chroot (crun's way into an image) and
/// researchers have `slurmbox-bundle` where they work and where steps run.
#[test]
fn only_a_cluster_with_containers_gets_oci_conf_and_sys_chroot() {
    let chroot = |c: &ContainerPlan| c.cap_add.iter().any(|cap| cap == "SYS_CHROOT");
    let has = |c: &ContainerPlan, path: &str| c.files.iter().any(|f| f.path == path);
    let plain = build(&ClusterSpec::default_cluster(), &[facts()]);
    for c in &plain.containers {
        assert!(!has(c, containers::OCI_CONF_PATH) && !has(c, containers::BUNDLE_PATH), "{}", c.name);
        // (The login node has SYS_CHROOT anyway, for sshd.)
        assert!(c.role != Role::Compute || !chroot(c), "{}", c.name);
    }
    let spec = ClusterSpec::parse("c.toml", "[software]\ncontainers = true\n").unwrap();
    for (c, before) in build(&spec, &[facts()]).containers.iter().zip(&plain.containers) {
        assert_eq!(chroot(c), chroot(before) || c.role == Role::Compute, "{}", c.name);
        assert_eq!(has(c, containers::OCI_CONF_PATH), c.role == Role::Controller, "{}", c.name);
        let bundle = has(c, containers::BUNDLE_PATH);
        assert_eq!(bundle, matches!(c.role, Role::Compute | Role::Login), "{}", c.name);
    }
}

#[test]
fn default_plan() {
    let plan = build(&ClusterSpec::default_cluster(), &[facts()]);
    insta::assert_yaml_snapshot!(plan, {
        // The digest covers the init script too; its value is checked by the converge tests.
        ".containers[].labels[\"io.slurmbox.spec-hash\"]" => "[hash]",
        ".containers[].files[].contents" => "[digest]",
    });
}

#[test]
fn default_slurm_conf() {
    let plan = build(&ClusterSpec::default_cluster(), &[facts()]);
    insta::assert_snapshot!(plan.slurm_conf.to_string());
}

#[test]
fn an_epilog_unless_a_node_runs_under_emulation() {
    let spec = ClusterSpec::default_cluster();
    let native = build(&spec, &[facts()]).slurm_conf.to_string();
    assert!(native.contains("\nEpilog=/bin/true\n"), "{native}");
    let emulated = build(&spec, &[HostFacts { arch: Arch::Arm64, emulated: true, ..facts() }]);
    assert!(!emulated.slurm_conf.to_string().contains("Epilog"), "{}", emulated.slurm_conf);
    // A site's own epilog replaces it; an empty value leaves the key to Slurm.
    let site =
        ClusterSpec::parse("c.toml", "name = \"c\"\n[slurm_conf]\nEpilog = \"/etc/slurm/epilog\"\n").unwrap();
    assert!(build(&site, &[facts()]).slurm_conf.to_string().contains("\nEpilog=/etc/slurm/epilog\n"));
    let none = ClusterSpec::parse("c.toml", "name = \"c\"\n[slurm_conf]\nEpilog = \"\"\n").unwrap();
    assert!(!build(&none, &[facts()]).slurm_conf.to_string().contains("Epilog"));
}

#[test]
fn article_cluster_slurm_conf() {
    let spec = ClusterSpec::parse(
        "c.toml",
        "name = \"asai\"\n[compute]\ncount = 2\ncpus = 4\nmemory_mb = 7000\n[home]\nhost_path = \"/gfsv/home\"\n",
    )
    .unwrap();
    let plan = build(&spec, &[facts()]);
    insta::assert_snapshot!(plan.slurm_conf.to_string());
    assert_eq!(plan.login().mounts[1].source, MountSource::HostPath("/gfsv/home".into()));
    let volumes: Vec<&str> = plan.volumes.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        volumes,
        [
            "asai-munge",
            "asai-state",
            "asai-login-ssh",
            "asai-accounts",
            "asai-db",
            "asai-db-secret",
            "asai-jwt",
            "asai-metrics"
        ],
        "no home volume when /home is a host folder"
    );
}

#[test]
fn changing_node_cpus_recreates_compute_nodes_and_the_default_memory_per_cpu() {
    let mut spec = ClusterSpec::default_cluster();
    let before = build(&spec, &[facts()]);
    spec.compute.cpus = Some(8);
    let after = build(&spec, &[facts()]);
    // The controller's slurm.conf holds DefMemPerCPU, which follows the CPUs.
    assert_eq!(
        converge(&after, &existing(&before)),
        vec![
            Change::Recreate("slurmbox-controller".into()),
            Change::Recreate("slurmbox-node1".into()),
            Change::Recreate("slurmbox-node2".into()),
            // slurmrestd reads slurm.conf too.
            Change::Recreate("slurmbox-rest".into())
        ]
    );
    // Without limits memory is not scheduled: only the nodes change.
    spec.compute.limits = false;
    let before = build(&spec, &[facts()]);
    spec.compute.cpus = Some(4);
    let after = build(&spec, &[facts()]);
    assert_eq!(
        converge(&after, &existing(&before)),
        vec![Change::Recreate("slurmbox-node1".into()), Change::Recreate("slurmbox-node2".into())]
    );
}

#[test]
fn nothing_to_do_when_everything_matches() {
    let plan = build(&ClusterSpec::default_cluster(), &[facts()]);
    assert_eq!(converge(&plan, &existing(&plan)), vec![]);
}

#[test]
fn growing_the_cluster_only_creates_the_new_node() {
    let mut spec = ClusterSpec::default_cluster();
    let before = build(&spec, &[facts()]);
    spec.compute.count = 3;
    let after = build(&spec, &[facts()]);
    assert_eq!(converge(&after, &existing(&before)), vec![Change::Create("slurmbox-node3".into())]);
}

#[test]
fn shrinking_removes_the_extra_node() {
    let mut spec = ClusterSpec::default_cluster();
    let before = build(&spec, &[facts()]);
    spec.compute.count = 1;
    let after = build(&spec, &[facts()]);
    assert_eq!(converge(&after, &existing(&before)), vec![Change::Remove("slurmbox-node2".into())]);
}

#[test]
fn new_image_recreates_every_container() {
    let spec = ClusterSpec::default_cluster();
    let before = build(&spec, &[facts()]);
    let after = build(
        &spec,
        &[HostFacts {
            image: "slurmbox/node:24.11-other".into(),
            controller_image: Some("slurmbox/controller:24.11-other".into()),
            ..facts()
        }],
    );
    let changes = converge(&after, &existing(&before));
    // The controller, slurmrestd (the controller's image), login and compute nodes;
    // not the database, slurmdbd or Prometheus, whose images are their own.
    assert_eq!(changes.len(), 5, "{changes:?}");
    assert!(changes.iter().all(|c| matches!(c, Change::Recreate(_))));
}

#[test]
fn stopped_container_is_started_not_recreated() {
    let plan = build(&ClusterSpec::default_cluster(), &[facts()]);
    let mut have = existing(&plan);
    have[2].running = false;
    assert_eq!(converge(&plan, &have), vec![Change::Start("slurmbox-node1".into())]);
}

fn lab(hosts: usize, extra: &str) -> ClusterSpec {
    let mut text = "name = \"lab\"\n[home]\nhost_path = \"/gfsv/home\"\n".to_string();
    for i in 1..=hosts {
        text.push_str(&format!("[[host]]\nname = \"pi{i}\"\nengine = \"ssh://pi@10.0.0.{i}\"\n"));
    }
    ClusterSpec::parse("c.toml", &format!("{text}{extra}")).unwrap()
}

#[test]
fn glusterfs_home_puts_a_storage_container_on_every_host() {
    let text = "name = \"lab\"\n[home]\nshared = \"glusterfs\"\n[[host]]\nname = \"pi1\"\nengine = \"ssh://pi@10.0.0.1\"\n[[host]]\nname = \"pi2\"\nengine = \"ssh://pi@10.0.0.2\"\n";
    let spec = ClusterSpec::parse("c.toml", text).unwrap();
    let storage = HostFacts { storage_image: Some("slurmbox/storage:gluster-test".into()), ..facts() };
    let plan = build(&spec, &[storage.clone(), storage]);
    let peers: Vec<(usize, &str, &str)> =
        plan.storage.iter().map(|s| (s.host, s.container.as_str(), s.address.as_str())).collect();
    assert_eq!(peers, [(0, "lab-storage-pi1", "10.0.0.1"), (1, "lab-storage-pi2", "10.0.0.2")]);
    let shared = MountSource::HostPath("/var/lib/slurmbox/lab/home".into());
    for c in plan.containers.iter().filter(|c| c.role.is_slurm_node() || c.role == Role::Storage) {
        let home =
            c.mounts.iter().find(|m| m.source == shared).expect("every container sees the shared home");
        if c.role == Role::Storage {
            assert_eq!((home.target.as_str(), home.propagation), ("/srv/home", Some(Propagation::Shared)));
            assert_eq!(c.network, HOST_NETWORK);
            assert_eq!(c.image, "slurmbox/storage:gluster-test");
            assert_eq!(c.devices, ["/dev/fuse"]);
            assert!(c.cap_add.contains(&"SYS_ADMIN".to_string()));
        } else {
            assert_eq!((home.target.as_str(), home.propagation), ("/home", Some(Propagation::Slave)));
            assert!(c.env.contains(&"SLURMBOX_SHARED_HOME=glusterfs".to_string()), "{}", c.name);
            // Compute nodes get SYS_ADMIN for their own cgroup mounts (limits), no other node.
            assert_eq!(c.cap_add.contains(&"SYS_ADMIN".to_string()), c.role == Role::Compute, "{}", c.name);
        }
    }
    let volumes: Vec<(usize, &str)> = plan.volumes.iter().map(|v| (v.host, v.name.as_str())).collect();
    assert_eq!(
        volumes,
        [
            (0, "lab-munge"),
            (1, "lab-munge"),
            (0, "lab-state"),
            (0, "lab-login-ssh"),
            (0, "lab-glusterd"),
            (0, "lab-brick"),
            (1, "lab-glusterd"),
            (1, "lab-brick"),
            (0, "lab-accounts"),
            (1, "lab-accounts"),
            (0, "lab-db"),
            (0, "lab-db-secret"),
            (0, "lab-jwt"),
            (0, "lab-metrics")
        ]
    );
    // A host skipped by `up --skip-unreachable` is not asked to take part.
    let kept = plan.without_hosts(&[1]);
    assert_eq!(kept.storage.len(), 1);
}

/// A backup controller on another host without `state_path`: the state is a GlusterFS
/// volume with bricks on the controllers' hosts and one more, mounted for the
/// controllers alone; a fourth host runs no storage container.
#[test]
fn state_on_glusterfs_has_three_bricks_and_reaches_the_controllers() {
    let text = "[controller]\nhost = \"pi1\"\nbackup = \"pi3\"\n";
    let mut spec = lab(4, text);
    spec.home = crate::spec::HomeSpec::Volume;
    let storage = HostFacts { storage_image: Some("slurmbox/storage:gluster-test".into()), ..facts() };
    let plan = build(&spec, &vec![storage; 4]);
    let peers: Vec<(usize, &[String], &[String])> =
        plan.storage.iter().map(|s| (s.host, s.bricks.as_slice(), s.mounts.as_slice())).collect();
    let (ctld, none) = (vec!["ctld".to_string()], vec![]);
    assert_eq!(peers, [(0, &ctld[..], &ctld[..]), (1, &ctld[..], &none[..]), (2, &ctld[..], &ctld[..])]);
    let state = MountSource::HostPath("/var/lib/slurmbox/lab/ctld".into());
    let storage: Vec<&ContainerPlan> = plan.containers.iter().filter(|c| c.role == Role::Storage).collect();
    assert_eq!(storage.len(), 3, "no storage container on the fourth host");
    for c in storage {
        let mounts = if c.host == 1 { "" } else { "ctld" };
        assert!(c.env.contains(&format!("SLURMBOX_STORAGE_MOUNTS={mounts}")), "{}: {:?}", c.name, c.env);
        let mounted = c.mounts.iter().find(|m| m.source == state);
        assert_eq!(
            mounted.map(|m| (m.target.as_str(), m.propagation)),
            (c.host != 1).then_some(("/srv/ctld", Some(Propagation::Shared)))
        );
    }
    // Controllers mount the host's folder of the cluster, where the volume is mounted.
    let folder = MountSource::HostPath("/var/lib/slurmbox/lab".into());
    for c in plan.containers.iter().filter(|c| c.role == Role::Controller) {
        let m = c.mounts.iter().find(|m| m.target == "/var/lib/slurmbox/shared").unwrap();
        assert_eq!((&m.source, m.propagation), (&folder, Some(Propagation::Slave)), "{}", c.name);
        assert!(!c.mounts.iter().any(|m| m.target == "/var/spool/slurmctld"), "{}", c.name);
        assert!(c.env.contains(&"SLURMBOX_SHARED_STATE=glusterfs".to_string()), "{}", c.name);
    }
    assert!(!plan.volumes.iter().any(|v| v.name == "lab-state"), "no Docker volume for the state");
    // With a site's folder, no GlusterFS at all.
    let plan = build(&lab(4, &format!("{text}state_path = \"/gfsv/ctld\"\n")), &vec![facts(); 4]);
    assert!(plan.storage.is_empty() && !plan.containers.iter().any(|c| c.role == Role::Storage));
}

const MACVLAN: &str = "[compute]\nper_host = 2\n[network]\nmode = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"10.0.0.0/24\"\nip_range = \"10.0.0.64/26\"\n";

#[test]
fn macvlan_plan_gives_fixed_addresses_host_by_host() {
    let plan = build(&lab(2, MACVLAN), &[facts(), facts()]);
    let placed: Vec<(usize, &str, Option<&str>)> =
        plan.containers.iter().map(|c| (c.host, c.hostname.as_str(), c.ip.as_deref())).collect();
    assert_eq!(
        placed,
        [
            (0, "controller", Some("10.0.0.64")),
            (0, "login", Some("10.0.0.65")),
            (0, "pi1-1", Some("10.0.0.66")),
            (0, "pi1-2", Some("10.0.0.67")),
            (1, "pi2-1", Some("10.0.0.68")),
            (1, "pi2-2", Some("10.0.0.69")),
        ]
    );
    assert_eq!(plan.networks.len(), 2, "one macvlan network per host");
    assert!(plan.containers.iter().all(|c| c.network == "lab-lan"));
    assert_eq!(plan.slurm_conf.controllers.0[0].addr.as_deref(), Some("10.0.0.64"));
    // Every container has its own address: the login node runs sackd like on one engine.
    assert!(plan.login().files.iter().all(|f| !f.path.starts_with("/etc/slurm/")));
}

#[test]
fn a_host_joining_creates_only_its_nodes() {
    for extra in ["", MACVLAN] {
        let before = build(&lab(3, extra), &[facts(), facts(), facts()]);
        let after = build(&lab(4, extra), &[facts(), facts(), facts(), facts()]);
        let created: Vec<Change> = converge(&after, &existing(&before));
        assert!(
            created.iter().all(|c| matches!(c, Change::Create(n) if n.starts_with("lab-pi4"))),
            "{created:?}"
        );
        assert!(!created.is_empty());
    }
}

#[test]
fn mpi_keeps_to_the_hosts_subnet() {
    let env = |plan: &Plan| plan.login().env.iter().find(|e| e.starts_with("OMPI_")).cloned();
    let plan = build(&lab(2, ""), &[facts(), facts()]);
    assert_eq!(env(&plan).as_deref(), Some("OMPI_MCA_btl_tcp_if_include=10.0.0.0/24"));
    let wide = lab(2, "[network]\nsubnet = \"10.0.0.0/16\"\n");
    let plan = build(&wide, &[facts(), facts()]);
    assert_eq!(env(&plan).as_deref(), Some("OMPI_MCA_btl_tcp_if_include=10.0.0.0/16"));
    assert_eq!(
        env(&build(&lab(2, MACVLAN), &[facts(), facts()])),
        None,
        "macvlan: eth0, the image's default"
    );
}

#[test]
fn skipping_a_host_keeps_the_others_names_and_addresses() {
    let full = build(&lab(3, MACVLAN), &[facts(), facts(), facts()]);
    let part = full.clone().without_hosts(&[1]);
    assert_eq!(part.hosts.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["pi1", "pi3"]);
    assert_eq!(part.compute_nodes, ["pi1-1", "pi1-2", "pi3-1", "pi3-2"]);
    let pi3 = |p: &Plan| p.containers.iter().find(|c| c.hostname == "pi3-1").cloned().unwrap();
    assert_eq!(pi3(&part).host, 1, "renumbered to its engine's place");
    assert_eq!(pi3(&part).ip, pi3(&full).ip);
    assert_eq!(pi3(&part).labels, pi3(&full).labels);
    assert_eq!(part.networks.len(), 2);
    assert!(part.volumes.iter().all(|v| v.host < 2));
}

#[test]
fn nodes_are_named_after_their_host() {
    assert!(runs_on_host("pi3", "pi3"));
    assert!(runs_on_host("pi3-2", "pi3"));
    assert!(!runs_on_host("pi3-gpu", "pi3"));
    assert!(!runs_on_host("pi31", "pi3"));
    let plan = build(&lab(2, MACVLAN), &[facts(), facts()]);
    assert!(plan.compute_nodes.iter().all(|n| runs_on_host(n, "pi1") != runs_on_host(n, "pi2")));
}

#[test]
fn cpus_default_to_at_least_four() {
    let plan = build(&ClusterSpec::default_cluster(), &[facts()]);
    assert_eq!(plan.node_conf.cpus, 4);
    let big = HostFacts { cpus: 64, memory_mib: 512_000, ..facts() };
    assert_eq!(build(&ClusterSpec::default_cluster(), &[big]).node_conf.cpus, 64);
}

#[test]
fn controllers_are_a_list_in_slurm_conf_and_for_the_nodes() {
    let spec = lab(2, "");
    let facts = [facts(), facts()];
    let mut layout = Layout::new(&spec, &facts);
    assert_eq!(layout.conf_servers(), "10.0.0.1", "one controller: as every release had it");
    layout.controllers.push(Placed { host: 1, name: "controller2".into(), ip: None });
    let conf = controller::slurm_conf(&layout).to_string();
    assert!(
        conf.contains("SlurmctldHost=controller(10.0.0.1)\nSlurmctldHost=controller2(10.0.0.2)\n"),
        "{conf}"
    );
    assert_eq!(layout.conf_servers(), "10.0.0.1,10.0.0.2");
    let config = Config::new(&layout);
    assert!(config.node_env.contains(&"SLURMBOX_CONTROLLER=10.0.0.1,10.0.0.2".to_string()));
    let json = serde_json::to_value(controller::slurm_conf(&layout)).unwrap();
    assert_eq!(json["controllers"][1]["name"], "controller2");
}

/// The spec-hash labels of plans made by earlier releases: `up` leaves a container
/// alone while its hash matches, so a change here recreates running clusters'
/// containers. Change these only on purpose, saying so in the commit.
mod pinned_hashes {
    use super::*;
    use crate::spec::ClusterSpec;

    fn facts(storage: bool) -> HostFacts {
        HostFacts {
            cpus: 2,
            memory_mib: 24000,
            arch: Arch::Amd64,
            emulated: false,
            image: "slurmbox/node:24.11-test".into(),
            storage_image: storage.then(|| "slurmbox/storage:gluster-test".into()),
            accounting_image: Some("slurmbox/accounting:24.11-test".into()),
            controller_image: Some("slurmbox/controller:24.11-test".into()),
            metrics_image: Some("slurmbox/metrics:prometheus-test".into()),
            web_image: Some("slurmbox/web:nginx-test".into()),
            cgroup: CgroupHost::v2(),
            ssh_port: crate::spec::DEFAULT_SSH_PORT,
            rest_port: crate::spec::DEFAULT_REST_PORT,
            web_port: crate::spec::DEFAULT_WEB_PORT,
            gpus: None,
        }
    }

    fn hashes(spec: &str, hosts: usize, storage: bool) -> Vec<(String, String)> {
        let spec = ClusterSpec::parse("c.toml", spec).unwrap();
        let plan = build(&spec, &vec![facts(storage); hosts.max(1)]);
        plan.containers.iter().map(|c| (c.name.clone(), c.labels[LABEL_HASH].clone())).collect()
    }

    fn lab(hosts: usize, extra: &str) -> String {
        let mut text = format!("name = \"lab\"\n{extra}");
        for i in 1..=hosts {
            text.push_str(&format!("[[host]]\nname = \"pi{i}\"\nengine = \"ssh://pi@10.0.0.{i}\"\n"));
        }
        text
    }

    fn macvlan() -> String {
        lab(
            2,
            "[home]\nhost_path = \"/gfsv/home\"\n[compute]\nper_host = 2\n[network]\nmode = \"macvlan\"\n\
             parent = \"eth0\"\nsubnet = \"10.0.0.0/24\"\nip_range = \"10.0.0.64/26\"\n",
        )
    }

    fn assert_pinned(got: Vec<(String, String)>, want: &[(&str, &str)]) {
        let want: Vec<(String, String)> = want.iter().map(|(n, h)| (n.to_string(), h.to_string())).collect();
        assert_eq!(got, want, "spec hashes changed: running clusters' containers would be recreated");
    }

    #[test]
    fn default_cluster_hashes_are_pinned() {
        assert_pinned(
            hashes("", 0, false),
            &[
                ("slurmbox-controller", "4326e116bd22e30c"),
                ("slurmbox-login", "ab56a258d810572b"),
                ("slurmbox-node1", "7dfab22f9266cb25"),
                ("slurmbox-node2", "e053c70007dfc373"),
                ("slurmbox-db", "7084af3c95752f79"),
                ("slurmbox-dbd", "e354d5418fbb375d"),
                ("slurmbox-rest", "a6a28596d7ac3ff6"),
                ("slurmbox-metrics", "51c3e93c572c4844"),
                ("slurmbox-web", "c2b0e0c9a438cf90"),
            ],
        );
    }

    #[test]
    fn three_host_hashes_are_pinned() {
        assert_pinned(
            hashes(&lab(3, "[home]\nhost_path = \"/gfsv/home\"\n"), 3, false),
            &[
                ("lab-controller", "ef9efa5550930883"),
                ("lab-login", "bda3bb73ea8b17e7"),
                ("lab-pi1", "afc070c85b97e762"),
                ("lab-pi2", "8e8c8cf15baf4cdc"),
                ("lab-pi3", "47d053d7a5055a1e"),
                ("lab-db", "15d91d4bb3776c1c"),
                ("lab-dbd", "37846e628a890672"),
                ("lab-rest", "bcf159c6aa8db508"),
                ("lab-metrics", "47def9943887de20"),
                ("lab-web", "11c155fdbef9b47f"),
            ],
        );
    }

    #[test]
    fn macvlan_hashes_are_pinned() {
        assert_pinned(
            hashes(&macvlan(), 2, false),
            &[
                ("lab-controller", "c9d62e5f32a8682d"),
                ("lab-login", "b60a8ab99d215676"),
                ("lab-pi1-1", "5fa21368dee5de1a"),
                ("lab-pi1-2", "2a6c8d973854a34b"),
                ("lab-pi2-1", "9ad2202e34821758"),
                ("lab-pi2-2", "65b74fc385a33c9f"),
            ],
        );
    }

    // The storage containers' hashes follow slurmbox-storage.sh: a change to it (here:
    // every host mounts the volume when slurmbox asks) recreates them, once, on `up`.
    #[test]
    fn glusterfs_hashes_are_pinned() {
        assert_pinned(
            hashes(&lab(2, "[home]\nshared = \"glusterfs\"\n"), 2, true),
            &[
                ("lab-controller", "77e240e1d08d70eb"),
                ("lab-login", "bed6f87bc8d30e25"),
                ("lab-pi1", "e51eec85503a38b2"),
                ("lab-pi2", "51f1343df3c0a246"),
                ("lab-storage-pi1", "3bfb7610e86cc529"),
                ("lab-storage-pi2", "47464fa1678ddd8e"),
                ("lab-db", "15d91d4bb3776c1c"),
                ("lab-dbd", "37846e628a890672"),
                ("lab-rest", "bcf159c6aa8db508"),
                ("lab-metrics", "47def9943887de20"),
                ("lab-web", "11c155fdbef9b47f"),
            ],
        );
    }
}

/// The REST API's plan: the JWT key on slurmctld and slurmdbd alone; slurmrestd with
/// no key of any kind; nothing of it where `[rest] enabled = false`.
#[test]
fn only_slurmctld_and_slurmdbd_mount_the_jwt_key() {
    let plan = build(&ClusterSpec::default_cluster(), &[facts()]);
    assert!(plan.slurm_conf.to_string().contains("AuthAltTypes=auth/jwt\n"));
    for c in &plan.containers {
        let mounted = c.mounts.iter().any(|m| m.target == rest::JWT_DIR);
        assert_eq!(mounted, matches!(c.role, Role::Controller | Role::Dbd), "{}", c.name);
    }
    let api = plan.containers.iter().find(|c| c.role == Role::Rest).expect("slurmrestd's container");
    assert_eq!(api.name, "slurmbox-rest");
    // No munge key, no JWT key: the cluster's accounts alone, read-only.
    let mounts: Vec<_> = api.mounts.iter().map(|m| (&m.source, m.read_only)).collect();
    assert_eq!(mounts, [(&MountSource::Volume("slurmbox-accounts".into()), true)]);
    assert_eq!(api.cap_add, ["SETUID", "SETGID"]);
    assert_eq!(api.labels[LABEL_REST_PORT], "6820");
    assert_eq!(api.labels[LABEL_REST_URL], "http://127.0.0.1:6820");
}

#[test]
fn rest_off_leaves_no_rest_container_and_no_tokens() {
    let plan = build(&ClusterSpec::parse("c.toml", "[rest]\nenabled = false\n").unwrap(), &[facts()]);
    assert!(plan.containers.iter().all(|c| c.role != Role::Rest));
    assert!(plan.volumes.iter().all(|v| !v.name.ends_with("-jwt")));
    for c in &plan.containers {
        assert!(c.mounts.iter().all(|m| m.target != rest::JWT_DIR), "{}", c.name);
        assert!(!c.command.contains(&rest::JWT_PATH.to_string()), "{}", c.name);
        assert!(c.files.iter().all(|f| !f.contents.contains("AuthAlt")), "{}", c.name);
    }
}

#[test]
fn the_rest_url_is_where_people_reach_it() {
    let url = |spec: &ClusterSpec, hosts: usize| {
        let mut facts = vec![facts(); hosts];
        facts[0].rest_port = 6821;
        let plan = build(spec, &facts);
        plan.containers.iter().find(|c| c.role == Role::Rest).unwrap().labels[LABEL_REST_URL].clone()
    };
    let spec = |text: &str| ClusterSpec::parse("c.toml", text).unwrap();
    assert_eq!(url(&spec(""), 1), "http://127.0.0.1:6821");
    assert_eq!(url(&spec("[rest]\naddress = \"10.1.2.3\"\n"), 1), "http://10.1.2.3:6821");
    assert_eq!(url(&spec("[rest]\naddress = \"0.0.0.0\"\n"), 1), "http://127.0.0.1:6821");
    assert_eq!(url(&lab(2, ""), 2), "http://10.0.0.1:6821");
}

/// `up` refuses a `[rest] port` another cluster's slurmrestd holds on the host, before
/// anything changes; its own, or another port, is fine.
#[tokio::test]
async fn a_rest_port_another_cluster_holds_is_refused() {
    let spec = |name: &str| ClusterSpec::parse("c.toml", &format!("name = \"{name}\"\n")).unwrap();
    let engine = crate::engine::recording::RecordingEngine::new();
    let other = build(&spec("other"), &[facts()]);
    engine.insert_planned(other.containers.iter().find(|c| c.role == Role::Rest).unwrap(), true);
    let mine = build(&spec("mine"), &[facts()]);
    let e = rest::check(std::slice::from_ref(&engine), &mine).await.unwrap_err();
    assert!(matches!(&e, PartError::PortTaken { port: 6820, other, .. } if other == "other"), "{e}");
    assert!(e.is_usage());
    assert!(rest::check(std::slice::from_ref(&engine), &other).await.is_ok(), "its own port");
    let mut moved = facts();
    moved.rest_port = 6821;
    assert!(rest::check(std::slice::from_ref(&engine), &build(&spec("mine"), &[moved])).await.is_ok());
}
