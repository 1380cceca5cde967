//! The control plane against itself: started from KUBEBUILDER_ASSETS, it authenticates a
//! ServiceAccount's token and answers access reviews as a cluster's API server does. CI runs it
//! under `.ci/with-cluster` (which exports KUBEBUILDER_ASSETS and XTASK_REQUIRE_CLUSTER=1);
//! without assets it skips, loudly, unless XTASK_REQUIRE_CLUSTER=1 makes that a failure.

use envtest::{Assets, ControlPlane, Options, identity};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, PostParams};

fn assets() -> Option<Assets> {
    Assets::for_tests()
}

async fn review(
    client: &kube::Client,
    token: &str,
) -> k8s_openapi::api::authentication::v1::TokenReviewStatus {
    let review = TokenReview {
        spec: TokenReviewSpec { token: Some(token.into()), ..Default::default() },
        ..Default::default()
    };
    Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("a token review")
        .status
        .expect("a review's status")
}

#[tokio::test]
async fn a_service_accounts_token_authenticates_and_rbac_decides() {
    let Some(assets) = assets() else { return };
    let mut plane = ControlPlane::start(&assets, Options::default()).await.expect("the control plane starts");
    let client = plane.client().await.unwrap();

    identity::service_account(&client, "default", "tester").await.unwrap();
    // Twice is fine: what runs `up` again must not fail on what the first run made.
    identity::service_account(&client, "default", "tester").await.unwrap();
    let token = identity::token(&client, "default", "tester", 600).await.unwrap();
    assert!(token.len() > 100, "a JWT, got {} characters", token.len());

    let status = review(&client, &token).await;
    assert_eq!(status.authenticated, Some(true), "{status:?}");
    let user = status.user.unwrap();
    assert_eq!(user.username.as_deref(), Some("system:serviceaccount:default:tester"));

    let forged = review(&client, &format!("{token}x")).await;
    assert_ne!(forged.authenticated, Some(true), "a changed token must not authenticate");

    let sar = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username,
            resource_attributes: Some(ResourceAttributes {
                namespace: Some("default".into()),
                resource: Some("services".into()),
                verb: Some("get".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer =
        Api::<SubjectAccessReview>::all(client.clone()).create(&PostParams::default(), &sar).await.unwrap();
    assert!(!answer.status.unwrap().allowed, "RBAC grants a fresh ServiceAccount nothing");

    let pids = plane.pids();
    assert_eq!(pids.len(), 2);
    plane.stop().unwrap();
    for pid in pids {
        assert!(!procs::pid_alive(pid), "pid {pid} still runs after stop");
    }
}

#[tokio::test]
async fn a_token_for_an_account_that_does_not_exist_is_refused() {
    let Some(assets) = assets() else { return };
    let plane = ControlPlane::start(&assets, Options::default()).await.unwrap();
    let client = plane.client().await.unwrap();
    let e = identity::token(&client, "default", "nobody", 600).await.unwrap_err().to_string();
    assert!(e.contains("ServiceAccount default/nobody"), "{e}");
    assert!(e.contains("not found"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_control_planes_at_once_each_take_an_object_as_soon_as_started() {
    let Some(assets) = assets() else { return };
    let start = |name: &'static str| {
        let assets = assets.clone();
        async move {
            let plane = ControlPlane::start(&assets, Options::default()).await.unwrap();
            // Straight away, as callers do: a create in namespace default is admitted.
            identity::service_account(&plane.client().await.unwrap(), "default", name).await.unwrap();
            plane
        }
    };
    let (a, b) = tokio::join!(start("a"), start("b"));
    assert_ne!(a.url(), b.url());
}
