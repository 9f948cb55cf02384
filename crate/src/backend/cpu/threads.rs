//! Threads for the CPU backend (feature `threads`): a mat-vec's rows, and attention's heads,
//! split into one range per thread. Natively the threads are a rayon pool of the size
//! [`set_threads`] asks; in wasm they are Web Workers on the module's shared memory, started by
//! `startThreads` from JS (wasm-bindgen-rayon) in the build that has atomics, where the page is
//! cross-origin isolated.
//!
//! A token runs hundreds of mat-vecs of tens of microseconds each, too short to hand each to a
//! sleeping pool thread (a wake-up through the OS or `Atomics.wait` costs about as much as the
//! work). So [`in_pool`] wakes the pool once per forward pass and keeps a crew of its threads
//! spinning on an atomic counter until the pass ends; each mat-vec inside ([`for_row_ranges`])
//! is then posted to the crew and joined in well under a microsecond.
//!
//! A row's arithmetic does not depend on the range it falls in, so every thread count gives the
//! same results bit for bit. Without the feature everything runs inline.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(1);
static PARALLEL_SECTIONS: AtomicU64 = AtomicU64::new(0);

/// Weights × tokens below which a mat-vec runs on the calling thread alone.
#[cfg(feature = "threads")]
const PARALLEL_MIN_WORK: usize = 1 << 15;

/// Threads the CPU backend uses.
pub fn threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

/// How many mat-vecs have run split across threads (since the process or module started).
pub fn parallel_sections() -> u64 {
    PARALLEL_SECTIONS.load(Ordering::Relaxed)
}

/// Uses `n` threads from now on (at least 1). Natively the first call with `n > 1` builds
/// rayon's global pool of `n` threads, and later calls can use at most that many; in wasm the
/// pool must already run (`startThreads`). Without the feature `threads`, only 1 is possible.
/// Returns the count now in use.
pub fn set_threads(n: usize) -> usize {
    let n = n.max(1);
    #[cfg(feature = "threads")]
    {
        #[cfg(not(target_arch = "wasm32"))]
        if n > 1 {
            // Fails only when the pool already exists: then its size bounds what we use.
            let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
        }
        let n = if n > 1 { n.min(rayon::current_num_threads()) } else { 1 };
        THREADS.store(n, Ordering::Relaxed);
        n
    }
    #[cfg(not(feature = "threads"))]
    {
        let _ = n;
        1
    }
}

/// Calls `f` on ranges that cover `0..rows` once, split across the crew of [`in_pool`] when one
/// runs on this thread and `work` (weights × tokens) is large enough, else on `0..rows` here.
/// Range starts are multiples of `align`.
pub fn for_row_ranges(rows: usize, work: usize, align: usize, f: impl Fn(Range<usize>) + Sync) {
    #[cfg(feature = "threads")]
    if work >= PARALLEL_MIN_WORK && rows >= 2 * align {
        if let Some(crew) = crew::current() {
            PARALLEL_SECTIONS.fetch_add(1, Ordering::Relaxed);
            let n = crew.size();
            let per = rows.div_ceil(n).div_ceil(align) * align;
            return crew.run(&|i: usize| {
                let start = (i * per).min(rows);
                f(start..((i + 1) * per).min(rows));
            });
        }
    }
    let _ = (work, align);
    f(0..rows)
}

/// Calls `f(i, &mut items[i])` once for each item, the items split across the crew as
/// [`for_row_ranges`] splits rows (`work`: the weights × tokens, or values, of them all). What
/// a prompt pass does per token besides its mat-muls (quantizing a token's activations, its
/// feed-forward's activation function) is else left to one thread while the others wait.
pub fn for_each_mut<T: Send>(items: &mut [T], work: usize, f: impl Fn(usize, &mut T) + Sync) {
    struct Items<T>(*mut T);
    // SAFETY: each item is handed to one range only (the ranges are disjoint), and `T: Send`.
    unsafe impl<T: Send> Sync for Items<T> {}
    let (n, items) = (items.len(), Items(items.as_mut_ptr()));
    let items = &items;
    for_row_ranges(n, work, 1, |range| {
        for i in range {
            // SAFETY: `i < n`, and no other range holds item `i`.
            f(i, unsafe { &mut *items.0.add(i) });
        }
    });
}

