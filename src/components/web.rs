//! The dashboard (`[web]`): Debian's nginx in its own container (`NAME-web`, host name
//! `web`) on the controller's host, serving slurmbox's pages (assets/web/) with
//! Debian's Bootstrap and Chart.js, published on `[web] port` (8080, or the next one
//! free), over HTTPS where the spec names a certificate.
//!
//! It holds no data and no token of its own. The browser sends the researcher's Slurm
//! token with every request for data (`X-SLURM-USER-TOKEN`); nginx passes it on to
//! slurmrestd (`/api/slurm/...`, `/api/slurmdb/...`), so that Slurm decides what each
//! person may see and do, and asks slurmrestd whether the token is good before it
//! answers for Prometheus (`/api/prometheus/...`), which has no users of its own.
//! Answers are kept a few seconds per token (keyed by a hash of it), so that pages
//! refreshing themselves do not load slurmctld.
//!
//! People log in with a link holding a token: `web-login` on the login node prints
//! one for whoever runs it, `slurmbox web-login USER` for the admin.

use std::collections::BTreeSet;
use std::fmt;

use super::login::{self, PublishedPorts};
use super::rest::{self, REST_CONTAINER_PORT, REST_HOST};
use super::{Layout, PartError};
use crate::apply::Apply;
use crate::cluster::report::ClusterStatus;
use crate::cluster::{Cluster, Model};
use crate::engine::{ContainerInfo, Engine, ExecSpec, FileUpload, checked};
use crate::image::{self, Recipe};
use crate::plan::{ContainerPlan, LABEL_NODE, LABEL_ROLE, Plan, PlannedFile, PortPlan, Role};
use crate::spec::{Arch, DEFAULT_WEB_PORT};

use super::metrics::{METRICS_HOST, PROMETHEUS_PORT};

/// nginx's host name on the cluster's network.
pub const WEB_HOST: &str = "web";
/// The port nginx listens on inside its container on the cluster's network.
pub const WEB_CONTAINER_PORT: u16 = 8080;
/// The port it is published on, on its container (so other clusters leave it).
pub const LABEL_WEB_PORT: &str = "io.slurmbox.web-port";
/// Where people open it ("http://HOST:PORT"), for `status` and `web-login`.
pub const LABEL_WEB_URL: &str = "io.slurmbox.web-url";
/// The data_parser version the pages speak (common to Slurm 24.11 and 26.05).
pub const API_VERSION: &str = "v0.0.42";

pub const NGINX_CONF_PATH: &str = "/etc/nginx/nginx.conf";
pub const NJS_PATH: &str = "/etc/nginx/slurmbox-web.js";
const NJS_SCRIPT: &str = include_str!("../../assets/web/slurmbox-web.js");
/// The pages, under nginx's root.
pub const PAGES_DIR: &str = "/usr/share/slurmbox-web";
const PAGES: &[(&str, &str)] = &[
    ("index.html", include_str!("../../assets/web/index.html")),
    ("app.js", include_str!("../../assets/web/app.js")),
    ("app.css", include_str!("../../assets/web/app.css")),
    ("api.js", include_str!("../../assets/web/api.js")),
    ("ui.js", include_str!("../../assets/web/ui.js")),
    ("reasons.js", include_str!("../../assets/web/reasons.js")),
    ("overview.js", include_str!("../../assets/web/overview.js")),
    ("jobs.js", include_str!("../../assets/web/jobs.js")),
    ("job.js", include_str!("../../assets/web/job.js")),
    ("submit.js", include_str!("../../assets/web/submit.js")),
    ("nodes.js", include_str!("../../assets/web/nodes.js")),
    ("accounts.js", include_str!("../../assets/web/accounts.js")),
];
/// The certificate and key, put there at `up` from the spec's files.
pub const TLS_CERT_PATH: &str = "/etc/slurmbox/web/tls.crt";
pub const TLS_KEY_PATH: &str = "/etc/slurmbox/web/tls.key";

/// On the login node: the command researchers run, and where it finds the URL.
pub const LOGIN_COMMAND_PATH: &str = "/usr/local/bin/web-login";
const LOGIN_COMMAND: &str = include_str!("../../assets/slurmbox-web-login.sh");
pub const URL_FILE: &str = "/etc/slurmbox/web-url";

