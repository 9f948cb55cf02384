//! Every GPU kernel against an independent reference on random inputs: quantized mat-vec of
//! every weight type against an f64 sum of the CPU's reference dequantization; embedding,
//! RoPE + Q/K norm + KV write, split-KV attention, the element-wise ops and sampling against
//! the CPU backend. Natively on Vulkan (Mesa's lavapipe on machines without a GPU), with and
//! without subgroups, and with a tiny binding limit that splits matrices across buffers.
//!
//! Tolerances, stated per op (f32 arithmetic on the GPU, f64 or f32 references):
//! - mat-vec: |gpu − ref| ≤ 1e-4 · Σ|wᵢ·xᵢ| (+1e-6): f32 sums of ≤ 2048 products in another order;
//! - embedding: exact (dequantization is exact in every layout);
//! - RoPE/norm/KV: 1e-4 absolute for Q, f16 rounding of the CPU's value for K and V;
//! - attention: 2e-3 absolute on outputs of magnitude ~1 (the CPU rounds Q and the softmax
//!   weights to f16 like ggml; the GPU keeps them f32);
//! - element-wise: 1e-5 relative; sampling: the same token set as the CPU sampler, and draw
//!   frequencies within 0.015 of the CPU's probabilities.

mod random_blocks;

use std::sync::Arc;

use half::f16;
use pocketlm::backend::cpu;
use pocketlm::backend::gpu::context::block_on;
use pocketlm::backend::gpu::kernels::{KernelKind, MatVecOut};
use pocketlm::backend::gpu::ops::OpRunner;
use pocketlm::backend::gpu::{GpuContext, GpuOptions};
use pocketlm::quant::{dequantize, GgmlType, QMatrix, RowOrder};
use pocketlm::sampling::{Sampler, SamplingParams};
use random_blocks::{random_row, ALL_TYPES};

fn runner(opts: GpuOptions) -> OpRunner {
    let ctx = block_on(GpuContext::new(&opts)).expect("a GPU adapter (Mesa's lavapipe is installed by scripts/setup.sh)");
    eprintln!("adapter: {:?}", ctx.summary);
    OpRunner::new(ctx).unwrap()
}

fn runners() -> Vec<(&'static str, OpRunner)> {
    vec![
        ("default", runner(GpuOptions::default())),
        ("no subgroups, weights split in 4 KiB buffers", runner(GpuOptions { subgroups: false, f16: false, max_weight_binding: Some(4096), ..Default::default() })),
    ]
}

fn random_matrix(rng: &mut fastrand::Rng, ty: GgmlType, rows: usize, cols: usize) -> QMatrix {
    let bytes: Vec<u8> = (0..rows).flat_map(|_| random_row(rng, ty, cols)).collect();
    QMatrix::owned(ty, rows, cols, bytes)
}

/// `m` with its rows in `order` (the CPU kernels' Q4_0 / Q5_0 interleaving), which the GPU packer
/// must read back in the file's order.
fn reordered(m: &QMatrix, order: RowOrder) -> QMatrix {
    let x = QMatrix::owned_in_order(m.ty, m.rows, m.cols, m.bytes().to_vec(), order);
    assert_eq!(x.order(), order);
    x
}

fn dequantized(m: &QMatrix) -> Vec<f64> {
    let mut out = vec![0.0f32; m.rows * m.cols];
    dequantize(m.ty, m.bytes(), &mut out);
    out.into_iter().map(|v| v as f64).collect()
}

fn random_vec(rng: &mut fastrand::Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| (rng.f32() - 0.5) * 2.0 * scale).collect()
}

/// (value, Σ|terms|) of each row of `w · x` in f64.
fn reference(w: &[f64], cols: usize, x: &[f64]) -> Vec<(f64, f64)> {
    w.chunks_exact(cols).map(|row| row.iter().zip(x).fold((0.0, 0.0), |(s, a), (w, x)| (s + w * x, a + (w * x).abs()))).collect()
}

fn assert_close(what: &str, got: &[f32], want: &[(f64, f64)]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, (v, mag))) in got.iter().zip(want).enumerate() {
        let tol = 1e-4 * mag + 1e-6;
        assert!((*g as f64 - v).abs() <= tol, "{what}: row {i}: gpu {g}, reference {v} (tolerance {tol})");
    }
}

