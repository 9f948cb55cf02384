//! The GPU backend on whole models, natively on Vulkan (lavapipe without a GPU): the per-token
//! rule (one submit and a 4-byte readback per decoded token, proven by the backend's counters),
//! recovery from a lost device mid-generation, and `auto` falling back to the CPU when the
//! model does not fit the adapter. Parity with llama.cpp and the CPU is in greedy_parity.rs
//! and synthetic_logits.rs, which run every model on both backends.

mod common;

use pocketlm::backend::gpu::context::block_on;
use pocketlm::backend::gpu::GpuOptions;
use pocketlm::{BackendChoice, GenerateOptions, Model, SamplingParams, Session};

fn tiny_model() -> Model {
    let path = common::shared_models().join("tinystories-656k-q8_0/TinyStories-656K-Q8_0.gguf");
    Model::open(&path, &Default::default()).unwrap()
}

#[test]
fn each_decoded_token_is_one_submit_and_a_four_byte_readback() {
    let model = tiny_model();
    let prompt = model.tokenizer.encode("Once upon a time", true).unwrap();
    for sampling in [SamplingParams::default(), SamplingParams { temperature: 0.9, top_k: 40, top_p: 0.95, repetition_penalty: 1.1, frequency_penalty: 0.2, seed: 3, ..Default::default() }] {
        let mut s = common::session(&model, "gpu", 256);
        let opts = GenerateOptions { max_tokens: 30, sampling: sampling.clone(), ignore_eos: true, ..Default::default() };
        let g = s.generate(&prompt, &opts, |_| true).unwrap();
        assert_eq!(g.ids.len(), 30);
        let st = s.gpu_stats().unwrap();
        // The prompt but its last token runs in prefill chunks (mat-mat, no readback); the last
        // prompt token and every generated token but the last are one submit each, reading back
        // only the next token's id.
        assert_eq!(st.prefill_tokens as usize, prompt.len() - 1, "{sampling:?}");
        assert_eq!(st.tokens as usize, g.ids.len(), "{sampling:?}");
        assert_eq!(st.submits, st.tokens, "one submit per token ({sampling:?})");
        assert_eq!(st.bytes_read_back, 4 * g.ids.len() as u64, "4 bytes per sampled token and nothing else ({sampling:?})");
        // Asking for the logits reads them, and only then.
        let before = s.gpu_stats().unwrap();
        let logits = s.step(g.ids[0], true).unwrap().unwrap().to_vec();
        assert_eq!(logits.len(), model.spec.vocab_size);
        let after = s.gpu_stats().unwrap();
        assert_eq!(after.bytes_read_back - before.bytes_read_back, 4 * model.spec.vocab_size as u64);
        assert_eq!(after.submits - before.submits, 1);
    }
}

#[test]
fn a_device_lost_mid_generation_moves_the_session_to_the_cpu_and_it_goes_on() {
    let model = tiny_model();
    let prompt = model.tokenizer.encode("The little dog", true).unwrap();
    let opts = GenerateOptions { max_tokens: 40, ignore_eos: true, ..Default::default() };
    let want = common::session(&model, "cpu", 256).generate(&prompt, &opts, |_| true).unwrap().ids;
    // A device of its own: the shared one must not be marked lost for the other tests.
    let ctx = block_on(pocketlm::backend::gpu::GpuContext::new(&GpuOptions::default())).unwrap();
    let mut s = Session::new_gpu(&model, block_on(pocketlm::backend::gpu::GpuModel::load(ctx, &model)).unwrap(), 256).unwrap();
    let mut g = s.start(&prompt, &opts).unwrap();
    let mut pieces = 0;
    while s.next_text(&mut g).unwrap().is_some() {
        pieces += 1;
        if pieces == 10 {
            s.gpu().unwrap().model().ctx().simulate_loss();
        }
    }
    assert_eq!(s.backend(), "cpu");
    assert!(s.fallback_reason().unwrap().contains("DEVICE_LOST"), "{:?}", s.fallback_reason());
    assert_eq!(g.finish().ids, want, "the generation continued on the CPU from the same cache");
}