/// A TLS file of the spec that cannot be used; nothing was changed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot use {what} {path}: {why}")]
#[diagnostic(help(
    "[web] tls_cert and tls_key name PEM files on this machine, readable by whoever runs slurmbox; fix the \
     file or the spec and run `slurmbox up` again. Nothing was changed"
))]
pub struct TlsFileError {
    pub what: &'static str,
    pub path: String,
    pub why: String,
}

/// nginx's settings for the dashboard, written by slurmbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NginxConf {
    pub cluster: String,
    /// What nginx listens on ("8080", or "10.0.0.5:8443" on a host's network).
    pub listen: String,
    pub tls: bool,
    /// slurmrestd ("rest:6820"), and Prometheus where the cluster has it.
    pub slurmrestd: String,
    pub prometheus: Option<String>,
    /// Docker's resolver, where the names above are containers' on a cluster network
    /// (looked up at each request: a container made again has a new address).
    pub resolver: Option<String>,
}

impl fmt::Display for NginxConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# Written by slurmbox: the dashboard of cluster {}.", self.cluster)?;
        f.write_str(NGINX_HEAD)?;
        if let Some(resolver) = &self.resolver {
            writeln!(f, "    resolver {resolver} valid=10s ipv6=off;")?;
        }
        writeln!(f, "    map $host $slurmrestd {{ default \"{}\"; }}", self.slurmrestd)?;
        writeln!(f, "    server {{")?;
        match self.tls {
            true => {
                writeln!(f, "        listen {} ssl;", self.listen)?;
                writeln!(f, "        ssl_certificate {TLS_CERT_PATH};")?;
                writeln!(f, "        ssl_certificate_key {TLS_KEY_PATH};")?;
                writeln!(f, "        ssl_protocols TLSv1.2 TLSv1.3;")?;
            }
            false => writeln!(f, "        listen {};", self.listen)?,
        }
        writeln!(f, "        root {PAGES_DIR};")?;
        f.write_str(&NGINX_SERVER.replace("API_VERSION", API_VERSION))?;
        if let Some(prometheus) = &self.prometheus {
            f.write_str(&NGINX_PROMETHEUS.replace("PROMETHEUS", prometheus))?;
        }
        writeln!(f, "    }}\n}}")
    }
}

/// Everything but the server's own lines: one worker (the work is slurmrestd's), logs
/// to the container's output without query strings or headers, the answers' cache.
const NGINX_HEAD: &str = r#"daemon off;
worker_processes 1;
pid /run/nginx.pid;
# slurmrestd sends a byte past its answers' Content-Length, which nginx would warn of each time.
error_log stderr error;
load_module modules/ngx_http_js_module.so;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    server_tokens off;
    sendfile on;
    # Tokens travel in a header, never in a URL, and the log names neither.
    log_format slurmbox '$remote_addr [$time_local] "$request_method $uri" $status $body_bytes_sent '
                        '$request_time $upstream_cache_status';
    access_log /dev/stdout slurmbox;
    js_import web from /etc/nginx/slurmbox-web.js;
    js_set $token_key web.tokenKey;
    # A few seconds of answers per token, keyed by its hash: pages that refresh
    # themselves do not load slurmctld, and one user never sees another's answers.
    proxy_cache_path /var/lib/nginx/answers levels=1:2 keys_zone=answers:8m max_size=256m
                     inactive=1m use_temp_path=off;
    client_max_body_size 1m;
"#;

