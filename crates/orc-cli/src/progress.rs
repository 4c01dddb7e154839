//! Progress on stderr: a bar on a terminal, plain lines with `--verbose` otherwise, nothing with `--quiet`.

use std::io::IsTerminal as _;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use orc_engine::{Event, Observer, StepStatus};

use crate::Global;

/// A progress bar over the run's steps.
#[derive(Debug)]
struct Bar(ProgressBar);

impl Observer for Bar {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::StepsAdded { count } => self.0.inc_length(count as u64),
            Event::StepStarted { id, .. } => self.0.set_message(id.to_string()),
            Event::StepFinished { .. } => self.0.inc(1),
            Event::StepReady { .. } => {}
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
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
                    StepStatus::Skipped => "skipped",
                    StepStatus::Pending => "not run",
                };
                tracing::info!("{id}: {word}");
            }
            Event::StepsAdded { .. } | Event::StepReady { .. } => {}
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
        return Some(Arc::new(Bar(bar)));
    }
    None
}
