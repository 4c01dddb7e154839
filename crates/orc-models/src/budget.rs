//! Spend limits: a budget per run and per sliding hour, reserved atomically before a
//! call and settled after it.
//!
//! Amounts are kept in whole nano-dollars, so sums are exact: reservations round up,
//! limits round down.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{BudgetScope, Error};

/// The sliding window of the hourly budget.
pub const HOUR: Duration = Duration::from_secs(3600);

const NANOS_PER_USD: f64 = 1e9;

/// The limits of a [`Budget`], in USD.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BudgetLimits {
    /// Most USD this run (this budget's lifetime) may spend (`--budget`).
    pub per_run: Option<f64>,
    /// Most USD any sliding hour may spend (`cost.budget_per_hour`).
    pub per_hour: Option<f64>,
}

/// A spend limit per run and per sliding hour, shared by every call of a run. Cheap
/// to clone; clones share the ledger.
///
/// [`Budget::reserve`] takes a call's worst case before the call; the
/// [`Reservation`] is settled with the real cost after it, or released when dropped
/// unsettled (the call failed or was cancelled). Reserving checks settled spend plus
/// open reservations plus the request against each limit under one lock, so as long
/// as every call costs at most what it reserved, no interleaving of concurrent calls
/// can settle more than a limit. When a provider bills more than was reserved, the
/// overrun is recorded and the budget grants no further paid call.
///
/// ```
/// use orc_models::{Budget, BudgetLimits};
///
/// let budget = Budget::new(BudgetLimits { per_run: Some(0.05), per_hour: None });
/// let call = budget.reserve(0.03).unwrap();
/// assert!(budget.reserve(0.03).is_err(), "0.03 + 0.03 > 0.05");
/// call.settle(0.01);
/// assert!(budget.reserve(0.03).is_ok(), "0.01 + 0.03 ≤ 0.05");
/// ```
#[derive(Clone)]
pub struct Budget {
    inner: Arc<Shared>,
}

struct Shared {
    per_run: Option<u64>,
    per_hour: Option<u64>,
    ledger: Mutex<Ledger>,
}

#[derive(Default)]
struct Ledger {
    /// Settled this run.
    run_spent: u64,
    /// Settled in the window, with when; oldest first.
    hour: VecDeque<(Instant, u64)>,
    /// The sum of `hour`.
    hour_spent: u64,
    /// Open reservations.
    reserved: u64,
    /// Every overrun so far.
    overrun: u64,
    /// The first overrun: (reserved, actual).
    stopped: Option<(u64, u64)>,
}

impl Ledger {
    /// Forgets hourly spend that has left the window.
    fn prune(&mut self, now: Instant) {
        while let Some((at, amount)) = self.hour.front().copied() {
            if now.saturating_duration_since(at) < HOUR {
                break;
            }
            self.hour.pop_front();
            self.hour_spent -= amount;
        }
    }
}

/// What a budget has spent, in USD.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BudgetSnapshot {
    /// The limits.
    pub limits: BudgetLimits,
    /// Settled by this run.
    pub run_spent: f64,
    /// Settled in the last hour (including spend recorded with
    /// [`Budget::record_past_spend`]).
    pub hour_spent: f64,
    /// Reserved by calls in flight.
    pub reserved: f64,
    /// What providers billed beyond reservations.
    pub overrun: f64,
}

impl Budget {
    /// A budget with `limits`; limits that are negative or not finite count as 0.
    pub fn new(limits: BudgetLimits) -> Self {
        let floor = |usd: f64| {
            if usd.is_finite() && usd > 0.0 {
                (usd * NANOS_PER_USD).floor().min(u64::MAX as f64) as u64
            } else {
                0
            }
        };
        Budget {
            inner: Arc::new(Shared {
                per_run: limits.per_run.map(floor),
                per_hour: limits.per_hour.map(floor),
                ledger: Mutex::default(),
            }),
        }
    }