#[test]
fn matvec_of_every_weight_type_matches_an_f64_reference() {
    let mut rng = fastrand::Rng::with_seed(7);
    for (name, r) in runners() {
        for ty in ALL_TYPES {
            for (rows, cols) in [(37, 256), (64, 512)] {
                let m = random_matrix(&mut rng, ty, rows, cols);
                let x = random_vec(&mut rng, cols, 2.0);
                let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
                let got = block_on(r.matvec(&[&m], false, &x, None, None, MatVecOut::Store, &vec![0.0; rows])).unwrap();
                assert_close(&format!("{name} {} {rows}x{cols}", ty.name()), &got, &reference(&dequantized(&m), cols, &xd));
                if let Some(order) = RowOrder::interleaved(ty) {
                    let x4 = reordered(&m, order);
                    let got4 = block_on(r.matvec(&[&x4], false, &x, None, None, MatVecOut::Store, &vec![0.0; rows])).unwrap();
                    assert_eq!(got4, got, "{name} {} {rows}x{cols}: rows interleaved for the CPU vs in the file's order", ty.name());
                }
            }
        }
    }
}

#[test]
fn fused_matvec_variants_match_their_unfused_reference() {
    let mut rng = fastrand::Rng::with_seed(8);
    for (name, r) in runners() {
        for ty in [GgmlType::Q4_0, GgmlType::Q4K, GgmlType::Q6K] {
            let (rows, cols) = (48, 512);
            let (a, b) = (random_matrix(&mut rng, ty, rows, cols), random_matrix(&mut rng, ty, 16, cols));
            let x = random_vec(&mut rng, cols, 3.0);
            let norm_w = random_vec(&mut rng, cols, 1.5);
            let bias = random_vec(&mut rng, rows + 16, 1.0);
            let eps = 1e-5f32;
            // RMSNorm folded in, in f64.
            let ms = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / cols as f64;
            let xn: Vec<f64> = x.iter().zip(&norm_w).map(|(&v, &w)| v as f64 / (ms + eps as f64).sqrt() * w as f64).collect();
            // Two matrices stacked (Q and K in one pass), with a bias.
            let mut w = dequantized(&a);
            w.extend(dequantized(&b));
            let want: Vec<(f64, f64)> = reference(&w, cols, &xn).into_iter().zip(&bias).map(|((v, m), &b)| (v + b as f64, m + (b as f64).abs())).collect();
            let got = block_on(r.matvec(&[&a, &b], false, &x, Some((&norm_w, eps)), Some(&bias), MatVecOut::Store, &vec![0.0; rows + 16])).unwrap();
            assert_close(&format!("{name} {} norm+bias+stacked", ty.name()), &got, &want);
            // Accumulating into the residual.
            let init = random_vec(&mut rng, rows, 5.0);
            let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let want: Vec<(f64, f64)> = reference(&dequantized(&a), cols, &xd).into_iter().zip(&init).map(|((v, m), &i)| (v + i as f64, m + (i as f64).abs())).collect();
            let got = block_on(r.matvec(&[&a], false, &x, None, None, MatVecOut::Add, &init)).unwrap();
            assert_close(&format!("{name} {} add", ty.name()), &got, &want);
            // Gate and up in one pass, SiLU and GELU.
            let up = random_matrix(&mut rng, ty, rows, cols);
            let (g, u) = (reference(&dequantized(&a), cols, &xn), reference(&dequantized(&up), cols, &xn));
            for (op, act) in [(MatVecOut::GatedSilu, false), (MatVecOut::GatedGelu, true)] {
                let got = block_on(r.matvec(&[&a, &up], true, &x, Some((&norm_w, eps)), None, op, &vec![0.0; rows])).unwrap();
                for i in 0..rows {
                    let (gv, uv) = (g[i].0, u[i].0);
                    let act_v = if act { 0.5 * gv * (1.0 + (0.7978845608 * (gv + 0.044715 * gv.powi(3))).tanh()) } else { gv / (1.0 + (-gv).exp()) };
                    let want = act_v * uv;
                    let tol = 1e-4 * (g[i].1 * u[i].1.max(1.0) + u[i].1 * g[i].1.max(1.0)) + 1e-5;
                    assert!((got[i] as f64 - want).abs() <= tol, "{name} {} {op:?} row {i}: gpu {}, reference {want}", ty.name(), got[i]);
                }
            }
        }
    }
}

