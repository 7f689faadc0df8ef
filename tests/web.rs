//! The dashboard in a real headless Chromium (tests/common/browser.rs), on a real
//! Slurm 24.11 cluster with real jobs (Slurm 26.05's pages were checked by hand: the
//! same data parser, v0.0.42, and metric families).
//!
//! First the browser harness itself, on a page served from inside the test under the
//! dashboard's kind of Content-Security-Policy: the page's own script file runs, an
//! inline script is refused (and the refusal shows among the page's errors), no dialog
//! opens, a wait for what never comes fails, and the screenshot is 1280×800.
//!
//! Then the dashboard: without a login, an expired or an altered token every data URL
//! answers 401, and the pages carry the CSP that forbids inline script. Alice logs in
//! through the link `web-login` prints on the login node, sees her job and Bob's, cancels
//! hers, is refused Bob's (in Slurm's words, and it keeps running), submits a script
//! that runs as her UID, is shown Slurm's error for an empty one, and sees a finished
//! job's efficiency; a job named like markup shows as text. A screenshot of each page
//! goes to target/web-screenshots (docs/dashboard keeps copies for the README).
//!
//! And HTTPS with the site's certificate, on a cluster of its own.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use common::browser::{Browser, HEIGHT, WIDTH, png_size, screenshot_dir};
use common::http::http;
use common::{ClusterGuard, container_identities, labelled_objects, slurmbox};

const CSP: &str = "default-src 'self'; script-src 'self'";

const PAGE: &str = r#"<!doctype html>
<html><head><title>harness</title></head>
<body>
<script>document.title = "inline ran"; alert("inline ran");</script>
<script src="/app.js"></script>
</body></html>"#;

const APP_JS: &str = r#"const p = document.createElement("p");
p.id = "from-app";
p.textContent = "app.js ran";
document.body.append(p);"#;

/// Serves PAGE at / and APP_JS at /app.js, both under CSP, on a free port; the
/// thread ends with the test binary.
fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = String::new();
            let _ = BufReader::new(&stream).read_line(&mut request);
            let (status, kind, body) = match request.split_whitespace().nth(1) {
                Some("/") => ("200 OK", "text/html", PAGE),
                Some("/app.js") => ("200 OK", "text/javascript", APP_JS),
                // The favicon too: a 404 would be a page error.
                _ => ("204 No Content", "text/plain", ""),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: {kind}; charset=utf-8\r\nContent-Security-Policy: {CSP}\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/")
}

#[test]
fn harness_runs_only_the_pages_own_scripts() {
    let url = serve();
    let browser = Browser::start();
    browser.goto(&url);
    assert_eq!(browser.wait_for("#from-app", Duration::from_secs(5)), "app.js ran");
    assert!(!browser.alert_open(), "the inline script ran despite the CSP");
    assert_eq!(browser.eval("return document.title"), "harness");
    assert_eq!(browser.current_url(), url);
    let errors = browser.page_errors();
    assert!(
        errors.iter().any(|e| e.contains("Content Security Policy")),
        "no CSP refusal among the page's errors: {errors:?}"
    );

    let missing = catch_unwind(AssertUnwindSafe(|| browser.wait_for("#never", Duration::from_millis(200))));
    assert!(missing.is_err(), "a wait for an element that never comes returned");

    let png = screenshot_dir().join("harness.png");
    browser.screenshot(&png);
    assert_eq!(png_size(&std::fs::read(&png).unwrap()), (WIDTH, HEIGHT));
}

/// The job name that would run script if a page put it into the DOM as markup.
const MARKUP_NAME: &str = "<img src=x onerror=alert(1)>";

/// Long enough for any wait on a page that refreshes itself every 10 s.
const PAGE_WAIT: Duration = Duration::from_secs(45);

/// `sbatch --parsable ARGS` as `user`: the job's ID.
fn sbatch(cluster: &ClusterGuard, user: &str, args: &str) -> String {
    cluster.sh_as(user, &format!("sbatch --parsable --mem=100M {args}")).trim().to_string()
}

