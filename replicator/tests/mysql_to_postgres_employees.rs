//! MySQL's employees sample database (datacharmer/test_db `employees.sql`: six tables as it defines
//! them — composite keys over `CHAR(4)` and `DATE` columns, the `ENUM` gender, a unique department
//! name, `ON DELETE CASCADE` from every child to `employees` and `departments` — and its two views),
//! from Oracle MySQL 9.7 to PostgreSQL 17 under an application that hires, raises, transfers, fires
//! (blue cascades the employee's rows, and logs them) and renames departments, with a `kill -9` of
//! turnout; every table equal by `turnout verify`'s canonical text of every row. From MariaDB 10.11,
//! whose cascades the binlog does not carry, the same schema is refused before anything is copied,
//! naming the foreign key and the collation that green's repeat of the cascade could not follow.

use crate::common::{self, Turnout, Writer};
use crate::mysql_to_postgres::{blue_counts, green_column, green_counts, pair_of};
use std::time::{Duration, Instant};
use turnout_testbed::Flavor;

/// employees.sql's tables and views (no character set named: the server's default), with rows made
/// up here.
const EMPLOYEES: &str = r"
CREATE TABLE employees (emp_no INT NOT NULL, birth_date DATE NOT NULL, first_name VARCHAR(14) NOT NULL, last_name VARCHAR(16) NOT NULL,
  gender ENUM ('M','F','NB','T') NOT NULL, hire_date DATE NOT NULL, PRIMARY KEY (emp_no));
CREATE TABLE departments (dept_no CHAR(4) NOT NULL, dept_name VARCHAR(40) NOT NULL, PRIMARY KEY (dept_no), UNIQUE KEY (dept_name));
CREATE TABLE dept_manager (emp_no INT NOT NULL, dept_no CHAR(4) NOT NULL, from_date DATE NOT NULL, to_date DATE NOT NULL,
  FOREIGN KEY (emp_no) REFERENCES employees (emp_no) ON DELETE CASCADE, FOREIGN KEY (dept_no) REFERENCES departments (dept_no) ON DELETE CASCADE,
  PRIMARY KEY (emp_no, dept_no));
CREATE TABLE dept_emp (emp_no INT NOT NULL, dept_no CHAR(4) NOT NULL, from_date DATE NOT NULL, to_date DATE NOT NULL,
  FOREIGN KEY (emp_no) REFERENCES employees (emp_no) ON DELETE CASCADE, FOREIGN KEY (dept_no) REFERENCES departments (dept_no) ON DELETE CASCADE,
  PRIMARY KEY (emp_no, dept_no));
CREATE TABLE titles (emp_no INT NOT NULL, title VARCHAR(50) NOT NULL, from_date DATE NOT NULL, to_date DATE,
  FOREIGN KEY (emp_no) REFERENCES employees (emp_no) ON DELETE CASCADE, PRIMARY KEY (emp_no, title, from_date));
CREATE TABLE salaries (emp_no INT NOT NULL, salary INT NOT NULL, from_date DATE NOT NULL, to_date DATE NOT NULL,
  FOREIGN KEY (emp_no) REFERENCES employees (emp_no) ON DELETE CASCADE, PRIMARY KEY (emp_no, from_date));
CREATE OR REPLACE VIEW dept_emp_latest_date AS SELECT emp_no, MAX(from_date) AS from_date, MAX(to_date) AS to_date FROM dept_emp GROUP BY emp_no;
CREATE OR REPLACE VIEW current_dept_emp AS SELECT l.emp_no, dept_no, l.from_date, l.to_date FROM dept_emp d
  INNER JOIN dept_emp_latest_date l ON d.emp_no = l.emp_no AND d.from_date = l.from_date AND l.to_date = d.to_date;
INSERT INTO departments VALUES ('d001','Marketing'), ('d002','Finance'), ('d003','Human Resources'), ('d004','Production'),
  ('d005','Development'), ('d006','Quality Management'), ('d007','Sales'), ('d008','Research'), ('d009','Customer Service');
INSERT INTO employees WITH RECURSIVE n (i) AS (SELECT 10001 UNION ALL SELECT i + 1 FROM n WHERE i < 10400)
  SELECT i, '1953-09-02' + INTERVAL i % 4000 DAY, CONCAT('First', i % 97), CONCAT('Last', i % 89), ELT(1 + i % 4, 'M', 'F', 'NB', 'T'),
    '1986-06-26' + INTERVAL i % 3000 DAY FROM n;
INSERT INTO dept_emp SELECT emp_no, CONCAT('d00', 1 + emp_no % 9), hire_date, '9999-01-01' FROM employees;
INSERT INTO dept_manager SELECT emp_no, dept_no, from_date, '9999-01-01' FROM dept_emp WHERE emp_no % 50 = 0;
INSERT INTO titles SELECT emp_no, ELT(1 + emp_no % 3, 'Engineer', 'Staff', 'Senior Engineer'), hire_date, NULL FROM employees;
INSERT INTO salaries SELECT emp_no, 40000 + emp_no % 30000, hire_date, hire_date + INTERVAL 1 YEAR FROM employees;
INSERT INTO salaries SELECT emp_no, 41000 + emp_no % 30000, hire_date + INTERVAL 1 YEAR, '9999-01-01' FROM employees;
";

const TABLES: [&str; 6] = ["departments", "dept_emp", "dept_manager", "employees", "salaries", "titles"];

