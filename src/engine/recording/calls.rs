//! The calls a [`RecordingEngine`](super::RecordingEngine) records, and the engine
//! errors a test makes it answer with.

use crate::engine::EngineError;
use crate::plan::GpuRequest;

/// One call made to a [`RecordingEngine`], with the arguments that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Info,
    ImageExists {
        image: String,
    },
    /// `bytes`: how much the tar stream held (the engine reads it to its end).
    ImportImage {
        changes: Vec<String>,
        platform: String,
        bytes: usize,
    },
    TagImage {
        id: String,
        image: String,
    },
    /// Recorded by the sending engine; `to` is the receiving engine's name.
    SendImage {
        image: String,
        to: String,
    },
    /// Recorded by the receiving engine of a [`Call::SendImage`].
    ReceiveImage {
        image: String,
        from: String,
    },
    RemoveImage {
        id: String,
    },
    PullImage {
        image: String,
    },
    PushImage {
        image: String,
    },
    /// `dockerfile`: the whole file the image was built from.
    BuildImage {
        tag: String,
        dockerfile: String,
    },
    EnsureNetwork {
        name: String,
    },
    EnsureVolume {
        name: String,
    },
    ListContainers {
        cluster: String,
    },
    ListLabelled {
        label: String,
        value: String,
    },
    CreateContainer {
        name: String,
        image: String,
    },
    /// The paths written, in order.
    Upload {
        container: String,
        paths: Vec<String>,
    },
    StartContainer {
        name: String,
    },
    RemoveContainer {
        name: String,
    },
    /// A probe container: made, run, read and removed in one call.
    RunProbe {
        name: String,
        image: String,
        cmd: Vec<String>,
        gpus: GpuRequest,
    },
    Exec {
        container: String,
        cmd: Vec<String>,
        user: Option<String>,
    },
    ExecAttached {
        container: String,
        cmd: Vec<String>,
        tty: bool,
    },
    Logs {
        container: String,
        tail: String,
    },
    RemoveNetwork {
        cluster: String,
    },
    RemoveVolumes {
        cluster: String,
    },
}

impl Call {
    /// The container a call acts on, if it acts on one.
    pub fn container(&self) -> Option<&str> {
        match self {
            Call::CreateContainer { name, .. }
            | Call::RunProbe { name, .. }
            | Call::StartContainer { name }
            | Call::RemoveContainer { name } => Some(name),
            Call::Upload { container, .. }
            | Call::Exec { container, .. }
            | Call::ExecAttached { container, .. }
            | Call::Logs { container, .. } => Some(container),
            _ => None,
        }
    }
}

/// A Docker API error as the real engine reports one (`status` 404: no such object,
/// 409: conflict, 500: anything else), for [`RecordingEngine::fail_when`].
pub fn api_error(action: &str, status: u16, message: &str) -> EngineError {
    EngineError::Api {
        action: action.into(),
        source: bollard::errors::Error::DockerResponseServerError {
            status_code: status,
            message: message.into(),
        },
    }
}
