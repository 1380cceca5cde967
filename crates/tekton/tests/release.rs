//! The pin, loading and verifying the release, its inventory and its apply order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kube::core::DynamicObject;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tekton::{Error, Pin, Plan, Release, Source, Step, apply_order, object_ref};

/// The real v1.6.0 release.yaml (see fixtures/SOURCES.md).
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tekton/release-v1.x.yaml")
}

const FIXTURE_SHA256: &str = "d0f6dc1dc7afe7f8725075ee07f6bf8eb01dd246f41ea404ed32e9ab023425ba";

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn pin_for(bytes: &[u8]) -> Pin {
    Pin {
        version: "v0.0.1".into(),
        url: "https://storage.googleapis.com/tekton-releases/pipeline/previous/v0.0.1/release.yaml".into(),
        sha256: sha256(bytes),
    }
}

fn kind(o: &DynamicObject) -> &str {
    o.types.as_ref().map_or("", |t| t.kind.as_str())
}

fn names(release: &Release, wanted: &str) -> Vec<String> {
    release
        .objects()
        .iter()
        .filter(|o| kind(o) == wanted)
        .map(|o| o.metadata.name.clone().unwrap_or_default())
        .collect()
}

#[test]
fn the_pin_is_v1_6_0_with_the_fixtures_checksum() {
    let pin = Pin::pinned().unwrap();
    assert_eq!(pin.version, "v1.6.0");
    assert_eq!(
        pin.url,
        "https://storage.googleapis.com/tekton-releases/pipeline/previous/v1.6.0/release.yaml"
    );
    assert_eq!(pin.sha256, FIXTURE_SHA256);
    assert_eq!(sha256(&std::fs::read(fixture()).unwrap()), FIXTURE_SHA256, "the fixture itself changed");
}

#[test]
fn a_pin_whose_url_names_another_version_or_with_a_bad_digest_is_refused() {
    let base = "version: v1.7.0\nurl: https://storage.googleapis.com/tekton-releases/pipeline/previous/v1.7.0/release.yaml\n";
    assert!(Pin::parse(&format!("{base}sha256: {FIXTURE_SHA256}\n")).is_ok());
    let stale_url = format!("{}sha256: {FIXTURE_SHA256}\n", base.replace("v1.7.0/", "v1.6.0/"));
    let Err(Error::Pin { reason }) = Pin::parse(&stale_url) else { panic!("stale url accepted") };
    assert!(reason.contains("v1.7.0"), "{reason}");
    let Err(Error::Pin { reason }) =
        Pin::parse(&format!("{base}sha256: {}\n", FIXTURE_SHA256.to_uppercase()))
    else {
        panic!("uppercase digest accepted")
    };
    assert!(reason.contains("lowercase hex"), "{reason}");
    assert!(matches!(Pin::parse(&format!("{base}sha256: abc\n")), Err(Error::Pin { .. })));
}

#[test]
fn the_release_loads_from_a_file_and_from_the_cache_layout() {
    let from_file = Release::load(&Source::File(fixture())).unwrap();
    assert_eq!(from_file.objects().len(), 76);
    assert_eq!(from_file.pin().version, "v1.6.0");

    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("tekton/v1.6.0");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture(), dir.join("release.yaml")).unwrap();
    let from_cache = Release::load(&Source::Cache(cache.path().into())).unwrap();
    assert_eq!(from_cache.path(), dir.join("release.yaml"));
    assert_eq!(from_cache.objects(), from_file.objects());
}

#[test]
fn a_cache_without_the_pinned_version_names_the_missing_file() {
    let cache = tempfile::tempdir().unwrap();
    let Err(Error::Read { path, .. }) = Release::load(&Source::Cache(cache.path().into())) else {
        panic!("an empty cache loaded")
    };
    assert_eq!(path, cache.path().join("tekton/v1.6.0/release.yaml"));
}

#[test]
fn a_file_with_another_digest_is_refused_before_it_is_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("release.yaml");
    // One changed image tag, and a broken document at the end: the digest must be what stops it.
    let text = std::fs::read_to_string(fixture()).unwrap().replacen(":v1.6.0@", ":v1.6.1@", 1) + "bad: [\n";
    std::fs::write(&path, &text).unwrap();
    let error = Release::load(&Source::File(path.clone())).unwrap_err();
    let message = error.to_string();
    let Error::Checksum { path: named, expected, actual } = error else { panic!("not refused: {message}") };
    assert_eq!(named, path);
    assert_eq!(expected, FIXTURE_SHA256);
    assert_eq!(actual, sha256(text.as_bytes()));
    for part in [path.display().to_string(), expected, actual] {
        assert!(message.contains(&part), "`{message}` does not name {part}");
    }
}

