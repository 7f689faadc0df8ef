//! The exit code a failed command ends with, decided here and nowhere else: 2 for a
//! usage mistake (a bad or missing spec file, a spec edit that cannot be made, a host
//! command asked for what the spec cannot do, a `[software]` package Debian does not
//! have), which asking again unchanged cannot fix; 1 for everything else (an engine
//! that does not answer, a node that does not come up, jobs still running).

use std::error::Error;

use crate::commands::host::HostError;
use crate::commands::user::UserError;
use crate::components::PartError;
use crate::deploy::DeployError;
use crate::image::ImageError;
use crate::spec::{EditError, SpecError};

/// The exit code of a command that failed for a reason other than a usage mistake.
pub const FAILURE: u8 = 1;
/// The exit code of a usage mistake.
pub const USAGE: u8 = 2;

/// The exit code for `report`: [`USAGE`] when it or any error it was caused by is a
/// usage mistake, else [`FAILURE`].
pub fn code(report: &miette::Report) -> u8 {
    if report.chain().any(is_usage) { USAGE } else { FAILURE }
}

/// Whether one error (not its causes) is a usage mistake. A new kind of usage error
/// is added here.
fn is_usage(e: &(dyn Error + 'static)) -> bool {
    e.is::<SpecError>()
        || e.is::<EditError>()
        || e.downcast_ref::<HostError>().is_some_and(HostError::is_usage)
        || e.downcast_ref::<UserError>().is_some_and(UserError::is_usage)
        || e.downcast_ref::<PartError>().is_some_and(PartError::is_usage)
        || e.downcast_ref::<DeployError>().is_some_and(DeployError::is_usage)
        || e.downcast_ref::<ImageError>().is_some_and(ImageError::is_usage)
}

#[cfg(test)]
mod tests {
    use miette::{Report, WrapErr};

    use super::*;
    use crate::engine::EngineError;
    use crate::spec::ClusterSpec;

    fn code_of(e: impl Into<Report>) -> u8 {
        code(&e.into())
    }

    #[test]
    fn spec_and_usage_mistakes_exit_2() {
        assert_eq!(code_of(ClusterSpec::parse("c.toml", "nmae = \"x\"\n").unwrap_err()), USAGE);
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(code_of(SpecError::Read { path: "c.toml".into(), source: missing }), USAGE);
        assert_eq!(code_of(crate::spec::with_host("[[", "pi2", "ssh://pi2", None).unwrap_err()), USAGE);
        assert_eq!(code_of(HostError::NoSpecFile), USAGE);
        assert_eq!(code_of(HostError::NoHosts("c.toml".into())), USAGE);
        let unknown = HostError::Unknown { file: "c.toml".into(), host: "pi9".into(), known: "pi1".into() };
        assert_eq!(code_of(unknown), USAGE);
        assert_eq!(code_of(HostError::Controller("pi1".into())), USAGE);
        let port = PartError::PortTaken {
            key: "[rest] port",
            what: "REST API",
            port: 6820,
            host: "local".into(),
            other: "lab".into(),
        };
        assert_eq!(code_of(DeployError::Part(port)), USAGE);
        assert_eq!(code_of(PartError::RestOff("lab".into())), USAGE);
        let package = || ImageError::UnknownPackage {
            what: "Slurm 24.11 node image".into(),
            suite: "trixie".into(),
            package: "python3-nosuch".into(),
            apt: "E: Unable to locate package python3-nosuch".into(),
        };
        assert_eq!(code_of(package()), USAGE);
        assert_eq!(code_of(DeployError::Image(package())), USAGE);
    }

    #[test]
    fn other_failures_exit_1() {
        use crate::deploy::remove::RemoveError;
        let host = RemoveError::Unreachable { host: "pi2".into(), reason: "no route".into() };
        assert_eq!(code_of(host), FAILURE);
        let busy =
            RemoveError::Busy { host: "pi2".into(), jobs: "7".into(), waited: 60, nodes: "pi2".into() };
        assert_eq!(code_of(busy), FAILURE);
        assert_eq!(code_of(EngineError::Unreachable("down".into())), FAILURE);
        assert_eq!(code_of(EngineError::NoContainer("lab-node1".into())), FAILURE);
    }

    #[test]
    fn a_usage_mistake_keeps_its_code_under_context() {
        let wrapped = Err::<(), _>(HostError::NoSpecFile).wrap_err("while adding host pi2").unwrap_err();
        assert_eq!(code(&wrapped), USAGE);
        let wrapped =
            Err::<(), _>(EngineError::Unreachable("down".into())).wrap_err("while adding").unwrap_err();
        assert_eq!(code(&wrapped), FAILURE);
    }
}