#[test]
fn auto_runs_on_the_cpu_when_the_model_does_not_fit_and_gpu_says_why() {
    let model = tiny_model();
    let tiny_limit = GpuOptions { max_weight_binding: Some(16), ..Default::default() };
    let (s, adapter) = block_on(Session::open(&model, 64, BackendChoice::Auto, &tiny_limit)).unwrap();
    assert_eq!(s.backend(), "cpu");
    assert!(adapter.is_none());
    assert!(s.fallback_reason().unwrap().contains("GPU_LIMIT"), "{:?}", s.fallback_reason());
    let err = block_on(Session::open(&model, 64, BackendChoice::Gpu, &tiny_limit)).err().unwrap();
    assert_eq!(err.code(), "GPU_LIMIT");
    let (s, adapter) = block_on(Session::open(&model, 64, BackendChoice::Auto, &GpuOptions::default())).unwrap();
    assert_eq!(s.backend(), "gpu");
    assert!(adapter.unwrap().max_storage_buffer_binding_size >= 128 << 20, "the device gets the adapter's own limits");
}

#[test]
fn f32_activations_without_rounding_stay_close_to_the_cpu() {
    // The faster variant (RMSNorm folded into the mat-vec, f32 inputs): same tokens on a
    // model with clear margins, logits within 0.1 std.
    let model = tiny_model();
    let ctx = block_on(pocketlm::backend::gpu::GpuContext::new(&GpuOptions { quantized_activations: false, ..Default::default() })).unwrap();
    let weights = block_on(pocketlm::backend::gpu::GpuModel::load(ctx, &model)).unwrap();
    let mut gpu = Session::new_gpu(&model, weights, 64).unwrap();
    let mut cpu = Session::new(&model, 64).unwrap();
    for &t in &model.tokenizer.encode("Once upon a time, there was a", true).unwrap() {
        let c = cpu.step(t, true).unwrap().unwrap().to_vec();
        let g = gpu.step(t, true).unwrap().unwrap().to_vec();
        let mean = c.iter().sum::<f32>() / c.len() as f32;
        let std = (c.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / c.len() as f32).sqrt();
        let worst = c.iter().zip(&g).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst <= 0.1 * std, "logits {worst} apart (std {std})");
    }
}

#[test]
fn prefill_in_chunks_gives_the_logits_of_token_by_token_steps() {
    // Chunks of up to 32 tokens through the mat-mat kernels (8 tokens per workgroup, a partial
    // group at the end) against one mat-vec step per token, on layouts that exercise the
    // batched attention, RoPE, norms, post-norms, soft-caps, sliding windows and mixed types.
    for file in ["gemma2-layout-Q4_K_M.gguf", "smollm2-135m-Q4_K_M.gguf"] {
        let path = common::root().join("tests/synthetic").join(file);
        let model = Model::open(&path, &Default::default()).unwrap_or_else(|e| panic!("{e}: run python3 tests/synthetic/make_synthetic.py"));
        let prompt: Vec<u32> = (0..45u32).map(|i| (i * 7919 + 13) % model.spec.vocab_size as u32).collect();
        let mut chunked = common::session(&model, "gpu", 128);
        chunked.prefill(&prompt).unwrap();
        let a = chunked.step(5, true).unwrap().unwrap().to_vec();
        assert_eq!(chunked.gpu_stats().unwrap().prefill_submits, 2, "{file}: 44 prompt tokens in chunks of 32");
        let mut stepwise = common::session(&model, "gpu", 128);
        for &t in &prompt {
            stepwise.step(t, false).unwrap();
        }
        let b = stepwise.step(5, true).unwrap().unwrap().to_vec();
        let mean = b.iter().sum::<f32>() / b.len() as f32;
        let std = (b.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / b.len() as f32).sqrt();
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        eprintln!("{file}: chunked vs stepwise prefill: worst logit difference {worst} (std {std})");
        assert!(worst <= 1e-3 * std, "{file}: logits {worst} apart (std {std})");
    }
}
