//! The dashboard in a real headless Chromium (tests/common/browser.rs).
//!
//! First the browser harness itself, on a page served from inside the test under the
//! dashboard's kind of Content-Security-Policy: the page's own script file runs, an
//! inline script is refused (and the refusal shows among the page's errors), no dialog
//! opens, a wait for what never comes fails, and the screenshot is 1280×800.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::browser::{Browser, HEIGHT, WIDTH, png_size, screenshot_dir};
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
