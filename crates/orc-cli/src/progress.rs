//! Progress on stderr: a bar on a terminal, plain lines with `--verbose` otherwise, nothing with `--quiet`.

use std::collections::HashSet;
use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex, PoisonError};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use orc_engine::{Event, Observer, StepStatus};

use crate::Global;

/// A progress bar over the run's steps, whose message says how many are running.
#[derive(Debug)]
struct Bar {
    bar: ProgressBar,
    /// The steps started and not yet finished (ids: a skipped step finishes without starting).
    running: Mutex<HashSet<String>>,
}

impl Bar {
    fn show_running(&self, running: &HashSet<String>) {
        self.bar.set_message(match running.len() {
            0 => String::new(),
            1 => running
                .iter()
                .next()
                .map_or_else(String::new, |id| format!("running {id}")),
            n => format!("{n} running"),
        });
    }
}

impl Observer for Bar {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::StepsAdded { count } => self.bar.inc_length(count as u64),
            Event::StepStarted { id, .. } => {
                let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
                running.insert(id.to_owned());
                self.show_running(&running);
            }
            Event::StepFinished { id, .. } => {
                self.bar.inc(1);
                let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
                if running.remove(id) {
                    self.show_running(&running);
                }
            }
            Event::StepReady { .. } | Event::ModelOutput { .. } => {}
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// One line per finished step.
#[derive(Debug)]
struct Lines;

impl Observer for Lines {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::StepStarted { id, .. } => tracing::info!("{id}: started"),
            Event::StepFinished { id, status, .. } => {
                let word = match status {
                    StepStatus::Completed => "completed",
                    StepStatus::Failed => "failed",
                    StepStatus::Cancelled => "cancelled",
                    StepStatus::Skipped => "skipped",
                    StepStatus::Pending => "not run",
                };
                tracing::info!("{id}: {word}");
            }
            Event::StepsAdded { .. } | Event::StepReady { .. } | Event::ModelOutput { .. } => {}
        }
    }
}

/// The observer that fits where stderr goes and what the user asked for.
pub(crate) fn observer(global: &Global) -> Option<Arc<dyn Observer>> {
    if global.quiet {
        return None;
    }
    if global.verbose > 0 {
        return Some(Arc::new(Lines));
    }
    if std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(10));
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {pos}/{len} steps {elapsed} {wide_msg}")
        {
            bar.set_style(style);
        }
        return Some(Arc::new(Bar {
            bar,
            running: Mutex::new(HashSet::new()),
        }));
    }
    None
}