/// The pages, the libraries, and the data: each request for it needs a token
/// slurmrestd takes (asked once per token every few seconds, `/_auth`).
const NGINX_SERVER: &str = r#"        add_header Content-Security-Policy "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'" always;
        add_header X-Content-Type-Options nosniff always;
        add_header Referrer-Policy no-referrer always;
        add_header X-Frame-Options DENY always;
        location / {
            try_files $uri /index.html;
        }
        # Debian's Bootstrap and Chart.js.
        location /lib/ {
            alias /usr/share/javascript/;
        }
        # A token is good when slurmctld takes it for its smallest answer (the
        # licenses; a ping is answered without looking at the token).
        location = /_auth {
            internal;
            proxy_pass http://$slurmrestd/slurm/API_VERSION/licenses;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-SLURM-USER-TOKEN $http_x_slurm_user_token;
            proxy_cache answers;
            proxy_cache_key "auth $token_key";
            proxy_cache_valid 200 10s;
            # slurmrestd answers 511 for a token slurmctld refuses: for the browser, 401.
            proxy_intercept_errors on;
            error_page 400 403 404 500 511 =401 /_refused;
        }
        location = /_refused {
            internal;
            return 401;
        }
        location ~ ^/api/(slurm|slurmdb)/API_VERSION/ {
            if ($http_x_slurm_user_token = "") {
                return 401;
            }
            auth_request /_auth;
            rewrite ^/api(/.*)$ $1 break;
            proxy_pass http://$slurmrestd;
            proxy_set_header X-SLURM-USER-TOKEN $http_x_slurm_user_token;
            proxy_set_header X-SLURM-USER-NAME "";
            proxy_cache answers;
            proxy_cache_key "$token_key $request_method $request_uri";
            proxy_cache_valid 200 5s;
            proxy_cache_lock on;
            # After an action the page asks again at once.
            proxy_cache_bypass $http_x_slurmbox_fresh;
            proxy_ignore_headers Cache-Control Expires Set-Cookie Vary;
            proxy_read_timeout 60s;
        }
"#;

/// Prometheus's query API, for the charts; nothing else of it.
const NGINX_PROMETHEUS: &str = r#"        location ~ ^/api/prometheus/api/v1/(query|query_range)$ {
            if ($http_x_slurm_user_token = "") {
                return 401;
            }
            auth_request /_auth;
            rewrite ^/api/prometheus(/.*)$ $1 break;
            proxy_pass http://PROMETHEUS;
            proxy_set_header X-SLURM-USER-TOKEN "";
            proxy_cache answers;
            proxy_cache_key "$token_key $request_method $request_uri";
            proxy_cache_valid 200 5s;
            proxy_cache_lock on;
        }
        location /api/ {
            return 401;
        }
"#;

/// The dashboard's container, and on the login node the `web-login` command with the
/// URL it prints.
pub fn add(layout: &Layout, plan: &mut Plan) {
    let web = &layout.spec.web;
    if !web.enabled {
        return;
    }
    let host = layout.controller().host;
    let facts = &layout.facts[host];
    let Some(image) = facts.web_image.clone() else {
        return;
    };
    let port = facts.web_port;
    let address = web.address.map_or("0.0.0.0".to_string(), |a| a.to_string());
    let url = rest::published_url(layout, web.address, web.tls_cert.is_some(), port);
    for login in plan.containers.iter_mut().filter(|c| c.role == Role::Login) {
        login.files.push(PlannedFile { path: URL_FILE.into(), mode: 0o644, contents: format!("{url}\n") });
        login.files.push(PlannedFile {
            path: LOGIN_COMMAND_PATH.into(),
            mode: 0o755,
            contents: LOGIN_COMMAND.into(),
        });
    }
    let conf = nginx_conf(layout, &address, port);
    let mut files = vec![
        PlannedFile { path: NGINX_CONF_PATH.into(), mode: 0o644, contents: conf.to_string() },
        PlannedFile { path: NJS_PATH.into(), mode: 0o644, contents: NJS_SCRIPT.into() },
    ];
    files.extend(PAGES.iter().map(|(name, text)| PlannedFile {
        path: format!("{PAGES_DIR}/{name}"),
        mode: 0o644,
        contents: (*text).into(),
    }));
    let mut labels = layout.labels(&[(LABEL_ROLE, Role::Web.as_str()), (LABEL_NODE, WEB_HOST)]);
    labels.insert(LABEL_WEB_PORT.into(), port.to_string());
    labels.insert(LABEL_WEB_URL.into(), url);
    plan.containers.push(ContainerPlan {
        host,
        name: format!("{}-{WEB_HOST}", layout.cluster),
        hostname: WEB_HOST.into(),
        role: Role::Web,
        image,
        command: vec!["nginx".into()],
        env: vec![],
        mounts: vec![],
        // nginx starts as root to read the key and drop its worker to www-data, whose
        // folders it makes.
        cap_add: vec!["CHOWN".into(), "SETUID".into(), "SETGID".into()],
        network: layout.network.clone(),
        ip: None,
        files,
        labels,
        devices: vec![],
        security_opt: vec![],
        cgroupns_private: false,
        ports: match layout.on_host_network {
            true => vec![],
            false => vec![PortPlan { host_ip: address, host_port: port, container_port: WEB_CONTAINER_PORT }],
        },
        memory_mib: None,
        health: None,
    });
    plan.web_tls = web.tls_cert.clone().zip(web.tls_key.clone());
}

