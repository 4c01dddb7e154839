//! The state every connection shares: the behaviour, the counters, the scripted replies and
//! answer overrides, the recorded bodies and the requests `fail_times` has seen.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use hyper::body::Bytes;

use crate::behaviour::{Behaviour, Reply};
use crate::stats::{Counters, Endpoint, Stats};

/// How many distinct requests `fail_times` remembers before forgetting them all.
const MAX_SEEN: usize = 100_000;
/// The most bytes of request bodies kept for [`Stats`], whatever their number.
const MAX_RECORDED_BYTES: usize = 64 * 1024 * 1024;

/// State every connection shares.
pub(crate) struct Shared {
    pub(crate) behaviour: Behaviour,
    pub(crate) counters: Counters,
    state: Mutex<State>,
}

/// The mutable part, behind a lock that is never held across an `.await`.
pub(crate) struct State {
    recent: VecDeque<(Endpoint, Bytes)>,
    /// Total length of the bodies in `recent`.
    recent_bytes: usize,
    pub(crate) script: VecDeque<Reply>,
    pub(crate) answers: Vec<(String, String)>,
    /// How often each request with `fail_times` has been seen, by canonical hash.
    seen: HashMap<u64, u32>,
    /// Model requests per model id.
    by_model: HashMap<String, u64>,
}

impl Shared {
    pub(crate) fn new(mut behaviour: Behaviour) -> Self {
        let state = State {
            recent: VecDeque::new(),
            recent_bytes: 0,
            script: std::mem::take(&mut behaviour.script).into(),
            answers: std::mem::take(&mut behaviour.answers),
            seen: HashMap::new(),
            by_model: HashMap::new(),
        };
        Shared {
            behaviour,
            counters: Counters::default(),
            state: Mutex::new(state),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent whatever panicked while holding the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn stats(&self) -> Stats {
        let state = self.lock();
        self.counters.snapshot(&state.recent, &state.by_model)
    }

    pub(crate) fn reset(&self) {
        let mut state = self.lock();
        self.counters.reset();
        state.recent.clear();
        state.recent_bytes = 0;
        state.seen.clear();
        state.by_model.clear();
    }

    /// Counts one more request naming `model`; returns the model's count.
    pub(crate) fn count_model(&self, model: &str) -> u64 {
        let mut state = self.lock();
        if let Some(count) = state.by_model.get_mut(model) {
            *count += 1;
            return *count;
        }
        state.by_model.insert(model.to_owned(), 1);
        1
    }

    pub(crate) fn record(&self, endpoint: Endpoint, body: Bytes) {
        self.counters.request(endpoint);
        let limit = self.behaviour.recent_bodies;
        if limit == 0 {
            return;
        }
        let mut state = self.lock();
        while state.recent.len() >= limit
            || (!state.recent.is_empty() && state.recent_bytes + body.len() > MAX_RECORDED_BYTES)
        {
            if let Some((_, old)) = state.recent.pop_front() {
                state.recent_bytes -= old.len();
            }
        }
        state.recent_bytes += body.len();
        state.recent.push_back((endpoint, body));
    }

    /// Counts one more sighting of the request with `key`; returns the count.
    pub(crate) fn seen(&self, key: u64) -> u32 {
        let mut state = self.lock();
        if state.seen.len() >= MAX_SEEN && !state.seen.contains_key(&key) {
            state.seen.clear();
        }
        let count = state.seen.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    /// The answer override for `prompt`, if any.
    pub(crate) fn answer_for(&self, prompt: &str) -> Option<String> {
        let state = self.lock();
        state
            .answers
            .iter()
            .find(|(needle, _)| prompt.contains(needle.as_str()))
            .map(|(_, answer)| answer.clone())
    }
}
