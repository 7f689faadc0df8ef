//! Reaching a cluster's hosts and learning their facts: each engine answers (or the
//! host counts as unreachable), says what it offers and its architecture, and gets the
//! images its containers run (built here and streamed there, or built there).

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::future::{join_all, try_join_all};

use super::DeployError;
use crate::components::gpus::{self, ProbedGpus};
use crate::components::limits::CgroupHost;
use crate::components::{HostFacts, accounting, glusterfs, metrics, web};
use crate::components::{ImageHosts, PARTS};
use crate::engine::docker::DockerEngine;
use crate::engine::{Engine, EngineError, EngineInfo};
use crate::image::{self, Recipe};
use crate::plan::GpuRequest;
use crate::progress::Progress;
use crate::spec::{
    Arch, BackupPlace, ClusterSpec, DEFAULT_REST_PORT, DEFAULT_SSH_PORT, DEFAULT_WEB_PORT, HostSpec,
};

/// How long a host's engine may take to answer before it counts as unreachable (an
/// ssh connection to a machine that fell off the network would otherwise hang for
/// minutes).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Connects to a host's engine and asks what it offers; any failure, a slow answer
/// included, is an error naming the host.
pub async fn connect(host: &HostSpec) -> Result<(DockerEngine, EngineInfo), EngineError> {
    let probe = async {
        let engine = DockerEngine::connect(Some(&host.engine)).await?;
        let info = engine.info().await?;
        Ok::<_, EngineError>((engine, info))
    };
    let reason = match tokio::time::timeout(CONNECT_TIMEOUT, probe).await {
        Ok(Ok(found)) => return Ok(found),
        // "cannot reach the Docker engine: URL: why" says twice what the error says.
        Ok(Err(EngineError::Unreachable(why))) => {
            why.strip_prefix(&format!("{}: ", host.engine)).map_or(why.clone(), String::from)
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
    };
    Err(EngineError::HostUnreachable { host: host.name.clone(), engine: host.engine.clone(), reason })
}

/// The hosts that answered (in the spec's order), and those left out.
pub struct Reached {
    /// The engines of the hosts that answered.
    pub engines: Vec<DockerEngine>,
    pub infos: Vec<EngineInfo>,
    /// Each answering host's architecture: the spec's `arch`, else its engine's.
    pub arches: Vec<Arch>,
    /// The spec's index of each answering host.
    pub index: Vec<usize>,
    /// Indices into the spec's hosts of those that did not answer (`--skip-unreachable`).
    pub skipped: Vec<usize>,
}

/// Every engine at once. The controller's host must answer; another that does not
/// stops `up` before it changes anything, unless `skip_unreachable` leaves it as it is.
/// `local_engine`: the local engine's address where the Docker client's defaults do not
/// find it (see [`crate::settings::Settings::local_engine`]).
pub async fn reach(
    spec: &ClusterSpec,
    skip_unreachable: bool,
    local_engine: Option<&str>,
    p: &Progress,
) -> Result<Reached, DeployError> {
    let step = p.step(match spec.hosts.as_slice() {
        [] => "Docker engine".to_string(),
        [host] => format!("Docker engine on {} ({})", host.name, host.engine),
        many => format!(
            "Docker engines on {}",
            many.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
    });
    let probed: Vec<Result<(DockerEngine, EngineInfo), EngineError>> = if spec.hosts.is_empty() {
        let local = async {
            let engine = DockerEngine::connect(local_engine).await?;
            let info = engine.info().await?;
            Ok((engine, info))
        };
        vec![local.await]
    } else {
        join_all(spec.hosts.iter().map(connect)).await
    };
    let mut reached =
        Reached { engines: vec![], infos: vec![], arches: vec![], index: vec![], skipped: vec![] };
    let mut skipped = Vec::new();
    for (i, probe) in probed.into_iter().enumerate() {
        match probe {
            Ok((engine, info)) => {
                let listed = spec.hosts.get(i).and_then(|h| h.arch);
                reached.arches.push(listed.or_else(|| Arch::parse(&info.arch)).unwrap_or(Arch::native()));
                reached.engines.push(engine);
                reached.infos.push(info);
                reached.index.push(i);
            }
            Err(e) if i > 0 && skip_unreachable => skipped.push((i, e)),
            Err(e) => {
                step.fail("nothing was created on any host");
                return Err(e.into());
            }
        }
    }
    step.done_with(
        reached
            .infos
            .iter()
            .map(|i| format!("{} CPUs, {} MiB, {}, Docker {}", i.cpus, i.memory_mib, i.arch, i.version))
            .collect::<Vec<_>>()
            .join("; "),
    );
    for (i, e) in &skipped {
        p.say(format!(
            "Skipping host {:?} ({e}): its nodes are left as they are; `up` again once it answers.",
            spec.hosts[*i].name
        ));
    }
    reached.skipped = skipped.into_iter().map(|(i, _)| i).collect();
    Ok(reached)
}

/// Has every answering host hold the images its containers run (each part says which,
/// [`Part::image`]: the node image everywhere, the storage image for a GlusterFS /home,
/// the accounting image on the controller's host) and returns each host's facts, one
/// per host of the spec: a skipped host is given the controller's (its nodes keep their
/// names and addresses; nothing planned for it is carried out).
pub async fn images(
    spec: &ClusterSpec,
    reached: &Reached,
    options: &super::UpOptions,
    p: &Progress,
) -> Result<Vec<HostFacts>, DeployError> {
    let (sources, cache_dir) = (&options.sources, options.cache_dir.as_path());
    // Built where slurmbox runs when it has an engine (and sent on below), else on each host.
    let local = if spec.hosts.is_empty() {
        None
    } else {
        DockerEngine::connect(options.local_engine.as_deref()).await.ok()
    };
    let needs = image_needs(spec, &reached.arches, &reached.index);
    // Each recipe once, where it is built; then its tag, for every host that runs it.
    let mut tags: Vec<Vec<(image::Kind, String)>> = vec![Vec::new(); reached.engines.len()];
    for (recipe, hosts) in &needs {
        let builders: Vec<usize> = match local {
            Some(_) => vec![hosts[0]],
            None => hosts.clone(),
        };
        for at in builders {
            let engine = local.as_ref().unwrap_or(&reached.engines[at]);
            let tag = image::ensure(engine, recipe, sources, cache_dir, false, p).await?;
            for h in hosts {
                tags[*h].push((recipe.kind, tag.clone()));
            }
        }
    }
    if let Some(local) = &local {
        let tags = &tags;
        let sends =
            reached.engines.iter().zip(&reached.index).enumerate().map(|(at, (engine, i))| async move {
                let host = &spec.hosts[*i].name;
                for (kind, tag) in &tags[at] {
                    image::send_if_missing(local, engine, host, tag, kind.step(), p).await?;
                }
                Ok::<_, image::ImageError>(())
            });
        try_join_all(sends).await?;
    }
    let tag = |at: usize, kind: fn(&image::Kind) -> bool| {
        tags[at].iter().find(|(k, _)| kind(k)).map(|(_, t)| t.clone())
    };
    let mut facts: Vec<HostFacts> = reached
        .infos
        .iter()
        .zip(&reached.arches)
        .enumerate()
        .map(|(at, (info, arch))| HostFacts {
            cpus: info.cpus,
            memory_mib: info.memory_mib,
            arch: *arch,
            emulated: Arch::parse(&info.arch).is_some_and(|native| native != *arch),
            image: tag(at, |k| matches!(k, image::Kind::Node(_))).expect("every host runs the node image"),
            storage_image: tag(at, |k| matches!(k, image::Kind::Storage)),
            accounting_image: tag(at, |k| matches!(k, image::Kind::Accounting(_))),
            controller_image: tag(at, |k| matches!(k, image::Kind::Controller(_))),
            metrics_image: tag(at, |k| matches!(k, image::Kind::Metrics)),
            web_image: tag(at, |k| matches!(k, image::Kind::Web)),
            cgroup: CgroupHost::from_engine(info),
            ssh_port: spec.login.ssh_port.unwrap_or(DEFAULT_SSH_PORT),
            rest_port: spec.rest.port.unwrap_or(DEFAULT_REST_PORT),
            web_port: spec.web.port.unwrap_or(DEFAULT_WEB_PORT),
            gpus: None,
        })
        .collect();
    for &i in &reached.skipped {
        facts.insert(i, facts[0].clone());
    }
    Ok(facts)
}

/// Every image the parts need, each with the answering hosts (indices into `arches`,
/// the controller's host first; `index`: each one's place in the spec's hosts) that
/// run it, in the parts' order.
fn image_needs(spec: &ClusterSpec, arches: &[Arch], index: &[usize]) -> Vec<(Recipe, Vec<usize>)> {
    let wanted: BTreeSet<Arch> = arches.iter().copied().collect();
    let backup = match &spec.controller.backup {
        Some(BackupPlace::Host(name)) => spec.hosts.iter().position(|h| &h.name == name),
        Some(BackupPlace::SameHost) | None => None,
    };
    let mut needs = Vec::new();
    for part in PARTS {
        for arch in &wanted {
            let Some((recipe, on)) = part.image(spec, *arch) else { continue };
            let on_arch = |h: &usize| arches[*h] == *arch;
            let hosts: Vec<usize> = match on {
                ImageHosts::Every => (0..arches.len()).filter(on_arch).collect(),
                ImageHosts::Controller => vec![0].into_iter().filter(on_arch).collect(),
                ImageHosts::Controllers => (0..arches.len())
                    .filter(|h| *h == 0 || Some(index[*h]) == backup)
                    .filter(on_arch)
                    .collect(),
                ImageHosts::StateBricks => {
                    let bricks = spec.controller.state_brick_hosts(&spec.hosts);
                    (0..arches.len()).filter(|h| bricks.contains(&index[*h])).filter(on_arch).collect()
                }
            };
            if !hosts.is_empty() {
                needs.push((recipe, hosts));
            }
        }
    }
    needs
}

/// Each answering host's GPUs that come through its engine, on hosts whose spec lists
/// no device files: where its engine has the NVIDIA container toolkit or NVIDIA CDI
/// devices ([`gpus::probe_request`]), a probe container of its node image says what
/// they are, and they go into its facts. A probe that fails leaves its host without
/// engine GPUs, said with the engine's reason; `up` goes on.
pub async fn probe_gpus(spec: &ClusterSpec, reached: &Reached, facts: &mut [HostFacts], p: &Progress) {
    let images: Vec<&str> = facts.iter().map(|f| f.image.as_str()).collect();
    let probes =
        reached.engines.iter().zip(&reached.infos).zip(&reached.index).map(|((engine, info), &i)| {
            let image = images[i];
            async move {
                let request = gpus::probe_request(info, spec.engine_gpus(i), spec.gpu_devices(i))?;
                Some((i, probe(engine, &spec.name, image, &request).await))
            }
        });
    let found: Vec<_> = join_all(probes).await.into_iter().flatten().collect();
    for (i, probed) in found {
        let host = spec.hosts.get(i).map_or("local", |h| h.name.as_str());
        match probed {
            Ok(Some(probed)) => {
                p.say(format!("GPUs on {host}: {}", probed.describe()));
                facts[i].gpus = Some(probed);
            }
            Ok(None) => p.say(format!(
                "GPUs on {host}: its engine gives GPUs to containers, but a container given them saw none"
            )),
            Err(why) => p.say(format!(
                "GPUs on {host}: not given to Slurm: a container given the host's GPUs failed ({why}); \
                 check `docker run --rm --gpus all IMAGE nvidia-smi` there (the NVIDIA container toolkit)"
            )),
        }
    }
}

/// What a probe container with `request` on `engine` sees: the GPUs, or `None`; an
/// error says why it could not run.
pub async fn probe<E: Engine>(
    engine: &E,
    cluster: &str,
    image: &str,
    request: &GpuRequest,
) -> Result<Option<ProbedGpus>, String> {
    let name = format!("{cluster}-gpu-probe");
    let cmd = ["sh".to_string(), "-c".into(), gpus::PROBE_SCRIPT.into()];
    let out = engine.run_probe(&name, image, &cmd, request).await.map_err(|e| e.to_string())?;
    if !out.ok() {
        return Err(format!("exit {}: {}", out.code, out.stderr.trim()));
    }
    Ok(ProbedGpus::parse(request, &out.stdout))
}

/// Facts for showing a cluster's files without starting anything (`config render`):
/// every host is assumed to look like the local engine's (or the one host's), without
/// GPUs through an engine (those only a probe container finds, which `up` runs).
/// `local_engine` as for [`reach`].
pub async fn assumed_facts(
    spec: &ClusterSpec,
    local_engine: Option<&str>,
) -> Result<Vec<HostFacts>, EngineError> {
    let engine = DockerEngine::connect(spec.engine().or(local_engine)).await?;
    let info = engine.info().await?;
    let arch = Arch::parse(&info.arch).unwrap_or(Arch::native());
    let facts = HostFacts {
        cpus: info.cpus,
        memory_mib: info.memory_mib,
        arch,
        emulated: false,
        image: Recipe::new(spec.slurm, arch).with_software(&spec.software.image_packages()).tag(),
        storage_image: Some(glusterfs::image_recipe(arch).tag()),
        accounting_image: Some(accounting::image_recipe(spec.slurm, arch).tag()),
        controller_image: Some(Recipe::controller(spec.slurm, arch).tag()),
        metrics_image: Some(metrics::image_recipe(arch).tag()),
        web_image: Some(web::image_recipe(arch).tag()),
        cgroup: CgroupHost::from_engine(&info),
        ssh_port: spec.login.ssh_port.unwrap_or(DEFAULT_SSH_PORT),
        rest_port: spec.rest.port.unwrap_or(DEFAULT_REST_PORT),
        web_port: spec.web.port.unwrap_or(DEFAULT_WEB_PORT),
        gpus: None,
    };
    Ok(vec![facts; spec.hosts.len().max(1)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Kind;

    /// Which hosts (answering, in the spec's order) get each kind of image.
    fn hosts_of(text: &str, hosts: usize) -> Vec<(Kind, Vec<usize>)> {
        let spec = ClusterSpec::parse("cluster.toml", text).unwrap();
        let arches = vec![Arch::Amd64; hosts];
        let index: Vec<usize> = (0..hosts).collect();
        image_needs(&spec, &arches, &index).into_iter().map(|(r, on)| (r.kind, on)).collect()
    }

    const THREE_HOSTS: &str = "[home]\nhost_path = \"/gfsv/home\"\n[[host]]\nname = \"a\"\nengine = \"tcp://a:2375\"\n[[host]]\nname = \"b\"\nengine = \"tcp://b:2375\"\n[[host]]\nname = \"c\"\nengine = \"tcp://c:2375\"\n";

    #[test]
    fn a_backup_on_another_host_gets_the_controller_image_there() {
        let text = format!(
            "name = \"lab\"\n[controller]\nhost = \"a\"\nbackup = \"c\"\nstate_path = \"/gfsv/ctld\"\n{THREE_HOSTS}"
        );
        let needs = hosts_of(&text, 3);
        let on = |f: fn(&Kind) -> bool| needs.iter().find(|(k, _)| f(k)).map(|(_, on)| on.clone()).unwrap();
        assert_eq!(on(|k| matches!(k, Kind::Controller(_))), [0, 2]);
        assert_eq!(on(|k| matches!(k, Kind::Node(_))), [0, 1, 2]);
        assert_eq!(on(|k| matches!(k, Kind::Accounting(_))), [0], "slurmdbd stays on the primary's host");
        let alone = hosts_of(&format!("name = \"lab\"\ncontroller = \"a\"\n{THREE_HOSTS}"), 3);
        let controller = alone.iter().find(|(k, _)| matches!(k, Kind::Controller(_))).unwrap();
        assert_eq!(controller.1, [0]);
        assert!(!needs.iter().any(|(k, _)| matches!(k, Kind::Storage)), "the state is the site's folder");
    }

    /// Without state_path, the state is a GlusterFS volume on the controllers' hosts and
    /// one more: those get the storage image, and only those.
    #[test]
    fn state_on_glusterfs_brings_the_storage_image_to_three_hosts() {
        let four = format!("{THREE_HOSTS}[[host]]\nname = \"d\"\nengine = \"tcp://d:2375\"\n");
        let needs =
            hosts_of(&format!("name = \"lab\"\n[controller]\nhost = \"a\"\nbackup = \"c\"\n{four}"), 4);
        let storage = needs.iter().find(|(k, _)| matches!(k, Kind::Storage)).unwrap();
        assert_eq!(storage.1, [0, 1, 2], "a, the backup's c, and b");
    }
}
