//! A third source family that replicates nothing, built only with the tests: it keeps
//! `docs/src/explanation/adding-a-source.md` true. It is added exactly where that page says a family
//! is added — this tree, a `SourceKind` variant in `config.rs` (and its read splits in
//! `config/canary.rs`), an arm in `with_family!` (`source/family.rs`) and arms in
//! `handover/mod.rs` — so a test build fails to compile the day a dispatch on the family appears
//! anywhere else, and the page must name that file too.
//!
//! Its own types are the two the seam is about, [`StubAdmin`] and [`StubCutover`]; the change
//! stream, green's sinks, the chunked copier, the live-verify backend and the canary's green are
//! PostgreSQL's (a family may reuse another's), and never built: every operation refuses.

use crate::config::Config;
use crate::error::Error;
use crate::journal::ReverseArm;
use crate::source::contract::compare::TableCheck;
use crate::source::contract::marker::{Marker, WatchStream};
use crate::source::contract::procedure::{Identity, Procedure};
use crate::source::contract::report::{Findings, Report};
use crate::source::family::Family;
use crate::source::pg::PgSource;
use crate::source::{Names, SourceAdmin};
use crate::state::StateStore;
use crate::status::foreign::Side;
use crate::status::Status;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use turnout_decoders::Position;

/// The URL scheme that names the stub family.
pub const SCHEME: &str = "stub://";

/// The one refusal of every operation.
fn refused(what: &str) -> Error {
    Error::Setup(format!("the stub family cannot {what}: it exists to check the seam, not to replicate"))
}

/// The stub [`Family`].
#[allow(missing_debug_implementations)]
pub struct Stub;

impl Family for Stub {
    type Admin = StubAdmin;
    type Cutover = StubCutover;
    type Live = crate::source::pg::live::PgLive;
    type Green = crate::source::pg::canary::PgGreen;

    fn validate(config: &Config) -> Result<(), Error> {
        for (field, url) in [("source.url", config.source.url.expose()), ("target.url", config.target.url.expose())] {
            if !url.starts_with(SCHEME) {
                return Err(Error::config(field, format!("is not a {SCHEME} URL")));
            }
        }
        Ok(())
    }

    fn name_rules(_config: &Config) -> Result<crate::tables::NameRules, Error> {
        Ok(crate::tables::NameRules::postgres())
    }

    fn admin(_config: &Config, names: Names) -> Result<StubAdmin, Error> {
        Ok(StubAdmin { names })
    }

    type Back = StubAdmin;

    fn back_admin(back: &Config, arm: &ReverseArm) -> Result<StubAdmin, Error> {
        Self::reverse_admin(back, arm)
    }

    fn reverse_admin(_back: &Config, arm: &ReverseArm) -> Result<StubAdmin, Error> {
        Ok(StubAdmin { names: arm.names.clone() })
    }

    async fn cutover(_config: &Config, _forward: &Names, _reverse: bool) -> Result<StubCutover, Error> {
        Ok(StubCutover)
    }

    async fn rollback(_config: &Config, _forward: &Names, _again: bool) -> Result<StubCutover, Error> {
        Ok(StubCutover)
    }

    const ITERATES: bool = false;

    async fn release_reverse(_config: &Config, _names: &Names) -> Vec<String> {
        Vec::new()
    }

    fn live(_config: &Config) -> Result<Self::Live, Error> {
        Err(refused("verify live"))
    }

    async fn before_reverse(_config: &Config, _forward: &Names) {}

    async fn drop_reverse(_config: &Config, _names: &Names) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }

    fn watches(_side: Side) -> bool {
        false
    }

    async fn watch_unavailable(_config: &Config, side: Side) -> Result<Option<String>, Error> {
        Ok(Some(format!("the stub family cannot watch {side}")))
    }

    async fn watch_stream(_config: &Config, _forward: &Names, _side: Side, _from: Option<&Position>) -> Result<WatchStream<PgSource>, Error> {
        Err(refused("watch a side"))
    }

    async fn watch_marker(_config: &Config, _side: Side) -> Result<Box<dyn Marker>, Error> {
        Err(refused("write the watch's mark"))
    }

    fn canary_green(_config: &Config) -> Result<Self::Green, Error> {
        Err(refused("take the canary's reads"))
    }

    async fn drop_watch(_config: &Config, _forward: &Names, _side: Side) {}
}

/// The stub's administration: every step refuses; `check` says so as a failed check.
#[allow(missing_debug_implementations)]
pub struct StubAdmin {
    names: Names,
}

impl SourceAdmin for StubAdmin {
    type Stream = PgSource;
    type Sink = turnout_sinks::Parallel<turnout_sinks::pg::PgSink>;
    type Early = turnout_sinks::NoEarly;
    type Copier = crate::source::pg::chunks::PgCopier;

    fn names(&self) -> &Names {
        &self.names
    }

