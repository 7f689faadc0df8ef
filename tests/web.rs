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
use std::time::Duration;

use common::browser::{Browser, HEIGHT, WIDTH, png_size, screenshot_dir};

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