/// Runs `f` with a crew of the pool's threads spinning beside it when more than one thread is
/// in use, so that the mat-vecs inside `f` split across them; else just runs `f`.
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "threads")]
    if threads() > 1 && crew::current().is_none() {
        return crew::with_crew(threads(), f);
    }
    f()
}

#[cfg(feature = "threads")]
mod crew {
    use std::cell::{Cell, UnsafeCell};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A job for every member: called with the member's index (0 is the poster).
    type Job<'a> = &'a (dyn Fn(usize) + Sync);

    /// The poster's thread and `size - 1` pool threads, spinning on `epoch` for jobs.
    pub struct Crew {
        size: usize,
        /// Bumped once per posted job (Release), after `job` is written.
        epoch: AtomicUsize,
        /// Members done with the current job.
        done: AtomicUsize,
        stop: AtomicBool,
        job: UnsafeCell<Option<Job<'static>>>,
    }

    // SAFETY: `job` is written only by the poster while no member reads it (between a job's
    // join and the next epoch bump) and read by members only after they saw the bump.
    unsafe impl Sync for Crew {}

    thread_local! {
        static CURRENT: Cell<Option<&'static Crew>> = const { Cell::new(None) };
    }

    /// The crew this thread posts to, if it is inside [`with_crew`].
    pub fn current() -> Option<&'static Crew> {
        CURRENT.with(Cell::get)
    }

    impl Crew {
        pub fn size(&self) -> usize {
            self.size
        }

        /// Runs `job` on every member (this thread as index 0) and returns when all are done.
        pub fn run(&self, job: Job<'_>) {
            // SAFETY: members read `job` only until they count themselves done, and this call
            // returns only after all did, so the borrow outlives every use.
            unsafe { *self.job.get() = Some(std::mem::transmute::<Job<'_>, Job<'static>>(job)) };
            self.done.store(0, Ordering::Relaxed);
            self.epoch.fetch_add(1, Ordering::Release);
            job(0);
            while self.done.load(Ordering::Acquire) < self.size - 1 {
                std::hint::spin_loop();
            }
        }

        fn member(&self, index: usize) {
            let mut seen = 0;
            loop {
                let epoch = loop {
                    let e = self.epoch.load(Ordering::Acquire);
                    if e != seen || self.stop.load(Ordering::Acquire) {
                        break e;
                    }
                    std::hint::spin_loop();
                };
                if epoch == seen {
                    return; // stopped
                }
                seen = epoch;
                // SAFETY: written before the epoch bump we saw (Acquire), unchanged until we
                // count ourselves done.
                let job = unsafe { (*self.job.get()).expect("a posted job") };
                job(index);
                self.done.fetch_add(1, Ordering::Release);
            }
        }
    }

    /// Stops the members when the poster leaves [`with_crew`], also by unwinding.
    struct StopOnDrop<'a>(&'a Crew);

    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.stop.store(true, Ordering::Release);
            CURRENT.with(|c| c.set(None));
        }
    }

    /// Whether a crew holds the pool now: a second one (another session's forward pass on
    /// another thread) runs without, as its members could wait for pool threads that the
    /// first crew keeps spinning.
    static POOL_TAKEN: AtomicBool = AtomicBool::new(false);

    struct ReleasePool;

    impl Drop for ReleasePool {
        fn drop(&mut self) {
            POOL_TAKEN.store(false, Ordering::Release);
        }
    }

    /// Runs `f` on a pool thread with `size - 1` other pool threads spinning as its crew (or
    /// alone here when another crew holds the pool).
    pub fn with_crew<R: Send>(size: usize, f: impl FnOnce() -> R + Send) -> R {
        if POOL_TAKEN.swap(true, Ordering::Acquire) {
            return f();
        }
        let _release = ReleasePool;
        let crew = Crew { size, epoch: AtomicUsize::new(0), done: AtomicUsize::new(0), stop: AtomicBool::new(false), job: UnsafeCell::new(None) };
        rayon::scope(|s| {
            let crew = &crew;
            for i in 1..size {
                s.spawn(move |_| crew.member(i));
            }
            // SAFETY: the reference is cleared (StopOnDrop) before `crew` goes out of scope.
            CURRENT.with(|c| c.set(Some(unsafe { &*(crew as *const Crew) })));
            let _stop = StopOnDrop(crew);
            f()
        })
    }
}