#[test]
fn embedding_rows_are_exact_for_every_type() {
    let mut rng = fastrand::Rng::with_seed(9);
    for (name, r) in runners() {
        for ty in ALL_TYPES {
            let m = random_matrix(&mut rng, ty, 40, 256);
            let m = RowOrder::interleaved(ty).map_or(m.clone(), |order| reordered(&m, order));
            for token in [0u32, 17, 39] {
                let got = block_on(r.embed(&m, token, 2.0)).unwrap();
                let mut want = vec![0.0; 256];
                m.dequantize_row(token as usize, &mut want);
                let want: Vec<f32> = want.iter().map(|v| v * 2.0).collect();
                assert_eq!(got, want, "{name} {} row {token}", ty.name());
            }
        }
    }
}

#[test]
fn rope_norms_and_kv_write_match_the_cpu() {
    let mut rng = fastrand::Rng::with_seed(10);
    for (name, r) in runners() {
        for (nh, nkv, hd, rot, interleaved, norms) in [(4, 2, 64, 64, false, false), (3, 1, 128, 64, true, false), (2, 2, 64, 64, false, true)] {
            let (q_dim, kv_dim) = (nh * hd, nkv * hd);
            let qkv = random_vec(&mut rng, q_dim + 2 * kv_dim, 2.0);
            let pos = 37;
            let inv_freq: Vec<f32> = (0..rot / 2).map(|i| 10000f32.powf(-2.0 * i as f32 / rot as f32)).collect();
            let (qn, kn) = (random_vec(&mut rng, hd, 1.5), random_vec(&mut rng, hd, 1.5));
            let eps = 1e-6;
            let (q, k, v) = block_on(r.rope_kv(&qkv, nh, nkv, hd, rot, interleaved, pos, &inv_freq, 1.0, norms.then_some((&qn[..], &kn[..], eps)))).unwrap();
            let (mut cq, mut ck) = (qkv[..q_dim].to_vec(), qkv[q_dim..q_dim + kv_dim].to_vec());
            if norms {
                cpu::rms_norm_heads(&mut cq, &qn, eps, hd);
                cpu::rms_norm_heads(&mut ck, &kn, eps, hd);
            }
            cpu::rope(&mut cq, hd, rot, pos, &inv_freq, 1.0, interleaved);
            cpu::rope(&mut ck, hd, rot, pos, &inv_freq, 1.0, interleaved);
            for (i, (g, c)) in q.iter().zip(&cq).enumerate() {
                assert!((g - c).abs() <= 1e-4 * (1.0 + c.abs()), "{name}: q[{i}] gpu {g} cpu {c}");
            }
            for (i, (g, c)) in k.iter().zip(&ck).enumerate() {
                let want = f16::from_f32(*c).to_f32();
                assert!((g - want).abs() <= 2e-3 * (1.0 + want.abs()), "{name}: k[{i}] gpu {g} cpu {want}");
            }
            let want_v: Vec<f32> = qkv[q_dim + kv_dim..].iter().map(|&x| f16::from_f32(x).to_f32()).collect();
            assert_eq!(v, want_v, "{name}: v is the f16 of the input");
        }
    }
}

