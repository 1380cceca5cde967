//! Images the container backends build: a workspace binary put into an image, or a
//! Containerfile built in its context; each tagged by a hash of its inputs and built only when
//! the engine lacks that tag, so an unchanged image is never rebuilt.

use crate::backend::failure;
use std::path::{Path, PathBuf};

use container::Engine;
use sha2::{Digest, Sha256};

use crate::model::Image;
use crate::run::Run;
use crate::runner::{Progress, StepFailure};

/// Builds (or finds) the image of a `Cargo` or `Build` image description and returns its tag and
/// whether it was built; `Pull` images are not built here.
pub(crate) async fn build(
    engine: &Engine,
    blocking: &crate::backend::Blocking,
    run: &Run,
    component: &str,
    image: &Image,
    progress: &Progress,
) -> Result<(String, bool), StepFailure> {
    let dir = run.dir().join(format!("image-{component}"));
    match image.clone() {
        Image::Pull(reference) => Ok((reference, false)),
        Image::Cargo { package, containerfile } => {
            progress.say(format!("cargo build --package {package}"));
            let log = run.dir().join(format!("build-{component}.log"));
            let binary = crate::build::cargo_build_bin(&run.root, &package, &log).await?;
            let containerfile = run.root.join(containerfile);
            let (engine, p) = (engine.clone(), progress.clone());
            blocking
                .run("building the image", move || {
                    cargo_image(&engine, &package, &binary, &containerfile, &dir, &p)
                })
                .await
        }
        Image::Build { context, containerfile, repository } => {
            let (context, containerfile) = (run.root.join(context), run.root.join(containerfile));
            let (engine, p) = (engine.clone(), progress.clone());
            blocking
                .run("building the image", move || {
                    context_image(&engine, &repository, &context, &containerfile, &dir, &p)
                })
                .await
        }
    }
}

/// What a prepare step does for `image`, for plans.
pub(crate) fn describe(engine: &Engine, image: &Image) -> String {
    match image {
        Image::Pull(r) => format!("image {r}: present, or pulled"),
        Image::Cargo { package, containerfile } => format!(
            "cargo build --package {package}, then {} build -f {} (tagged by a hash of its inputs; skipped when present)",
            engine.program(),
            containerfile.display()
        ),
        Image::Build { context, containerfile, .. } => format!(
            "{} build -f {} {} (tagged by a hash of the Containerfile and the context; skipped when present)",
            engine.program(),
            containerfile.display(),
            context.display()
        ),
    }
}

/// Puts a workspace binary and the shared libraries it links into a build context, tags the
/// image by a hash of the Containerfile and every file, and builds it unless the engine has that
/// tag already. Returns the tag and whether it was built.
fn cargo_image(
    engine: &Engine,
    package: &str,
    binary: &Path,
    containerfile: &Path,
    dir: &Path,
    progress: &Progress,
) -> Result<(String, bool), StepFailure> {
    let mut files: Vec<(PathBuf, PathBuf)> =
        vec![(binary.to_path_buf(), PathBuf::from("usr/local/bin").join(package))];
    for lib in crate::build::shared_libraries(binary).map_err(failure)? {
        let inside = lib.strip_prefix("/").unwrap_or(&lib).to_path_buf();
        files.push((lib, inside));
    }
    let mut hash = Sha256::new();
    let recipe = std::fs::read(containerfile)
        .map_err(|e| failure(format!("reading {}: {e}", containerfile.display())))?;
    hash.update(&recipe);
    for (from, to) in &files {
        hash.update(to.as_os_str().as_encoded_bytes());
        hash.update(std::fs::read(from).map_err(|e| failure(format!("reading {}: {e}", from.display())))?);
    }
    let digest = format!("{:x}", hash.finalize());
    let tag = format!("localhost/xtask/{package}:{}", &digest[..16]);
    if engine.image_exists(&tag).map_err(failure)? {
        return Ok((tag, false));
    }
    progress.say(format!("building {tag}"));
    let rootfs = dir.join("rootfs");
    for (from, to) in &files {
        let dest = rootfs.join(to);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| failure(format!("creating {}: {e}", parent.display())))?;
        }
        std::fs::copy(from, &dest).map_err(|e| failure(format!("copying {}: {e}", from.display())))?;
    }
    let log = dir.join("build.log");
    let result = engine.build(&tag, containerfile, dir, &log).map_err(failure);
    let _ = std::fs::remove_dir_all(&rootfs);
    result.map(|()| (tag, true))
}

/// Builds `containerfile` in `context` as `<repository>:<hash>`, the hash over the Containerfile
/// and every file of the context (`.git`, `target` and `.xtask` left out: they are never inputs).
fn context_image(
    engine: &Engine,
    repository: &str,
    context: &Path,
    containerfile: &Path,
    dir: &Path,
    progress: &Progress,
) -> Result<(String, bool), StepFailure> {
    let mut hash = Sha256::new();
    hash.update(
        std::fs::read(containerfile)
            .map_err(|e| failure(format!("reading {}: {e}", containerfile.display())))?,
    );
    let skip = |e: &walkdir::DirEntry| matches!(e.file_name().to_str(), Some(".git" | "target" | ".xtask"));
    for entry in walkdir::WalkDir::new(context).sort_by_file_name().into_iter().filter_entry(|e| !skip(e)) {
        let entry =
            entry.map_err(|e| failure(format!("reading the build context {}: {e}", context.display())))?;
        if entry.file_type().is_file() {
            let rel = entry.path().strip_prefix(context).unwrap_or(entry.path());
            hash.update(rel.as_os_str().as_encoded_bytes());
            hash.update(
                std::fs::read(entry.path())
                    .map_err(|e| failure(format!("reading {}: {e}", entry.path().display())))?,
            );
        }
    }
    let digest = format!("{:x}", hash.finalize());
    let tag = format!("{repository}:{}", &digest[..16]);
    if engine.image_exists(&tag).map_err(failure)? {
        return Ok((tag, false));
    }
    progress.say(format!("building {tag}"));
    std::fs::create_dir_all(dir).map_err(|e| failure(format!("creating {}: {e}", dir.display())))?;
    engine.build(&tag, containerfile, context, &dir.join("build.log")).map_err(failure)?;
    Ok((tag, true))
}
