//! Starts a throwaway server of a flavor and runs SQL given on stdin through its client, printing the
//! output; for trying statements by hand. `cargo run -p turnout-testbed --example mysql_shell -- mysql`
use std::io::Read;
fn main() {
    let flavor = match std::env::args().nth(1).as_deref() {
        Some("mysql") => turnout_testbed::Flavor::MySql9_7,
        Some("11.8") => turnout_testbed::Flavor::MariaDb11_8,
        _ => turnout_testbed::Flavor::MariaDb10_11,
    };
    let server = turnout_testbed::MySqlServer::start_flavor(flavor, 1).expect("server");
    let mut sql = String::new();
    std::io::stdin().read_to_string(&mut sql).expect("stdin");
    for statement in sql.split("\n---\n") {
        match server.execute(None, statement) {
            Ok(out) => println!("{out}"),
            Err(e) => println!("ERROR: {e}"),
        }
    }
}
