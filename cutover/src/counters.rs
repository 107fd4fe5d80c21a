//! MySQL/MariaDB counters at cutover: after it, green hands out no key blue already handed out.
//! Every AUTO_INCREMENT counter on green is moved to at least blue's next value plus a margin
//! (`ALTER TABLE … AUTO_INCREMENT = n`, which InnoDB applies without rebuilding the table), and every
//! MariaDB SEQUENCE on green is set `margin` increments beyond blue's next value (`SETVAL`).
//! Counters already far enough are left alone, so the step is idempotent and never moves a counter
//! back. Replication moves AUTO_INCREMENT forward with every explicit insert, but a counter blue
//! advanced without leaving a row (a rolled-back insert, a deleted last row) is only fixed here.

use crate::error::{CutoverError, Side};
use mysql_async::prelude::Queryable;
use turnout_sinks::mysql::literal::ident as quote;

/// What kind of counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterKind {
    AutoIncrement,
    Sequence,
}

/// One counter's state and what was done to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterSync {
    pub kind: CounterKind,
    /// `` `db`.`table` `` on green.
    pub name: String,
    /// Blue's next value.
    pub blue_next: i128,
    /// Green's next value before the sync.
    pub green_next: i128,
    /// Green's next value after it.
    pub set_to: i128,
    pub changed: bool,
}

/// Every AUTO_INCREMENT counter of `db` as (table, next value): MySQL 8+'s cached statistics not
/// trusted, a counter InnoDB has not loaded yet loaded first.
pub async fn auto_increments(conn: &mut mysql_async::Conn, side: Side, db: &str) -> Result<Vec<(String, i128)>, CutoverError> {
    // MySQL 8 caches these columns unless told not to; MariaDB has no such variable (and reads the
    // live counter anyway), so whether it can be set tells the two apart without another query.
    let oracle = conn.query_drop("SET SESSION information_schema_stats_expiry = 0").await.is_ok();
    let what = || format!("reading the AUTO_INCREMENT counters of {db}");
    if !oracle {
        let rows: Vec<(String, Option<String>)> = conn
            .exec("SELECT TABLE_NAME, CAST(AUTO_INCREMENT AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME", (db,))
            .await
            .map_err(CutoverError::mysql(side, what()))?;
        return Ok(rows.into_iter().filter_map(|(t, n)| Some((t, n?.parse().ok()?))).collect());
    }
    // MySQL shows no counter for a table not opened since the server started (InnoDB loads it on
    // first use), the same as for a table without one: the tables with an AUTO_INCREMENT column are
    // told apart in the same query (cheap on MySQL's data dictionary; this read is inside the
    // cutover's pause), those not loaded are opened and read again — a counter not loaded must not
    // pass for no counter.
    let read = "SELECT t.TABLE_NAME, CAST(t.AUTO_INCREMENT AS CHAR) FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = ? \
         AND t.TABLE_TYPE = 'BASE TABLE' AND EXISTS (SELECT 1 FROM information_schema.COLUMNS c WHERE c.TABLE_SCHEMA = t.TABLE_SCHEMA \
         AND c.TABLE_NAME = t.TABLE_NAME AND c.EXTRA LIKE '%auto_increment%') ORDER BY t.TABLE_NAME";
    let mut rows: Vec<(String, Option<String>)> = conn.exec(read, (db,)).await.map_err(CutoverError::mysql(side, what()))?;
    if rows.iter().any(|(_, n)| n.is_none()) {
        for (table, _) in rows.iter().filter(|(_, n)| n.is_none()) {
            let _: Option<i64> = conn
                .query_first(format!("SELECT 1 FROM {}.{} LIMIT 1", quote(db), quote(table)))
                .await
                .map_err(CutoverError::mysql(side, format!("opening {db}.{table} to load its AUTO_INCREMENT counter")))?;
        }
        rows = conn.exec(read, (db,)).await.map_err(CutoverError::mysql(side, what()))?;
    }
    rows.into_iter()
        .map(|(table, next)| match next.and_then(|n| n.parse::<i128>().ok()) {
            Some(next) => Ok((table, next)),
            None => Err(CutoverError::Config {
                field: "AUTO_INCREMENT counter",
                reason: format!("{db}.{table} has an AUTO_INCREMENT column but the server shows no counter for it"),
            }),
        })
        .collect()
}