/// On a cluster network nginx reaches slurmrestd and Prometheus by their names; on a
/// host's network they are on the host itself, where their parts put them.
fn nginx_conf(layout: &Layout, address: &str, port: u16) -> NginxConf {
    let spec = layout.spec;
    let facts = &layout.facts[layout.controller().host];
    let (listen, slurmrestd, prometheus, resolver) = match layout.on_host_network {
        true => {
            let local = |a: Option<std::net::IpAddr>| match a.filter(|a| !a.is_unspecified()) {
                Some(std::net::IpAddr::V6(a)) => format!("[{a}]"),
                Some(a) => a.to_string(),
                None => "127.0.0.1".into(),
            };
            let prometheus = match spec.metrics.port {
                Some(p) => format!("127.0.0.1:{p}"),
                None => format!("127.0.0.1:{PROMETHEUS_PORT}"),
            };
            (
                format!("{address}:{port}"),
                format!("{}:{}", local(spec.rest.address), facts.rest_port),
                prometheus,
                None,
            )
        }
        false => (
            WEB_CONTAINER_PORT.to_string(),
            format!("{REST_HOST}:{REST_CONTAINER_PORT}"),
            format!("{METRICS_HOST}:{PROMETHEUS_PORT}"),
            Some("127.0.0.11".to_string()),
        ),
    };
    NginxConf {
        cluster: layout.cluster.clone(),
        listen,
        tls: spec.web.tls_cert.is_some(),
        slurmrestd,
        prometheus: spec.metrics.enabled.then_some(prometheus),
        resolver,
    }
}

/// Debian packages in the dashboard's image: nginx with njs, and the pages' libraries.
pub const IMAGE_PACKAGES: &[&str] =
    &["nginx", "libnginx-mod-http-js", "libjs-bootstrap5", "libjs-chart.js", "tini", "ca-certificates"];

/// The dashboard image's recipe on `arch`, the same for every Slurm release.
pub fn image_recipe(arch: Arch) -> Recipe {
    Recipe { kind: image::Kind::Web, arch, suite: "trixie", packages: IMAGE_PACKAGES, hooks: &[] }
}

/// The dashboard's port on the controller's host (see [`login::choose_port`]): the
/// spec's, else the one it has, else [`DEFAULT_WEB_PORT`] or the next one free.
pub fn choose_port(explicit: Option<u16>, ports: &PublishedPorts, avoid: &BTreeSet<u16>) -> u16 {
    login::choose_port(DEFAULT_WEB_PORT, explicit, ports, avoid)
}

/// What dashboards publish on `engine`'s host.
pub async fn ports<E: Engine>(
    engine: &E,
    cluster: &str,
) -> Result<PublishedPorts, crate::engine::EngineError> {
    login::published_ports(engine, cluster, Role::Web, LABEL_WEB_PORT).await
}

/// Before anything changes: the port the spec names is not another cluster's
/// dashboard's, and the TLS files are there and read.
pub async fn check<E: Engine>(engines: &[E], plan: &Plan) -> Result<(), PartError> {
    if !plan.containers.iter().any(|c| c.role == Role::Web) {
        return Ok(());
    }
    if let Some((cert, key)) = &plan.web_tls {
        tls_files(cert, key)?;
    }
    login::check_port_free(engines, plan, (Role::Web, LABEL_WEB_PORT), ("[web] port", "dashboard")).await
}

/// The certificate and key as files to put in the container; each must read as PEM.
fn tls_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Vec<FileUpload>, TlsFileError> {
    let read = |what: &'static str, path: &std::path::Path, marker: &str| {
        let fail = |why: String| TlsFileError { what, path: path.display().to_string(), why };
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        if !String::from_utf8_lossy(&bytes).contains(marker) {
            return Err(fail(format!("it holds no \"{marker}\" block (a PEM file does)")));
        }
        Ok(bytes)
    };
    Ok(vec![
        FileUpload {
            path: TLS_CERT_PATH.into(),
            contents: read("the certificate", cert, "BEGIN CERTIFICATE")?,
            mode: 0o644,
        },
        FileUpload { path: TLS_KEY_PATH.into(), contents: read("the key", key, "PRIVATE KEY")?, mode: 0o600 },
    ])
}

