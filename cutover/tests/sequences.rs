//! Sequence sync from a PostgreSQL 15 blue to a PostgreSQL 17 green: every sequence — serial,
//! identity, not owned, descending, cached, unused — ends up with green's next value beyond blue's.

use crate::common;

use common::scalar;
use turnout_cutover::{sync_sequences, CutoverError};
use turnout_testbed::PgServer;

const SCHEMA: &str = "CREATE TABLE orders (id serial PRIMARY KEY, note text);
    CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text);
    CREATE SEQUENCE invoice_no;
    CREATE SCHEMA billing;
    CREATE SEQUENCE billing.\"Odd Name\" INCREMENT 5 START 100;
    CREATE SEQUENCE countdown INCREMENT -1 START -1 MINVALUE -1000 MAXVALUE -1;
    CREATE SEQUENCE cached CACHE 20;
    CREATE SEQUENCE unused;";

#[tokio::test]
async fn sequences_on_green_end_up_ahead_of_everything_blue_handed_out() -> anyhow::Result<()> {
    let blue = PgServer::start(15)?;
    let green = PgServer::start(17)?;
    let blue_db = blue.create_database("seq").await?;
    let green_db = green.create_database("seq").await?;
    blue.execute(&blue_db, SCHEMA).await?;
    green.execute(&green_db, SCHEMA).await?;
    blue.execute(
        &blue_db,
        "INSERT INTO orders (note) SELECT 'o' FROM generate_series(1, 7);
         INSERT INTO items (note) SELECT 'i' FROM generate_series(1, 3);
         SELECT nextval('invoice_no') FROM generate_series(1, 42);
         SELECT nextval('billing.\"Odd Name\"') FROM generate_series(1, 3);
         SELECT nextval('countdown') FROM generate_series(1, 4);",
    )
    .await?;
    // Two sessions each take one value of `cached` and reserve 20: blue handed out 1 and 21.
    for _ in 0..2 {
        assert!(matches!(scalar(&blue.connect(&blue_db).await?, "SELECT nextval('cached')").await?.as_str(), "1" | "21"));
    }
    // Green is already further on one sequence (rows written on green): it must not move back.
    green.execute(&green_db, "SELECT setval('invoice_no', 1000)").await?;
    let (blue_client, green_client) = (blue.connect(&blue_db).await?, green.connect(&green_db).await?);

    let report = sync_sequences(&blue_client, &green_client).await?;

    let changed: Vec<(&str, bool)> = report.iter().map(|s| (s.name.as_str(), s.changed)).collect();
    assert_eq!(
        changed,
        [
            ("billing.Odd Name", true),
            ("public.cached", true),
            ("public.countdown", true),
            ("public.invoice_no", false),
            ("public.items_id_seq", true),
            ("public.orders_id_seq", true),
            ("public.unused", false),
        ]
    );
    let again = sync_sequences(&blue_client, &green_client).await?;
    assert!(again.iter().all(|s| !s.changed), "a second sync changed something: {again:?}");

    for (sequence, next) in [
        ("orders_id_seq", "8"),
        ("items_id_seq", "4"),
        ("invoice_no", "1001"),
        ("billing.\"Odd Name\"", "115"),
        ("countdown", "-5"),
        ("cached", "41"),
        ("unused", "1"),
    ] {
        assert_eq!(scalar(&green_client, &format!("SELECT nextval('{sequence}')")).await?, next, "{sequence}");
    }
    // A row inserted on green after the sync does not collide with blue's rows.
    green_client.batch_execute("INSERT INTO orders (id, note) SELECT g, 'copied' FROM generate_series(1, 7) g").await?;
    assert_eq!(scalar(&green_client, "INSERT INTO orders (note) VALUES ('new') RETURNING id").await?, "9");
    Ok(())
}

#[tokio::test]
async fn a_sequence_missing_on_green_is_named_and_nothing_changes() -> anyhow::Result<()> {
    let blue = PgServer::start(15)?;
    let green = PgServer::start(15)?;
    let blue_db = blue.create_database("seq").await?;
    let green_db = green.create_database("seq").await?;
    blue.execute(&blue_db, "CREATE SEQUENCE only_on_blue; CREATE SEQUENCE shared; SELECT setval('shared', 50)").await?;
    green.execute(&green_db, "CREATE SEQUENCE shared").await?;
    let (blue_client, green_client) = (blue.connect(&blue_db).await?, green.connect(&green_db).await?);

    let err = sync_sequences(&blue_client, &green_client).await.expect_err("a sequence is missing on green");

    let text = err.to_string();
    assert!(matches!(err, CutoverError::MissingSequences { count: 1, .. }), "{text}");
    assert!(text.contains("public.only_on_blue") && text.contains("pg_dump"), "{text}");
    assert_eq!(scalar(&green_client, "SELECT nextval('shared')").await?, "1", "green changed although the sync failed");
    Ok(())
}

#[tokio::test]
async fn a_sync_ahead_leaves_a_margin_and_the_top_up_covers_blue_overtaking_it() -> anyhow::Result<()> {
    let blue = PgServer::start(15)?;
    let green = PgServer::start(15)?;
    let blue_db = blue.create_database("seq").await?;
    let green_db = green.create_database("seq").await?;
    let schema = "CREATE SEQUENCE steady; CREATE SEQUENCE busy; CREATE SEQUENCE down INCREMENT -1 START -1 MINVALUE -1000000 MAXVALUE -1;
        CREATE SEQUENCE tight MAXVALUE 20;";
    blue.execute(&blue_db, schema).await?;
    green.execute(&green_db, schema).await?;
    blue.execute(&blue_db, "SELECT nextval('steady'), nextval('busy'), nextval('down'), nextval('tight') FROM generate_series(1, 10)").await?;
    let (blue_client, green_client) = (blue.connect(&blue_db).await?, green.connect(&green_db).await?);

    let (report, plan) = turnout_cutover::sync_sequences_ahead(&blue_client, &green_client, 100).await?;
    assert_eq!((report.len(), plan.len()), (4, 4));
    // Blue keeps writing before the fence: `busy` goes beyond the margin, `steady` stays within it.
    blue.execute(&blue_db, "SELECT nextval('busy') FROM generate_series(1, 250); SELECT nextval('steady') FROM generate_series(1, 50)").await?;

    let moved = plan.top_up(&blue_client, &green_client).await?;

    assert_eq!(moved, 1, "only the sequence that overtook the margin is written inside the pause");
    for (sequence, next) in [("steady", "111"), ("busy", "261"), ("down", "-111"), ("tight", "11")] {
        // `tight` has no room for the margin (MAXVALUE 20): it is synced exactly.
        assert_eq!(scalar(&green_client, &format!("SELECT nextval('{sequence}')")).await?, next, "{sequence}");
    }
    Ok(())
}
