//! turnout's integration tests, one binary: each module is one suite (its file beside this one),
//! run against real throwaway servers the harness starts (`turnout-testbed`). nextest runs every test
//! in a process of its own; `cargo nextest run -p turnout -E 'test(/^cutover::/)'` runs one suite.

mod common;

mod alerts;
mod bad_input;
mod canary;
mod check;
mod chunked_copy;
mod continuous_verify;
mod cutover;
mod definitions;
mod demo;
mod deploy;
mod divergence;
mod docs;
mod early_apply;
mod edges;
mod faults;
mod fleet;
mod fleet_votes;
mod handover;
mod image;
mod inventory;
mod iterate;
mod lag;
mod large_transactions;
mod layers;
mod live_verify;
mod mariadb_lts_cutover;
mod mariadb_to_mysql_cutover;
mod mysql;
mod mysql97;
mod mysql97_cutover;
mod mysql97_programs;
mod mysql_cross_family;
mod mysql_cutover;
mod mysql_live_verify;
mod mysql_programs;
mod mysql_tls;
mod mysql_to_mariadb_cutover;
mod mysql_to_postgres;
mod mysql_to_postgres_actions;
mod mysql_to_postgres_back_corpus;
mod mysql_to_postgres_cutover;
mod mysql_to_postgres_rollback;
mod mysql_to_postgres_sakila;
mod mysql_types;
mod page;
mod pause;
mod replicate;
mod rogue_writes;
mod schemas;
mod secrets;
mod types;
mod versions;
