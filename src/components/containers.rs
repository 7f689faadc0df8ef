//! Containers in jobs (`[software] containers = true`): a researcher runs a job step in
//! their own image with Slurm's OCI support, `srun --container=DIR`, where DIR is a
//! bundle `slurmbox-bundle` made from a `docker save` archive in their home.
//!
//! Slurm starts the step with crun (in the node image, see
//! [`crate::spec::SoftwareSpec::image_packages`]) as the job's user, without root: a user
//! namespace mapping only the user's own IDs and a mount namespace, in the job's cgroup
//! (so its memory and cores hold) and the node's network. Docker's default seccomp
//! profile never allows pivot_root, so crun enters the image with chroot
//! (`--no-pivot`), which the profile allows only to containers holding SYS_CHROOT: the
//! compute nodes get it. It is one of Docker's own default capabilities, and root in a
//! node gains no way out of its container by it; users get it only inside their own
//! user namespace. Nothing here is planned without the key, so other clusters' plans
//! are unchanged.

use super::Layout;
use crate::plan::{Plan, PlannedFile, Role};

/// Where slurmctld reads oci.conf; the other nodes fetch it from it (configless).
pub const OCI_CONF_PATH: &str = "/etc/slurm/oci.conf";
/// The researchers' command that makes a bundle from an image archive.
pub const BUNDLE_PATH: &str = "/usr/local/bin/slurmbox-bundle";
pub const BUNDLE_SCRIPT: &str = include_str!("../../assets/slurmbox-bundle.sh");

/// How slurmstepd runs crun, as the job's user: the bundle's own config.json (made by
/// `slurmbox-bundle`: namespaces, mappings, mounts) with Slurm's command in it; crun's
/// state in a folder of the user's; no cgroup of crun's own, so the step stays in its
/// job's; no new session keyring (the seccomp profile refuses one).
pub const OCI_CONF: &str = r#"IgnoreFileConfigJson=false
RunTimeEnvExclude="^(SLURM_CONF|SLURM_CONF_SERVER)="
RunTimeRun="crun --root=/tmp/crun-%U --cgroup-manager=disabled run --no-pivot --no-new-keyring --bundle %b %n.%u.%j.%s.%t"
RunTimeKill="crun --root=/tmp/crun-%U kill -a %n.%u.%j.%s.%t"
RunTimeDelete="crun --root=/tmp/crun-%U delete --force %n.%u.%j.%s.%t"
"#;

pub fn add(layout: &Layout, plan: &mut Plan) {
    if !layout.spec.software.containers {
        return;
    }
    let bundle = PlannedFile { path: BUNDLE_PATH.into(), mode: 0o755, contents: BUNDLE_SCRIPT.into() };
    for c in &mut plan.containers {
        match c.role {
            Role::Controller => c.files.push(PlannedFile {
                path: OCI_CONF_PATH.into(),
                mode: 0o644,
                contents: OCI_CONF.into(),
            }),
            Role::Compute => {
                c.cap_add.push("SYS_CHROOT".into());
                c.files.push(bundle.clone());
            }
            Role::Login => c.files.push(bundle.clone()),
            _ => {}
        }
    }
}
