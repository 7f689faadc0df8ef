//! A real headless Chromium for the dashboard's tests, driven over WebDriver: Debian's
//! `chromium` and `chromedriver` (scripts/prerequisites installs them). Tests are plain
//! `#[test]` fns, so every call blocks; each panics with what went wrong. Dropping the
//! `Browser` (a test's end, or its panic) ends the session and kills chromedriver and
//! every Chromium process it started. Not for use inside a tokio runtime: the `Browser`
//! runs its own.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::error::CmdError;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::runtime::Runtime;

pub const WIDTH: u32 = 1280;
pub const HEIGHT: u32 = 800;
const CHROMIUM: &str = "/usr/bin/chromium";
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Browser {
    rt: Runtime,
    client: Option<Client>,
    driver: Child,
    // Chromium's profile, ours rather than chromedriver's so that it goes even when
    // Chromium had to be killed.
    profile: TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session whose
    /// page (the screenshot) is WIDTH×HEIGHT.
    pub fn start() -> Browser {
        let profile = tempfile::Builder::new().prefix("slurmbox-chromium-").tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (scripts/prerequisites installs it)");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // From here on Drop cleans up, whatever fails.
        let mut browser = Browser { rt, client: None, driver, profile };
        browser.wait_for_driver(port);
        let caps = capabilities(browser.profile.path());
        let url = format!("http://127.0.0.1:{port}");
        let client =
            browser.rt.block_on(ClientBuilder::new(HttpConnector::new()).capabilities(caps).connect(&url));
        browser.client = Some(client.unwrap_or_else(|e| panic!("no Chromium session: {e}")));
        browser.fit_viewport();
        browser
    }

    fn wait_for_driver(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = self.driver.try_wait().unwrap() {
                panic!("chromedriver exited before answering: {status}");
            }
            assert!(Instant::now() < deadline, "chromedriver did not answer on port {port} within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// --window-size sizes the window, not the page; the window is grown by whatever its
    /// frame takes so that the viewport, and so every screenshot, is WIDTH×HEIGHT.
    fn fit_viewport(&self) {
        let c = self.client();
        let inner = "return [window.innerWidth, window.innerHeight]";
        let (w, h) = self.run("set window size", async {
            c.set_window_size(WIDTH, HEIGHT).await?;
            let v = c.execute(inner, vec![]).await?;
            Ok((v[0].as_u64().unwrap_or(0) as u32, v[1].as_u64().unwrap_or(0) as u32))
        });
        if (w, h) != (WIDTH, HEIGHT) {
            let (fw, fh) = (WIDTH.saturating_sub(w), HEIGHT.saturating_sub(h));
            self.run("set window size", c.set_window_size(WIDTH + fw, HEIGHT + fh));
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("session open")
    }

    /// Blocks on one WebDriver exchange; panics with `what` and the driver's error.
    fn run<T>(&self, what: &str, f: impl Future<Output = Result<T, CmdError>>) -> T {
        self.run_within(COMMAND_TIMEOUT, what, f)
    }

    fn run_within<T>(&self, limit: Duration, what: &str, f: impl Future<Output = Result<T, CmdError>>) -> T {
        match self.rt.block_on(async { tokio::time::timeout(limit, f).await }) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => panic!("browser: {what}: {e}"),
            Err(_) => panic!("browser: {what}: no answer within {limit:?}"),
        }
    }

    /// Loads `url` and waits for its load event.
    pub fn goto(&self, url: &str) {
        self.run(&format!("goto {url}"), self.client().goto(url));
    }

    pub fn current_url(&self) -> String {
        self.run("current url", self.client().current_url()).to_string()
    }

    /// Waits until an element matches `css`; its text.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> String {
        let c = self.client();
        let wait = c.wait().at_most(timeout).every(Duration::from_millis(50));
        self.run_within(timeout + COMMAND_TIMEOUT, &format!("wait {timeout:?} for {css}"), async {
            wait.for_element(Locator::Css(css)).await?.text().await
        })
    }

    pub fn click(&self, css: &str) {
        let c = self.client();
        self.run(&format!("click {css}"), async { c.find(Locator::Css(css)).await?.click().await });
    }

    /// Replaces the field's value with `text`, typed as a user would.
    pub fn fill(&self, css: &str, text: &str) {
        let c = self.client();
        self.run(&format!("fill {css}"), async {
            let field = c.find(Locator::Css(css)).await?;
            field.clear().await?;
            field.send_keys(text).await
        });
    }

    /// The rendered text of the first element matching `css`.
    pub fn text(&self, css: &str) -> String {
        let c = self.client();
        self.run(&format!("text of {css}"), async { c.find(Locator::Css(css)).await?.text().await })
    }

    /// An attribute of the first element matching `css`; None when it has none.
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        let c = self.client();
        self.run(&format!("{name} of {css}"), async { c.find(Locator::Css(css)).await?.attr(name).await })
    }

    /// Runs `js` as a function body in the page (`return` gives the value back).
    pub fn eval(&self, js: &str) -> Value {
        self.run(&format!("eval {js}"), self.client().execute(js, vec![]))
    }

    /// Writes the page as a WIDTH×HEIGHT PNG to `path`.
    pub fn screenshot(&self, path: &Path) {
        let png = self.run("screenshot", self.client().screenshot());
        assert_eq!(png_size(&png), (WIDTH, HEIGHT), "screenshot size");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Whether an alert, confirm or prompt is open (they stay open until a test looks).
    pub fn alert_open(&self) -> bool {
        let text = self.run("alert", async {
            match self.client().get_alert_text().await {
                Err(e) if e.is_no_such_alert() => Ok(None),
                other => other.map(Some),
            }
        });
        text.is_some()
    }

    /// The console's errors since the last call: failed loads, uncaught exceptions,
    /// Content-Security-Policy refusals.
    pub fn page_errors(&self) -> Vec<String> {
        let log = self.run("console log", self.client().issue_cmd(BrowserLog));
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session is what makes chromedriver quit Chromium; the kills cover
        // a session that did not end (a hung or crashed browser) and Chromium's helpers
        // that outlive their browser process.
        if let Some(client) = self.client.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(5), client.close()).await });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        kill_chromium(self.profile.path());
    }
}

