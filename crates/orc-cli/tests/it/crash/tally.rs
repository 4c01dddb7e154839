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
    /// Side effects that happened again (a step caught in flight, run again).
    pub(super) effects_repeated: u32,
    /// Model requests sent again (in flight at a kill).
    pub(super) requests_resent: u32,
    /// Answers a killed attempt paid for that the run's cost leaves out.
    pub(super) unpriced: u32,
    pub(super) failures: u32,
}

impl Tally {
    pub(super) fn add(&mut self, o: &Outcome) {
        self.trials += 1;
        self.kills += o.kills;
        self.resumes += o.resumes;
        self.restarts += o.restarts;
        self.effects_repeated += o.repeats.effects;
        self.requests_resent += o.repeats.requests;
        self.unpriced += o.repeats.unpriced;
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} trials, {} kills, {} resumes, {} restarts, {} steps re-run ({} side effects repeated, {} model requests sent again), {} answers left out of the cost, {} failures",
            self.trials,
            self.kills,
            self.resumes,
            self.restarts,
            self.effects_repeated + self.requests_resent,
            self.effects_repeated,
            self.requests_resent,
            self.unpriced,
            self.failures
        )
    }
}