#[test]
fn a_verified_file_with_one_bad_document_yields_no_objects_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("release.yaml");
    let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\nkind: [\n";
    std::fs::write(&path, text).unwrap();
    let error = Release::load_pinned(&pin_for(text.as_bytes()), &Source::File(path)).unwrap_err();
    assert!(matches!(error, Error::Parse { document: 2, line: 6, .. }), "{error}");
}

#[test]
fn inventory_of_the_real_release() {
    let release = Release::load(&Source::File(fixture())).unwrap();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for o in release.objects() {
        *kinds.entry(kind(o)).or_default() += 1;
    }
    let expected: BTreeMap<&str, usize> = [
        ("ClusterRole", 7),
        ("ClusterRoleBinding", 5),
        ("ConfigMap", 23),
        ("CustomResourceDefinition", 8),
        ("Deployment", 4),
        ("HorizontalPodAutoscaler", 1),
        ("MutatingWebhookConfiguration", 1),
        ("Namespace", 2),
        ("Role", 6),
        ("RoleBinding", 8),
        ("Secret", 1),
        ("Service", 4),
        ("ServiceAccount", 4),
        ("ValidatingWebhookConfiguration", 2),
    ]
    .into();
    assert_eq!(kinds, expected);
    assert_eq!(release.objects().len(), 76);
    assert_eq!(names(&release, "Namespace"), ["tekton-pipelines", "tekton-pipelines-resolvers"]);
    let mut crds = names(&release, "CustomResourceDefinition");
    crds.sort();
    assert_eq!(
        crds,
        [
            "customruns.tekton.dev",
            "pipelineruns.tekton.dev",
            "pipelines.tekton.dev",
            "resolutionrequests.resolution.tekton.dev",
            "stepactions.tekton.dev",
            "taskruns.tekton.dev",
            "tasks.tekton.dev",
            "verificationpolicies.tekton.dev",
        ]
    );
    assert_eq!(
        names(&release, "Deployment"),
        [
            "tekton-pipelines-controller",
            "tekton-events-controller",
            "tekton-pipelines-remote-resolvers",
            "tekton-pipelines-webhook"
        ]
    );
    let mut webhooks = names(&release, "ValidatingWebhookConfiguration");
    webhooks.extend(names(&release, "MutatingWebhookConfiguration"));
    assert_eq!(
        webhooks,
        [
            "validation.webhook.pipeline.tekton.dev",
            "config.webhook.pipeline.tekton.dev",
            "webhook.pipeline.tekton.dev"
        ]
    );

    let images: Vec<&str> = release
        .objects()
        .iter()
        .filter(|o| kind(o) == "Deployment")
        .flat_map(|d| d.data["spec"]["template"]["spec"]["containers"].as_array().into_iter().flatten())
        .filter_map(|c| c["image"].as_str())
        .collect();
    assert_eq!(images.len(), 4);
    for image in images {
        let rest = image.strip_prefix("ghcr.io/tektoncd/pipeline/").unwrap_or_else(|| panic!("{image}"));
        let (_, digest) = rest.split_once(":v1.6.0@sha256:").unwrap_or_else(|| panic!("{image}"));
        assert!(digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()), "{image}");
    }
}

#[test]
fn apply_order_of_the_real_release() {
    let release = Release::load(&Source::File(fixture())).unwrap();
    let plan = release.plan();
    assert_eq!(plan.steps().len(), 77, "76 applies and one CRD wait");
    insta::assert_snapshot!(plan.lines().join("\n"));
}