/// A new dashboard gets the certificate before nginx starts.
pub async fn before_start<E: Engine>(apply: &mut Apply<'_, E>) -> Result<(), PartError> {
    let Some((cert, key)) = &apply.plan.web_tls else {
        return Ok(());
    };
    for c in apply.starting().into_iter().filter(|c| c.role == Role::Web) {
        apply.engines[c.host].upload(&c.name, &tls_files(cert, key)?).await?;
    }
    Ok(())
}

/// A dashboard that was running gets the files again (a renewed certificate) and
/// nginx reads them without dropping a connection.
pub async fn after_start<E: Engine>(apply: &mut Apply<'_, E>) -> Result<(), PartError> {
    let Some((cert, key)) = &apply.plan.web_tls else {
        return Ok(());
    };
    let started: Vec<String> = apply.starting().iter().map(|c| c.name.clone()).collect();
    for c in apply.plan.containers.iter().filter(|c| c.role == Role::Web && !started.contains(&c.name)) {
        let engine = &apply.engines[c.host];
        engine.upload(&c.name, &tls_files(cert, key)?).await?;
        checked(engine, &c.name, &ExecSpec::new(["nginx", "-s", "reload"])).await?;
    }
    Ok(())
}

/// For `status`: where the dashboard answers.
pub fn status(model: &Model, status: &mut ClusterStatus) {
    status.web_url = model.of_role(Role::Web).find_map(|c| c.labels.get(LABEL_WEB_URL).cloned());
}

