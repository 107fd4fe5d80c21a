//! The fleet's keys in etcd, and the only operations turnout does on them. Under
//! `/turnout/fleet/<fleet>/<id>/`:
//!
//! | key | written by | value |
//! | --- | --- | --- |
//! | `decision` | coordinator (created), then one transaction by anyone | `preparing` → `commit` or `abort`, never changed after |
//! | `record` | coordinator | the pairs and the budget (JSON) |
//! | `ready/<pair>` | sidecar, before its fence | its sidecar cutover id |
//! | `go` | coordinator, once every pair is ready | `fence` |
//! | `vote/<pair>` | sidecar, fenced and proven, under its lease | `prepared` |
//! | `prepared/<pair>` | sidecar, with its vote | when it fenced, its sentinel (JSON) |
//! | `outcome/<pair>` | sidecar, after it switched or undid | what it did, when (JSON) |
//!
//! `/turnout/fleet/<fleet>/current` names the fleet's last cutover id. The decision changes once, by
//! a compare-and-swap from `preparing`: to `commit` only while every pair's vote is `prepared`
//! ([`Ledger::commit`]), to `abort` by anyone ([`Ledger::abort`]). Every pair follows the one value.

use crate::config::EtcdConfig;
use crate::error::{Error, FleetRefusal};
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, WatchOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long one request to etcd may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a request failing for a transient reason (a member down, no leader for a moment) is
/// tried again. Every operation here may be: reads and puts are idempotent, and a compare-and-swap
/// tried again reads the value the first attempt left.
const RETRY_FOR: Duration = Duration::from_secs(3);

/// The fleet's decision: the one value every pair follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Not decided: pairs may still vote.
    Preparing,
    /// Every pair switches.
    Commit,
    /// Every pair undoes its fence (or does not fence).
    Abort,
}

impl Decision {
    fn parse(value: &[u8]) -> Option<Decision> {
        match value {
            b"preparing" => Some(Decision::Preparing),
            b"commit" => Some(Decision::Commit),
            b"abort" => Some(Decision::Abort),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Preparing => "preparing",
            Decision::Commit => "commit",
            Decision::Abort => "abort",
        }
    }
}

/// What a pair wrote with its vote: fenced and proven, when, and how it proved it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepared {
    /// The sidecar's own cutover id.
    pub cutover: String,
    /// When its fence went up (milliseconds since the epoch, the sidecar's clock).
    pub fenced_at_ms: i64,
    /// The sentinel proven applied on green.
    pub sentinel: String,
    /// Until when it holds before it tries to abort the fleet itself (milliseconds since the epoch).
    pub hold_until_ms: i64,
}

/// What a pair did once the decision was made.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// `switched` or `undone`.
    pub did: String,
    /// When (milliseconds since the epoch, the sidecar's clock).
    pub at_ms: i64,
    /// The pair's own write pause, when it switched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_pause_ms: Option<u64>,
}

/// Everything under one fleet cutover's prefix, read at one revision.
#[derive(Clone, Debug, Default)]
pub struct View {
    pub revision: i64,
    pub decision: Option<Decision>,
    /// The revision at which the decision was last written (its commit or abort).
    pub decided_at: i64,
    pub ready: BTreeMap<String, String>,
    pub go: bool,
    pub votes: BTreeMap<String, String>,
    pub prepared: BTreeMap<String, Prepared>,
    pub outcomes: BTreeMap<String, Outcome>,
    pub record: Option<serde_json::Value>,
}

