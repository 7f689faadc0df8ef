//! The spec's services for tools and people beside the shell: `[rest]` (slurmrestd with
//! JWT tokens) and `[metrics]` (an OpenMetrics endpoint and Prometheus keeping its
//! history). Both are on by default, except in macvlan mode, where their containers
//! have no address of their own on the LAN yet.

use std::net::IpAddr;
use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::check::in_range;
use super::{LoginSpec, NetworkSpec, SpecError};

/// Slurm's REST API: slurmrestd in its own container, answering people and tools on
/// the controller's host.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RestSpec {
    pub enabled: bool,
    /// The port the spec names; `None`: [`DEFAULT_REST_PORT`], or the next one free
    /// when another cluster on the host has it.
    pub port: Option<u16>,
    /// The controller host's address it is published on (default: all of them).
    pub address: Option<IpAddr>,
}

pub const DEFAULT_REST_PORT: u16 = 6820;

/// The cluster's numbers: an OpenMetrics endpoint, and Prometheus scraping it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MetricsSpec {
    pub enabled: bool,
    /// Where Prometheus is published on the controller's host; `None`: on the cluster's
    /// network alone.
    pub port: Option<u16>,
    /// How long Prometheus keeps samples, as Prometheus writes durations ("15d").
    pub retention: String,
}

pub const DEFAULT_RETENTION: &str = "15d";

/// The dashboard: nginx in its own container serving slurmbox's pages, every data
/// request going to slurmrestd and Prometheus with the user's own token.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WebSpec {
    pub enabled: bool,
    /// The port the spec names; `None`: [`DEFAULT_WEB_PORT`], or the next one free.
    pub port: Option<u16>,
    /// The controller host's address it is published on (default: all of them).
    pub address: Option<IpAddr>,
    /// HTTPS: the certificate (chain) and its key, PEM files on the machine running
    /// slurmbox, read at `up`; both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

pub const DEFAULT_WEB_PORT: u16 = 8080;