/// The link that logs `user` in: a token for them from slurmctld, valid `lifespan`
/// seconds, in the part of the URL the browser keeps to itself (after `#`).
pub async fn login_link(
    cluster: &Cluster,
    containers: &[ContainerInfo],
    user: &str,
    lifespan: u64,
) -> Result<String, PartError> {
    let web = containers.iter().find(|c| c.is(Role::Web));
    let Some(url) = web.and_then(|c| c.labels.get(LABEL_WEB_URL)) else {
        return Err(PartError::WebOff(cluster.name.clone()));
    };
    let token = rest::token(cluster, containers, user, Some(lifespan)).await?;
    let token = token.trim();
    Ok(format!("{url}/login#token={}", token.strip_prefix("SLURM_JWT=").unwrap_or(token)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::{HostFacts, plan};
    use crate::spec::ClusterSpec;

    fn facts() -> HostFacts {
        HostFacts { web_port: 8081, ..crate::components::tests::facts() }
    }

    fn plan_of(text: &str, hosts: usize) -> Plan {
        plan(&ClusterSpec::parse("c.toml", text).unwrap(), &vec![facts(); hosts])
    }

    fn file<'a>(c: &'a ContainerPlan, path: &str) -> &'a str {
        &c.files.iter().find(|f| f.path == path).unwrap_or_else(|| panic!("{path} in {}", c.name)).contents
    }

    #[test]
    fn the_dashboard_proxies_to_slurmrestd_and_prometheus_by_name_and_the_login_node_links_to_it() {
        let plan = plan_of("name = \"c\"\n", 1);
        let web = plan.containers.iter().find(|c| c.role == Role::Web).expect("c-web");
        assert_eq!((web.name.as_str(), web.image.as_str()), ("c-web", "slurmbox/web:nginx-test"));
        assert_eq!((web.ports[0].host_port, web.ports[0].container_port), (8081, WEB_CONTAINER_PORT));
        assert_eq!(web.labels[LABEL_WEB_URL], "http://127.0.0.1:8081");
        let conf = file(web, NGINX_CONF_PATH);
        assert!(conf.contains("resolver 127.0.0.11 valid=10s"), "{conf}");
        assert!(conf.contains("map $host $slurmrestd { default \"rest:6820\"; }"), "{conf}");
        assert!(conf.contains("proxy_pass http://metrics:9090;"), "{conf}");
        assert!(conf.contains("auth_request /_auth;") && conf.contains("script-src 'self'"), "{conf}");
        assert!(conf.contains("proxy_cache_key \"$token_key"), "answers kept per token: {conf}");
        assert!(!conf.contains("ssl"), "{conf}");
        assert!(file(web, &format!("{PAGES_DIR}/index.html")).contains("app.js"));
        let login = plan.containers.iter().find(|c| c.role == Role::Login).unwrap();
        assert_eq!(file(login, URL_FILE), "http://127.0.0.1:8081\n");
        assert!(file(login, LOGIN_COMMAND_PATH).contains("scontrol token"));
        assert_eq!(plan.web_tls, None);
    }

    #[test]
    fn tls_makes_it_https_with_the_files_read_at_up_not_in_the_plan() {
        let text = "name = \"c\"\n[web]\naddress = \"10.0.0.5\"\ntls_cert = \"/etc/ssl/d.pem\"\n\
                    tls_key = \"/etc/ssl/d.key\"\n";
        let plan = plan_of(text, 1);
        let web = plan.containers.iter().find(|c| c.role == Role::Web).unwrap();
        assert_eq!(web.labels[LABEL_WEB_URL], "https://10.0.0.5:8081");
        assert_eq!(web.ports[0].host_ip, "10.0.0.5");
        let conf = file(web, NGINX_CONF_PATH);
        assert!(conf.contains("listen 8080 ssl;") && conf.contains(TLS_KEY_PATH), "{conf}");
        assert_eq!(plan.web_tls, Some(("/etc/ssl/d.pem".into(), "/etc/ssl/d.key".into())));
        assert!(web.files.iter().all(|f| f.path != TLS_KEY_PATH), "the key is uploaded at up");
    }

    #[test]
    fn on_a_hosts_network_it_listens_on_the_host_and_reaches_the_others_there() {
        let mut text = "name = \"lab\"\n[home]\nhost_path = \"/gfsv/home\"\n".to_string();
        for i in 1..=2 {
            text.push_str(&format!("[[host]]\nname = \"pi{i}\"\nengine = \"ssh://pi@10.0.0.{i}\"\n"));
        }
        let plan = plan_of(&text, 2);
        let web = plan.containers.iter().find(|c| c.role == Role::Web).unwrap();
        assert!(web.ports.is_empty());
        assert_eq!(web.labels[LABEL_WEB_URL], "http://10.0.0.1:8081");
        let conf = file(web, NGINX_CONF_PATH);
        assert!(conf.contains("listen 0.0.0.0:8081;") && !conf.contains("resolver"), "{conf}");
        assert!(
            conf.contains("default \"127.0.0.1:6820\"") && conf.contains("http://127.0.0.1:9090;"),
            "{conf}"
        );
    }

    #[test]
    fn off_leaves_no_container_and_no_web_login() {
        for text in ["[web]\nenabled = false\n", "[rest]\nenabled = false\n"] {
            let plan = plan_of(text, 1);
            assert!(plan.containers.iter().all(|c| c.role != Role::Web), "{text}");
            let login = plan.containers.iter().find(|c| c.role == Role::Login).unwrap();
            assert!(login.files.iter().all(|f| f.path != LOGIN_COMMAND_PATH), "{text}");
        }
        let no_metrics = plan_of("[metrics]\nenabled = false\n", 1);
        let web = no_metrics.containers.iter().find(|c| c.role == Role::Web).unwrap();
        assert!(!file(web, NGINX_CONF_PATH).contains("prometheus"), "no charts without Prometheus");
    }

    #[test]
    fn tls_files_must_be_there_and_pem() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n").unwrap();
        let missing = tls_files(&cert, &key).unwrap_err();
        assert_eq!((missing.what, missing.path.as_str()), ("the key", key.to_str().unwrap()));
        std::fs::write(&key, "not a key").unwrap();
        assert!(tls_files(&cert, &key).unwrap_err().why.contains("PRIVATE KEY"));
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n").unwrap();
        let files = tls_files(&cert, &key).unwrap();
        assert_eq!((files[1].path.as_str(), files[1].mode), (TLS_KEY_PATH, 0o600));
    }

    #[test]
    fn the_port_is_8080_or_the_next_free_one() {
        let ports = PublishedPorts { own: None, taken: [(8080, "other".to_string())].into() };
        assert_eq!(choose_port(None, &ports, &BTreeSet::new()), 8081);
        assert_eq!(choose_port(Some(9000), &ports, &BTreeSet::new()), 9000);
    }
}
