//! The plans slurmbox makes for the clusters people run, pinned whole: every
//! container, volume, network, rendered file's digest and spec-hash label. A change
//! here recreates running clusters' containers on the next `up`, so it must be one
//! made on purpose (and said in the commit), never a side effect of moving code.

use slurmbox::components::HostFacts;
use slurmbox::components::gpus::ProbedGpus;
use slurmbox::components::limits::CgroupHost;
use slurmbox::plan::Plan;
use slurmbox::spec::{Arch, ClusterSpec, DEFAULT_SSH_PORT};

fn facts(storage: bool) -> HostFacts {
    let gpus: Option<ProbedGpus> = None;
    HostFacts {
        cpus: 2,
        memory_mib: 24000,
        arch: Arch::Amd64,
        emulated: false,
        image: "slurmbox/node:24.11-test".into(),
        storage_image: storage.then(|| "slurmbox/storage:test".into()),
        accounting_image: Some("slurmbox/accounting:24.11-test".into()),
        controller_image: Some("slurmbox/controller:24.11-test".into()),
        metrics_image: Some("slurmbox/metrics:prometheus-test".into()),
        web_image: Some("slurmbox/web:nginx-test".into()),
        cgroup: CgroupHost::v2(),
        ssh_port: DEFAULT_SSH_PORT,
        rest_port: slurmbox::spec::DEFAULT_REST_PORT,
        web_port: slurmbox::spec::DEFAULT_WEB_PORT,
        gpus,
    }
}

fn plan(text: &str, hosts: usize, storage: bool) -> Plan {
    let spec = ClusterSpec::parse("cluster.toml", text).unwrap();
    slurmbox::components::plan(&spec, &vec![facts(storage); hosts.max(1)])
}

fn lab(hosts: usize, extra: &str) -> String {
    let mut text = format!("name = \"lab\"\n{extra}");
    for i in 1..=hosts {
        text.push_str(&format!("[[host]]\nname = \"pi{i}\"\nengine = \"ssh://pi@10.0.0.{i}\"\n"));
    }
    text
}

/// The plan, with the rendered Slurm files in full beside it.
fn pinned(plan: &Plan) -> String {
    let mut text = serde_json::to_string_pretty(plan).unwrap();
    for file in plan.slurm_files() {
        text.push_str(&format!("\n# {}\n{}", file.path, file.contents));
    }
    text
}

#[test]
fn default_cluster() {
    insta::assert_snapshot!(pinned(&plan("", 0, false)));
}

#[test]
fn three_hosts() {
    insta::assert_snapshot!(pinned(&plan(&lab(3, "[home]\nhost_path = \"/gfsv/home\"\n"), 3, false)));
}

#[test]
fn macvlan() {
    let extra = "[home]\nhost_path = \"/gfsv/home\"\n[compute]\nper_host = 2\n[network]\nmode = \"macvlan\"\n\
                 parent = \"eth0\"\nsubnet = \"10.0.0.0/24\"\nip_range = \"10.0.0.64/26\"\n";
    insta::assert_snapshot!(pinned(&plan(&lab(2, extra), 2, false)));
}

#[test]
fn glusterfs_home() {
    insta::assert_snapshot!(pinned(&plan(&lab(2, "[home]\nshared = \"glusterfs\"\n"), 2, true)));
}

#[test]
fn accounting_with_accounts() {
    let text = "name = \"dept\"\n\
                [[user]]\nname = \"alice\"\n[[user]]\nname = \"bob\"\n\
                [[account]]\nname = \"physics\"\nusers = [\"alice\"]\nfairshare = 2\n\
                grp_tres = \"cpu=8\"\nmax_jobs = 20\n\
                [[account]]\nname = \"chemistry\"\nusers = [\"bob\"]\n";
    insta::assert_snapshot!(pinned(&plan(text, 0, false)));
}

#[test]
fn ldap() {
    let text = "name = \"dir\"\n[ldap]\nuri = \"ldap://ldap.example.org\"\nbase_dn = \"dc=example,dc=org\"\n";
    insta::assert_snapshot!(pinned(&plan(text, 0, false)));
}

/// `backup = true` on one engine: a second controller there, sharing the state volume
/// and reading the primary's keys; slurm.conf names both, every node is given both.
#[test]
fn backup_controller_on_one_host() {
    insta::assert_snapshot!(pinned(&plan("[controller]\nbackup = true\n", 0, false)));
}

/// A backup on the second of three hosts, the state in the site's shared folder: it gets
/// its own volumes for the copies of the keys.
#[test]
fn backup_controller_on_another_host() {
    let extra = "[home]\nhost_path = \"/gfsv/home\"\n[controller]\nbackup = \"pi2\"\nstate_path = \"/gfsv/slurmctld\"\n";
    insta::assert_snapshot!(pinned(&plan(&lab(3, extra), 3, false)));
}

/// The same backup without `state_path`: the state is a GlusterFS volume on the three
/// hosts, mounted for the two controllers, made before they start.
#[test]
fn backup_controller_with_state_on_glusterfs() {
    let extra = "[home]\nhost_path = \"/gfsv/home\"\n[controller]\nbackup = \"pi2\"\n";
    insta::assert_snapshot!(pinned(&plan(&lab(3, extra), 3, true)));
}