/// One fleet cutover's keys in etcd.
#[derive(Clone)]
pub struct Ledger {
    client: Client,
    /// `/turnout/fleet/<fleet>/`.
    fleet: String,
    /// `/turnout/fleet/<fleet>/<id>/`.
    prefix: String,
    /// Each member alone ([`Ledger::with_members`]): a request inside a write pause that one try
    /// through [`Ledger::client`] left unanswered is tried again on each member in turn.
    members: Vec<EtcdConfig>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// Connects to the etcd cluster `config` names.
pub async fn connect(config: &EtcdConfig) -> Result<Client, Error> {
    // A member restarted (its simple tokens gone) or a JWT expired during a long hold: the client
    // authenticates again by itself. HTTP/2 keepalive notices a half-open connection under a watch.
    let mut options = ConnectOptions::new()
        .with_timeout(REQUEST_TIMEOUT)
        .with_connect_timeout(REQUEST_TIMEOUT)
        .with_require_leader(true)
        .with_auto_token_refresh(true)
        .with_keep_alive(Duration::from_secs(2), REQUEST_TIMEOUT)
        .with_keep_alive_while_idle(true);
    if let (Some(user), Some(password)) = (&config.user, &config.password) {
        options = options.with_user(user.clone(), password.expose().to_owned());
    }
    if let Some(ca) = &config.ca_file {
        let read =
            |field: &'static str, path: &std::path::Path| std::fs::read(path).map_err(|e| Error::config(field, format!("cannot read {}: {e}", path.display())));
        let mut tls = etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(read("fleet.etcd.ca_file", ca)?));
        if let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) {
            tls = tls.identity(etcd_client::Identity::from_pem(read("fleet.etcd.cert_file", cert)?, read("fleet.etcd.key_file", key)?));
        }
        options = options.with_tls(tls);
    }
    Client::connect(&config.endpoints, Some(options)).await.map_err(Error::etcd(format!("connecting to {}", config.endpoints.join(", "))))
}

/// `op` on a clone of `client`, tried again while it fails transiently, up to [`RETRY_FOR`] (each
/// try bounded by the client's own request timeout).
async fn attempt<T, F, Fut>(client: &Client, what: &str, op: F) -> Result<T, Error>
where
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    attempt_until(client, &[], what, Instant::now() + RETRY_FOR, None, op).await
}

/// How long one try of a request made inside a write pause waits ([`Ledger::vote`]): long enough
/// for a loaded etcd to answer, short enough that a try sent to a member that just died costs little
/// of the pause.
const TRY_FOR: Duration = Duration::from_millis(400);