    /// The limits, in USD.
    pub fn limits(&self) -> BudgetLimits {
        BudgetLimits {
            per_run: self.inner.per_run.map(usd),
            per_hour: self.inner.per_hour.map(usd),
        }
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // Every update leaves the ledger consistent, whatever panicked while holding it.
        self.inner
            .ledger
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves `worst_case_usd` for a call about to be made, or says which limit
    /// it would break. A worst case of 0 (a local model) is always granted.
    pub fn reserve(&self, worst_case_usd: f64) -> Result<Reservation, Error> {
        let amount = ceil_nanos(worst_case_usd);
        let mut ledger = self.ledger();
        self.admit(&mut ledger, amount)?;
        ledger.reserved += amount;
        drop(ledger);
        Ok(Reservation {
            budget: Some(self.clone()),
            amount,
        })
    }

    /// Whether [`Budget::reserve`] of `worst_case_usd` would be granted now, without
    /// reserving anything (for choosing models and `orc plan`).
    pub fn check(&self, worst_case_usd: f64) -> Result<(), Error> {
        let amount = ceil_nanos(worst_case_usd);
        let mut ledger = self.ledger();
        self.admit(&mut ledger, amount)
    }

    fn admit(&self, ledger: &mut Ledger, amount: u64) -> Result<(), Error> {
        if amount == 0 {
            return Ok(());
        }
        if let Some((reserved, actual)) = ledger.stopped {
            return Err(Error::BudgetOverrun {
                reserved: usd(reserved),
                actual: usd(actual),
                overrun: usd(ledger.overrun),
            });
        }
        let reserved = ledger.reserved;
        let refuse = |scope, limit, spent| Error::BudgetExhausted {
            scope,
            limit: usd(limit),
            spent: usd(spent),
            reserved: usd(reserved),
            requested: usd(amount),
        };
        let needed = |spent: u64| spent.saturating_add(reserved).saturating_add(amount);
        if let Some(limit) = self.inner.per_run
            && needed(ledger.run_spent) > limit
        {
            return Err(refuse(BudgetScope::Run, limit, ledger.run_spent));
        }
        if let Some(limit) = self.inner.per_hour {
            ledger.prune(Instant::now());
            if needed(ledger.hour_spent) > limit {
                return Err(refuse(BudgetScope::Hour, limit, ledger.hour_spent));
            }
        }
        Ok(())
    }

    fn settle(&self, reserved: u64, actual_usd: f64) {
        let actual = ceil_nanos(actual_usd);
        let mut ledger = self.ledger();
        ledger.reserved = ledger.reserved.saturating_sub(reserved);
        if actual > reserved {
            ledger.overrun = ledger.overrun.saturating_add(actual - reserved);
            ledger.stopped.get_or_insert((reserved, actual));
            tracing::warn!(
                reserved_usd = usd(reserved),
                actual_usd = usd(actual),
                "a model call cost more than its budget reservation; the budget grants no further paid calls"
            );
        }
        ledger.run_spent = ledger.run_spent.saturating_add(actual);
        if actual > 0 {
            let now = Instant::now();
            ledger.prune(now);
            ledger.hour.push_back((now, actual));
            ledger.hour_spent = ledger.hour_spent.saturating_add(actual);
        }
    }

    fn release(&self, reserved: u64) {
        let mut ledger = self.ledger();
        ledger.reserved = ledger.reserved.saturating_sub(reserved);
    }

    /// Counts spend made `ago` (by earlier runs, say, from the state store's model
    /// metrics) against the hourly budget; spend older than an hour is ignored.
    pub fn record_past_spend(&self, ago: Duration, usd: f64) {
        let amount = ceil_nanos(usd);
        if amount == 0 || ago >= HOUR {
            return;
        }
        let now = Instant::now();
        let at = now.checked_sub(ago).unwrap_or(now);
        let mut ledger = self.ledger();
        // Keep the window in time order.
        let position = ledger.hour.partition_point(|(t, _)| *t <= at);
        ledger.hour.insert(position, (at, amount));
        ledger.hour_spent = ledger.hour_spent.saturating_add(amount);
    }

    /// USD settled by this run so far.
    pub fn spent(&self) -> f64 {
        usd(self.ledger().run_spent)
    }

    /// Spend, reservations and overruns now.
    pub fn snapshot(&self) -> BudgetSnapshot {
        let mut ledger = self.ledger();
        ledger.prune(Instant::now());
        BudgetSnapshot {
            limits: self.limits(),
            run_spent: usd(ledger.run_spent),
            hour_spent: usd(ledger.hour_spent),
            reserved: usd(ledger.reserved),
            overrun: usd(ledger.overrun),
        }
    }
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Budget").field(&self.snapshot()).finish()
    }
}

/// A call's worst case, held against a [`Budget`] until the call ends: settle it with
/// the real cost; dropping it unsettled releases it.
#[must_use = "a reservation is released when dropped; settle it with the call's cost"]
pub struct Reservation {
    budget: Option<Budget>,
    amount: u64,
}

impl Reservation {
    /// The USD reserved.
    pub fn amount(&self) -> f64 {
        usd(self.amount)
    }

    /// Replaces the reservation by the call's real cost. A cost above the reservation
    /// is recorded as an overrun and stops the budget granting paid calls.
    pub fn settle(mut self, actual_usd: f64) {
        if let Some(budget) = self.budget.take() {
            budget.settle(self.amount, actual_usd);
        }
    }

    /// Settles at the reserved amount: for a call whose real cost is unknown but may
    /// have been billed (a stream abandoned midway).
    pub fn settle_reserved(self) {
        let amount = self.amount();
        self.settle(amount);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(budget) = self.budget.take() {
            budget.release(self.amount);
        }
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("usd", &self.amount())
            .field("open", &self.budget.is_some())
            .finish()
    }
}

fn ceil_nanos(usd: f64) -> u64 {
    if usd.is_nan() {
        return u64::MAX;
    }
    if usd <= 0.0 {
        return 0;
    }
    (usd * NANOS_PER_USD).ceil().min(u64::MAX as f64) as u64
}

