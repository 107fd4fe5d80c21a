//! `turnout check`'s report: per endpoint, one line per requirement with the exact fix when it is not
//! met. Each source's own checks live with it (`source::pg::check`).

pub use crate::source::contract::report::{Finding, Findings, Report, Status};

/// `turnout check` against the configured source and green.
pub async fn run(config: &crate::config::Config) -> Report {
    use crate::source::SourceAdmin;
    let checked = async { Ok::<Report, crate::Error>(crate::with_family!(config, F => F::admin(config, crate::source::Names::none())?.check().await)) };
    match checked.await {
        Ok(mut report) => {
            let consumers = crate::handover::findings(config).await;
            report.sections.push(("consumers (who else reads blue's change log, and whether the cutover carries them)".into(), consumers.0));
            report
        }
        Err(e) => {
            let mut f = Findings::default();
            f.fail(e.to_string(), "correct the configuration");
            Report { sections: vec![("configuration".into(), f.0)] }
        }
    }
}