#[test]
fn split_kv_attention_matches_the_cpu() {
    let mut rng = fastrand::Rng::with_seed(11);
    for (name, r) in runners() {
        for (nh, nkv, hd, n_ctx, window, cap) in [(4, 2, 64, 1, 0, None), (4, 4, 64, 70, 0, None), (6, 2, 128, 200, 0, None), (4, 2, 64, 150, 100, Some(50.0)), (2, 1, 256, 65, 0, None)] {
            let kv_dim = nkv * hd;
            let q = random_vec(&mut rng, nh * hd, 1.0);
            let kc: Vec<f16> = random_vec(&mut rng, n_ctx * kv_dim, 1.0).into_iter().map(f16::from_f32).collect();
            let vc: Vec<f16> = random_vec(&mut rng, n_ctx * kv_dim, 1.0).into_iter().map(f16::from_f32).collect();
            let scale = 1.0 / (hd as f32).sqrt() * 4.0;
            let got = block_on(r.attention(&q, &kc, &vc, nh, nkv, hd, window, n_ctx, scale, cap)).unwrap();
            let mut want = vec![0.0; nh * hd];
            cpu::attention(&q, &kc, &vc, nh, nkv, hd, n_ctx - 1..n_ctx, Some(window).filter(|&w| w > 0), scale, cap, &mut want);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-4, "{name} heads {nh}/{nkv} hd {hd} ctx {n_ctx}: out[{i}] gpu {g} cpu {w}");
            }
        }
    }
}

#[test]
fn element_wise_ops_match_the_cpu() {
    let mut rng = fastrand::Rng::with_seed(12);
    for (name, r) in runners() {
        let n = 1000;
        let (x, y, w) = (random_vec(&mut rng, n, 6.0), random_vec(&mut rng, n, 3.0), random_vec(&mut rng, n, 1.5));
        let close = |what: &str, got: &[f32], want: &[f32]| {
            for (i, (g, c)) in got.iter().zip(want).enumerate() {
                assert!((g - c).abs() <= 1e-5 * (1.0 + c.abs()), "{name} {what}[{i}]: gpu {g} cpu {c}");
            }
        };
        let mut want = x.clone();
        cpu::silu_mul(&mut want, &y);
        close("silu_mul", &block_on(r.vector_op(KernelKind::ActMul, &x, &y, &w, 0.0, false)).unwrap(), &want);
        let mut want = x.clone();
        cpu::gelu_mul(&mut want, &y);
        close("gelu_mul", &block_on(r.vector_op(KernelKind::ActMul, &x, &y, &w, 0.0, true)).unwrap(), &want);
        let mut normed = vec![0.0; n];
        cpu::rms_norm(&y, &w, 1e-6, &mut normed);
        let want: Vec<f32> = x.iter().zip(&normed).map(|(a, b)| a + b).collect();
        close("norm_add", &block_on(r.vector_op(KernelKind::NormAdd, &x, &y, &w, 1e-6, false)).unwrap(), &want);
        let mut want = x.clone();
        cpu::soft_cap(&mut want, 5.0);
        close("soft_cap", &block_on(r.vector_op(KernelKind::SoftCap, &x, &y, &w, 5.0, false)).unwrap(), &want);
    }
}

/// Seven candidate logits 0.3–0.5 apart over a tail far below them (its mass < 1e-9), so
/// that every token either sampler can draw is one of the seven.
fn ranked_logits(rng: &mut fastrand::Rng, n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n).map(|i| -30.0 - (i % 97) as f32 * 0.1).collect();
    for l in [4.0f32, 3.5, 3.2, 2.9, 2.5, 2.0, 1.0] {
        let mut at = rng.usize(..n);
        while v[at] > 0.0 {
            at = rng.usize(..n);
        }
        v[at] = l;
    }
    v
}

