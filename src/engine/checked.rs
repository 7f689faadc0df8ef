//! A command that must succeed: [`checked`] runs it and makes a non-zero exit an
//! error ([`ExecFailed`]) that says what ran, where, its exit code and what it said.
//! The one place this is done; Slurm, the storage script and the rest build on it.
//! Binary output comes back as base64, read with [`decode_base64`].

use miette::Diagnostic;

use super::{Engine, EngineError, ExecOutput, ExecSpec};

/// A command that ran in a container and exited non-zero.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Diagnostic)]
#[error("`{cmd}` failed on {container} (exit {code}): {said}")]
pub struct ExecFailed {
    /// The command's words, joined by spaces.
    pub cmd: String,
    pub container: String,
    pub code: i64,
    /// Its stderr, else its stdout, else "(it printed nothing)", trimmed.
    pub said: String,
}

impl ExecFailed {
    /// `out` of `cmd` in `container`, as a failure. What the command said of it: its
    /// stderr, else its stdout (some tools, gluster among them, report errors there),
    /// else that it said nothing.
    pub fn new(cmd: &[String], container: &str, out: &ExecOutput) -> ExecFailed {
        let said = [out.stderr.trim(), out.stdout.trim()].into_iter().find(|t| !t.is_empty());
        ExecFailed {
            cmd: cmd.join(" "),
            container: container.into(),
            code: out.code,
            said: said.unwrap_or("(it printed nothing)").into(),
        }
    }
}

/// Why a [`checked`] command gave no output: it failed, or the engine did.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum CheckedError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Failed(#[from] ExecFailed),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Engine(#[from] EngineError),
}

/// Runs `spec` in `container`; its output if it exits 0, else [`ExecFailed`].
pub async fn checked(
    engine: &impl Engine,
    container: &str,
    spec: &ExecSpec,
) -> Result<ExecOutput, CheckedError> {
    let out = engine.exec(container, spec).await?;
    if out.ok() {
        return Ok(out);
    }
    Err(ExecFailed::new(&spec.cmd, container, &out).into())
}

/// The bytes a command in `container` printed as base64 (how binary output leaves a
/// container); output that is not base64 is a failure of reading `what`.
pub fn decode_base64(container: &str, what: &str, text: &str) -> Result<Vec<u8>, ExecFailed> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|e| ExecFailed {
        cmd: format!("read {what}"),
        container: container.into(),
        code: 0,
        said: format!("its output is not base64: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::recording::{ANY_CONTAINER, RecordingEngine};

    fn engine() -> RecordingEngine {
        RecordingEngine::with_running("lab-controller", "slurmbox/node:24.11-test")
    }

    async fn failure(out: ExecOutput) -> String {
        let engine = engine();
        engine.answer(ANY_CONTAINER, &["gluster"], out);
        let spec = ExecSpec::new(["gluster", "volume", "start", "home"]);
        match checked(&engine, "lab-controller", &spec).await {
            Err(CheckedError::Failed(e)) => e.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_command_that_exits_0_gives_its_output() {
        let engine = engine();
        engine.answer(ANY_CONTAINER, &["hostname"], ExecOutput::success("controller\n"));
        let out = checked(&engine, "lab-controller", &ExecSpec::new(["hostname"])).await.unwrap();
        assert_eq!(out.stdout, "controller\n");
    }

    #[tokio::test]
    async fn a_failure_says_what_ran_where_its_code_and_its_stderr() {
        let said =
            failure(ExecOutput { code: 2, stdout: "ignored".into(), stderr: " no such volume \n".into() });
        assert_eq!(
            said.await,
            "`gluster volume start home` failed on lab-controller (exit 2): no such volume"
        );
    }

    #[tokio::test]
    async fn a_failure_on_stdout_alone_is_reported_from_there() {
        let said =
            failure(ExecOutput { code: 1, stdout: "volume start: home: failed\n".into(), stderr: "".into() });
        assert!(said.await.ends_with("(exit 1): volume start: home: failed"));
    }

    #[tokio::test]
    async fn a_silent_failure_says_it_printed_nothing() {
        let said = failure(ExecOutput { code: 1, stdout: " \n".into(), stderr: String::new() });
        assert!(said.await.ends_with("(exit 1): (it printed nothing)"));
    }

    #[test]
    fn output_that_is_not_base64_is_a_failed_read() {
        assert_eq!(decode_base64("lab-db", "the dump", " a2V5\n").unwrap(), b"key");
        let e = decode_base64("lab-db", "the dump", "not base64!").unwrap_err().to_string();
        assert!(
            e.starts_with("`read the dump` failed on lab-db (exit 0): its output is not base64: "),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_engine_error_is_not_a_failed_command() {
        let engine = engine();
        let err = checked(&engine, "lab-node9", &ExecSpec::new(["true"])).await.unwrap_err();
        assert!(
            matches!(err, CheckedError::Engine(EngineError::NoContainer(ref n)) if n == "lab-node9"),
            "{err:?}"
        );
    }
}
