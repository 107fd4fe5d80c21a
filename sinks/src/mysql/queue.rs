//! Statements sent to green together: many row statements in one multi-statement query, so a batch
//! costs a few round trips instead of one per row, with every statement still checked on its own.
//!
//! Guarantees: statements run in the order they were queued (the server executes a multi-statement
//! query in order and stops at the first error); each statement's affected-row count is compared with
//! what it must touch, and an error names that statement's purpose and shape. A queue is sent whole
//! before it would pass [`QUEUE_BYTES`], and by the sink before anything that must see its effects
//! (TRUNCATE, DDL, COMMIT).

use super::{expect, shape};
use crate::error::SinkError;
use mysql_async::prelude::Queryable;

/// A queue is sent once it holds this many bytes of SQL (well under MySQL's and MariaDB's default
/// `max_allowed_packet` of 16 MiB and 64 MiB).
pub(super) const QUEUE_BYTES: usize = 4 << 20;

#[derive(Debug)]
struct Check {
    /// Rows the statement must touch, when it must touch a known number.
    expected: Option<u64>,
    /// Warnings the statement must give, when it runs relaxed ([`super::literal::relaxed`]).
    warnings: Option<u16>,
    what: String,
    /// The statement's byte range in the query, for messages.
    start: usize,
    end: usize,
}

/// Row statements waiting to be sent, in order.
#[derive(Debug, Default)]
pub(super) struct StatementQueue {
    sql: String,
    checks: Vec<Check>,
}

impl StatementQueue {
    pub(super) fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// Whether adding `bytes` more would pass the size limit (a non-empty queue is sent first).
    pub(super) fn would_overflow(&self, bytes: usize) -> bool {
        !self.is_empty() && self.sql.len() + bytes + 1 > QUEUE_BYTES
    }

    /// Queues one statement that must touch `expected` rows (`None`: any number) and, when given,
    /// give exactly `warnings` warnings.
    pub(super) fn push(&mut self, statement: &str, expected: Option<u64>, warnings: Option<u16>, what: impl Into<String>) {
        if !self.sql.is_empty() {
            self.sql.push(';');
        }
        let start = self.sql.len();
        self.sql.push_str(statement);
        self.checks.push(Check { expected, warnings, what: what.into(), start, end: self.sql.len() });
    }

    /// Drops everything queued (after a failed batch is rolled back).
    pub(super) fn clear(&mut self) {
        self.sql.clear();
        self.checks.clear();
    }

    /// Sends every queued statement in one query and checks each one's affected rows. The queue is
    /// empty afterwards, whatever the outcome.
    pub(super) async fn send(&mut self, conn: &mut mysql_async::Conn) -> Result<(), SinkError> {
        if self.is_empty() {
            return Ok(());
        }
        let sql = std::mem::take(&mut self.sql);
        let checks = std::mem::take(&mut self.checks);
        let context = |c: &Check| format!("{} (`{}`)", c.what, shape(&sql[c.start..c.end]));
        let failed = |c: &Check, e: mysql_async::Error| match &e {
            // A folded INSERT names every column green had when the sink read its catalog: green's
            // table changed since. Retried by a new sink, which reads the catalog again.
            mysql_async::Error::Server(s) if s.code == 1136 && c.what.starts_with(super::FOLDED_INSERT) => SinkError::Unavailable {
                context: format!("{}: green's table changed while turnout applied to it (a column added?)", c.what),
                reason: e.to_string(),
            },
            _ => SinkError::mysql(context(c))(e),
        };
        let mut result = conn.query_iter(sql.as_str()).await.map_err(|e| failed(&checks[0], e))?;
        let mut failure = None;
        for (i, check) in checks.iter().enumerate() {
            if i > 0 {
                // Moves to the next statement's result; its error, if it failed, comes here.
                if let Err(e) = result.next().await {
                    return Err(failed(check, e));
                }
            }
            if let Some(n) = check.expected {
                if failure.is_none() {
                    failure = expect(result.affected_rows(), n, &check.what).err();
                }
            }
            if let Some(n) = check.warnings {
                if failure.is_none() {
                    failure = super::insert::expect_warnings(result.warnings(), n, &check.what).err();
                }
            }
        }
        result.drop_result().await.map_err(SinkError::mysql("reading the end of a statement batch"))?;
        failure.map_or(Ok(()), Err)
    }
}