#[test]
fn gpu_sampling_keeps_the_cpu_samplers_tokens_with_its_probabilities() {
    let mut rng = fastrand::Rng::with_seed(13);
    let r = runner(GpuOptions::default());
    let n = 5000;
    let logits = ranked_logits(&mut rng, n);
    // Greedy, and greedy after penalties, equal the CPU's choice.
    let greedy = SamplingParams::default();
    assert_eq!(block_on(r.sample(&logits, &greedy, 0.5, &[])).unwrap(), cpu_sample(&logits, &greedy, &[]));
    let best = cpu_sample(&logits, &greedy, &[]);
    let pen = SamplingParams { repetition_penalty: 1.5, frequency_penalty: 0.3, presence_penalty: 0.2, ..Default::default() };
    let history = [best, best, 3];
    let counts = [(best, 2), (3, 1)];
    assert_eq!(block_on(r.sample(&logits, &pen, 0.5, &counts)).unwrap(), cpu_sample(&logits, &pen, &history), "penalties move the choice as on the CPU");
    for params in [
        SamplingParams { temperature: 0.8, ..Default::default() },
        SamplingParams { temperature: 1.0, top_k: 3, ..Default::default() },
        SamplingParams { temperature: 1.3, top_p: 0.7, ..Default::default() },
        SamplingParams { temperature: 1.0, min_p: 0.3, ..Default::default() },
        SamplingParams { temperature: 0.7, top_k: 5, top_p: 0.9, min_p: 0.05, ..Default::default() },
    ] {
        let want = cpu_probabilities(&logits, &params);
        let draws = 400;
        let mut counts = std::collections::HashMap::new();
        for i in 0..draws {
            let u = (i as f32 + 0.5) / draws as f32;
            *counts.entry(block_on(r.sample(&logits, &params, u, &[])).unwrap()).or_insert(0usize) += 1;
        }
        for t in counts.keys() {
            assert!(want.contains_key(t), "{params:?}: the GPU drew {t}, which the CPU sampler never keeps");
        }
        for (t, p) in &want {
            let f = *counts.get(t).unwrap_or(&0) as f64 / draws as f64;
            assert!((f - p).abs() <= 0.015, "{params:?}: token {t} drawn {f}, CPU probability {p}");
        }
    }
}

fn cpu_sample(logits: &[f32], params: &SamplingParams, history: &[u32]) -> u32 {
    Sampler::new(params.clone()).unwrap().sample(&mut logits.to_vec(), history)
}

/// The CPU sampler's distribution, estimated from 20 000 seeded draws (tokens it keeps and
/// their frequencies).
fn cpu_probabilities(logits: &[f32], params: &SamplingParams) -> std::collections::HashMap<u32, f64> {
    let mut s = Sampler::new(SamplingParams { seed: 99, ..params.clone() }).unwrap();
    let mut counts = std::collections::HashMap::new();
    let n = 20000;
    for _ in 0..n {
        *counts.entry(s.sample(&mut logits.to_vec(), &[])).or_insert(0usize) += 1;
    }
    counts.into_iter().map(|(t, c)| (t, c as f64 / n as f64)).collect()
}

#[test]
fn a_buffer_beyond_the_binding_limit_is_a_typed_error() {
    let r = runner(GpuOptions::default());
    let ctx: &Arc<GpuContext> = r.kernels.ctx();
    let err = ctx.buffer("huge", ctx.max_binding() + 16, pocketlm::backend::gpu::wgpu::BufferUsages::STORAGE).unwrap_err();
    assert_eq!(err.code(), "GPU_LIMIT", "{err}");
}

#[test]
fn readbacks_from_threads_sharing_one_device_each_get_their_own_bytes() {
    // One device for several sessions' threads (the test binaries share one): the thread whose
    // poll sees a copy finish runs every finished map's callback, after its own poll returns,
    // so a read must wait for its callback, not only for its poll. Four threads, each copying
    // its own words to its own staging buffer and reading them back, many times.
    use pocketlm::backend::gpu::wgpu;
    let ctx = block_on(GpuContext::new(&GpuOptions::default())).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let ctx = &ctx;
            s.spawn(move || {
                let staging = ctx.buffer("staging", 64, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST).unwrap();
                for i in 0..400u32 {
                    let words: Vec<u32> = (0..16).map(|k| t << 24 | i << 8 | k).collect();
                    let src = ctx.buffer("src", 64, wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST).unwrap();
                    ctx.queue.write_buffer(&src, 0, bytemuck::cast_slice(&words));
                    let mut enc = ctx.device.create_command_encoder(&Default::default());
                    enc.copy_buffer_to_buffer(&src, 0, &staging, 0, 64);
                    ctx.queue.submit([enc.finish()]);
                    let got = block_on(ctx.read(&staging, 64)).unwrap_or_else(|e| panic!("thread {t}, read {i}: {e}"));
                    let got: Vec<u32> = got.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().unwrap())).collect();
                    assert_eq!(got, words, "thread {t}, read {i}");
                }
            });
        }
    });
}