/// The token in a login link (after `#token=`).
fn token_in(link: &str) -> String {
    link.trim().split_once("#token=").unwrap_or_else(|| panic!("no token in {link:?}")).1.to_string()
}

/// A token whose claims name `user` instead, its signature left as it was.
fn altered(token: &str, user: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sun"] = Value::from(user);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// Every data URL the pages use, and one the proxy does not serve.
const DATA_URLS: &[(&str, &str)] = &[
    ("GET", "/api/slurm/v0.0.42/jobs"),
    ("GET", "/api/slurm/v0.0.42/nodes"),
    ("GET", "/api/slurm/v0.0.42/partitions"),
    ("GET", "/api/slurm/v0.0.42/shares"),
    ("GET", "/api/slurm/v0.0.42/job/1"),
    ("DELETE", "/api/slurm/v0.0.42/job/1"),
    ("POST", "/api/slurm/v0.0.42/job/submit"),
    ("GET", "/api/slurmdb/v0.0.42/jobs"),
    ("GET", "/api/slurmdb/v0.0.42/associations"),
    ("GET", "/api/prometheus/api/v1/query?query=up"),
    ("GET", "/api/prometheus/api/v1/query_range?query=up&start=0&end=60&step=15"),
    ("GET", "/api/prometheus/api/v1/targets"),
];

/// No token, an expired one and an altered one: 401 from every data URL; the page
/// itself is served to anyone, under a CSP that forbids inline script.
fn data_needs_a_good_token(cluster: &ClusterGuard, base: &str, good: &str) {
    let page = http(base, "GET", "/login", &[], "");
    assert_eq!(page.status, 200, "{}", page.body);
    let csp = page.header("content-security-policy").expect("a CSP header");
    assert!(csp.contains("script-src 'self'") && csp.contains("style-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert!(
        !page.body.contains("<script>") && !page.body.contains("style="),
        "inline script or style: {}",
        page.body
    );

    let expired = cluster.run(&["token"], &["alice", "--lifespan", "1s"]).ok().stdout;
    let expired = expired.trim().strip_prefix("SLURM_JWT=").expect("a token").to_string();
    std::thread::sleep(Duration::from_secs(2));
    let altered = altered(good, "bob");
    for (method, path) in DATA_URLS {
        for (what, headers) in [
            ("no token", vec![]),
            ("an empty token", vec![("X-SLURM-USER-TOKEN", "")]),
            ("an expired token", vec![("X-SLURM-USER-TOKEN", expired.as_str())]),
            ("an altered token", vec![("X-SLURM-USER-TOKEN", altered.as_str())]),
        ] {
            let answer = http(base, method, path, &headers, "");
            assert_eq!(answer.status, 401, "{method} {path} with {what}: {}", answer.body);
        }
    }
    // The good token is taken (so the others were refused for what they are).
    let jobs = http(base, "GET", "/api/slurm/v0.0.42/jobs", &[("X-SLURM-USER-TOKEN", good)], "");
    assert_eq!(jobs.status, 200, "{}", jobs.body);
}

/// Brings up a 24.11 cluster with alice and bob (and the dashboard, Prometheus and
/// accounting, as by default); returns the spec's folder and the dashboard's URL.
fn up(cluster: &ClusterGuard) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    std::fs::write(
        &spec,
        format!("name = \"{}\"\n[[user]]\nname = \"alice\"\n[[user]]\nname = \"bob\"\n", cluster.name),
    )
    .unwrap();
    slurmbox(&["up", "--quiet", "-f", spec.to_str().unwrap()]).ok();
    let status: Value = serde_json::from_str(&cluster.run(&["status"], &["--json"]).ok().stdout).unwrap();
    let url = status["web_url"].as_str().expect("status has the dashboard's URL").to_string();
    (dir, url)
}

/// Takes a screenshot of the page shown, as target/web-screenshots/NAME.png.
fn shoot(browser: &Browser, name: &str) {
    // Charts and fonts settle after the data comes.
    std::thread::sleep(Duration::from_millis(700));
    browser.screenshot(&screenshot_dir().join(format!("{name}.png")));
}

/// The test's jobs, submitted before the browser looks so that the pages have them.
struct Jobs {
    alices: String,
    bobs: String,
    markup: String,
    /// Busy for 3 s on one CPU: a finished job with an efficiency to show.
    busy: String,
    /// Pending until an hour from now (BeginTime).
    waiting: String,
}

impl Jobs {
    fn submit(cluster: &ClusterGuard) -> Jobs {
        Jobs {
            alices: sbatch(cluster, "alice", "-J alices --wrap 'sleep 600'"),
            bobs: sbatch(cluster, "bob", "-J bobs --wrap 'sleep 600'"),
            markup: sbatch(cluster, "bob", &format!("-J '{MARKUP_NAME}' --wrap 'sleep 600'")),
            busy: sbatch(cluster, "alice", "-J busy --wrap 'timeout 3 sha256sum /dev/zero; true'"),
            waiting: sbatch(cluster, "alice", "-J later --begin now+1hour --wrap true"),
        }
    }
}

/// Alice's browser on the dashboard.
struct Session<'a> {
    cluster: &'a ClusterGuard,
    base: String,
    browser: Browser,
}

