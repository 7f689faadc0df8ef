//! The site's software on every node (`[software] packages`), on a real cluster: SciPy,
//! which the node image lacks, imports on both compute nodes; a second `up` builds
//! nothing and changes nothing; a package Debian does not have is refused when the
//! image is built (exit 2, apt's own words naming it) and the running cluster is left
//! as it was. One small cluster (no accounting, REST API or metrics: they play no part).

mod common;

use common::{ClusterGuard, container_identities, slurmbox};

const SPEC: &str = "accounting = false\n[compute]\ncount = 2\n[rest]\nenabled = false\n\
                    [metrics]\nenabled = false\n";

#[test]
fn site_packages_reach_every_node_and_a_bogus_one_changes_nothing() {
    let cluster = ClusterGuard::new("software");
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("cluster.toml");
    let spec = spec_path.to_str().unwrap();
    let write_spec = |packages: &str| {
        let text = format!("name = \"{}\"\n{SPEC}[software]\npackages = [{packages}]\n", cluster.name);
        std::fs::write(&spec_path, text).unwrap();
    };
    write_spec("\"python3-scipy\"");

    // The node image with SciPy: its own tag, which `image build -f` names too.
    slurmbox(&["up", "-f", spec]).ok();
    let tag = slurmbox(&["image", "build", "--quiet", "-f", spec]).ok().stdout.trim().to_string();
    assert!(tag.starts_with("slurmbox/node:24.11-"), "{tag}");
    assert_ne!(tag, common::node_image("24.11"), "the site's packages make another image");
    let script =
        "srun -N2 python3 -c 'import scipy, socket; print(socket.gethostname(), scipy.__version__)' | sort";
    let out = cluster.sh(script).ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("node1 1.") && lines[1].starts_with("node2 1."), "{out}");

    // Again, unchanged: the image is the engine's already and no container changes.
    let before = container_identities(&cluster.name);
    let again = slurmbox(&["up", "-f", spec]).ok();
    assert!(again.stderr.contains(&format!("Image {tag} (cached")), "{}", again.stderr);
    assert!(!again.stderr.contains("built"), "{}", again.stderr);
    assert_eq!(container_identities(&cluster.name), before);

    // A package Debian does not have: refused at the image step, nothing touched.
    write_spec("\"python3-scipy\", \"slurmbox-no-such-package\"");
    let bogus = slurmbox(&["up", "-f", spec]);
    assert_eq!(bogus.code, 2, "{}", bogus.stderr);
    // The report is wrapped to the terminal's width, its lines marked with │.
    let said = bogus.stderr.replace('│', " ").split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(said.contains("apt says: E: Unable to locate package slurmbox-no-such-package"), "{said}");
    assert!(said.contains("no container was changed"), "{said}");
    assert_eq!(container_identities(&cluster.name), before, "the running cluster was touched");
    assert_eq!(cluster.sh("srun -N2 true && echo ok").ok().stdout, "ok\n");
}
