//! The pause image, made here: no registry can be reached for the upstream one. An OCI image
//! layout in a tar archive (one layer holding the pause program), which `ctr images import`
//! takes into containerd's `k8s.io` namespace under [`crate::config::PAUSE_IMAGE`].

use sha2::{Digest, Sha256};

use crate::Error;

fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn append(builder: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, path, data)
}

/// An OCI archive of an image `reference` whose one layer holds `program` as `/pause`, run as
/// its entrypoint.
pub(crate) fn pause_archive(reference: &str, program: &[u8]) -> Result<Vec<u8>, Error> {
    let io = Error::Image;
    let mut layer = tar::Builder::new(Vec::new());
    append(&mut layer, "pause", 0o755, program).map_err(io)?;
    let layer = layer.into_inner().map_err(io)?;
    let layer_digest = digest(&layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "Env": ["PATH=/"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]},
    })
    .to_string();
    let config_digest = digest(config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_digest}"),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": format!("sha256:{layer_digest}"),
            "size": layer.len(),
        }],
    })
    .to_string();
    let manifest_digest = digest(manifest.as_bytes());
    let tag = reference.rsplit_once(':').map_or("latest", |(_, t)| t);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_digest}"),
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": reference,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    })
    .to_string();
    let mut archive = tar::Builder::new(Vec::new());
    append(&mut archive, "oci-layout", 0o644, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io)?;
    append(&mut archive, "index.json", 0o644, index.as_bytes()).map_err(io)?;
    for (d, bytes) in [
        (&layer_digest, &layer[..]),
        (&config_digest, config.as_bytes()),
        (&manifest_digest, manifest.as_bytes()),
    ] {
        append(&mut archive, &format!("blobs/sha256/{d}"), 0o644, bytes).map_err(io)?;
    }
    archive.into_inner().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_is_an_oci_layout_whose_digests_match_their_blobs() {
        let bytes = pause_archive("localhost/x/pause:1", b"\x7fELF pretend").unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut files = std::collections::BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            files.insert(path, data);
        }
        for (path, data) in &files {
            if let Some(d) = path.strip_prefix("blobs/sha256/") {
                assert_eq!(digest(data), d, "{path}");
            }
        }
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        assert_eq!(index["manifests"][0]["annotations"]["io.containerd.image.name"], "localhost/x/pause:1");
        assert_eq!(files.len(), 5, "{:?}", files.keys());
    }
}
