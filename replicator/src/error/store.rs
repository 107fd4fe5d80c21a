//! What can go wrong with turnout's own durable memory: the state store and the files beside it in
//! `state.dir`. Every variant is fatal to the command (nothing retries a full disk or a corrupt record)
//! and carries the advice the operator needs.

use std::path::PathBuf;

/// A failure of the state store in `state.dir` or of a file turnout keeps there.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory in `state.dir` cannot be created, read, written, locked or removed.
    #[error("{action} {}: {source}", path.display())]
    File {
        /// What turnout was doing: "creating", "reading", "writing", "locking", "removing".
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another open in this one) holds `state.dir`.
    #[error("state.dir {} is in use by another turnout process (it holds {})", dir.display(), lock.display())]
    Locked { dir: PathBuf, lock: PathBuf },
    /// RocksDB refused to open, read or write.
    #[error("{action}: {source}")]
    Db {
        /// What turnout was doing, e.g. "opening the state store in /var/lib/turnout", "writing state".
        action: String,
        #[source]
        source: rocksdb::Error,
    },
    /// A record does not decode as what this version writes.
    #[error("corrupt {what} in the state store: {reason}")]
    Corrupt { what: &'static str, reason: String },
    /// A file in `state.dir` does not decode as what it should hold.
    #[error("{} is not {what} ({reason}); {fix}", path.display())]
    CorruptFile { path: PathBuf, what: &'static str, reason: String, fix: &'static str },
    /// A record cannot be encoded.
    #[error("encoding {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The state-store thread is gone (the process is stopping, or it could not start).
    #[error("the state-store thread {0}")]
    Thread(String),
    /// Part of a spilled transaction could not be written, read or decoded.
    #[error("a spilled transaction: {0}")]
    Spill(String),
}

impl StoreError {
    /// A RocksDB failure while doing `action`: `.map_err(StoreError::db("writing state"))`.
    pub fn db(action: impl Into<String>) -> impl FnOnce(rocksdb::Error) -> StoreError {
        let action = action.into();
        move |source| StoreError::Db { action, source }
    }

    /// A file failure: `.map_err(StoreError::file("writing", &path))`.
    pub fn file(action: &'static str, path: &std::path::Path) -> impl Fn(std::io::Error) -> StoreError {
        let path = path.to_path_buf();
        move |source| StoreError::File { action, path: path.clone(), source }
    }

    /// A record that does not decode: `.map_err(StoreError::corrupt("cutover journal"))`.
    pub fn corrupt<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> StoreError {
        move |e| StoreError::Corrupt { what, reason: e.to_string() }
    }

    /// A record that cannot be encoded: `.map_err(StoreError::encode("the canary record"))`.
    pub fn encode(what: &'static str) -> impl FnOnce(serde_json::Error) -> StoreError {
        move |source| StoreError::Encode { what, source }
    }

    /// What the operator does about it.
    pub fn advice(&self) -> String {
        match self {
            StoreError::Locked { .. } => "stop that process, or give this one a state.dir of its own".into(),
            StoreError::File { .. } | StoreError::Db { .. } | StoreError::Thread(_) => {
                "check free space and permissions of state.dir, and that no other turnout uses it".into()
            }
            StoreError::CorruptFile { fix, .. } => (*fix).into(),
            StoreError::Corrupt { .. } | StoreError::Encode { .. } => {
                "the state store holds a record this version cannot read: keep state.dir for a report, then run `turnout teardown` and start over".into()
            }
            StoreError::Spill(_) => "restart turnout to receive the transaction again from the source".into(),
        }
    }
}
