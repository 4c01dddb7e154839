//! A global allocator that counts the bytes allocated by the thread that
//! asked for it, so tests running in parallel do not disturb a measurement.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes allocated minus bytes freed by the measured thread since the
/// measurement started (negative when it frees older memory).
static CURRENT: AtomicIsize = AtomicIsize::new(0);
/// The highest `CURRENT` seen.
static PEAK: AtomicIsize = AtomicIsize::new(0);
/// One measurement at a time.
static MEASURING: Mutex<()> = Mutex::new(());

thread_local! {
    // `const` and without `Drop`: reading it never allocates.
    static TRACKED: Cell<bool> = const { Cell::new(false) };
}

fn tracked() -> bool {
    TRACKED.try_with(Cell::get).unwrap_or(false)
}

fn grow(n: usize) {
    if tracked() {
        let n = isize::try_from(n).unwrap_or(isize::MAX);
        let now = CURRENT.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

fn shrink(n: usize) {
    if tracked() {
        CURRENT.fetch_sub(isize::try_from(n).unwrap_or(isize::MAX), Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the arguments it was given,
// so the `GlobalAlloc` contract holds exactly as it does for `System`; the
// bookkeeping only touches atomics and a const thread-local (no allocation,
// no reentrancy).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract (non-zero size).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (that is, by `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrink(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` with `layout`; the caller
        // upholds `realloc`'s contract for `new_size`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grow(new_size - layout.size());
            } else {
                shrink(layout.size() - new_size);
            }
        }
        p
    }
}

/// Runs `f` and returns its result with the peak of the bytes this thread
/// held during the call, beyond what it held before.
pub(crate) fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let _one = MEASURING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    CURRENT.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    TRACKED.with(|t| t.set(true));
    let out = f();
    TRACKED.with(|t| t.set(false));
    let peak = usize::try_from(PEAK.load(Ordering::Relaxed)).unwrap_or(0);
    (out, peak)
}
