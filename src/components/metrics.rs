//! The cluster's numbers (`[metrics]`): an OpenMetrics endpoint for every cluster, and
//! Prometheus (Debian's, in `NAME-metrics`, host name `metrics`) scraping it, its data
//! on the `NAME-metrics` volume, published on the controller's host only when
//! `[metrics] port` is set.
//!
//! On Slurm 26.05 the endpoints are slurmctld's own (`MetricsType=metrics/openmetrics`,
//! `/metrics/...` on its port). Slurm 24.11 has none: slurmbox-exporter, beside
//! slurmctld in the controller's container, builds the same families from Slurm's JSON
//! output. It also says, on both releases, whether slurmdbd answers.

use super::{Config, Layout};
use crate::cluster::report::{ClusterStatus, MetricsStatus};
use crate::cluster::{Cluster, Model};
use crate::contract;
use crate::image::{self, Recipe};
use crate::plan::{
    ContainerPlan, LABEL_NODE, LABEL_ROLE, MountPlan, MountSource, Plan, PlannedFile, PortPlan, Role,
    VolumePlan,
};
use crate::spec::{Arch, SlurmVersion};

/// Prometheus's host name on the cluster's network.
pub const METRICS_HOST: &str = "metrics";
/// The port Prometheus listens on in its container.
pub const PROMETHEUS_PORT: u16 = 9090;
/// The port slurmbox-exporter answers on, in the controller's container.
pub const EXPORTER_PORT: u16 = 6821;
/// Where Prometheus keeps its data (the `NAME-metrics` volume).
pub const DATA_DIR: &str = "/var/lib/prometheus/metrics2";
/// Prometheus's settings, written by slurmbox.
pub const CONFIG_PATH: &str = "/etc/slurmbox/prometheus.yml";

/// The exporter (assets/slurmbox-exporter.py), and the script that starts it beside
/// slurmctld (assets/slurmbox-metrics.sh, prefixed to the controller's command).
pub const EXPORTER_SCRIPT: &str = include_str!("../../assets/slurmbox-exporter.py");
pub const EXPORTER_PATH: &str = "/usr/local/lib/slurmbox/slurmbox-exporter.py";
pub const EXPORTER_WRAPPER_SCRIPT: &str = include_str!("../../assets/slurmbox-metrics.sh");
pub const EXPORTER_WRAPPER_PATH: &str = "/usr/local/sbin/slurmbox-metrics";
/// The metrics container's main process (assets/slurmbox-prometheus.sh).
pub const PROMETHEUS_SCRIPT: &str = include_str!("../../assets/slurmbox-prometheus.sh");
pub const PROMETHEUS_PATH: &str = "/usr/local/sbin/slurmbox-prometheus";
/// The port Prometheus is published on, on its container (where `[metrics] port` is set).
pub const LABEL_PORT: &str = "io.slurmbox.metrics-port";
/// What slurmbox-metrics and slurmbox-prometheus read.
pub const ENV_EXPORTER_PORT: &str = "SLURMBOX_EXPORTER_PORT";
pub const ENV_RETENTION: &str = "SLURMBOX_METRICS_RETENTION";

/// Slurm 26.05 serves its own metrics.
pub fn configure(layout: &Layout, config: &mut Config) {
    if layout.spec.metrics.enabled && has_openmetrics(layout.spec.slurm) {
        config.slurm_conf.openmetrics = true;
    }
}

/// Whether slurmctld of `slurm` serves OpenMetrics itself (25.11 and later).
pub fn has_openmetrics(slurm: SlurmVersion) -> bool {
    slurm != SlurmVersion::V24_11
}

/// Where Prometheus reaches the controller: its name on the cluster's network, its
/// host's address on a host's network.
fn controller_addr(layout: &Layout) -> String {
    layout.controller_addr(layout.controller()).unwrap_or_else(|| layout.controller().name.clone())
}

/// The scrape targets: slurmbox-exporter always, slurmctld's own endpoints on 26.05.
pub fn prometheus_config(layout: &Layout) -> crate::render::PrometheusConf {
    crate::render::PrometheusConf::for_cluster(
        &layout.cluster,
        &controller_addr(layout),
        EXPORTER_PORT,
        has_openmetrics(layout.spec.slurm),
    )
}