/// `op` on a clone of `client`, tried again while it fails transiently or does not answer within
/// `per_try` (when given), until `deadline` (one try at least); after the first, each try goes to
/// the next of `members` alone (when there are any).
async fn attempt_until<T, F, Fut>(client: &Client, members: &[EtcdConfig], what: &str, deadline: Instant, per_try: Option<Duration>, op: F) -> Result<T, Error>
where
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let mut tries = 0usize;
    loop {
        let one = async {
            let through = match tries.checked_sub(1).and_then(|k| members.get(k % members.len().max(1))) {
                Some(member) => connect(member).await?,
                None => client.clone(),
            };
            op(through).await.map_err(Error::etcd(what))
        };
        let tried = match per_try {
            Some(limit) => {
                let limit = limit.min(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(50)));
                tokio::time::timeout(limit, one).await.unwrap_or_else(|_| {
                    let silent = std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no answer within {} ms", limit.as_millis()));
                    Err(Error::etcd(what)(etcd_client::Error::IoError(silent)))
                })
            }
            None => one.await,
        };
        let failed = match tried {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if failed.class() != turnout_decoders::ErrorClass::Transient || Instant::now() >= deadline {
            return Err(failed);
        }
        tries += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Ledger {
    /// The keys of fleet `fleet`'s cutover `id`.
    pub fn new(client: Client, fleet: &str, id: &str) -> Ledger {
        Ledger { client, fleet: format!("/turnout/fleet/{fleet}/"), prefix: format!("/turnout/fleet/{fleet}/{id}/"), members: Vec::new() }
    }

    /// The ledger, able to try a request again on each member of `config` alone. The client's
    /// balancing across members keeps sending to one that holds its connections open and answers
    /// nothing (a frozen machine, a partition) until its keepalive gives up, seconds later: a vote
    /// inside a write pause cannot wait that long.
    pub fn with_members(mut self, config: &EtcdConfig) -> Ledger {
        self.members = config.endpoints.iter().map(|e| EtcdConfig { endpoints: vec![e.clone()], ..config.clone() }).collect();
        self
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// Creates the decision (`preparing`) and the record, and names this cutover the fleet's
    /// current one. Refused when the decision already exists: an id is used once.
    pub async fn open(&mut self, record: &serde_json::Value) -> Result<(), Error> {
        let decision = self.key("decision");
        let text = record.to_string();
        let id = self.prefix.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned();
        let txn = Txn::new().when([Compare::create_revision(decision.clone(), CompareOp::Equal, 0)]).and_then([
            TxnOp::put(decision, "preparing", None),
            TxnOp::put(self.key("record"), text, None),
            TxnOp::put(format!("{}current", self.fleet), id, None),
        ]);
        let done = attempt(&self.client, "creating the fleet's decision", |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await?;
        // Tried again after a first attempt that succeeded, the transaction finds its own record.
        let ours = || async {
            let view = self.clone().view().await.ok()?;
            (view.decision == Some(Decision::Preparing) && view.record.as_ref() == Some(record)).then_some(())
        };
        if done.succeeded() || ours().await.is_some() {
            Ok(())
        } else {
            Err(FleetRefusal::Exists { prefix: self.prefix.clone() }.into())
        }
    }

    /// Reads every key of this cutover at one revision.
    pub async fn view(&mut self) -> Result<View, Error> {
        let prefix = self.prefix.clone();
        let got = attempt(&self.client, "reading the fleet's keys", |mut c| {
            let prefix = prefix.clone();
            async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
        })
        .await?;
        let mut view = View { revision: got.header().map_or(0, |h| h.revision()), ..View::default() };
        for kv in got.kvs() {
            let Some(rest) = kv.key_str().ok().and_then(|k| k.strip_prefix(&self.prefix)) else { continue };
            let text = String::from_utf8_lossy(kv.value()).into_owned();
            match rest.split_once('/') {
                None if rest == "decision" => {
                    view.decision = Decision::parse(kv.value());
                    view.decided_at = kv.mod_revision();
                }
                None if rest == "go" => view.go = true,
                None if rest == "record" => view.record = serde_json::from_str(&text).ok(),
                Some(("ready", pair)) => {
                    view.ready.insert(pair.to_owned(), text);
                }
                Some(("vote", pair)) => {
                    view.votes.insert(pair.to_owned(), text);
                }
                // One this version cannot read counts as missing, never as a default.
                Some(("prepared", pair)) => {
                    if let Ok(prepared) = serde_json::from_str(&text) {
                        view.prepared.insert(pair.to_owned(), prepared);
                    }
                }
                Some(("outcome", pair)) => {
                    if let Ok(outcome) = serde_json::from_str(&text) {
                        view.outcomes.insert(pair.to_owned(), outcome);
                    }
                }
                _ => {}
            }
        }
        Ok(view)
    }

    /// A watch on this cutover's keys from now on, open (etcd confirmed it) before it returns: read the
    /// keys after opening it, and every change after that read is seen ([`Changes::next`]).
    pub async fn changes(&self) -> Changes {
        let mut changes = Changes { client: self.client.clone(), prefix: self.prefix.clone(), stream: None };
        changes.open().await;
        changes
    }

    /// Writes `value` at `rest`.
    pub async fn put(&mut self, rest: &str, value: impl Into<Vec<u8>>) -> Result<(), Error> {
        let (key, value) = (self.key(rest), value.into());
        attempt(&self.client, &format!("writing {rest}"), |mut c| {
            let (key, value) = (key.clone(), value.clone());
            async move { c.put(key, value, None).await }
        })
        .await?;
        Ok(())
    }

    /// Proves, for a dry run, that this pair may do in etcd what its part of a fleet cutover does: a
    /// lease granted, a key under the cutover's prefix written under it, and the lease revoked (which
    /// removes the key). A role without write permission on the fleet's keys is refused here, not
    /// after its fence.
    pub async fn probe(&mut self, pair: &str) -> Result<(), Error> {
        let id = attempt(&self.client, "granting a lease (dry run)", |mut c| async move { c.lease_grant(5, None).await }).await?.id();
        let key = self.key(&format!("probe/{pair}"));
        let written = attempt(&self.client, "writing this pair's key (dry run)", |mut c| {
            let key = key.clone();
            async move { c.put(key, "dry run", Some(PutOptions::new().with_lease(id))).await }
        })
        .await;
        let revoked = attempt(&self.client, "revoking the dry run's lease", |mut c| async move { c.lease_revoke(id).await }).await;
        written?;
        revoked?;
        Ok(())
    }

    /// Says `go` (every pair fences), only while the decision is still `preparing`. Returns the
    /// decision as it stands.
    pub async fn go(&mut self) -> Result<Decision, Error> {
        let decision = self.key("decision");
        let txn = Txn::new()
            .when([Compare::value(decision.clone(), CompareOp::Equal, "preparing")])
            .and_then([TxnOp::put(self.key("go"), "fence", None)])
            .or_else([TxnOp::get(decision, None)]);
        let done = attempt(&self.client, "saying go", |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await?;
        if done.succeeded() {
            return Ok(Decision::Preparing);
        }
        Ok(self.view().await?.decision.unwrap_or(Decision::Abort))
    }

    /// Casts `pair`'s vote `prepared` under `lease`, with what it proved, in one transaction — only
    /// while the decision is `preparing`, so that no vote is ever written after a decision it would
    /// contradict — which also turns the decision to `commit` when every other pair of `pairs` voted
    /// `prepared` (the last pair to vote decides; the coordinator otherwise). Returns the decision
    /// when it is made: `commit` by this vote, or the one made before it (no key written then);
    /// `None` while the fleet still prepares.
    ///
    /// Each try waits at most [`TRY_FOR`] and is tried again until `deadline` (the pair's hold): a
    /// try sent to an etcd leader that just died costs a try, not the request timeout, so a leader
    /// change costs the election. A try whose answer was lost and that had cast the vote is read as
    /// such by the next: it finds the decision its own vote made.
    pub async fn vote(&mut self, pair: &str, prepared: &Prepared, lease: i64, pairs: &[String], deadline: Instant) -> Result<Option<Decision>, Error> {
        let detail = serde_json::to_string(prepared).unwrap_or_default();
        let cast = [
            TxnOp::put(self.key(&format!("prepared/{pair}")), detail, None),
            TxnOp::put(self.key(&format!("vote/{pair}")), "prepared", Some(PutOptions::new().with_lease(lease))),
        ];
        // Without the fleet's list (or off it), this vote never decides.
        let may_decide = pairs.iter().any(|p| p == pair);
        let then = if may_decide {
            let others: Vec<Compare> =
                pairs.iter().filter(|p| *p != pair).map(|p| Compare::value(self.key(&format!("vote/{p}")), CompareOp::Equal, "prepared")).collect();
            let mut commit = cast.to_vec();
            commit.push(TxnOp::put(self.key("decision"), Decision::Commit.as_str(), None));
            vec![TxnOp::txn(Txn::new().when(others).and_then(commit).or_else(cast))]
        } else {
            cast.to_vec()
        };
        let txn = Txn::new()
            .when([Compare::value(self.key("decision"), CompareOp::Equal, "preparing")])
            .and_then(then)
            .or_else([TxnOp::get(self.key("decision"), None)]);
        let done = attempt_until(&self.client, &self.members, "casting the vote", deadline, Some(TRY_FOR), |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await?;
        if !done.succeeded() {
            return self.decision_in(&done).map(|(decision, _)| Some(decision));
        }
        let committed = may_decide && done.op_responses().iter().any(|op| matches!(op, etcd_client::TxnOpResponse::Txn(t) if t.succeeded()));
        Ok(committed.then_some(Decision::Commit))
    }

    /// A lease of `ttl` seconds, kept alive by a task until the returned handle is dropped.
    pub async fn lease(&mut self, ttl: i64) -> Result<LeaseHandle, Error> {
        let id = attempt(&self.client, "granting the vote's lease", |mut c| async move { c.lease_grant(ttl, None).await }).await?.id();
        let mut client = self.client.clone();
        let every = Duration::from_millis(u64::try_from(ttl).unwrap_or(1).saturating_mul(1000) / 3);
        let task = tokio::spawn(async move {
            loop {
                if let Ok((mut keeper, mut stream)) = client.lease_keep_alive(id).await {
                    while keeper.keep_alive().await.is_ok() && matches!(stream.message().await, Ok(Some(_))) {
                        tokio::time::sleep(every).await;
                    }
                }
                tokio::time::sleep(every).await;
            }
        });
        Ok(LeaseHandle { id, task })
    }

    /// The decision turned from `preparing` to `commit` if, and only if, every pair of `pairs` voted
    /// `prepared` (read in the same transaction); otherwise nothing changes. Returns the decision
    /// as it stands after, and its revision.
    pub async fn commit(&mut self, pairs: &[String]) -> Result<(Decision, i64), Error> {
        let decision = self.key("decision");
        let mut when = vec![Compare::value(decision.clone(), CompareOp::Equal, "preparing")];
        when.extend(pairs.iter().map(|p| Compare::value(self.key(&format!("vote/{p}")), CompareOp::Equal, "prepared")));
        self.swap(when, Decision::Commit).await
    }

    /// The decision turned from `preparing` to `abort`; one already made stays. Returns the decision
    /// as it stands after, and its revision.
    pub async fn abort(&mut self) -> Result<(Decision, i64), Error> {
        let when = vec![Compare::value(self.key("decision"), CompareOp::Equal, "preparing")];
        self.swap(when, Decision::Abort).await
    }

    async fn swap(&mut self, when: Vec<Compare>, to: Decision) -> Result<(Decision, i64), Error> {
        let decision = self.key("decision");
        let txn = Txn::new().when(when).and_then([TxnOp::put(decision.clone(), to.as_str(), None)]).or_else([TxnOp::get(decision, None)]);
        let done = attempt(&self.client, &format!("deciding {}", to.as_str()), |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await?;
        let revision = done.header().map_or(0, |h| h.revision());
        if done.succeeded() {
            return Ok((to, revision));
        }
        self.decision_in(&done)
    }

    /// The decision and its revision, as the `get` of a transaction's other branch read it.
    fn decision_in(&self, done: &etcd_client::TxnResponse) -> Result<(Decision, i64), Error> {
        for op in done.op_responses() {
            if let etcd_client::TxnOpResponse::Get(got) = op {
                if let Some(kv) = got.kvs().first() {
                    let now = Decision::parse(kv.value()).ok_or_else(|| Error::Internal(format!("the fleet's decision reads {:?}", kv.value_str())))?;
                    return Ok((now, kv.mod_revision()));
                }
            }
        }
        Err(FleetRefusal::DecisionMissing { key: self.key("decision") }.into())
    }

    /// The fleet's last cutover id (`current`), if any.
    pub async fn current(client: &mut Client, fleet: &str) -> Result<Option<String>, Error> {
        let key = format!("/turnout/fleet/{fleet}/current");
        let got = attempt(client, "reading the fleet's current cutover", |mut c| {
            let key = key.clone();
            async move { c.get(key, None).await }
        })
        .await?;
        Ok(got.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
    }
}

/// A watch on one fleet cutover's keys ([`Ledger::changes`]). A watch made to start now is served as
/// events happen; one made to start at a past revision would be caught up by etcd's background
/// loop, up to 100 ms late — inside the write pause.
pub struct Changes {
    client: Client,
    prefix: String,
    stream: Option<etcd_client::WatchStream>,
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes").field("prefix", &self.prefix).field("open", &self.stream.is_some()).finish()
    }
}

impl Changes {
    async fn open(&mut self) {
        let (mut client, prefix) = (self.client.clone(), self.prefix.clone());
        let opened = tokio::time::timeout(REQUEST_TIMEOUT, async move {
            let mut stream = client.watch(prefix, Some(WatchOptions::new().with_prefix())).await.ok()?;
            loop {
                match stream.message().await {
                    Ok(Some(r)) if r.created() => return Some(stream),
                    Ok(Some(_)) => {}
                    _ => return None,
                }
            }
        })
        .await;
        self.stream = opened.ok().flatten();
    }

    /// Waits until a key changes, or `until`. True when the caller must read the keys again: one
    /// changed, or the watch broke and was opened again (changes in between are not seen here).
    pub async fn next(&mut self, until: Instant) -> bool {
        let left = until.saturating_duration_since(Instant::now());
        let Some(stream) = self.stream.as_mut() else {
            // etcd unreachable: do not spin on it.
            tokio::time::sleep(Duration::from_millis(50).min(left)).await;
            self.open().await;
            return self.stream.is_some();
        };
        let event = tokio::time::timeout(left, async {
            loop {
                match stream.message().await {
                    Ok(Some(r)) if !r.events().is_empty() => return true,
                    Ok(Some(r)) if !r.canceled() => {}
                    _ => return false,
                }
            }
        })
        .await;
        match event {
            Ok(true) => true,
            Ok(false) => {
                self.stream = None;
                self.open().await;
                true
            }
            Err(_) => false,
        }
    }
}

/// A lease kept alive while held; dropping it stops the keep-alive (the lease then expires).
#[derive(Debug)]
pub struct LeaseHandle {
    pub id: i64,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LeaseHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