fn capabilities(profile: &Path) -> Capabilities {
    let mut args = vec![
        "--headless=new".to_string(),
        format!("--window-size={WIDTH},{HEIGHT}"),
        "--disable-dev-shm-usage".to_string(),
        "--disable-gpu".to_string(),
        format!("--user-data-dir={}", profile.display()),
    ];
    // Chromium refuses to start its sandbox as root, and so to start at all, unless
    // told to go without (tests run as root in containers and CI).
    if unsafe { libc::geteuid() } == 0 {
        args.push("--no-sandbox".to_string());
    }
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        "goog:loggingPrefs": { "browser": "ALL" },
        // Dialogs stay open for alert_open rather than being dismissed by the next command.
        "unhandledPromptBehavior": "ignore",
    });
    match caps {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

/// chromedriver's own command for the browser's console log (not in WebDriver proper).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({ "type": "browser" }).to_string()))
    }
}

/// Kills every process of the Chromium using `profile`, and waits (up to 5 s) until
/// none is left to write into it before it is removed.
fn kill_chromium(profile: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = chromium_pids(profile);
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in pids {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Chromium's processes, helpers and orphans too, all of which carry the profile on
/// their command line (a dead one, a zombie, has none).
fn chromium_pids(profile: &Path) -> Vec<libc::pid_t> {
    let arg = format!("--user-data-dir={} ", profile.display());
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse() else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        // Helpers rewrite theirs as one string, arguments parted by spaces.
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ") + " ";
        if cmdline.contains(&arg) {
            pids.push(pid);
        }
    }
    pids
}

/// Width and height from a PNG's header.
pub fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.len() > 24 && png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

/// Where the browser tests leave their screenshots for people (and CI) to look at:
/// target/web-screenshots in the source tree, wherever CARGO_TARGET_DIR points.
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