pub fn add(layout: &Layout, plan: &mut Plan) {
    if !layout.spec.metrics.enabled {
        return;
    }
    let host = layout.controller().host;
    let Some(image) = layout.facts[host].metrics_image.clone() else {
        return;
    };
    // The exporter beside slurmctld.
    for c in plan.containers.iter_mut().filter(|c| c.role == Role::Controller) {
        c.files.push(PlannedFile {
            path: EXPORTER_PATH.into(),
            mode: 0o644,
            contents: EXPORTER_SCRIPT.into(),
        });
        c.files.push(PlannedFile {
            path: EXPORTER_WRAPPER_PATH.into(),
            mode: 0o755,
            contents: EXPORTER_WRAPPER_SCRIPT.into(),
        });
        c.env.push(contract::env::var(ENV_EXPORTER_PORT, EXPORTER_PORT));
        c.command.insert(0, EXPORTER_WRAPPER_PATH.into());
    }
    let volume = format!("{}-metrics", layout.cluster);
    plan.volumes.push(VolumePlan { host, name: volume.clone(), labels: layout.labels(&[]) });
    let config = prometheus_config(layout);
    let listen = match layout.on_host_network {
        // On a host's network Prometheus is on the host itself: its port is the
        // spec's, or the host's loopback alone.
        true => match layout.spec.metrics.port {
            Some(port) => format!("0.0.0.0:{port}"),
            None => format!("127.0.0.1:{PROMETHEUS_PORT}"),
        },
        false => format!("0.0.0.0:{PROMETHEUS_PORT}"),
    };
    let mut labels = layout.labels(&[(LABEL_ROLE, Role::Metrics.as_str()), (LABEL_NODE, METRICS_HOST)]);
    if let Some(port) = layout.spec.metrics.port {
        labels.insert(LABEL_PORT.into(), port.to_string());
    }
    plan.containers.push(ContainerPlan {
        host,
        name: format!("{}-{METRICS_HOST}", layout.cluster),
        hostname: METRICS_HOST.into(),
        role: Role::Metrics,
        image,
        command: vec![PROMETHEUS_PATH.into(), listen],
        env: vec![contract::env::var(ENV_RETENTION, &layout.spec.metrics.retention)],
        mounts: vec![MountPlan {
            source: MountSource::Volume(volume),
            target: DATA_DIR.into(),
            read_only: false,
            propagation: None,
        }],
        // The script hands the data folder to the prometheus account and drops to it.
        cap_add: vec!["CHOWN".into(), "SETUID".into(), "SETGID".into()],
        network: layout.network.clone(),
        ip: None,
        files: vec![
            PlannedFile { path: PROMETHEUS_PATH.into(), mode: 0o755, contents: PROMETHEUS_SCRIPT.into() },
            PlannedFile { path: CONFIG_PATH.into(), mode: 0o644, contents: config.to_string() },
        ],
        labels,
        devices: vec![],
        security_opt: vec![],
        cgroupns_private: false,
        ports: match (layout.spec.metrics.port, layout.on_host_network) {
            (Some(port), false) => {
                vec![PortPlan { host_ip: "0.0.0.0".into(), host_port: port, container_port: PROMETHEUS_PORT }]
            }
            _ => vec![],
        },
        memory_mib: None,
        health: None,
    });
}

/// Debian packages in the metrics image: Prometheus (with promtool).
pub const IMAGE_PACKAGES: &[&str] = &["prometheus", "tini", "ca-certificates"];

/// The metrics image's recipe on `arch`: Prometheus from Debian's stable release, the
/// same for every Slurm release.
pub fn image_recipe(arch: Arch) -> Recipe {
    Recipe { kind: image::Kind::Metrics, arch, suite: "trixie", packages: IMAGE_PACKAGES, hooks: &[] }
}

/// Where Prometheus answers, for `status`: its URL on the controller's host when
/// published, and its address on the cluster's network (on a host's network, over
/// several hosts: the host's loopback, unless published).
pub fn status(cluster: &Cluster, model: &Model, status: &mut ClusterStatus) {
    let Some(c) = model.containers.iter().find(|c| c.is(Role::Metrics)) else {
        return;
    };
    let port = c.labels.get(LABEL_PORT).and_then(|p| p.parse::<u16>().ok());
    let host = engine_host(cluster.hosts[c.host].url.as_deref());
    status.metrics = Some(MetricsStatus {
        address: match (cluster.hosts.len(), port) {
            (1, _) => format!("{METRICS_HOST}:{PROMETHEUS_PORT}"),
            (_, Some(p)) => format!("{host}:{p}"),
            (_, None) => format!("127.0.0.1:{PROMETHEUS_PORT}"),
        },
        url: port.map(|p| format!("http://{host}:{p}")),
        state: c.state.clone(),
    });
}

/// `status`'s line on Prometheus.
pub fn status_line(m: &MetricsStatus) -> String {
    let state = if m.state == "running" { String::new() } else { format!(" (its container: {})", m.state) };
    let published = "[metrics] port publishes it on the host";
    match &m.url {
        Some(url) => format!("metrics: Prometheus at {url}{state}"),
        None if m.address.starts_with(METRICS_HOST) => {
            format!("metrics: Prometheus on the cluster network at {}{state} ({published})", m.address)
        }
        None => format!("metrics: Prometheus on the controller's host at {}{state} ({published})", m.address),
    }
}

