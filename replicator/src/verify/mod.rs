//! `turnout verify`: per replicated table, the row counts and whether the digests of every row's text
//! are equal on blue and green. Each source computes digests its own way (`source::pg::verify`); the
//! plain comparison is meaningful on a quiet blue. [`live`]: `verify --live`, at one source position
//! while writes go on.

pub mod changes;
pub mod continuous;
pub mod live;
mod step;
pub use crate::compared as progress;

pub use crate::source::contract::compare::TableCheck;
/// The check of every definition among `run`'s checks (PostgreSQL): it counts objects, not rows.
pub use crate::source::contract::compare::DEFINITIONS;

/// `turnout verify --live`'s check of every definition (PostgreSQL; none for the MySQL family, whose
/// definitions the inventory compares): the side writes go to against the other.
pub async fn live_definitions(config: &crate::config::Config, direction: crate::status::Direction) -> Result<Option<TableCheck>, crate::error::Error> {
    match config.source_kind() {
        crate::config::SourceKind::Pg => crate::source::pg::verify::live_definitions(config, direction == crate::status::Direction::Reverse).await.map(Some),
        _ => Ok(None),
    }
}

/// `turnout verify`: compares the tables `run` replicates (or only `only`, as `schema.table`).
pub async fn run(config: &crate::config::Config, only: Option<&str>) -> Result<Vec<TableCheck>, crate::error::Error> {
    use crate::source::SourceAdmin;
    crate::with_family!(config, F => F::admin(config, crate::source::Names::none())?.verify(only).await)
}