fn object(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> DynamicObject {
    let mut value = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
    if let Some(ns) = namespace {
        value["metadata"]["namespace"] = Value::from(ns);
    }
    serde_json::from_value(value).unwrap()
}

fn refs(steps: &[Step]) -> Vec<String> {
    steps.iter().map(ToString::to_string).collect()
}

#[test]
fn order_moves_namespaces_and_crds_up_and_webhooks_down_keeping_the_rest() {
    let objects = [
        object("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", None, "v"),
        object("v1", "ConfigMap", Some("ns"), "b"),
        object("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, "xs.example.io"),
        object("v1", "ConfigMap", Some("ns"), "a"),
        object("v1", "Namespace", None, "ns"),
        // Same kind, other group: not a CRD, so it keeps its place.
        object("example.io/v1", "CustomResourceDefinition", Some("ns"), "fake"),
        object("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None, "m"),
    ];
    assert_eq!(
        refs(&apply_order(&objects)),
        [
            "Namespace/ns",
            "CustomResourceDefinition/xs.example.io",
            "wait for 1 CRDs Established",
            "ConfigMap/ns/b",
            "ConfigMap/ns/a",
            "CustomResourceDefinition/ns/fake",
            "ValidatingWebhookConfiguration/v",
            "MutatingWebhookConfiguration/m",
        ]
    );
    let Step::WaitEstablished(crds) = &apply_order(&objects)[2] else { panic!("no wait step") };
    assert_eq!(crds, &["xs.example.io"]);
}

#[test]
fn without_crds_there_is_no_wait_and_with_only_crds_it_comes_last() {
    let cm = object("v1", "ConfigMap", Some("ns"), "a");
    let crd = object("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, "xs.example.io");
    assert_eq!(refs(&apply_order(std::slice::from_ref(&cm))), ["ConfigMap/ns/a"]);
    assert_eq!(
        refs(&apply_order(std::slice::from_ref(&crd))),
        ["CustomResourceDefinition/xs.example.io", "wait for 1 CRDs Established"]
    );
    assert_eq!(object_ref(&cm), "ConfigMap/ns/a");
}

#[test]
fn without_pods_leaves_out_the_deployments_their_autoscaler_and_the_webhooks_and_keeps_the_api() {
    let bytes = std::fs::read(fixture()).unwrap();
    let release = Release::load_pinned(&pin_for(&bytes), &Source::File(fixture())).unwrap();
    let (api, rest) = release.plan().split_api();
    let (kept, skipped) = rest.without_pods();
    assert_eq!(skipped.len(), 4 + 1 + 3, "4 Deployments, 1 HPA, 3 webhook configurations: {skipped:?}");
    assert!(skipped.contains(&"Deployment/tekton-pipelines/tekton-pipelines-controller".to_string()));
    assert!(skipped.iter().any(|s| s.starts_with("HorizontalPodAutoscaler/")));
    let kinds: Vec<String> = kept
        .steps()
        .iter()
        .filter_map(|s| match s {
            Step::Apply(o) => Some(kind(o).to_string()),
            Step::WaitEstablished(_) => None,
        })
        .collect();
    assert!(kinds.iter().all(|k| !tekton::NEEDS_PODS.contains(&k.as_str())), "{kinds:?}");
    assert!(kinds.contains(&"ConfigMap".to_string()) && kinds.contains(&"ClusterRole".to_string()));
    // The API part (namespaces, CRDs, their wait) is untouched by the filter.
    assert_eq!(api.without_pods().0, api);
}

#[test]
fn empty_string_defaults_come_out_of_the_crds_and_nothing_else_changes() {
    let bytes = std::fs::read(fixture()).unwrap();
    let release = Release::load_pinned(&pin_for(&bytes), &Source::File(fixture())).unwrap();
    let (api, _) = release.plan().split_api();
    let (fixed, removed) = api.without_empty_string_defaults();
    let text = |plan: &Plan| {
        serde_json::to_string(
            &plan
                .steps()
                .iter()
                .map(|s| match s {
                    Step::Apply(o) => serde_json::to_value(o).unwrap(),
                    Step::WaitEstablished(c) => serde_json::json!(c),
                })
                .collect::<Vec<_>>(),
        )
        .unwrap()
    };
    let before = text(&api).matches(r#""default":"""#).count();
    assert!(removed > 0 && removed == before, "{removed} removed of {before}");
    assert_eq!(text(&fixed).matches(r#""default":"""#).count(), 0);
    assert_eq!(fixed.steps().len(), api.steps().len());
    // Other defaults stay.
    assert_eq!(
        text(&fixed).matches(r#""default":"#).count(),
        text(&api).matches(r#""default":"#).count() - removed
    );
}
