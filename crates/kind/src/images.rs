//! The images a kind node already holds (from `crictl images -o json`), and a reference lookup
//! that tolerates the different spellings one image gets from docker, podman and containerd.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::Error;

#[derive(Deserialize)]
struct CrictlImages {
    #[serde(default)]
    images: Option<Vec<CrictlImage>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CrictlImage {
    // crictl prints `null` rather than `[]` for images with no tag or no digest.
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    repo_digests: Option<Vec<String>>,
}

/// Every tag and digest reference in `crictl images -o json` output, as containerd spells them.
///
/// Image ids are left out: they are not references a pod spec or `kind load` would name.
pub fn parse_crictl_images(json: &str) -> Result<BTreeSet<String>, Error> {
    parse(json).map_err(|source| Error::ParseImages { what: "`crictl images -o json` output".into(), source })
}

fn parse(json: &str) -> Result<BTreeSet<String>, serde_json::Error> {
    let parsed: CrictlImages = serde_json::from_str(json)?;
    let refs = parsed.images.unwrap_or_default().into_iter().flat_map(|image| {
        image.repo_tags.unwrap_or_default().into_iter().chain(image.repo_digests.unwrap_or_default())
    });
    Ok(refs.filter(|r| !r.is_empty() && !r.contains("<none>")).collect())
}

/// Whether `images` (as from [`parse_crictl_images`]) holds the image `reference` names.
///
/// Both sides are normalised the way containerd does (`postgres:16` is
/// `docker.io/library/postgres:16`, no tag means `:latest`). A reference with a digest matches
/// only that digest. A reference with no registry also matches under `localhost/`, because that
/// is where podman puts an unqualified name it built, and kind loads it under that name; a
/// reference with a registry (including `localhost/`) matches only that registry, so a local
/// `localhost/postgres:16` is never mistaken for Docker Hub's `postgres:16`.
pub fn has_image(images: &BTreeSet<String>, reference: &str) -> bool {
    let wanted = Reference::parse(reference);
    let names = wanted.candidate_names();
    images.iter().map(|i| Reference::parse(i)).any(|have| {
        names.contains(&have.canonical_name())
            && match &wanted.digest {
                Some(digest) => have.digest.as_ref() == Some(digest),
                None => have.digest.is_none() && have.tag_or_latest() == wanted.tag_or_latest(),
            }
    })
}

/// An image reference split into its parts: `[registry/]path[:tag][@digest]`.
#[derive(Debug, PartialEq, Eq)]
struct Reference {
    /// The registry, when the reference names one, with Docker Hub's aliases folded into `docker.io`.
    registry: Option<String>,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    fn parse(reference: &str) -> Self {
        let reference = reference.trim();
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.to_string())),
            None => (reference, None),
        };
        // A colon after the last slash starts the tag; one before it is a registry's port.
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_string())),
            None => (rest, None),
        };
        // As in docker's reference grammar: a first component is a registry only if it looks
        // like a host (a dot or a port) or is `localhost`; `xtask/foo` is a Docker Hub path.
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                let registry = match first {
                    "index.docker.io" | "registry-1.docker.io" => "docker.io",
                    other => other,
                };
                (Some(registry.to_string()), path.to_string())
            }
            _ => (None, name.to_string()),
        };
        Reference { registry, path, tag, digest }
    }

    fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// `docker.io/<path>` with Docker Hub's implicit `library/` for one-component paths.
    fn docker_hub(path: &str) -> String {
        if path.contains('/') { format!("docker.io/{path}") } else { format!("docker.io/library/{path}") }
    }

    /// The fully qualified name as containerd stores it (no registry means Docker Hub).
    fn canonical_name(&self) -> String {
        match self.registry.as_deref() {
            None | Some("docker.io") => Self::docker_hub(&self.path),
            Some(registry) => format!("{registry}/{}", self.path),
        }
    }

    /// The fully qualified names this reference may have on a node.
    fn candidate_names(&self) -> Vec<String> {
        match self.registry {
            Some(_) => vec![self.canonical_name()],
            None => vec![Self::docker_hub(&self.path), format!("localhost/{}", self.path)],
        }
    }
}

