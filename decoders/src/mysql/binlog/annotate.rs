//! MariaDB ANNOTATE_ROWS_EVENT (0xA0; MariaDB KB "ANNOTATE_ROWS_EVENT"), written before the table maps of a
//! row-based statement when `binlog_annotate_row_events` is on: the statement's SQL text. MySQL's
//! ROWS_QUERY_LOG_EVENT (0x1D) plays the same role and is left to [`super::BinlogEvent::Unknown`].

use super::reader::Reader;
use std::borrow::Cow;

/// The SQL text: the whole body, in the client's character set (no terminator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnotateRows {
    pub sql: Vec<u8>,
}

impl AnnotateRows {
    pub(crate) fn parse(r: &mut Reader<'_>) -> Self {
        AnnotateRows { sql: r.rest().to_vec() }
    }

    /// The SQL text, with bytes that are not UTF-8 replaced.
    pub fn sql_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_the_statement() {
        let a = AnnotateRows::parse(&mut Reader::new(b"INSERT INTO t VALUES (1)", 19, 0xA0));
        assert_eq!(a.sql_text(), "INSERT INTO t VALUES (1)");
    }
}