fn usd(nanos: u64) -> f64 {
    nanos as f64 / NANOS_PER_USD
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_budget(usd: f64) -> Budget {
        Budget::new(BudgetLimits {
            per_run: Some(usd),
            per_hour: None,
        })
    }

    #[test]
    fn reservations_count_until_settled_or_dropped() {
        let budget = run_budget(0.10);
        let a = budget.reserve(0.06);
        assert!(a.is_ok());
        let err = budget.reserve(0.05).err();
        assert_eq!(
            err.as_ref().map(ToString::to_string).as_deref(),
            Some(
                "budget exhausted: run budget $0.10, spent $0.00, reserved $0.06, this call needs up to $0.05; hint: raise the budget (--budget, cost.budget_per_hour), lower max_tokens, or use a cheaper model"
            )
        );
        drop(a);
        assert_eq!(
            budget.snapshot().reserved,
            0.0,
            "a dropped reservation is released"
        );
        let b = budget.reserve(0.05).ok();
        b.into_iter().for_each(|r| r.settle(0.02));
        let snap = budget.snapshot();
        assert!((snap.run_spent - 0.02).abs() < 1e-12);
        assert!((snap.hour_spent - 0.02).abs() < 1e-12);
        assert_eq!(snap.reserved, 0.0);
        assert!(budget.reserve(0.08).is_ok());
        assert!(budget.reserve(0.0).is_ok(), "free calls always pass");
    }

    #[test]
    fn small_amounts_read_well() {
        let budget = run_budget(0.0005);
        let err = budget.reserve(0.00062).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("run budget $0.0005,"), "{err}");
        assert!(err.contains("needs up to $0.00062;"), "{err}");
    }

    #[test]
    fn an_overrun_is_recorded_and_stops_paid_calls() {
        let budget = run_budget(1.0);
        if let Ok(r) = budget.reserve(0.1) {
            r.settle(0.15);
        }
        let snap = budget.snapshot();
        assert!((snap.overrun - 0.05).abs() < 1e-12);
        assert!((snap.run_spent - 0.15).abs() < 1e-12);
        let err = budget.reserve(0.01).err();
        assert!(matches!(err, Some(Error::BudgetOverrun { .. })), "{err:?}");
        assert!(budget.reserve(0.0).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_hourly_budget_slides() {
        let budget = Budget::new(BudgetLimits {
            per_run: None,
            per_hour: Some(1.0),
        });
        budget.record_past_spend(Duration::from_secs(3000), 0.5);
        budget.record_past_spend(Duration::from_secs(7200), 5.0);
        if let Ok(r) = budget.reserve(0.4) {
            r.settle(0.4);
        }
        let err = budget.reserve(0.2).err();
        assert!(
            matches!(
                err,
                Some(Error::BudgetExhausted {
                    scope: BudgetScope::Hour,
                    ..
                })
            ),
            "{err:?}"
        );
        // The spend from 3000 s ago leaves the window 600 s later.
        tokio::time::advance(Duration::from_secs(601)).await;
        assert!(budget.check(0.2).is_ok());
        assert!((budget.snapshot().hour_spent - 0.4).abs() < 1e-12);
        tokio::time::advance(HOUR).await;
        assert_eq!(budget.snapshot().hour_spent, 0.0);
        assert!(
            (budget.spent() - 0.4).abs() < 1e-12,
            "the run keeps its total"
        );
    }

    /// Random interleavings of reserve, settle (at most the reservation) and drop:
    /// settled spend plus reservations never exceed the limit after any step.
    #[test]
    fn no_interleaving_overspends() {
        for seed in 0..200 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let limit = rng.f64() * 2.0;
            let budget = run_budget(limit);
            let mut open: Vec<Reservation> = Vec::new();
            for _ in 0..200 {
                match rng.u8(0..3) {
                    0 => {
                        if let Ok(r) = budget.reserve(rng.f64() * 0.3) {
                            open.push(r);
                        }
                    }
                    1 if !open.is_empty() => {
                        let r = open.swap_remove(rng.usize(0..open.len()));
                        let actual = r.amount() * rng.f64();
                        r.settle(actual);
                    }
                    _ if !open.is_empty() => drop(open.swap_remove(rng.usize(0..open.len()))),
                    _ => {}
                }
                let s = budget.snapshot();
                assert!(
                    s.run_spent + s.reserved <= limit + 1e-9,
                    "seed {seed}: {s:?}"
                );
            }
            drop(open);
            assert_eq!(budget.snapshot().reserved, 0.0);
        }
    }

    /// The same from many threads at once.
    #[test]
    fn concurrent_threads_never_overspend() {
        let budget = run_budget(1.0);
        std::thread::scope(|scope| {
            for t in 0..8 {
                let budget = budget.clone();
                scope.spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(t);
                    for _ in 0..2000 {
                        if let Ok(r) = budget.reserve(rng.f64() * 0.05) {
                            let actual = r.amount() * rng.f64();
                            if rng.bool() {
                                r.settle(actual);
                            }
                        }
                    }
                });
            }
        });
        let s = budget.snapshot();
        assert!(s.run_spent <= 1.0, "{s:?}");
        assert!(s.run_spent > 0.9, "the budget was used: {s:?}");
        assert_eq!(s.reserved, 0.0);
    }
}