async fn sequences(conn: &mut mysql_async::Conn, side: Side, db: &str) -> Result<Vec<String>, CutoverError> {
    conn.exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'SEQUENCE' ORDER BY TABLE_NAME", (db,))
        .await
        .map_err(CutoverError::mysql(side, format!("listing the sequences of {db}")))
}

/// A sequence's next value and increment, read from the sequence itself (no value is taken).
async fn sequence_state(conn: &mut mysql_async::Conn, side: Side, qualified: &str) -> Result<(i128, i128), CutoverError> {
    let row: Option<(String, String)> = conn
        .query_first(format!("SELECT CAST(next_not_cached_value AS CHAR), CAST(increment AS CHAR) FROM {qualified}"))
        .await
        .map_err(CutoverError::mysql(side, format!("reading sequence {qualified}")))?;
    let (next, increment) = row.ok_or_else(|| CutoverError::Privilege {
        what: format!("sequence {qualified} returned no state"),
        fix: format!("check that {qualified} is a sequence turnout's account may SELECT"),
    })?;
    let parse = |v: &str| v.parse::<i128>().map_err(|_| CutoverError::Config { field: "sequence state", reason: format!("{qualified}: not a number: {v}") });
    Ok((parse(&next)?, parse(&increment)?))
}

/// Moves every AUTO_INCREMENT counter and sequence of `green_db` on green to at least `margin`
/// values beyond the same table's on blue (`blue_db`). A counter or sequence blue has and green
/// lacks is an error naming it.
pub async fn sync_counters(
    blue: &mut mysql_async::Conn,
    green: &mut mysql_async::Conn,
    blue_db: &str,
    green_db: &str,
    margin: u64,
) -> Result<Vec<CounterSync>, CutoverError> {
    let margin = i128::from(margin);
    let mut done = Vec::new();
    // Both sides are read at once: inside the cutover's pause this is one round of the two servers'
    // time, not two.
    let (green_counters, blue_counters) = tokio::try_join!(auto_increments(green, Side::Green, green_db), auto_increments(blue, Side::Blue, blue_db))?;
    for (table, blue_next) in blue_counters {
        let name = format!("{}.{}", quote(green_db), quote(&table));
        let Some(&(_, green_next)) = green_counters.iter().find(|(t, _)| *t == table) else {
            return Err(CutoverError::Privilege {
                what: format!("green has no AUTO_INCREMENT table {name}, which blue has"),
                fix: "create it on green (or leave it out of the cutover's database)".into(),
            });
        };
        let wanted = blue_next + margin;
        let changed = green_next < wanted;
        if changed {
            green
                .query_drop(format!("ALTER TABLE {name} AUTO_INCREMENT = {wanted}"))
                .await
                .map_err(CutoverError::mysql(Side::Green, format!("moving the AUTO_INCREMENT counter of {name} to {wanted}")))?;
        }
        done.push(CounterSync { kind: CounterKind::AutoIncrement, name, blue_next, green_next, set_to: if changed { wanted } else { green_next }, changed });
    }
    let (green_sequences, blue_sequences) = tokio::try_join!(sequences(green, Side::Green, green_db), sequences(blue, Side::Blue, blue_db))?;
    for seq in blue_sequences {
        let name = format!("{}.{}", quote(green_db), quote(&seq));
        if !green_sequences.contains(&seq) {
            return Err(CutoverError::Privilege { what: format!("green has no sequence {name}, which blue has"), fix: "create it on green".into() });
        }
        let blue_name = format!("{}.{}", quote(blue_db), quote(&seq));
        let ((blue_next, increment), (green_next, _)) =
            tokio::try_join!(sequence_state(blue, Side::Blue, &blue_name), sequence_state(green, Side::Green, &name))?;
        // `margin` increments beyond blue's next value, in the sequence's direction.
        let wanted = blue_next + margin * increment;
        let changed = if increment >= 0 { green_next < wanted } else { green_next > wanted };
        if changed {
            // SETVAL(n) makes n the last value handed out: the next one is n + increment.
            let last = wanted - increment;
            let _: Option<Option<String>> = green
                .query_first(format!("SELECT CAST(SETVAL({name}, {last}) AS CHAR)"))
                .await
                .map_err(CutoverError::mysql(Side::Green, format!("setting sequence {name} beyond blue's {blue_next}")))?;
        }
        done.push(CounterSync { kind: CounterKind::Sequence, name, blue_next, green_next, set_to: if changed { wanted } else { green_next }, changed });
    }
    Ok(done)
}
