//! Images reaching other hosts: streamed from the engine that has them (where
//! [`ensure`](super::ensure) put them) into a host's engine that lacks them.

use super::ImageError;
use crate::engine::Engine;
use crate::progress::Progress;

/// Makes sure a remote host's engine (`target`) has the image `tag`, streaming it from
/// `local` (where [`ensure`] put it) when it is missing. Only a missing or outdated
/// image is sent: the tag names the recipe. `what` names the step ("Image",
/// "Storage image").
pub async fn send_if_missing<E: Engine>(
    local: &E,
    target: &E,
    host: &str,
    tag: &str,
    what: &str,
    progress: &Progress,
) -> Result<(), ImageError> {
    let step = progress.step(format!("{what} on {host}"));
    if target.image_exists(tag).await? {
        step.done_with("present");
        return Ok(());
    }
    step.message(format!("sending {tag}"));
    local.send_image(tag, target).await?;
    step.done_with("sent");
    Ok(())
}
