//! Gateway's audit writes land through the shared DataStorage definition, on a database that
//! holds the audit tables and nothing the subset does not need.
#![cfg(feature = "e2e")]

use gateway_suite::{DataStorage, correlation_id, endpoint, event};

#[tokio::test]
async fn gateway_audit_events_are_written_and_read_back() {
    let ds = DataStorage::from_env();
    let id = correlation_id("gateway");
    let batch = [
        event("signal.received", "success", &id, "fp-1"),
        event("signal.deduplicated", "success", &id, "fp-1"),
        event("crd.created", "success", &id, "fp-1"),
    ];
    let (status, body) = ds.write_batch(&batch).await;
    assert_eq!(status, 201, "{body}");
    let stored = ds.wait_for_events(&id, 3, std::time::Duration::from_secs(10)).await;
    let types: Vec<&str> = stored.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["gateway.signal.received", "gateway.signal.deduplicated", "gateway.crd.created"]);
    assert!(stored.iter().all(|e| e["event_data"]["fingerprint"] == "fp-1"), "{stored:?}");
}

#[tokio::test]
async fn the_schema_is_the_audit_subset_only() {
    let (client, conn) = tokio_postgres::connect(&endpoint("DATABASE_URL"), tokio_postgres::NoTls)
        .await
        .expect("connect to DATABASE_URL");
    tokio::spawn(conn);
    let tables: Vec<String> = client
        .query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tables.iter().any(|t| t == "audit_events"), "{tables:?}");
    assert!(
        !tables.iter().any(|t| t == "remediation_workflow_catalog"),
        "an audit-only subset must not create the workflow catalog: {tables:?}"
    );
}

/// The suite lists `kube-api`: DataStorage authenticates, so the environment hands the tests a
/// token, and a call without one is refused with the service's own problem document.
#[tokio::test]
async fn a_call_without_a_token_is_refused() {
    let ds = DataStorage::from_env();
    assert!(ds.authenticates(), "the gateway suite lists kube-api: DATASTORAGE_TOKEN must be set");
    let (status, body) = ds.get_without_token("/api/v1/audit/events?limit=1").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["detail"], "Missing Authorization header", "{body}");
}
