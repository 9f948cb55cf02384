//! Heap held at each stage of loading a GGUF file, the peak within each stage beyond the file's
//! own bytes, and each stage's time: `cargo run --release --example load_peak -- MODEL.gguf`. Native sizes (64-bit
//! pointers, glibc's chunks); the wasm figure the benchmarks report is `loadPeakBytes`.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The system allocator, counting the bytes it holds and their high-water mark.
struct Counting;
static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
thread_local!(static STAGE_START: std::cell::Cell<std::time::Instant> = std::cell::Cell::new(std::time::Instant::now()));

fn grew(by: usize) {
    PEAK.fetch_max(HELD.fetch_add(by, Relaxed) + by, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        grew(l.size());
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        HELD.fetch_sub(l.size(), Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if n > l.size() {
            grew(n - l.size());
        } else {
            HELD.fetch_sub(l.size() - n, Relaxed);
        }
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Prints what is held and the peak since the last stage, less `base`, and the stage's time, and
/// starts a new stage;
/// returns that peak.
fn stage(name: &str, base: usize) -> usize {
    let peak = PEAK.load(Relaxed).saturating_sub(base);
    let mb = |x: usize| x as f64 / 1e6;
    let ms = STAGE_START.with(|t| t.replace(std::time::Instant::now())).elapsed().as_secs_f64() * 1e3;
    println!("{name:>16}: held {:7.1} MB, peak {:7.1} MB, {ms:6.0} ms", mb(HELD.load(Relaxed).saturating_sub(base)), mb(peak));
    PEAK.store(HELD.load(Relaxed), Relaxed);
    peak
}

fn main() -> pocketlm::Result<()> {
    let path = std::env::args().nth(1).expect("usage: load_peak MODEL.gguf");
    let bytes = std::fs::read(&path).map_err(|e| pocketlm::Error::Io { path: path.clone(), source: e })?;
    let file = bytes.len();
    println!("{path}: {:.1} MB; beyond the file's bytes:", file as f64 / 1e6);
    let base = HELD.load(Relaxed);
    PEAK.store(base, Relaxed);
    STAGE_START.with(|t| t.set(std::time::Instant::now()));
    let mut g = pocketlm::format::gguf::GgufFile::parse(&path, &bytes, file)?;
    stage("metadata", base);
    let tokenizer = pocketlm::tokenizer::Tokenizer::from_gguf(&mut g)?;
    drop(g);
    stage("tokenizer", base);
    drop(tokenizer);
    let model = pocketlm::Model::from_gguf(&path, bytes)?;
    let peak = stage("whole model", base);
    println!("load peak / file: {:.3}× (native heap)", (file + peak) as f64 / file as f64);
    drop(model);
    Ok(())
}
