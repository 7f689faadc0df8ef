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

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use common::browser::{Browser, HEIGHT, WIDTH, png_size, screenshot_dir};
use common::{ClusterGuard, slurmbox};

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

/// An HTTP answer: status, head (lower-cased names), body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// One HTTP/1.0 request to `base` ("http://HOST:PORT") from this machine; nginx closes
/// the connection after its answer.
fn http(base: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let addr = base.strip_prefix("http://").expect("an http URL");
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{base}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {raw:?}"));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
    Answer { status, head: head.to_ascii_lowercase(), body: body.to_string() }
}

/// Runs `script` as `user` on the login node; panics on failure.
fn as_user(cluster: &ClusterGuard, user: &str, script: &str) -> String {
    cluster.run(&["exec"], &["--user", user, "--", "bash", "-c", script]).ok().stdout
}

/// Polls `script` (as `user`) until `done` holds of its output, for at most 60 s.
fn wait_as(
    cluster: &ClusterGuard,
    user: &str,
    script: &str,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = cluster.run(&["exec"], &["--user", user, "--", "bash", "-c", script]).stdout;
        if done(&out) {
            return out;
        }
        assert!(Instant::now() < deadline, "{what} after 60 s: {out:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `sbatch --parsable ARGS` as `user`: the job's ID.
fn sbatch(cluster: &ClusterGuard, user: &str, args: &str) -> String {
    as_user(cluster, user, &format!("sbatch --parsable --mem=100M {args}")).trim().to_string()
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
    let page = http(base, "GET", "/login", &[]);
    assert_eq!(page.status, 200, "{}", page.body);
    let csp = page.head.lines().find(|l| l.starts_with("content-security-policy:")).expect("a CSP header");
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
            let answer = http(base, method, path, &headers);
            assert_eq!(answer.status, 401, "{method} {path} with {what}: {}", answer.body);
        }
    }
    // The good token is taken (so the others were refused for what they are).
    let jobs = http(base, "GET", "/api/slurm/v0.0.42/jobs", &[("X-SLURM-USER-TOKEN", good)]);
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

#[test]
fn the_dashboard_shows_slurm_to_its_user_and_acts_as_them() {
    let cluster = ClusterGuard::new("web");
    let (_dir, base) = up(&cluster);

    // Jobs first, so that the pages have them at their first look.
    let alices = sbatch(&cluster, "alice", "-J alices --wrap 'sleep 600'");
    let bobs = sbatch(&cluster, "bob", "-J bobs --wrap 'sleep 600'");
    let markup = sbatch(&cluster, "bob", &format!("-J '{MARKUP_NAME}' --wrap 'sleep 600'"));
    // Busy for 3 s on one CPU: a finished job with an efficiency to show.
    let busy = sbatch(&cluster, "alice", "-J busy --wrap 'timeout 3 sha256sum /dev/zero; true'");
    let waiting = sbatch(&cluster, "alice", "-J later --begin now+1hour --wrap true");

    let link = as_user(&cluster, "alice", "web-login").trim().to_string();
    assert!(link.starts_with(&format!("{base}/login#token=")), "{link}");
    let token = token_in(&link);
    data_needs_a_good_token(&cluster, &base, &token);

    let browser = Browser::start();
    // Logging in: the token goes from the URL into the tab's session storage.
    browser.goto(&link);
    assert_eq!(browser.wait_for("#user-name", PAGE_WAIT), "alice");
    assert!(
        !browser.current_url().contains("token"),
        "the token stayed in the URL: {}",
        browser.current_url()
    );
    assert_eq!(browser.eval("return sessionStorage.getItem('slurmbox.token')"), Value::from(token.as_str()));
    assert_eq!(browser.wait_for("#cluster-name:not(:empty)", PAGE_WAIT), cluster.name);
    browser.wait_for("#running-count", PAGE_WAIT);

    // The queue: hers, Bob's, and the job named like markup, as text.
    browser.goto(&format!("{base}/#/jobs"));
    for id in [&alices, &bobs, &markup, &waiting] {
        browser.wait_for(&format!("tr.job-row[data-job='{id}']"), PAGE_WAIT);
    }
    assert_eq!(browser.text(&format!("tr[data-job='{bobs}'] td:nth-child(3)")), "bob");
    assert_eq!(browser.text(&format!("tr[data-job='{markup}'] .job-name")), MARKUP_NAME);
    let images = browser.eval("return document.querySelectorAll('#queue img, #finished img').length");
    assert_eq!(images, Value::from(0), "the job's name became an element");
    assert!(!browser.alert_open(), "the job's name ran as script");
    let reason = browser.text(&format!("tr[data-job='{waiting}'] .reason"));
    assert!(reason.contains("BeginTime") && reason.contains("start later"), "{reason}");
    shoot(&browser, "jobs");
    // "My jobs only" leaves Bob's out.
    browser.click("#mine");
    browser.wait_for(&format!("tr.job-row[data-job='{waiting}']"), PAGE_WAIT);
    let bobs_shown = format!("return document.querySelectorAll(\"tr[data-job='{bobs}']\").length");
    assert_eq!(browser.eval(&bobs_shown), Value::from(0), "Bob's job among hers");
    browser.click("#mine");

    // Hold and release her waiting job.
    browser.goto(&format!("{base}/#/jobs/{waiting}"));
    browser.wait_for("#hold", PAGE_WAIT);
    browser.click("#hold");
    browser.wait_for("#release", PAGE_WAIT);
    let reason = format!("squeue -h -j {waiting} -o %r");
    assert_eq!(as_user(&cluster, "alice", &reason).trim(), "JobHeldUser");
    browser.click("#release");
    browser.wait_for("#hold", PAGE_WAIT);
    assert_ne!(as_user(&cluster, "alice", &reason).trim(), "JobHeldUser");

    // Her job's details, and its cancel: gone from the queue.
    browser.goto(&format!("{base}/#/jobs"));
    browser.wait_for(&format!("tr[data-job='{alices}'] a.job-link"), PAGE_WAIT);
    browser.click(&format!("tr[data-job='{alices}'] a.job-link"));
    browser.wait_for("#cancel", PAGE_WAIT);
    shoot(&browser, "job-details");
    browser.click("#cancel");
    browser.click("#cancel-confirm");
    let done = browser.wait_for("#action-message .alert-success", PAGE_WAIT);
    assert!(done.contains("cancelled"), "{done}");
    wait_as(&cluster, "alice", "squeue -h -n alices -t PD,R,CG -o %i", "her job gone", |o| {
        o.trim().is_empty()
    });

    // Bob's: Slurm refuses, in its own words, and his job runs on.
    browser.goto(&format!("{base}/#/jobs/{bobs}"));
    browser.wait_for("#cancel", PAGE_WAIT);
    browser.click("#cancel");
    browser.click("#cancel-confirm");
    let refusal = browser.wait_for("#action-message .slurm-error", PAGE_WAIT);
    assert!(refusal.contains("Access/permission denied"), "{refusal}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(as_user(&cluster, "bob", &format!("squeue -h -j {bobs} -o %T")).trim(), "RUNNING");

    // A script from the form runs as her.
    browser.goto(&format!("{base}/#/submit"));
    browser.wait_for("#submit-form", PAGE_WAIT);
    browser.fill("#job-name", "from-the-web");
    browser.fill("#job-script", "#!/bin/bash\nid -u\n");
    browser.click("#submit-job");
    let id = browser.wait_for("#new-job", PAGE_WAIT);
    shoot(&browser, "submit");
    let uid = as_user(&cluster, "alice", "id -u").trim().to_string();
    let out =
        wait_as(&cluster, "alice", &format!("cat slurm-{id}.out"), "the job's output", |o| !o.is_empty());
    assert_eq!(out.trim(), uid);
    let row =
        wait_as(&cluster, "alice", &format!("sacct -X -n -P -j {id} -o user,jobname"), "in sacct", |o| {
            !o.trim().is_empty()
        });
    assert_eq!(row.trim(), "alice|from-the-web");
    // An empty one: Slurm's refusal shows.
    browser.fill("#job-script", "");
    browser.click("#submit-job");
    let refusal = browser.wait_for("#submit-result .slurm-error", PAGE_WAIT);
    assert!(refusal.contains("script"), "{refusal}");

    // The busy job ended: accounting's figures in the finished list and its details.
    wait_as(&cluster, "alice", &format!("sacct -X -n -P -j {busy} -o state"), "the busy job ended", |o| {
        o.contains("COMPLETED")
    });
    browser.goto(&format!("{base}/#/jobs"));
    let cpu = browser.wait_for(&format!("tr.finished-row[data-job='{busy}'] .eff-cpu"), PAGE_WAIT);
    assert!(cpu.contains('%') && cpu.contains("of 1×"), "{cpu}");
    browser.goto(&format!("{base}/#/jobs/{busy}"));
    let efficiency = browser.wait_for(".efficiency", PAGE_WAIT);
    assert!(efficiency.contains("CPU") && efficiency.contains('%'), "{efficiency}");

    browser.goto(&format!("{base}/#/nodes"));
    browser.wait_for("tr.node-row[data-node='node1']", PAGE_WAIT);
    let node = browser.wait_for(&format!("tr.node-row a[href='#/jobs/{bobs}']"), PAGE_WAIT);
    assert!(node.contains("bob"), "{node}");
    shoot(&browser, "nodes");

    browser.goto(&format!("{base}/#/accounts"));
    browser.wait_for("tr.share-user[data-name='alice']", PAGE_WAIT);
    browser.wait_for("#associations tbody tr", PAGE_WAIT);
    shoot(&browser, "accounts");

    // The overview, once Prometheus has scraped the running jobs twice (every 15 s).
    browser.goto(&format!("{base}/#/"));
    browser.wait_for("#chart-jobs", PAGE_WAIT);
    let deadline = Instant::now() + PAGE_WAIT;
    let points =
        "return Chart.getChart('chart-jobs')?.data.datasets[0]?.data.filter((p) => p.y > 0).length ?? 0";
    while browser.eval(points).as_u64().unwrap_or(0) < 2 {
        assert!(Instant::now() < deadline, "no running jobs in the overview's chart");
        std::thread::sleep(Duration::from_secs(1));
    }
    shoot(&browser, "overview");

    // The pages broke no rule of the CSP and threw nothing.
    let errors = browser.page_errors();
    assert!(
        !errors.iter().any(|e| e.contains("Content Security Policy") || e.contains("Uncaught")),
        "{errors:?}"
    );

    // Log out: the token is gone, and so are the pages.
    browser.click("#log-out");
    browser.wait_for("#login-help", PAGE_WAIT);
    assert_eq!(browser.eval("return sessionStorage.getItem('slurmbox.token')"), Value::Null);
    browser.goto(&format!("{base}/#/jobs"));
    let help = browser.wait_for("#login-help", PAGE_WAIT);
    assert!(help.contains("web-login"), "{help}");

    // A token Slurm refuses (altered) ends the session at its first request (401), and
    // one past its expiry before any.
    browser.goto(&format!("{base}/login#token={}", altered(&token, "bob")));
    let ended = browser.wait_for("#login-help .alert", PAGE_WAIT);
    assert!(ended.contains("session ended"), "{ended}");
    assert_eq!(browser.eval("return sessionStorage.getItem('slurmbox.token')"), Value::Null);
    let expired = cluster.run(&["web-login"], &["alice", "--lifespan", "1s"]).ok().stdout;
    std::thread::sleep(Duration::from_secs(2));
    browser.goto(expired.trim());
    let ended = browser.wait_for("#login-help .alert", PAGE_WAIT);
    assert!(ended.contains("session ended"), "{ended}");
}