    async fn prepare(&self, _state: &StateStore, _status: &Arc<Status>) -> Result<(), Error> {
        Err(refused("prepare a stream"))
    }

    async fn open_sink(&self) -> Result<Self::Sink, Error> {
        Err(refused("open green's apply"))
    }

    fn open_early(&self) -> Self::Early {
        turnout_sinks::NoEarly
    }

    fn copier(&self) -> Result<Self::Copier, Error> {
        Err(refused("copy in chunks"))
    }

    async fn open_stream(&self, _from: &Position) -> Result<PgSource, Error> {
        Err(refused("open a change stream"))
    }

    fn heartbeat(&self, _status: Arc<Status>, _shutdown: watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
        std::future::ready(())
    }

    async fn check(&self) -> Report {
        let mut findings = Findings::default();
        findings.fail("the source family", "the stub family replicates nothing; use a postgres:// or mysql:// URL");
        Report { sections: vec![("stub".into(), findings.0)] }
    }

    async fn verify(&self, _only: Option<&str>) -> Result<Vec<TableCheck>, Error> {
        Err(refused("verify"))
    }

    async fn teardown(&self) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }
}

/// The stub's side of a cutover: refuses before anything changes.
#[allow(missing_debug_implementations)]
pub struct StubCutover;

impl Procedure for StubCutover {
    fn fence_kind(&self) -> crate::config::Fence {
        crate::config::Fence::None
    }

    async fn preflight(&mut self) -> Result<Vec<String>, Error> {
        Err(refused("cut over"))
    }

    async fn check_fence(&mut self) -> Result<(), Error> {
        Err(refused("fence"))
    }

    async fn counters_ahead(&mut self) -> Result<String, Error> {
        Err(refused("read counters"))
    }

    async fn fence(&mut self, _budget: Duration) -> Result<String, Error> {
        Err(refused("fence"))
    }

    async fn write_sentinel(&mut self, _id: &str) -> Result<(), Error> {
        Err(refused("write a sentinel"))
    }

    async fn top_up(&mut self) -> Result<(String, usize), Error> {
        Err(refused("top up counters"))
    }

    async fn identify(&mut self) -> (Identity, Identity) {
        let stub = || Identity { version: "stub".into(), identity: "stub".into() };
        (stub(), stub())
    }

    async fn findings(&mut self) -> Vec<String> {
        Vec::new()
    }

    async fn open_green(&mut self) -> Result<Option<String>, Error> {
        Ok(None)
    }

    async fn lift_fence(&mut self) -> Result<String, Error> {
        Ok("the stub family fenced nothing".into())
    }

    async fn fenced(&mut self) -> Result<bool, Error> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceKind;

    fn config() -> Config {
        let text = "[source]\nurl = \"stub://blue\"\n[target]\nurl = \"stub://green\"\n[state]\ndir = \"/nonexistent/turnout-stub\"\n";
        Config::parse(text, |_| None).expect("a stub configuration parses")
    }

    #[tokio::test]
    async fn a_third_family_is_picked_by_its_scheme_everywhere_the_seam_dispatches() {
        let config = config();
        assert_eq!(config.source_kind(), SourceKind::Stub);
        assert_eq!(config.source_kind().name(), "stub");
        config.validate().expect("the stub's own validate passes its URLs");
        // The one dispatch: `with_family!` binds the stub.
        assert_eq!(crate::with_family!(config, F => std::any::type_name::<F>()), std::any::type_name::<Stub>());
        // The operations picked once.
        let ops = crate::source::family::of(&config);
        assert!(!ops.watches(Side::Green) && !ops.iterates());
        assert!(ops.drop_reverse(&config, &Names::none()).await.expect("nothing to drop").is_empty());
        let refusal = ops.watch_marker(&config, Side::Blue).await.err().map(|e| e.to_string());
        assert_eq!(refusal.as_deref(), Some("the stub family cannot write the watch's mark: it exists to check the seam, not to replicate"));
        // A command reaches the stub's administration, and the stub's refusal reaches the operator.
        let report = crate::check::run(&config).await;
        assert!(!report.passed(), "{:?}", report.sections);
        let verified = crate::verify::run(&config, None).await.err().map(|e| e.to_string());
        assert_eq!(verified.as_deref(), Some("the stub family cannot verify: it exists to check the seam, not to replicate"));
    }

    #[tokio::test]
    async fn the_hand_over_of_a_family_without_consumers_refuses_naming_it() {
        let mut config = config();
        config.handover = vec![crate::config::handover::Handover { slot: "consumer".into(), ..Default::default() }];
        let state = StateStore::open(&tempfile::tempdir().expect("a temp dir").path().join("state")).expect("a state store");
        let refused = crate::handover::Session::prepare(&config, crate::status::Direction::Forward, &state).await.err().map(|e| e.to_string());
        assert!(refused.is_some_and(|e| e.contains("stub")), "the stub names itself");
    }
}
