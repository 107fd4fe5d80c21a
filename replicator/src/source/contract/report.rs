//! What a source family's checks report to `turnout check` ([`crate::check`]): per endpoint, one line
//! per requirement with the exact fix when it is not met.

use std::fmt;

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Replication can start, but the operator should know.
    Warn,
    /// Replication cannot start until this is fixed.
    Fail,
}

/// One reported line.
#[derive(Clone, Debug)]
pub struct Finding {
    pub status: Status,
    /// What was checked and found.
    pub what: String,
    /// What to do, for warnings and failures.
    pub fix: Option<String>,
}

/// Everything `check` found, per endpoint, in order.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub sections: Vec<(String, Vec<Finding>)>,
}

impl Report {
    /// True when no check failed: replication can start.
    pub fn passed(&self) -> bool {
        self.failures() == 0
    }

    pub fn failures(&self) -> usize {
        self.sections.iter().flat_map(|(_, f)| f).filter(|f| f.status == Status::Fail).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (title, findings) in &self.sections {
            writeln!(f, "{title}")?;
            for finding in findings {
                let tag = match finding.status {
                    Status::Ok => "ok  ",
                    Status::Warn => "WARN",
                    Status::Fail => "FAIL",
                };
                writeln!(f, "  {tag}  {}", finding.what)?;
                if let Some(fix) = &finding.fix {
                    for line in fix.lines() {
                        writeln!(f, "        fix: {line}")?;
                    }
                }
            }
        }
        match self.failures() {
            0 => writeln!(f, "result: ready — replication can start"),
            n => writeln!(f, "result: {n} problem{} — replication cannot start until fixed", if n == 1 { "" } else { "s" }),
        }
    }
}

/// Findings of one section, in order.
#[derive(Debug, Default)]
pub struct Findings(pub Vec<Finding>);

impl Findings {
    pub fn ok(&mut self, what: impl Into<String>) {
        self.0.push(Finding { status: Status::Ok, what: what.into(), fix: None });
    }
    pub fn warn(&mut self, what: impl Into<String>, fix: impl Into<String>) {
        self.0.push(Finding { status: Status::Warn, what: what.into(), fix: Some(fix.into()) });
    }
    pub fn fail(&mut self, what: impl Into<String>, fix: impl Into<String>) {
        self.0.push(Finding { status: Status::Fail, what: what.into(), fix: Some(fix.into()) });
    }
}