/// The application: each turn hires an employee (the employee, a department, a title and a salary in
/// one transaction); every 5th raises an employee (the open salary closed, a new one opened), every
/// 9th transfers one, every 17th fires one (blue deletes the employee's salaries, titles and
/// department rows by its foreign keys), every 23rd renames a department.
fn application(url: String) -> Writer<i64> {
    crate::mysql_to_postgres::turns(url, |n| {
        let emp = 20_000 + n;
        let old = 10_001 + (n * 7) % 400;
        let mut sql = format!(
            "START TRANSACTION; \
             INSERT INTO employees VALUES ({emp}, '1990-01-01' + INTERVAL {n} DAY, 'New', CONCAT('Hire', {n}), ELT(1 + {n} % 4, 'M', 'F', 'NB', 'T'), '2026-01-01'); \
             INSERT INTO dept_emp VALUES ({emp}, CONCAT('d00', 1 + {n} % 9), '2026-01-01', '9999-01-01'); \
             INSERT INTO titles VALUES ({emp}, 'Engineer', '2026-01-01', NULL); \
             INSERT INTO salaries VALUES ({emp}, 50000 + {n}, '2026-01-01', '9999-01-01');"
        );
        if n % 5 == 0 {
            sql.push_str(&format!(
                "UPDATE salaries SET to_date = '2026-03-01' + INTERVAL {n} DAY WHERE emp_no = {old} AND to_date = '9999-01-01'; \
                 INSERT IGNORE INTO salaries VALUES ({old}, 90000 + {n}, '2026-03-01' + INTERVAL {n} DAY, '9999-01-01');"
            ));
        }
        if n % 9 == 0 {
            sql.push_str(&format!(
                "UPDATE dept_emp SET to_date = '2026-02-01' WHERE emp_no = {old} AND to_date = '9999-01-01'; \
                 INSERT IGNORE INTO dept_emp VALUES ({old}, 'd009', '2026-02-01', '9999-01-01');"
            ));
        }
        if n % 17 == 0 {
            sql.push_str(&format!("DELETE FROM employees WHERE emp_no = {};", 10_001 + (n * 13) % 400));
        }
        if n % 23 == 0 {
            sql.push_str(&format!("UPDATE departments SET dept_name = CONCAT('Dept ', {n}) WHERE dept_no = CONCAT('d00', 1 + {n} % 9);"));
        }
        sql.push_str("COMMIT;");
        sql
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn employees_from_oracle_mysql_9_7_replicates_exactly_under_hires_raises_and_cascading_fires_across_a_kill() {
    let (blue, green, db) = pair_of(Flavor::MySql9_7, EMPLOYEES).await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    let (code, out) = common::turnout_command(&t, "check", &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{db}.employees.gender: enum('M','F','NB','T') → text")), "{out}");
    assert!(out.contains("current_dept_emp") && out.contains("dept_emp_latest_date"), "check names the views for the operator: {out}");
    t.start();
    common::wait_streaming(&mut t).await;
    let app = application(blue.url(&db));
    app.wait_for(120).await;
    t.kill9();
    app.wait_for(180).await;
    t.start();
    common::wait_streaming(&mut t).await;
    app.wait_for(260).await;
    let (acked, errors) = app.finish().await;
    assert!(errors.is_empty(), "{errors:?}");
    let deadline = Instant::now() + common::WAIT;
    let out = loop {
        if blue_counts(&blue, &db, &TABLES) == green_counts(&green, &db, &TABLES).await {
            let (code, out) = common::turnout_command(&t, "verify", &[]).await;
            if TABLES.iter().all(|table| out.lines().any(|l| l.starts_with("ok") && l.contains(&format!("{db}.{table} ("))))
                && !out.contains(&format!("DIFFERS  {db}."))
            {
                // The views are blue's until the operator makes them on green.
                assert_ne!(code, 0, "{out}");
                break out;
            }
        }
        assert!(t.exited().is_none(), "turnout exited\n{}", t.log_text());
        assert!(
            Instant::now() < deadline,
            "green never held blue's rows\n{:?}\n{:?}\n{}",
            blue_counts(&blue, &db, &TABLES),
            green_counts(&green, &db, &TABLES).await,
            t.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(out.contains(&format!("VIEW {db}.current_dept_emp")), "{out}");
    // Every acknowledged hire is on green, and every fire took the employee's rows with it.
    let hires = green_column(&green, &db, &format!("SELECT count(*)::text FROM \"{db}\".employees WHERE emp_no > 20000")).await.expect("hires");
    assert_eq!(hires, vec![acked.len().to_string()]);
    let orphans = green_column(
        &green,
        &db,
        &format!("SELECT count(*)::text FROM \"{db}\".salaries s WHERE NOT EXISTS (SELECT 1 FROM \"{db}\".employees e WHERE e.emp_no = s.emp_no)"),
    )
    .await
    .expect("orphans");
    assert_eq!(orphans, vec!["0".to_owned()], "a fired employee's salaries went with them");
    let fired = acked.iter().filter(|n| *n % 17 == 0).count();
    assert!(fired >= 10, "{fired}");
    t.sigterm();
}

#[tokio::test(flavor = "multi_thread")]
async fn employees_from_mariadb_10_11_is_refused_naming_the_cascade_green_could_not_repeat_exactly() {
    let (blue, green, db) = pair_of(Flavor::MariaDb10_11, EMPLOYEES).await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    let (code, out) = common::turnout_command(&t, "check", &[]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains(&format!("of {db}.dept_emp acts on dept_no, which blue compares by")), "{out}");
    t.start();
    assert_ne!(common::wait_exit(&mut t).await, 0);
    assert!(t.log_text().contains("acts on dept_no"), "{}", t.log_text());
    let tables = green_column(&green, &db, &format!("SELECT count(*)::text FROM pg_tables WHERE schemaname = '{db}'")).await;
    assert_eq!(tables, Some(vec!["0".to_owned()]), "nothing was copied");
}
