//! Step-by-step progress on stderr: one line per named step, ` ✓ Starting nodes (1.2s)`.
//!
//! On a terminal a spinner shows the step's latest message while it runs; elsewhere
//! (CI logs, pipes) each step prints when it starts and when it ends. `--quiet`
//! silences all of it. stdout is never used here: it carries data only.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Clone)]
pub struct Progress {
    quiet: bool,
    tty: bool,
    color: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        use std::io::IsTerminal;
        let tty = std::io::stderr().is_terminal();
        let color = tty && std::env::var_os("NO_COLOR").is_none();
        Progress { quiet, tty, color }
    }

    /// A plain line (headline, summary).
    pub fn say(&self, line: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", line.as_ref());
        }
    }

    pub fn step(&self, name: impl Into<String>) -> Step {
        let name = name.into();
        let bar = if self.quiet {
            None
        } else if self.tty {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template(" {spinner} {prefix} {wide_msg:.dim}").expect("valid template"),
            );
            bar.set_prefix(name.clone());
            bar.enable_steady_tick(Duration::from_millis(100));
            Some(bar)
        } else {
            eprintln!(" • {name} ...");
            None
        };
        Step {
            inner: Arc::new(Mutex::new(StepState {
                quiet: self.quiet,
                name,
                bar,
                started: Instant::now(),
                finished: false,
            })),
            progress: self.clone(),
        }
    }
}

struct StepState {
    quiet: bool,
    name: String,
    bar: Option<ProgressBar>,
    started: Instant,
    finished: bool,
}

/// A running step. Cloning shares it; if it is dropped unfinished it is shown as failed.
#[derive(Clone)]
pub struct Step {
    inner: Arc<Mutex<StepState>>,
    progress: Progress,
}

impl Step {
    pub fn message(&self, msg: impl Into<String>) {
        if let Some(bar) = &self.inner.lock().expect("progress lock").bar {
            bar.set_message(msg.into());
        }
    }

    /// A line that stays (above the spinner on a terminal): what the step waits for
    /// when that changes.
    pub fn note(&self, line: impl AsRef<str>) {
        let s = self.inner.lock().expect("progress lock");
        match &s.bar {
            Some(bar) => bar.println(format!("   {}", line.as_ref())),
            None if !s.quiet => eprintln!("   {}", line.as_ref()),
            None => {}
        }
    }

    pub fn done(&self) {
        self.finish(true, None);
    }

    pub fn done_with(&self, detail: impl Into<String>) {
        self.finish(true, Some(detail.into()));
    }

    pub fn fail(&self, detail: impl Into<String>) {
        self.finish(false, Some(detail.into()));
    }

    fn finish(&self, ok: bool, detail: Option<String>) {
        let mut s = self.inner.lock().expect("progress lock");
        if s.finished {
            return;
        }
        s.finished = true;
        let elapsed = s.started.elapsed().as_secs_f64();
        let p = &self.progress;
        let mark = match (ok, p.color) {
            (true, true) => "\x1b[32m✓\x1b[0m",
            (true, false) => "✓",
            (false, true) => "\x1b[31m✗\x1b[0m",
            (false, false) => "✗",
        };
        let detail = detail.map(|d| format!("{d}, ")).unwrap_or_default();
        let line = format!(" {mark} {} ({detail}{elapsed:.1}s)", s.name);
        match s.bar.take() {
            Some(bar) => {
                bar.finish_and_clear();
                eprintln!("{line}");
            }
            None if !p.quiet => eprintln!("{line}"),
            None => {}
        }
    }
}

impl Drop for StepState {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if !self.finished && !self.quiet {
            eprintln!(" ✗ {}", self.name);
        }
    }
}
