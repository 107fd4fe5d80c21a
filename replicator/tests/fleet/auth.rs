//! A fleet on an etcd with its own authentication: the coordinator and the sidecars log in as the
//! users their files name, and a pair whose role may read the fleet's keys but not write them is
//! refused by the gate's dry run — naming the pair and the permission — before anything is fenced.

use super::*;
use etcd_client::{Client, Permission};
use turnout_testbed::TestCertificates;

/// Turns on etcd's authentication: `root` (password `root-pw`) may do everything; `reader`
/// (`reader-pw`) may only read the fleet's keys, `writer` (`writer-pw`) read and write them.
async fn with_users(etcd: &EtcdCluster) {
    let mut c = Client::connect(etcd.endpoints(), None).await.expect("connect");
    for (user, password) in [("root", "root-pw"), ("reader", "reader-pw"), ("writer", "writer-pw")] {
        c.user_add(user, password, None).await.expect("user");
    }
    c.role_add("root").await.expect("root role");
    c.user_grant_role("root", "root").await.expect("root");
    c.role_add("fleet-read").await.expect("role");
    c.role_grant_permission("fleet-read", Permission::read("/turnout/").with_prefix()).await.expect("read");
    c.user_grant_role("reader", "fleet-read").await.expect("grant");
    c.role_add("fleet-write").await.expect("role");
    c.role_grant_permission("fleet-write", Permission::read_write("/turnout/").with_prefix()).await.expect("write");
    c.user_grant_role("writer", "fleet-write").await.expect("grant");
    c.auth_enable().await.expect("auth");
}

fn keys_as(etcd: &EtcdCluster, user: &str) -> String {
    format!("{}user = \"{user}\"\npassword = \"{user}-pw\"\n", fleet_keys(etcd))
}

#[tokio::test]
async fn a_pair_that_may_not_write_the_fleets_keys_is_refused_by_the_gate_and_one_that_may_cuts_over() {
    let etcd = EtcdCluster::start(1).expect("etcd");
    with_users(&etcd).await;
    let (writer, reader) = (keys_as(&etcd, "writer"), keys_as(&etcd, "reader"));
    let (a, b) = tokio::join!(Pair::pg_with("a", 15, 17, &writer), Pair::pg_with("b", 15, 17, &reader));
    let pairs = vec![a, b];
    let dir = tempfile::tempdir().expect("tmp");
    let file = fleet_file(dir.path(), "locked", &etcd, &pairs);
    let text = std::fs::read_to_string(&file).expect("fleet file").replace("[etcd]\n", "[etcd]\nuser = \"root\"\npassword = \"root-pw\"\n");
    std::fs::write(&file, text).expect("write");
    let out = dir.path().join("out");
    let (code, text) = finished(fleet_command(&file, &["cutover", "--when-lag", "<5s", "--timeout", "30s", "--max-pause", "5s"], &out), &out).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("the fleet's gate refused; nothing was changed") && text.contains("b: "), "{text}");
    assert!(text.contains("writing this pair's keys in etcd") && text.contains("permission denied"), "{text}");
    assert!(!text.contains("a: "), "pair a may write its keys: {text}");
    for p in &pairs {
        p.assert_blue_serves().await;
    }
    // Without the pair that may not write, the fleet cuts over, every party logged in.
    let only_a = fleet_file(dir.path(), "locked", &etcd, &pairs[..1]);
    let text = std::fs::read_to_string(&only_a).expect("fleet file").replace("[etcd]\n", "[etcd]\nuser = \"root\"\npassword = \"root-pw\"\n");
    std::fs::write(&only_a, text).expect("write");
    let (code, text) = finished(fleet_command(&only_a, &["cutover", "--when-lag", "<5s", "--timeout", "30s", "--max-pause", "5s"], &out), &out).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("every pair is on green"), "{text}");
}

/// `[fleet.etcd]` (and the fleet file's `[etcd]`) for a TLS cluster: its CA, and turnout's client
/// certificate when `client`.
fn tls_keys(etcd: &EtcdCluster, certificates: &TestCertificates, client: bool) -> String {
    let mut keys = format!("{}ca_file = \"{}\"\n", fleet_keys(etcd), certificates.ca_cert.display());
    if client {
        keys.push_str(&format!("cert_file = \"{}\"\nkey_file = \"{}\"\n", certificates.client_cert.display(), certificates.client_key.display()));
    }
    keys
}

/// An etcd that speaks TLS only and requires a client certificate its CA signed: a pair whose
/// sidecar shows none is refused by the gate's dry run, naming the pair, before anything is fenced;
/// a pair that shows one cuts over, the coordinator showing its own.
#[tokio::test]
async fn over_tls_a_pair_without_a_client_certificate_is_refused_by_the_gate_and_one_with_it_cuts_over() {
    let certs_dir = tempfile::tempdir().expect("tmp");
    let certificates = TestCertificates::generate(certs_dir.path()).expect("certificates");
    let etcd = EtcdCluster::start_tls(1, &certificates).expect("etcd");
    let (with, without) = (tls_keys(&etcd, &certificates, true), tls_keys(&etcd, &certificates, false));
    let (a, b) = tokio::join!(Pair::pg_with("a", 15, 17, &with), Pair::pg_with("b", 15, 17, &without));
    let pairs = vec![a, b];
    let dir = tempfile::tempdir().expect("tmp");
    let with_certificate = |pairs: &[Pair]| {
        let file = fleet_file(dir.path(), "tls", &etcd, pairs);
        let extra = with.split_once("endpoints").map(|(_, rest)| rest.split_once('\n').map_or("", |(_, after)| after)).unwrap_or_default();
        let text = std::fs::read_to_string(&file).expect("fleet file").replace("[etcd]\n", &format!("[etcd]\n{extra}"));
        std::fs::write(&file, text).expect("write");
        file
    };
    let file = with_certificate(&pairs);
    let out = dir.path().join("out");
    let (code, text) = finished(fleet_command(&file, &["cutover", "--when-lag", "<5s", "--timeout", "30s", "--max-pause", "5s"], &out), &out).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("the fleet's gate refused; nothing was changed") && text.contains("b: "), "{text}");
    assert!(!text.contains("a: "), "pair a shows its certificate: {text}");
    // etcd ends the TLS session of a client that shows no certificate (the transport's words for it
    // vary with the moment it is cut: "transport error", "operation was canceled").
    assert!(text.contains("b: dry run failed: reading the fleet's keys in etcd") && text.contains("Transport"), "{text}");
    for p in &pairs {
        p.assert_blue_serves().await;
    }
    let only_a = with_certificate(&pairs[..1]);
    let (code, text) = finished(fleet_command(&only_a, &["cutover", "--when-lag", "<5s", "--timeout", "30s", "--max-pause", "5s"], &out), &out).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("every pair is on green"), "{text}");
}
