//! The count of what a crash test did, printed at its end.

use std::fmt;

use super::trial::Outcome;

/// Trials, kills, resumes, steps re-run and failures of one test.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) trials: u32,
    pub(super) kills: u32,
    pub(super) resumes: u32,
    /// `orc run` started again because the kill came before the run was recorded.
    pub(super) restarts: u32,
    pub(super) reruns: u32,
    /// Trials whose reported cost is below the uninterrupted run's.
    pub(super) cost_short: u32,
    pub(super) failures: u32,
}

impl Tally {
    pub(super) fn add(&mut self, o: &Outcome) {
        self.trials += 1;
        self.kills += o.kills;
        self.resumes += o.resumes;
        self.restarts += o.restarts;
        self.reruns += o.reruns;
        self.cost_short += u32::from(o.cost_short);
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} trials, {} kills, {} resumes, {} restarts, {} steps re-run, {} costs short, {} failures",
            self.trials,
            self.kills,
            self.resumes,
            self.restarts,
            self.reruns,
            self.cost_short,
            self.failures
        )
    }
}