/// Wraps a parse failure with where the JSON came from.
pub(crate) fn parse_node_images(json: &str, node: &str) -> Result<BTreeSet<String>, Error> {
    parse(json).map_err(|source| Error::ParseImages { what: format!("node {node}"), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:4a7f3a0ba8e4c5f1d9c1e6b7b2f6d4a1c3e5f7a9b1d3f5a7c9e1b3d5f7a9c1e3";

    /// crictl 1.33's shape, trimmed: ids, sizes as strings, `null` where a list is empty.
    fn node_images() -> BTreeSet<String> {
        let json = format!(
            r#"{{
  "images": [
    {{
      "id": "sha256:0b2a5b4ed3b3a9c1a3f0f0e4a0f1a6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3",
      "repoTags": ["docker.io/library/postgres:16-alpine"],
      "repoDigests": ["docker.io/library/postgres@{DIGEST}"],
      "size": "109561234",
      "uid": null,
      "username": "",
      "spec": null,
      "pinned": false
    }},
    {{
      "id": "sha256:1c2d",
      "repoTags": ["localhost/xtask/foo:abc"],
      "repoDigests": null,
      "size": "4096",
      "pinned": false
    }},
    {{
      "id": "sha256:2e3f",
      "repoTags": ["docker.io/xtask/bar:def", "registry.k8s.io/pause:3.10"],
      "repoDigests": [],
      "size": "1024",
      "pinned": true
    }},
    {{ "id": "sha256:3f4a", "repoTags": null, "repoDigests": null, "size": "1" }}
  ]
}}"#
        );
        parse_crictl_images(&json).unwrap()
    }

    #[test]
    fn crictl_json_gives_every_tag_and_digest() {
        let refs: Vec<String> = node_images().into_iter().collect();
        assert_eq!(
            refs,
            [
                "docker.io/library/postgres:16-alpine".to_string(),
                format!("docker.io/library/postgres@{DIGEST}"),
                "docker.io/xtask/bar:def".to_string(),
                "localhost/xtask/foo:abc".to_string(),
                "registry.k8s.io/pause:3.10".to_string(),
            ]
        );
        assert!(parse_crictl_images(r#"{"images":null}"#).unwrap().is_empty());
        assert!(parse_crictl_images("{}").unwrap().is_empty());
        assert!(parse_crictl_images("crictl: command not found").is_err());
    }

    #[test]
    fn a_podman_built_image_is_found_by_its_localhost_name_and_its_short_name() {
        let images = node_images();
        assert!(has_image(&images, "localhost/xtask/foo:abc"));
        assert!(has_image(&images, "xtask/foo:abc"));
        assert!(!has_image(&images, "localhost/xtask/foo:other"));
        assert!(!has_image(&images, "localhost/xtask/foo"), "no tag means :latest");
        // Qualified with another registry: a different image that merely shares the path.
        assert!(!has_image(&images, "docker.io/xtask/foo:abc"));
    }

    #[test]
    fn docker_hub_names_match_with_or_without_registry_and_library() {
        let images = node_images();
        for reference in [
            "postgres:16-alpine",
            "library/postgres:16-alpine",
            "docker.io/postgres:16-alpine",
            "docker.io/library/postgres:16-alpine",
            "index.docker.io/library/postgres:16-alpine",
        ] {
            assert!(has_image(&images, reference), "{reference}");
        }
        assert!(!has_image(&images, "postgres:17-alpine"));
        assert!(!has_image(&images, "postgres"));
        // A local image of the same name is not Docker Hub's.
        assert!(!has_image(&images, "localhost/postgres:16-alpine"));
        // A user's Docker Hub repository (as docker-built `xtask/bar` is loaded).
        assert!(has_image(&images, "xtask/bar:def"));
        assert!(has_image(&images, "registry.k8s.io/pause:3.10"));
        assert!(!has_image(&images, "pause:3.10"));
    }

    #[test]
    fn digests_match_only_the_same_digest() {
        let images = node_images();
        assert!(has_image(&images, &format!("postgres@{DIGEST}")));
        assert!(has_image(&images, &format!("docker.io/library/postgres:16-alpine@{DIGEST}")));
        let other = format!("postgres@sha256:{}", "0".repeat(64));
        assert!(!has_image(&images, &other));
        assert!(!has_image(&images, &format!("localhost/xtask/foo:abc@{DIGEST}")));
    }

    #[test]
    fn a_registry_port_is_not_a_tag() {
        let r = Reference::parse("localhost:5000/xtask/foo");
        assert_eq!(r.registry.as_deref(), Some("localhost:5000"));
        assert_eq!((r.path.as_str(), r.tag_or_latest()), ("xtask/foo", "latest"));
        let images = BTreeSet::from(["localhost:5000/xtask/foo:latest".to_string()]);
        assert!(has_image(&images, "localhost:5000/xtask/foo"));
        assert!(!has_image(&images, "xtask/foo"));
    }
}