impl WebSpec {
    pub fn default_for(network: &NetworkSpec) -> WebSpec {
        WebSpec {
            enabled: !matches!(network, NetworkSpec::Macvlan(_)),
            port: None,
            address: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl RestSpec {
    pub fn default_for(network: &NetworkSpec) -> RestSpec {
        RestSpec { enabled: !matches!(network, NetworkSpec::Macvlan(_)), port: None, address: None }
    }
}

impl MetricsSpec {
    pub fn default_for(network: &NetworkSpec) -> MetricsSpec {
        MetricsSpec {
            enabled: !matches!(network, NetworkSpec::Macvlan(_)),
            port: None,
            retention: DEFAULT_RETENTION.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRest {
    enabled: Option<Spanned<bool>>,
    port: Option<Spanned<i64>>,
    address: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    enabled: Option<Spanned<bool>>,
    port: Option<Spanned<i64>>,
    retention: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    enabled: Option<Spanned<bool>>,
    port: Option<Spanned<i64>>,
    address: Option<Spanned<String>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
}

/// `enabled`, refused in macvlan mode.
fn check_enabled(
    table: &str,
    raw: Option<&Spanned<bool>>,
    network: &NetworkSpec,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<bool, SpecError> {
    let macvlan = matches!(network, NetworkSpec::Macvlan(_));
    match raw {
        None => Ok(!macvlan),
        Some(on) if *on.get_ref() && macvlan => Err(err(
            on.span(),
            format!("{table}.enabled does not work with network mode \"macvlan\" yet"),
            format!("leave [{table}] out (it is off in macvlan mode), or use the default network"),
        )),
        Some(on) => Ok(*on.get_ref()),
    }
}

/// A published port: in range, not one of Slurm's daemons' (6817-6819), not the login
/// node's.
fn check_port(
    key: &str,
    port: &Spanned<i64>,
    login: &LoginSpec,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<u16, SpecError> {
    let number = in_range(port, 1, 65535, key, err)? as u16;
    if (6817..=6819).contains(&number) {
        return Err(err(
            port.span(),
            format!("{key} = {number} is one of Slurm's daemons' ports (6817-6819)"),
            "pick another port".into(),
        ));
    }
    let ssh = login.ssh_port.unwrap_or(super::DEFAULT_SSH_PORT);
    if number == ssh {
        return Err(err(
            port.span(),
            format!("{key} = {number} is the login node's ssh port"),
            "give one of them another port".into(),
        ));
    }
    Ok(number)
}

pub(super) fn check_rest(
    raw: Option<&RawRest>,
    network: &NetworkSpec,
    login: &LoginSpec,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<RestSpec, SpecError> {
    let mut rest = RestSpec::default_for(network);
    let Some(raw) = raw else {
        return Ok(rest);
    };
    rest.enabled = check_enabled("rest", raw.enabled.as_ref(), network, err)?;
    if let Some(port) = &raw.port {
        rest.port = Some(check_port("rest.port", port, login, err)?);
    }
    if let Some(address) = &raw.address {
        rest.address = Some(check_address("rest.address", address, err)?);
    }
    Ok(rest)
}

/// An address on the controller's host to publish a port on.
fn check_address(
    key: &str,
    address: &Spanned<String>,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<IpAddr, SpecError> {
    address.get_ref().parse().map_err(|_| {
        err(
            address.span(),
            format!("{key} must be an IP address, got {:?}", address.get_ref()),
            "name one of the controller host's addresses, e.g. \"127.0.0.1\" (default: all of them)".into(),
        )
    })
}

/// `[web]`: on where the REST API is (its pages ask it for everything); its port none
/// of the other services' on the controller's host; TLS files both or neither.
pub(super) fn check_web(
    raw: Option<&RawWeb>,
    network: &NetworkSpec,
    login: &LoginSpec,
    (rest, metrics): (&RestSpec, &MetricsSpec),
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<WebSpec, SpecError> {
    let mut web = WebSpec::default_for(network);
    web.enabled = web.enabled && rest.enabled;
    let Some(raw) = raw else {
        return Ok(web);
    };
    if let Some(on) = &raw.enabled {
        web.enabled = check_enabled("web", Some(on), network, err)?;
        if web.enabled && !rest.enabled {
            return Err(err(
                on.span(),
                "web.enabled needs the REST API: its pages ask slurmrestd for everything they show".into(),
                "remove `enabled = false` from [rest], or leave [web] out".into(),
            ));
        }
    }
    if let Some(port) = &raw.port {
        let number = check_port("web.port", port, login, err)?;
        let others = [
            (rest.enabled.then(|| rest.port.unwrap_or(DEFAULT_REST_PORT)), "the REST API's"),
            (metrics.port.filter(|_| metrics.enabled), "Prometheus's"),
        ];
        if let Some((_, whose)) = others.iter().find(|(p, _)| *p == Some(number)) {
            return Err(err(
                port.span(),
                format!("web.port = {number} is {whose} port"),
                "give one of them another port".into(),
            ));
        }
        web.port = Some(number);
    }
    if let Some(address) = &raw.address {
        web.address = Some(check_address("web.address", address, err)?);
    }
    let file = |f: &Spanned<String>, key: &str| -> Result<PathBuf, SpecError> {
        let path = PathBuf::from(f.get_ref());
        if !path.is_absolute() {
            return Err(err(
                f.span(),
                format!("{key} must be an absolute path, got {:?}", f.get_ref()),
                "name the PEM file on the machine that runs slurmbox, e.g. \"/etc/ssl/private/dash.key\""
                    .into(),
            ));
        }
        Ok(path)
    };
    match (&raw.tls_cert, &raw.tls_key) {
        (Some(cert), Some(key)) => {
            web.tls_cert = Some(file(cert, "web.tls_cert")?);
            web.tls_key = Some(file(key, "web.tls_key")?);
        }
        (Some(one), None) | (None, Some(one)) => {
            return Err(err(
                one.span(),
                "web.tls_cert and web.tls_key go together".into(),
                "name both PEM files (the certificate and its key), or neither for plain HTTP".into(),
            ));
        }
        (None, None) => {}
    }
    Ok(web)
}

pub(super) fn check_metrics(
    raw: Option<&RawMetrics>,
    network: &NetworkSpec,
    login: &LoginSpec,
    rest: &RestSpec,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<MetricsSpec, SpecError> {
    let mut metrics = MetricsSpec::default_for(network);
    let Some(raw) = raw else {
        return Ok(metrics);
    };
    metrics.enabled = check_enabled("metrics", raw.enabled.as_ref(), network, err)?;
    if let Some(port) = &raw.port {
        let number = check_port("metrics.port", port, login, err)?;
        if rest.enabled && rest.port.unwrap_or(DEFAULT_REST_PORT) == number {
            return Err(err(
                port.span(),
                format!("metrics.port = {number} is the REST API's port"),
                "give one of them another port".into(),
            ));
        }
        metrics.port = Some(number);
    }
    if let Some(retention) = &raw.retention {
        let r = retention.get_ref();
        let (digits, unit) = r.split_at(r.len().saturating_sub(1));
        let valid = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && digits.parse::<u32>().is_ok_and(|n| n > 0)
            && ["h", "d", "w", "y"].contains(&unit);
        if !valid {
            return Err(err(
                retention.span(),
                format!("metrics.retention = {r:?} is not a duration"),
                "write a number and a unit: \"12h\", \"15d\", \"8w\" or \"1y\"".into(),
            ));
        }
        metrics.retention = r.clone();
    }
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use crate::spec::ClusterSpec;

    use crate::spec::error_of;

    #[test]
    fn rest_and_metrics_are_on_by_default() {
        let spec = ClusterSpec::parse("c.toml", "").unwrap();
        assert!(spec.rest.enabled && spec.rest.port.is_none());
        assert!(spec.metrics.enabled && spec.metrics.port.is_none());
        assert_eq!(spec.metrics.retention, "15d");
        assert!(spec.web.enabled && spec.web.port.is_none() && spec.web.tls_cert.is_none());
        let no_rest = ClusterSpec::parse("c.toml", "[rest]\nenabled = false\n").unwrap();
        assert!(!no_rest.web.enabled, "no dashboard without the REST API it asks");
    }

    #[test]
    fn the_dashboard_takes_a_port_an_address_and_tls_files() {
        let text = "[web]\nport = 8443\naddress = \"10.0.0.5\"\ntls_cert = \"/etc/ssl/d.pem\"\ntls_key = \"/etc/ssl/d.key\"\n";
        let web = ClusterSpec::parse("c.toml", text).unwrap().web;
        assert_eq!((web.port, web.address), (Some(8443), Some("10.0.0.5".parse().unwrap())));
        assert_eq!(web.tls_key.as_deref(), Some(std::path::Path::new("/etc/ssl/d.key")));
        assert_eq!(
            error_of("[web]\ntls_cert = \"/etc/ssl/d.pem\"\n"),
            "cluster.toml:2:12: web.tls_cert and web.tls_key go together"
        );
        assert_eq!(
            error_of("[web]\ntls_cert = \"d.pem\"\ntls_key = \"d.key\"\n"),
            "cluster.toml:2:12: web.tls_cert must be an absolute path, got \"d.pem\""
        );
        assert_eq!(
            error_of("[web]\nport = 6820\n"),
            "cluster.toml:2:8: web.port = 6820 is the REST API's port"
        );
        assert_eq!(
            error_of("[rest]\nenabled = false\n[web]\nenabled = true\n"),
            "cluster.toml:4:11: web.enabled needs the REST API: its pages ask slurmrestd for everything they show"
        );
    }

    #[test]
    fn the_spec_sets_ports_and_retention() {
        let text =
            "[rest]\nport = 7000\naddress = \"127.0.0.1\"\n[metrics]\nport = 9090\nretention = \"2d\"\n";
        let spec = ClusterSpec::parse("c.toml", text).unwrap();
        assert_eq!(spec.rest.port, Some(7000));
        assert_eq!(spec.rest.address, Some("127.0.0.1".parse().unwrap()));
        assert_eq!((spec.metrics.port, spec.metrics.retention.as_str()), (Some(9090), "2d"));
        let off =
            ClusterSpec::parse("c.toml", "[rest]\nenabled = false\n[metrics]\nenabled = false\n").unwrap();
        assert!(!off.rest.enabled && !off.metrics.enabled);
    }

    #[test]
    fn bad_ports_and_durations_name_their_place() {
        assert_eq!(error_of("[rest]\nport = 70000\n"), "cluster.toml:2:8: rest.port = 70000 is out of range");
        assert_eq!(
            error_of("[login]\nssh_port = 2022\n[rest]\nport = 2022\n"),
            "cluster.toml:4:8: rest.port = 2022 is the login node's ssh port"
        );
        assert_eq!(
            error_of("[rest]\nport = 2222\n"),
            "cluster.toml:2:8: rest.port = 2222 is the login node's ssh port"
        );
        assert_eq!(
            error_of("[metrics]\nport = 6820\n"),
            "cluster.toml:2:8: metrics.port = 6820 is the REST API's port"
        );
        assert_eq!(
            error_of("[metrics]\nretention = \"15 days\"\n"),
            "cluster.toml:2:13: metrics.retention = \"15 days\" is not a duration"
        );
    }
}
