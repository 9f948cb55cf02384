//! CPU threads (feature `threads`, on in the workspace through the CLI): a model's logits with
//! its mat-vec rows split across two threads equal those of one thread, bit for bit, for prompt
//! chunks and decode steps (a row's arithmetic does not depend on the thread that runs it).
#![cfg(feature = "threads")]

mod common;

use pocketlm::backend::cpu::threads::{parallel_sections, set_threads, threads};
use pocketlm::{Model, Session};

fn logits_after(model: &Model, prompt: &[u32]) -> Vec<Vec<f32>> {
    let mut s = Session::new(model, 64).unwrap();
    s.prefill(prompt).unwrap();
    let mut out = Vec::new();
    for t in [5u32, 17, 99] {
        out.push(s.step(t, true).unwrap().unwrap().to_vec());
    }
    out
}

#[test]
fn two_threads_give_the_logits_of_one() {
    let path = common::root().join("tests/synthetic/smollm2-135m-Q4_0.gguf");
    let model = Model::open(&path, &Default::default()).unwrap_or_else(|e| panic!("{e}: run python3 tests/synthetic/make_synthetic.py"));
    let prompt: Vec<u32> = (0..20u32).map(|i| (i * 7919 + 13) % model.spec.vocab_size as u32).collect();
    assert_eq!(set_threads(1), 1);
    let one = logits_after(&model, &prompt);
    assert_eq!(set_threads(2), 2, "a pool of two threads");
    assert_eq!(threads(), 2);
    let before = parallel_sections();
    let two = logits_after(&model, &prompt);
    // 30 layers × 7 matrices, plus the output, for the prompt chunks and each of 3 steps.
    assert!(parallel_sections() - before >= 4 * 30 * 7, "the mat-vecs did not run split: {} sections", parallel_sections() - before);
    set_threads(1);
    for (i, (a, b)) in one.iter().zip(&two).enumerate() {
        assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()), "step {i}: two threads changed the logits");
    }
}
