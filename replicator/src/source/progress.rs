//! Snapshot progress on an interactive terminal, shared by every source.

use crate::status::Status;
use std::sync::Arc;

/// Progress bars for the snapshot on an interactive terminal (stderr), one per table, refreshed from
/// [`Status`] five times a second. Nothing is drawn when stderr is not a terminal. Stops when dropped.
#[derive(Debug)]
pub struct ProgressBars(Option<tokio::task::JoinHandle<()>>);

impl ProgressBars {
    pub fn start(status: &Arc<Status>) -> ProgressBars {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return ProgressBars(None);
        }
        let status = Arc::clone(status);
        ProgressBars(Some(tokio::spawn(async move {
            let multi = indicatif::MultiProgress::new();
            let style = indicatif::ProgressStyle::with_template("{spinner} {prefix:<40} {msg}").unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
            let mut bars: std::collections::HashMap<String, indicatif::ProgressBar> = Default::default();
            loop {
                for (table, p) in status.snapshot().tables {
                    let bar = bars.entry(table.clone()).or_insert_with(|| {
                        let b = multi.add(indicatif::ProgressBar::new_spinner());
                        b.set_style(style.clone());
                        b.set_prefix(table.clone());
                        b
                    });
                    bar.set_message(format!("{} rows, {}{}", p.rows, indicatif::HumanBytes(p.bytes), if p.done { " — done" } else { "" }));
                    if p.done {
                        bar.finish();
                    } else {
                        bar.tick();
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        })))
    }
}

impl Drop for ProgressBars {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}