impl Session<'_> {
    /// Shows the page of a hash route ("/jobs").
    fn open(&self, route: &str) {
        self.browser.goto(&format!("{}/#{route}", self.base));
    }

    fn wait(&self, css: &str) -> String {
        self.browser.wait_for(css, PAGE_WAIT)
    }

    /// The token goes from the link into the tab's session storage, out of the URL.
    fn logs_in_through(&self, link: &str, token: &str) {
        let b = &self.browser;
        b.goto(link);
        assert_eq!(self.wait("#user-name"), "alice");
        let url = b.current_url();
        assert!(!url.contains("token"), "the token stayed in the URL: {url}");
        assert_eq!(b.eval("return sessionStorage.getItem('slurmbox.token')"), Value::from(token));
        assert_eq!(self.wait("#cluster-name:not(:empty)"), self.cluster.name);
        self.wait("#running-count");
    }

    /// Hers, Bob's, and the job named like markup, as text; a pending reason in words;
    /// "My jobs only" leaves Bob's out.
    fn queue_shows_everyones_jobs_as_text(&self, jobs: &Jobs) {
        let b = &self.browser;
        self.open("/jobs");
        for id in [&jobs.alices, &jobs.bobs, &jobs.markup, &jobs.waiting] {
            self.wait(&format!("tr.job-row[data-job='{id}']"));
        }
        assert_eq!(b.text(&format!("tr[data-job='{}'] td:nth-child(3)", jobs.bobs)), "bob");
        assert_eq!(b.text(&format!("tr[data-job='{}'] .job-name", jobs.markup)), MARKUP_NAME);
        let images = b.eval("return document.querySelectorAll('#queue img, #finished img').length");
        assert_eq!(images, Value::from(0), "the job's name became an element");
        assert!(!b.alert_open(), "the job's name ran as script");
        let reason = b.text(&format!("tr[data-job='{}'] .reason", jobs.waiting));
        assert!(reason.contains("BeginTime") && reason.contains("start later"), "{reason}");
        shoot(b, "jobs");

        b.click("#mine");
        self.wait(&format!("tr.job-row[data-job='{}']", jobs.waiting));
        let bobs = format!("return document.querySelectorAll(\"tr[data-job='{}']\").length", jobs.bobs);
        assert_eq!(b.eval(&bobs), Value::from(0), "Bob's job among hers");
        b.click("#mine");
    }

    fn holds_and_releases(&self, id: &str) {
        let b = &self.browser;
        self.open(&format!("/jobs/{id}"));
        self.wait("#hold");
        b.click("#hold");
        self.wait("#release");
        let reason = format!("squeue -h -j {id} -o %r");
        assert_eq!(self.cluster.sh_as("alice", &reason).trim(), "JobHeldUser");
        b.click("#release");
        self.wait("#hold");
        assert_ne!(self.cluster.sh_as("alice", &reason).trim(), "JobHeldUser");
    }

    /// Her job, from its row to its details: cancelled, gone from the queue. Bob's:
    /// Slurm refuses, in its own words, and his job runs on.
    fn cancels_hers_and_is_refused_bobs(&self, jobs: &Jobs) {
        let b = &self.browser;
        self.open("/jobs");
        let link = format!("tr[data-job='{}'] a.job-link", jobs.alices);
        self.wait(&link);
        b.click(&link);
        self.wait("#cancel");
        shoot(b, "job");
        b.click("#cancel");
        b.click("#cancel-confirm");
        let done = self.wait("#action-message .alert-success");
        assert!(done.contains("cancelled"), "{done}");
        let queued = "squeue -h -n alices -t PD,R,CG -o %i";
        self.cluster.wait_as("alice", queued, "her job gone", |o| o.trim().is_empty());

        self.open(&format!("/jobs/{}", jobs.bobs));
        self.wait("#cancel");
        b.click("#cancel");
        b.click("#cancel-confirm");
        let refusal = self.wait("#action-message .slurm-error");
        assert!(refusal.contains("Access/permission denied"), "{refusal}");
        std::thread::sleep(Duration::from_secs(2));
        let state = self.cluster.sh_as("bob", &format!("squeue -h -j {} -o %T", jobs.bobs));
        assert_eq!(state.trim(), "RUNNING");
    }

    /// A script from the form runs as her; an empty one shows Slurm's refusal.
    fn submits_from_the_form(&self) {
        let b = &self.browser;
        self.open("/submit");
        self.wait("#submit-form");
        b.fill("#job-name", "from-the-web");
        b.fill("#job-script", "#!/bin/bash\nid -u\n");
        b.click("#submit-job");
        let id = self.wait("#new-job");
        shoot(b, "submit");
        let uid = self.cluster.sh_as("alice", "id -u").trim().to_string();
        let out = format!("cat slurm-{id}.out");
        let out = self.cluster.wait_as("alice", &out, "the job's output", |o| !o.is_empty());
        assert_eq!(out.trim(), uid);
        let sacct = format!("sacct -X -n -P -j {id} -o user,jobname");
        let row = self.cluster.wait_as("alice", &sacct, "the job in sacct", |o| !o.trim().is_empty());
        assert_eq!(row.trim(), "alice|from-the-web");

        b.fill("#job-script", "");
        b.click("#submit-job");
        let refusal = self.wait("#submit-result .slurm-error");
        assert!(refusal.contains("script"), "{refusal}");
    }

    /// Accounting's figures for the busy job: in the finished list and its details.
    fn shows_a_finished_jobs_efficiency(&self, id: &str) {
        let state = format!("sacct -X -n -P -j {id} -o state");
        self.cluster.wait_as("alice", &state, "the busy job ended", |o| o.contains("COMPLETED"));
        self.open("/jobs");
        let cpu = self.wait(&format!("tr.finished-row[data-job='{id}'] .eff-cpu"));
        assert!(cpu.contains('%') && cpu.contains("of 1×"), "{cpu}");
        self.open(&format!("/jobs/{id}"));
        let efficiency = self.wait(".efficiency");
        assert!(efficiency.contains("CPU") && efficiency.contains('%'), "{efficiency}");
    }

    /// The nodes with Bob's job on one, the accounts, and the overview once Prometheus
    /// has scraped the running jobs twice (every 15 s).
    fn nodes_accounts_and_overview(&self, bobs: &str) {
        let b = &self.browser;
        self.open("/nodes");
        self.wait("tr.node-row[data-node='node1']");
        let node = self.wait(&format!("tr.node-row a[href='#/jobs/{bobs}']"));
        assert!(node.contains("bob"), "{node}");
        shoot(b, "nodes");

        self.open("/accounts");
        self.wait("tr.share-user[data-name='alice']");
        self.wait("#associations tbody tr");
        shoot(b, "accounts");

        self.open("/");
        self.wait("#chart-jobs");
        let deadline = Instant::now() + PAGE_WAIT;
        let points =
            "return Chart.getChart('chart-jobs')?.data.datasets[0]?.data.filter((p) => p.y > 0).length ?? 0";
        while b.eval(points).as_u64().unwrap_or(0) < 2 {
            assert!(Instant::now() < deadline, "no running jobs in the overview's chart");
            std::thread::sleep(Duration::from_secs(1));
        }
        shoot(b, "overview");
    }

    /// Nothing the pages did broke a rule of the CSP or threw.
    fn broke_no_rule(&self) {
        let errors = self.browser.page_errors();
        let broken = errors.iter().any(|e| e.contains("Content Security Policy") || e.contains("Uncaught"));
        assert!(!broken, "{errors:?}");
    }

    /// Log out: the token and the pages are gone. A token Slurm refuses (altered) ends
    /// the session at its first request (401), and one past its expiry before any.
    fn logs_out_and_sessions_end(&self, token: &str) {
        let b = &self.browser;
        let stored = "return sessionStorage.getItem('slurmbox.token')";
        b.click("#log-out");
        self.wait("#login-help");
        assert_eq!(b.eval(stored), Value::Null);
        self.open("/jobs");
        let help = self.wait("#login-help");
        assert!(help.contains("web-login"), "{help}");

        b.goto(&format!("{}/login#token={}", self.base, altered(token, "bob")));
        let ended = self.wait("#login-help .alert");
        assert!(ended.contains("session ended"), "{ended}");
        assert_eq!(b.eval(stored), Value::Null);
        let expired = self.cluster.run(&["web-login"], &["alice", "--lifespan", "1s"]).ok().stdout;
        std::thread::sleep(Duration::from_secs(2));
        b.goto(expired.trim());
        let ended = self.wait("#login-help .alert");
        assert!(ended.contains("session ended"), "{ended}");
    }
}