/// The machine an engine's address names ("ssh://pi@192.168.1.10" is 192.168.1.10);
/// "localhost" for the local engine.
fn engine_host(url: Option<&str>) -> String {
    let Some(url) = url else {
        return "localhost".into();
    };
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    match rest.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split(']').next().unwrap_or_default()),
        None => rest.split([':', '/']).next().unwrap_or_default().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::{HostFacts, plan};
    use crate::spec::ClusterSpec;

    fn facts() -> HostFacts {
        let image = |repository: &str| Some(format!("slurmbox/{repository}:26.05-test"));
        HostFacts {
            image: "slurmbox/node:26.05-test".into(),
            accounting_image: image("accounting"),
            controller_image: image("controller"),
            ..crate::components::tests::facts()
        }
    }

    #[test]
    fn prometheus_scrapes_the_exporter_and_slurmctld_on_its_volume() {
        let text = "name = \"c\"\nslurm = \"26.05\"\n[metrics]\nport = 9091\nretention = \"2d\"\n";
        let plan = plan(&ClusterSpec::parse("c.toml", text).unwrap(), &[facts()]);
        let prometheus = plan.containers.iter().find(|c| c.role == Role::Metrics).expect("NAME-metrics");
        assert_eq!((prometheus.name.as_str(), prometheus.hostname.as_str()), ("c-metrics", "metrics"));
        assert!(prometheus.env.contains(&format!("{ENV_RETENTION}=2d")), "{:?}", prometheus.env);
        assert_eq!(prometheus.ports[0].host_port, 9091);
        assert_eq!(prometheus.labels[LABEL_PORT], "9091");
        assert!(plan.volumes.iter().any(|v| v.name == "c-metrics"));
        let config = &prometheus.files.iter().find(|f| f.path == CONFIG_PATH).unwrap().contents;
        for path in ["/metrics/jobs", "/metrics/nodes", "/metrics/partitions", "/metrics/scheduler"] {
            assert!(config.contains(&format!("\"{path}\"")), "{config}");
        }
        assert!(config.contains("controller:6821") && config.contains("controller:6817"), "{config}");
        let controller = plan.containers.iter().find(|c| c.role == Role::Controller).unwrap();
        assert_eq!(controller.command[0], EXPORTER_WRAPPER_PATH);
        assert!(plan.slurm_conf.to_string().contains("MetricsType=metrics/openmetrics"));
    }

    #[test]
    fn metrics_off_leaves_no_container_volume_or_exporter() {
        for slurm in ["24.11", "26.05"] {
            let text = format!("name = \"c\"\nslurm = \"{slurm}\"\n[metrics]\nenabled = false\n");
            let plan = plan(&ClusterSpec::parse("c.toml", &text).unwrap(), &[facts()]);
            assert!(plan.containers.iter().all(|c| c.role != Role::Metrics && !c.name.ends_with("-metrics")));
            assert!(plan.volumes.iter().all(|v| !v.name.ends_with("-metrics")));
            let controller = plan.containers.iter().find(|c| c.role == Role::Controller).unwrap();
            assert!(controller.command[0] != EXPORTER_WRAPPER_PATH, "{:?}", controller.command);
            assert!(controller.files.iter().all(|f| f.path != EXPORTER_PATH));
            assert!(!plan.slurm_conf.to_string().contains("MetricsType"));
        }
    }

    #[test]
    fn the_engine_host_is_the_machine_its_address_names() {
        assert_eq!(engine_host(None), "localhost");
        assert_eq!(engine_host(Some("ssh://pi@192.168.1.10")), "192.168.1.10");
        assert_eq!(engine_host(Some("ssh://pi@node-a:2222")), "node-a");
        assert_eq!(engine_host(Some("tcp://10.0.0.5:2375")), "10.0.0.5");
        assert_eq!(engine_host(Some("tcp://[fd00::5]:2375")), "[fd00::5]");
    }

    #[test]
    fn the_status_line_says_where_prometheus_is() {
        let published = MetricsStatus {
            address: "metrics:9090".into(),
            url: Some("http://localhost:9091".into()),
            state: "running".into(),
        };
        assert_eq!(status_line(&published), "metrics: Prometheus at http://localhost:9091");
        let inside = MetricsStatus { url: None, state: "exited".into(), ..published };
        assert_eq!(
            status_line(&inside),
            "metrics: Prometheus on the cluster network at metrics:9090 (its container: exited) ([metrics] port \
             publishes it on the host)"
        );
    }
}
