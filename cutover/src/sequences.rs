//! Sequence sync: logical replication carries no sequence state, so before clients move to green
//! every sequence of blue — owned by a column (serial, identity) or not — is carried over, so that
//! green's next value is beyond anything blue handed out and new rows on green cannot collide with
//! rows copied from blue.

use crate::error::{CutoverError, Side};
use std::collections::HashMap;
use tokio_postgres::Client;
use turnout_decoders::schema::quote_ident;

/// Sequences read per statement.
const CHUNK: usize = 200;

/// A sequence's state as `SELECT last_value, is_called FROM seq` shows it. With `is_called` the
/// next `nextval` returns `last_value + increment`, otherwise `last_value` itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequenceState {
    pub last_value: i64,
    pub is_called: bool,
}

/// What the sync did to one sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequenceSync {
    /// `schema.name`.
    pub name: String,
    /// blue's state (its `last_value` also covers values cached by blue's sessions).
    pub blue: SequenceState,
    /// green's state before and after the sync.
    pub green_before: SequenceState,
    pub green_after: SequenceState,
    /// Whether `setval` ran on green (false: green was already as far or further).
    pub changed: bool,
}

/// One sequence of a database.
#[derive(Clone, Debug)]
struct Sequence {
    schema: String,
    name: String,
    increment: i64,
    min: i64,
    max: i64,
}

