//! `[verify]`: the sidecar's continuous verify (see [`crate::verify::continuous`]).

use serde::Deserialize;

/// The continuous verify: `turnout verify --live` run by the sidecar itself, again and again.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// Re-verify every replicated table in the background while `run` streams; default false.
    #[serde(default)]
    pub continuous: bool,
    /// Source rows compared per second at most (default 5000): the load the verify may add.
    pub rows_per_second: Option<u64>,
    /// The pause between two runs (default `5m`).
    pub interval: Option<String>,
    /// Rows per chunk (default 10000).
    pub chunk_rows: Option<u64>,
    /// Between whole runs, runs re-check only what the stream changed; a whole run begins once the
    /// last began this long ago. Default `0s`: every run whole. Must be under
    /// `cutover.verify_max_age`, which ages a result by its whole run.
    pub whole_every: Option<String>,
}

/// [`VerifyConfig`] read and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Continuous {
    pub rows_per_second: u64,
    pub interval: std::time::Duration,
    pub chunk_rows: u64,
    pub whole_every: std::time::Duration,
}

impl VerifyConfig {
    /// The continuous verify's settings (`verify_max_age`: the gate's, which `whole_every` must stay
    /// under); an error names the field.
    pub fn settings(&self, verify_max_age: std::time::Duration) -> Result<Continuous, crate::error::Error> {
        use crate::error::Error;
        let rows_per_second = self.rows_per_second.unwrap_or(5_000);
        if rows_per_second == 0 {
            return Err(Error::config("verify.rows_per_second", "is 0: the verify would never compare a row; give e.g. 5000"));
        }
        let interval = super::opt_duration("verify.interval", &self.interval)?.unwrap_or(std::time::Duration::from_secs(300));
        let chunk_rows = self.chunk_rows.unwrap_or(10_000);
        if chunk_rows == 0 {
            return Err(Error::config("verify.chunk_rows", "is 0; give e.g. 10000"));
        }
        let whole_every = super::opt_duration("verify.whole_every", &self.whole_every)?.unwrap_or_default();
        if !whole_every.is_zero() && whole_every >= verify_max_age {
            return Err(Error::config(
                "verify.whole_every",
                format!(
                    "is {} s, not under cutover.verify_max_age ({} s): the gate ages a result by its whole run and would refuse it before                      the next one; give e.g. half of it",
                    whole_every.as_secs(),
                    verify_max_age.as_secs()
                ),
            ));
        }
        Ok(Continuous { rows_per_second, interval, chunk_rows, whole_every })
    }
}