#[test]
fn the_dashboard_shows_slurm_to_its_user_and_acts_as_them() {
    let cluster = ClusterGuard::new("web");
    let (_dir, base) = up(&cluster);
    let jobs = Jobs::submit(&cluster);

    let link = cluster.sh_as("alice", "web-login").trim().to_string();
    assert!(link.starts_with(&format!("{base}/login#token=")), "{link}");
    let token = token_in(&link);
    data_needs_a_good_token(&cluster, &base, &token);

    let alice = Session { cluster: &cluster, base, browser: Browser::start() };
    alice.logs_in_through(&link, &token);
    alice.queue_shows_everyones_jobs_as_text(&jobs);
    alice.holds_and_releases(&jobs.waiting);
    alice.cancels_hers_and_is_refused_bobs(&jobs);
    alice.submits_from_the_form();
    alice.shows_a_finished_jobs_efficiency(&jobs.busy);
    alice.nodes_accounts_and_overview(&jobs.bobs);
    alice.broke_no_rule();
    alice.logs_out_and_sessions_end(&token);
}

/// `openssl` with `args`, in `dir`; panics with its words when it fails.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A self-signed certificate for 127.0.0.1 (cert.pem, key.pem in `dir`); its serial.
fn certificate(dir: &Path) -> String {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
    );
    openssl(dir, &["x509", "-in", "cert.pem", "-noout", "-serial"]).trim().to_string()
}

