//! Images on a Docker engine: asking for one, importing a root filesystem, building
//! from a Dockerfile, pulling and pushing through registries, tagging, removing, and
//! streaming one engine's image into another.

use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{api, is_status};
use crate::engine::Result;

/// `registry:5000/slurmbox/node:24.11-abc` as ("registry:5000/slurmbox/node", "24.11-abc"):
/// the tag follows the last colon after the last slash.
fn split_tag(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

pub(super) async fn exists(docker: &Docker, image: &str) -> Result<bool> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(e) if is_status(&e, 404) => Ok(false),
        Err(e) => Err(api(format!("inspect image {image}"))(e)),
    }
}

pub(super) async fn import(
    docker: &Docker,
    changes: &[String],
    platform: &str,
    tar: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
) -> Result<String> {
    let options = CreateImageOptions {
        from_src: Some("-".into()),
        changes: changes.to_vec(),
        platform: platform.to_string(),
        ..Default::default()
    };
    let mut progress = docker.create_image(Some(options), Some(bollard::body_try_stream(tar)), None);
    // The engine answers an import with the new image's id as the last status.
    let mut id = String::new();
    while let Some(item) = progress.next().await {
        let info = item.map_err(api("import an image"))?;
        if let Some(status) = info.status.filter(|s| s.starts_with("sha256:")) {
            id = status;
        }
    }
    Ok(id)
}

pub(super) async fn pull(docker: &Docker, image: &str) -> Result<()> {
    let (repo, tag) = split_tag(image);
    let options =
        CreateImageOptions { from_image: Some(repo.into()), tag: Some(tag.into()), ..Default::default() };
    let mut progress = docker.create_image(Some(options), None, None);
    while let Some(item) = progress.next().await {
        item.map_err(api(format!("pull {image}")))?;
    }
    Ok(())
}

pub(super) async fn push(docker: &Docker, image: &str) -> Result<()> {
    let (repo, tag) = split_tag(image);
    let options = bollard::query_parameters::PushImageOptions { tag: Some(tag.into()), platform: None };
    let mut progress = docker.push_image(repo, Some(options), None);
    while let Some(item) = progress.next().await {
        item.map_err(api(format!("push {image}")))?;
    }
    Ok(())
}

/// A build context holding only `dockerfile`, as the tar the engine takes.
fn dockerfile_context(dockerfile: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .expect("writing a tar into memory cannot fail");
    builder.into_inner().expect("writing a tar into memory cannot fail")
}

pub(super) async fn build(
    docker: &Docker,
    dockerfile: &str,
    tag: &str,
    line: &(dyn Fn(&str) + Send + Sync),
) -> Result<()> {
    let context = dockerfile_context(dockerfile);
    let options = bollard::query_parameters::BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        t: Some(tag.into()),
        rm: true,
        forcerm: true,
        ..Default::default()
    };
    let mut progress = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(item) = progress.next().await {
        let info = item.map_err(api(format!("build {tag}")))?;
        for text in info.stream.iter().chain(info.status.iter()) {
            for l in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                line(l);
            }
        }
    }
    Ok(())
}

pub(super) async fn tag(docker: &Docker, id: &str, image: &str) -> Result<()> {
    let (repo, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    let options =
        bollard::query_parameters::TagImageOptions { repo: Some(repo.into()), tag: Some(tag.into()) };
    docker.tag_image(id, Some(options)).await.map_err(api(format!("tag image {image}")))
}

pub(super) async fn send(from: &Docker, image: &str, to: &Docker) -> Result<()> {
    // The export runs in its own task and hands chunks over a small channel, so the
    // image is never held in memory or written to disk on the way.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    let (docker, name) = (from.clone(), image.to_string());
    let pump = tokio::spawn(async move {
        let mut export = docker.export_image(&name);
        while let Some(chunk) = export.next().await {
            let chunk = chunk.map_err(std::io::Error::other);
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let options = bollard::query_parameters::ImportImageOptions { quiet: true, ..Default::default() };
    let mut load = to.import_image_stream(options, body, None);
    while let Some(item) = load.next().await {
        item.map_err(api(format!("load image {image}")))?;
    }
    let _ = pump.await;
    Ok(())
}

pub(super) async fn remove(docker: &Docker, id: &str) -> Result<()> {
    match docker.remove_image(id, None::<bollard::query_parameters::RemoveImageOptions>, None).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(api(format!("remove image {id}"))(e)),
    }
}
