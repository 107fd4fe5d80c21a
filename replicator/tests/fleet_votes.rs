//! The fleet's ledger in etcd, on a real 3-member cluster: a vote is cast only while the fleet
//! prepares (never a key written after a decision it would contradict), a vote whose answer was lost
//! reads the decision it made, and an etcd leader that stops answering just before a vote costs the
//! election, not the request timeout.

use std::time::{Duration, Instant};
use turnout::config::EtcdConfig;
use turnout::fleet::etcd::{connect, Decision, Ledger, Prepared, REQUEST_TIMEOUT};
use turnout_testbed::EtcdCluster;

async fn ledger(etcd: &EtcdCluster, id: &str) -> Ledger {
    let config = EtcdConfig { endpoints: etcd.endpoints(), ..EtcdConfig::default() };
    let mut ledger = Ledger::new(connect(&config).await.expect("connect"), "votes", id).with_members(&config);
    ledger.open(&serde_json::json!({ "pairs": ["a", "b"] })).await.expect("open");
    ledger
}

/// The value of `key` under cutover `id`, read from every member's view (a linearizable get).
async fn key(etcd: &EtcdCluster, id: &str, key: &str) -> Option<String> {
    let mut c = etcd_client::Client::connect(etcd.endpoints(), None).await.expect("connect");
    let got = c.get(format!("/turnout/fleet/votes/{id}/{key}"), None).await.expect("get");
    got.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
}

/// The index of the cluster's leader.
async fn leader(etcd: &EtcdCluster) -> usize {
    for (i, endpoint) in etcd.endpoints().iter().enumerate() {
        let mut c = etcd_client::Client::connect([endpoint.clone()], None).await.expect("connect");
        let status = c.status().await.expect("status");
        if status.header().map(|h| h.member_id()) == Some(status.leader()) {
            return i;
        }
    }
    panic!("no member is the leader");
}

fn prepared() -> Prepared {
    Prepared { cutover: "c".into(), fenced_at_ms: 1, sentinel: "0/1".into(), hold_until_ms: 2 }
}

#[tokio::test]
async fn a_vote_after_the_decision_writes_nothing_and_reads_the_decision() {
    let etcd = EtcdCluster::start(3).expect("etcd");
    let pairs = vec!["a".to_owned(), "b".to_owned()];
    let mut aborted = ledger(&etcd, "aborted").await;
    let lease = aborted.lease(10).await.expect("lease");
    assert_eq!(aborted.abort().await.expect("abort").0, Decision::Abort);
    let deadline = Instant::now() + Duration::from_secs(5);
    assert_eq!(aborted.vote("a", &prepared(), lease.id, &pairs, deadline).await.expect("vote"), Some(Decision::Abort));
    assert_eq!(key(&etcd, "aborted", "vote/a").await, None, "no vote written after the abort");
    assert_eq!(key(&etcd, "aborted", "prepared/a").await, None);
    // The last vote commits; the same vote tried again (its answer lost) reads its own commit.
    let mut fleet = ledger(&etcd, "committed").await;
    let lease = fleet.lease(10).await.expect("lease");
    assert_eq!(fleet.vote("a", &prepared(), lease.id, &pairs, deadline).await.expect("vote a"), None, "the fleet still prepares");
    assert_eq!(fleet.vote("b", &prepared(), lease.id, &pairs, deadline).await.expect("vote b"), Some(Decision::Commit));
    assert_eq!(fleet.vote("b", &prepared(), lease.id, &pairs, deadline).await.expect("vote b again"), Some(Decision::Commit));
    assert_eq!(key(&etcd, "committed", "decision").await.as_deref(), Some("commit"));
    // A decision made stays: an abort after the commit changes nothing.
    assert_eq!(fleet.abort().await.expect("abort").0, Decision::Commit);
}

/// The leader stops answering (SIGSTOP: its connections stay open, as a frozen machine's) just
/// before the last vote: the vote is tried again on the others within its deadline and commits
/// within the election, well under one request timeout.
#[tokio::test]
async fn the_leader_frozen_before_the_last_vote_costs_the_election_not_the_request_timeout() {
    let mut etcd = EtcdCluster::start(3).expect("etcd");
    let pairs = vec!["a".to_owned(), "b".to_owned()];
    let mut fleet = ledger(&etcd, "frozen").await;
    let lease = fleet.lease(10).await.expect("lease");
    let deadline = Instant::now() + Duration::from_secs(10);
    assert_eq!(fleet.vote("a", &prepared(), lease.id, &pairs, deadline).await.expect("vote a"), None);
    let frozen = leader(&etcd).await;
    etcd.pause(frozen);
    let started = Instant::now();
    let voted = fleet.vote("b", &prepared(), lease.id, &pairs, started + Duration::from_secs(10)).await;
    let took = started.elapsed();
    etcd.resume(frozen);
    assert_eq!(voted.expect("vote b"), Some(Decision::Commit), "the vote committed the fleet");
    assert!(took < REQUEST_TIMEOUT, "the vote took {took:?} across the leader's loss (request timeout {REQUEST_TIMEOUT:?})");
    eprintln!("the last vote committed {} ms after the leader froze", took.as_millis());
    assert_eq!(key(&etcd, "frozen", "decision").await.as_deref(), Some("commit"));
}