/// `curl` with `args`: (HTTP status, headers and body as text).
fn curl(args: &[&str]) -> (u16, String) {
    let out =
        Command::new("curl").args(["-sS", "-i", "--max-time", "20"]).args(args).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// The serial of the certificate nginx presents on `port`.
fn served_serial(dir: &Path, port: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} </dev/null 2>/dev/null | openssl x509 -noout -serial"
        ))
        .current_dir(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// HTTPS with the site's certificate: TLS files that cannot be used and a port another
/// cluster's dashboard holds stop `up` (exit 2) before anything changes; good ones make
/// the dashboard HTTPS only, and a renewed certificate reaches nginx with the next `up`
/// without making its container again.
#[test]
fn https_with_the_sites_certificate_and_bad_input_that_changes_nothing() {
    let cluster = ClusterGuard::new("web-tls");
    let dir = tempfile::tempdir().unwrap();
    let serial = certificate(dir.path());
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let spec = dir.path().join("cluster.toml");
    let write = |key: &Path| {
        let text = format!(
            "name = \"{}\"\naccounting = false\n[compute]\ncount = 1\n[metrics]\nenabled = false\n\
             [[user]]\nname = \"alice\"\n[web]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cluster.name,
            cert.display(),
            key.display()
        );
        std::fs::write(&spec, text).unwrap();
    };
    let up = || slurmbox(&["up", "-f", spec.to_str().unwrap()]);

    // A key that is not there: nothing is made.
    write(&dir.path().join("missing.pem"));
    let refused = up();
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("missing.pem"), "{}", refused.stderr);
    assert_eq!(labelled_objects(&cluster.name), Vec::<String>::new(), "nothing was made");

    write(&key);
    up().ok();
    let status: serde_json::Value =
        serde_json::from_str(&cluster.run(&["status"], &["--json"]).ok().stdout).unwrap();
    let url = status["web_url"].as_str().expect("status has the dashboard's URL").to_string();
    let port = url.strip_prefix("https://127.0.0.1:").unwrap_or_else(|| panic!("{url}")).to_string();
    let (code, page) = curl(&["--cacert", cert.to_str().unwrap(), &format!("{url}/")]);
    assert_eq!(code, 200, "{page}");
    assert!(
        page.to_lowercase().contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{page}"
    );
    assert_eq!(curl(&[&format!("http://127.0.0.1:{port}/")]).0, 400, "HTTPS only");
    let link = cluster.run(&["web-login"], &["alice", "--lifespan", "10m"]).ok().stdout;
    let token = link.trim().split_once("#token=").map(|(base, t)| {
        assert_eq!(base, format!("{url}/login"));
        t.to_string()
    });
    let header = format!("X-SLURM-USER-TOKEN: {}", token.expect("a link with a token"));
    let jobs =
        curl(&["--cacert", cert.to_str().unwrap(), "-H", &header, &format!("{url}/api/slurm/v0.0.42/jobs")]);
    assert_eq!(jobs.0, 200, "{}", jobs.1);

    // A garbled key changes nothing that runs.
    let before = container_identities(&cluster.name);
    let garbled = dir.path().join("garbled.pem");
    std::fs::write(&garbled, "not a key\n").unwrap();
    write(&garbled);
    let refused = up();
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("PRIVATE KEY"), "{}", refused.stderr);
    assert_eq!(container_identities(&cluster.name), before);

    // Renewed: the next `up` hands nginx the new certificate; its container stays.
    let renewed = certificate(dir.path());
    assert_ne!(renewed, serial);
    write(&key);
    let again = up().ok();
    assert!(again.stderr.contains(" kept"), "{}", again.stderr);
    assert_eq!(container_identities(&cluster.name), before);
    assert_eq!(served_serial(dir.path(), &port), renewed);

    // Another cluster asking for this dashboard's port: refused, nothing made.
    let other = ClusterGuard::new("web-taken");
    let other_spec = dir.path().join("other.toml");
    std::fs::write(&other_spec, format!("name = \"{}\"\n[web]\nport = {port}\n", other.name)).unwrap();
    let taken = slurmbox(&["up", "-f", other_spec.to_str().unwrap()]);
    assert_eq!(taken.code, 2, "{}", taken.stderr);
    let squashed: String = taken.stderr.chars().filter(|c| !c.is_whitespace() && *c != '│').collect();
    assert!(squashed.contains("[web]port") && squashed.contains(&cluster.name), "{}", taken.stderr);
    assert_eq!(labelled_objects(&other.name), Vec::<String>::new(), "nothing was made");
}