impl Sequence {
    fn display(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// Carries every sequence of blue's database over to green's.
///
/// For each sequence, green is moved to blue's state when blue's next value lies beyond green's in
/// the sequence's direction; a green sequence that is already further (rows inserted on green) is
/// never moved back. So afterwards green's next value is beyond every value blue handed out,
/// including values cached by blue's sessions (`CACHE` > 1: blue's `last_value` already counts
/// them). Idempotent; safe to repeat. Run it while blue is fenced, or blue may hand out more.
///
/// Sequences that wrapped around (`CYCLE`) are compared by value like any other. Every sequence of
/// blue must exist on green under the same schema and name, or nothing is changed and
/// [`CutoverError::MissingSequences`] names them. Needs `SELECT` on blue's sequences and `UPDATE`
/// on green's.
pub async fn sync_sequences(blue: &Client, green: &Client) -> Result<Vec<SequenceSync>, CutoverError> {
    sync_sequences_ahead(blue, green, 0).await.map(|(report, _)| report)
}

/// What [`sync_sequences_ahead`] left on green, so that [`SequencePlan::top_up`] can check blue against
/// it with one read.
#[derive(Clone, Debug)]
pub struct SequencePlan {
    entries: Vec<(Sequence, Sequence, i128)>,
}

impl SequencePlan {
    /// With writes fenced on blue: reads every sequence of blue once and moves green only where blue
    /// reached what green will hand out next (blue advanced more than the margin since the sync).
    /// Returns how many were moved. Afterwards green's next value is beyond every value blue handed out.
    pub async fn top_up(&self, blue: &Client, green: &Client) -> Result<usize, CutoverError> {
        let blue_sequences: Vec<Sequence> = self.entries.iter().map(|(b, _, _)| b.clone()).collect();
        let blue_states = states(blue, Side::Blue, &blue_sequences).await?;
        let (mut names, mut values, mut called) = (Vec::new(), Vec::new(), Vec::new());
        for ((b, g, green_next), state) in self.entries.iter().zip(blue_states) {
            let blue_next = next_value(state, b.increment);
            let behind = if b.increment > 0 { blue_next > *green_next } else { blue_next < *green_next };
            if behind {
                names.push(g.qualified());
                values.push(state.last_value);
                called.push(state.is_called);
            }
        }
        set_values(green, &names, &values, &called).await?;
        Ok(names.len())
    }

    /// Sequences in the plan.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `setval` on green for each name, in one statement.
async fn set_values(green: &Client, names: &[String], values: &[i64], called: &[bool]) -> Result<(), CutoverError> {
    if names.is_empty() {
        return Ok(());
    }
    green
        .execute("SELECT setval(n::regclass, v, c) FROM unnest($1::text[], $2::int8[], $3::bool[]) AS t(n, v, c)", &[&names, &values, &called])
        .await
        .map_err(|e| {
            with_fix(
                CutoverError::sql(Side::Green, "setting sequences with setval")(e),
                "GRANT UPDATE ON ALL SEQUENCES IN SCHEMA <schema> TO turnout's role on green",
            )
        })?;
    Ok(())
}

/// As [`sync_sequences`], but moves green `margin` increments beyond blue's next value (within the
/// sequence's bounds), so that blue may keep handing out values until it is fenced: run it before the
/// fence, then [`SequencePlan::top_up`] inside the write pause needs one read of blue and, normally,
/// no write on green. Gaps in sequences are normal (rolled-back transactions leave them too).
pub async fn sync_sequences_ahead(blue: &Client, green: &Client, margin: u32) -> Result<(Vec<SequenceSync>, SequencePlan), CutoverError> {
    let blue_sequences = list(blue, Side::Blue).await?;
    let green_sequences: HashMap<(String, String), Sequence> =
        list(green, Side::Green).await?.into_iter().map(|s| ((s.schema.clone(), s.name.clone()), s)).collect();
    let missing: Vec<String> =
        blue_sequences.iter().filter(|s| !green_sequences.contains_key(&(s.schema.clone(), s.name.clone()))).map(Sequence::display).collect();
    if !missing.is_empty() {
        return Err(CutoverError::MissingSequences { count: missing.len(), names: missing.join(", ") });
    }
    let on_green: Vec<Sequence> = blue_sequences.iter().filter_map(|s| green_sequences.get(&(s.schema.clone(), s.name.clone())).cloned()).collect();
    let blue_states = states(blue, Side::Blue, &blue_sequences).await?;
    let green_states = states(green, Side::Green, &on_green).await?;

    let mut report = Vec::with_capacity(blue_sequences.len());
    let mut plan = Vec::with_capacity(blue_sequences.len());
    let (mut names, mut values, mut called) = (Vec::new(), Vec::new(), Vec::new());
    for ((b, g), (blue_state, green_state)) in blue_sequences.iter().zip(&on_green).zip(blue_states.into_iter().zip(green_states)) {
        // Where green should start: blue's next value plus the margin, within the sequence's bounds
        // (without the margin when it would not fit).
        let blue_next = next_value(blue_state, b.increment);
        let with_margin = blue_next + i128::from(margin) * i128::from(b.increment);
        let target = if margin > 0 && (i128::from(g.min)..=i128::from(g.max)).contains(&with_margin) {
            SequenceState { last_value: i64::try_from(with_margin).unwrap_or(blue_state.last_value), is_called: false }
        } else {
            blue_state
        };
        let green_next = next_value(green_state, g.increment);
        let target_next = next_value(target, b.increment);
        let ahead = if b.increment > 0 { target_next > green_next } else { target_next < green_next };
        if ahead {
            names.push(g.qualified());
            values.push(target.last_value);
            called.push(target.is_called);
        }
        plan.push((b.clone(), g.clone(), if ahead { target_next } else { green_next }));
        report.push(SequenceSync {
            name: b.display(),
            blue: blue_state,
            green_before: green_state,
            green_after: if ahead { target } else { green_state },
            changed: ahead,
        });
    }
    set_values(green, &names, &values, &called).await?;
    Ok((report, SequencePlan { entries: plan }))
}

/// The value `nextval` would return next (wide, so `last_value + increment` cannot overflow).
fn next_value(state: SequenceState, increment: i64) -> i128 {
    if state.is_called {
        i128::from(state.last_value) + i128::from(increment)
    } else {
        i128::from(state.last_value)
    }
}

/// Every sequence of the connected database outside the system schemas.
async fn list(client: &Client, side: Side) -> Result<Vec<Sequence>, CutoverError> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, s.seqincrement, s.seqmin, s.seqmax \
             FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_temp\\_%' \
               AND n.nspname NOT LIKE 'pg\\_toast%' \
             ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(CutoverError::sql(side, "listing sequences"))?;
    Ok(rows.iter().map(|r| Sequence { schema: r.get(0), name: r.get(1), increment: r.get(2), min: r.get(3), max: r.get(4) }).collect())
}

/// `last_value, is_called` of each sequence, in order, a chunk per statement.
async fn states(client: &Client, side: Side, sequences: &[Sequence]) -> Result<Vec<SequenceState>, CutoverError> {
    let qualified: Vec<String> = sequences.iter().map(Sequence::qualified).collect();
    states_of(client, side, &qualified).await
}

/// `last_value, is_called` of each sequence named (`schema.name`, quoted as needed), in order, a
/// chunk per statement.
async fn states_of(client: &Client, side: Side, qualified: &[String]) -> Result<Vec<SequenceState>, CutoverError> {
    let mut out = Vec::with_capacity(qualified.len());
    for chunk in qualified.chunks(CHUNK) {
        let sql = chunk.iter().enumerate().map(|(i, s)| format!("SELECT {i} AS i, last_value, is_called FROM {s}")).collect::<Vec<_>>().join(" UNION ALL ");
        let rows = client.query(&format!("{sql} ORDER BY i"), &[]).await.map_err(|e| {
            let privilege = match side {
                Side::Blue => "GRANT SELECT ON ALL SEQUENCES IN SCHEMA <schema> TO turnout's role on blue",
                Side::Green => "GRANT SELECT ON ALL SEQUENCES IN SCHEMA <schema> TO turnout's role on green",
            };
            with_fix(CutoverError::sql(side, "reading sequence values")(e), privilege)
        })?;
        out.extend(rows.iter().map(|r| SequenceState { last_value: r.get(1), is_called: r.get(2) }));
    }
    Ok(out)
}

/// The value `nextval` would return next for each of `sequences` (`schema.name` quoted as needed,
/// and its increment), in order — read from the sequences themselves, a chunk per statement
/// (`pg_sequence_last_value` says NULL after `setval(…, false)`, which is not the start).
pub async fn next_values(client: &Client, side: Side, sequences: &[(String, i64)]) -> Result<Vec<i128>, CutoverError> {
    let qualified: Vec<String> = sequences.iter().map(|(s, _)| s.clone()).collect();
    let states = states_of(client, side, &qualified).await?;
    Ok(states.into_iter().zip(sequences).map(|(state, (_, increment))| next_value(state, *increment)).collect())
}

/// Replaces the generic privilege advice of a 42501 error with `fix`.
fn with_fix(mut e: CutoverError, privilege_fix: &str) -> CutoverError {
    if let CutoverError::Sql { fix, source, .. } = &mut e {
        if source.code().map(|c| c.code()) == Some("42501") {
            *fix = Some(privilege_fix.to_string());
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_values_follow_is_called_and_do_not_overflow() {
        assert_eq!(next_value(SequenceState { last_value: 5, is_called: true }, 1), 6);
        assert_eq!(next_value(SequenceState { last_value: 5, is_called: false }, 1), 5);
        assert_eq!(next_value(SequenceState { last_value: -5, is_called: true }, -2), -7);
        assert_eq!(next_value(SequenceState { last_value: i64::MAX, is_called: true }, 1), i128::from(i64::MAX) + 1);
    }
}
