//! A model on the GPU: weights repacked and uploaded once ([`GpuModel`]), and sessions
//! ([`GpuSession`]) whose KV cache, activations, bind groups and dispatch list are built once;
//! each token is then one parameter write, one encoder, one submit and a 4-byte readback.

use std::sync::Arc;

use super::context::GpuContext;
use super::kernels::{fold, grid, Dims, Dispatch, Grid, KernelKind, Kernels, MatVecOut, Step};
use super::repack::{pack, padded_cols, GpuFormat};
use crate::error::{Error, GpuFailure, Result};
use crate::model::spec::{Activation, ModelSpec};
use crate::model::Model;
use crate::backend::cpu::acts::ActKind;
use crate::quant::{GgmlType, QMatrix};
use crate::sampling::SamplingParams;

/// One binding's worth of a matrix's rows.
pub struct MatPart {
    pub buffer: wgpu::Buffer,
    pub first_row: usize,
    pub rows: usize,
    pub scale_offset: usize,
}

/// A matrix (or several stacked by rows, or a gate/up pair) in its GPU layout.
pub struct GpuMatrix {
    /// The file's type (which decides how the CPU rounds the activations it multiplies).
    pub ty: GgmlType,
    pub format: GpuFormat,
    pub cols: usize,
    /// Output rows (for a gate/up pair: rows of each).
    pub rows: usize,
    pub gated: bool,
    pub parts: Vec<MatPart>,
}

impl GpuMatrix {
    /// `mats` stacked by rows (`gated`: exactly a gate and an up matrix, computed together).
    pub fn upload(ctx: &GpuContext, label: &str, mats: &[&QMatrix], gated: bool) -> Result<GpuMatrix> {
        let ty = mats[0].ty;
        if mats.iter().any(|m| m.ty != ty || m.cols != mats[0].cols) {
            return Err(Error::gpu(GpuFailure::Internal, format!("{label}: stacked matrices must share a type and a width")));
        }
        let cols = padded_cols(mats[0].cols);
        let format = GpuFormat::for_type(ty);
        let rows = if gated { mats[0].rows } else { mats.iter().map(|m| m.rows).sum() };
        let per_row = (format.row_words(cols) + format.scale_words(1, cols) + 1) as u64 * 4 * if gated { 2 } else { 1 };
        let max_rows = (ctx.max_weight_binding() / per_row) as usize;
        if max_rows == 0 {
            return Err(Error::gpu(GpuFailure::Limit, format!("{label}: one row needs {per_row} bytes, more than the adapter binds")));
        }
        let mut parts = Vec::new();
        let mut first = 0;
        while first < rows {
            let n = max_rows.min(rows - first);
            let ranges: Vec<(&QMatrix, usize, usize)> = if gated { vec![(mats[0], first, n), (mats[1], first, n)] } else { row_ranges(mats, first, n) };
            let packed = pack(&ranges);
            let buffer = ctx.upload(label, &packed.words)?;
            parts.push(MatPart { buffer, first_row: first, rows: n, scale_offset: packed.scale_offset });
            first += n;
        }
        Ok(GpuMatrix { ty, format, cols, rows, gated, parts })
    }

    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.buffer.size()).sum()
    }

    /// Invocations sharing a row: enough 32-value chunks for each, at most 64.
    fn threads_per_row(&self) -> u32 {
        let chunks = (self.cols / 32).max(1) as u32;
        (1u32 << (31 - chunks.leading_zeros())).min(64)
    }

    /// The dispatches of `out[t][out_offset..] (op)= self · x[t]` for the step's tokens, one per
    /// part: `tokens` token rows per workgroup (1: decode mat-vec; 8: prefill mat-mat);
    /// `out_stride` and `x_stride` are the row strides of `out` and `x` in values.
    #[allow(clippy::too_many_arguments)]
    pub fn matvec(&self, k: &Kernels, step: &wgpu::Buffer, x: &wgpu::Buffer, norm: Option<&wgpu::Buffer>, bias: Option<&wgpu::Buffer>, out: &wgpu::Buffer, out_offset: usize, op: MatVecOut, eps: f32, dummy: &wgpu::Buffer, tokens: u32, out_stride: usize, x_stride: usize) -> Result<Vec<Dispatch>> {
        let tpr = self.threads_per_row();
        let kernel = k.get(KernelKind::MatVec { format: self.format, norm: norm.is_some(), bias: bias.is_some(), out: op, threads_per_row: tpr, tokens })?;
        let ctx = k.ctx();
        let max = ctx.limits.max_compute_workgroups_per_dimension;
        self.parts
            .iter()
            .map(|p| {
                let first = (out_offset + p.first_row) as u32;
                let dims = Dims { a: [p.rows as u32, self.cols as u32, p.scale_offset as u32, first], b: [first, out_stride as u32, (x_stride / 4) as u32, 0], f: [eps, 0.0, 0.0, 0.0] };
                let groups = (p.rows as u32).div_ceil(64 / tpr);
                Dispatch::new(ctx, "matvec", kernel.clone(), dims, step, &[&p.buffer, x, norm.unwrap_or(dummy), bias.unwrap_or(dummy), out], Grid::TokensZ(fold(groups, max), tokens))
            })
            .collect()
    }
}

/// The `quant_acts.wgsl` rounding (its `kind`) the CPU applies to inputs of `ty` weights.
fn act_kind_index(ty: GgmlType) -> usize {
    match ActKind::for_weights(ty) {
        ActKind::Q8_0 | ActKind::Q8_1 => 0,
        ActKind::Q8K => 1,
        ActKind::F16 => 2,
        ActKind::F32 => 3,
    }
}

/// Rows `first..first+n` of `mats` stacked, as ranges of the individual matrices.
fn row_ranges<'a>(mats: &[&'a QMatrix], mut first: usize, mut n: usize) -> Vec<(&'a QMatrix, usize, usize)> {
    let mut out = Vec::new();
    for m in mats {
        if first >= m.rows {
            first -= m.rows;
            continue;
        }
        let take = n.min(m.rows - first);
        out.push((*m, first, take));
        n -= take;
        first = 0;
        if n == 0 {
            break;
        }
    }
    out
}

enum Ffn {
    Gated(GpuMatrix),
    Separate(GpuMatrix, GpuMatrix),
}

struct GpuLayer {
    attn_norm: wgpu::Buffer,
    /// Q, K and V: one matrix when they share a type, else one per run of equal types, each
    /// with its offset in the QKV output.
    qkv: Vec<(GpuMatrix, usize)>,
    qkv_bias: Option<wgpu::Buffer>,
    q_norm: Option<wgpu::Buffer>,
    k_norm: Option<wgpu::Buffer>,
    inv_freq: Vec<f32>,
    wo: GpuMatrix,
    post_attn_norm: Option<wgpu::Buffer>,
    ffn_norm: wgpu::Buffer,
    ffn: Ffn,
    w_down: GpuMatrix,
    post_ffn_norm: Option<wgpu::Buffer>,
}

/// A model's weights on one device, shared by its sessions.
pub struct GpuModel {
    pub kernels: Kernels,
    pub spec: ModelSpec,
    embed: GpuMatrix,
    /// `None`: tied to the embedding.
    output: Option<GpuMatrix>,
    output_norm: wgpu::Buffer,
    layers: Vec<GpuLayer>,
    /// Bytes of weights on the device.
    pub weight_bytes: u64,
}

fn same_bytes(a: &QMatrix, b: &QMatrix) -> bool {
    std::ptr::eq(a.bytes().as_ptr(), b.bytes().as_ptr()) && a.bytes().len() == b.bytes().len()
}

impl GpuModel {
    /// Checks the model fits the kernels and the adapter, then uploads every weight.
    pub async fn load(ctx: Arc<GpuContext>, model: &Model) -> Result<Arc<GpuModel>> {
        let spec = &model.spec;
        let w = &model.weights;
        let unfit = |m: String| Err(Error::gpu(GpuFailure::Limit, m));
        if spec.head_dim > 256 || spec.head_dim % 2 != 0 || spec.rope_dims > spec.head_dim {
            return unfit(format!("head size {} is beyond the GPU attention kernel (even, at most 256)", spec.head_dim));
        }
        if spec.dim % 32 != 0 || spec.n_kv_heads == 0 || spec.n_heads % spec.n_kv_heads != 0 {
            return unfit("model width or head counts the GPU kernels do not handle".into());
        }
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut layers = Vec::with_capacity(spec.n_layers);
        for (l, lw) in w.layers.iter().enumerate() {
            let mut qkv = Vec::new();
            let mut offset = 0;
            let mats = [&lw.wq, &lw.wk, &lw.wv];
            let mut i = 0;
            while i < 3 {
                let mut j = i + 1;
                while j < 3 && mats[j].ty == mats[i].ty {
                    j += 1;
                }
                let m = GpuMatrix::upload(&ctx, &format!("blk.{l}.qkv"), &mats[i..j], false)?;
                let rows = m.rows;
                qkv.push((m, offset));
                offset += rows;
                i = j;
            }
            let qkv_bias = if lw.bq.is_some() || lw.bk.is_some() || lw.bv.is_some() {
                let mut b = Vec::with_capacity(offset);
                for (v, n) in [(&lw.bq, spec.q_dim()), (&lw.bk, spec.kv_dim()), (&lw.bv, spec.kv_dim())] {
                    match v {
                        Some(v) => b.extend_from_slice(v),
                        None => b.extend(std::iter::repeat_n(0.0, n)),
                    }
                }
                Some(ctx.upload_f32("qkv bias", &b)?)
            } else {
                None
            };
            let opt = |v: &Option<Vec<f32>>, name: &str| v.as_ref().map(|v| ctx.upload_f32(name, v)).transpose();
            let ffn = if lw.w_gate.ty == lw.w_up.ty {
                Ffn::Gated(GpuMatrix::upload(&ctx, &format!("blk.{l}.ffn_gate_up"), &[&lw.w_gate, &lw.w_up], true)?)
            } else {
                Ffn::Separate(GpuMatrix::upload(&ctx, &format!("blk.{l}.ffn_gate"), &[&lw.w_gate], false)?, GpuMatrix::upload(&ctx, &format!("blk.{l}.ffn_up"), &[&lw.w_up], false)?)
            };
            layers.push(GpuLayer {
                attn_norm: ctx.upload_f32("attn_norm", &lw.attn_norm)?,
                qkv,
                qkv_bias,
                q_norm: opt(&lw.q_norm, "q_norm")?,
                k_norm: opt(&lw.k_norm, "k_norm")?,
                inv_freq: spec.inv_freq(l),
                wo: GpuMatrix::upload(&ctx, &format!("blk.{l}.attn_output"), &[&lw.wo], false)?,
                post_attn_norm: opt(&lw.post_attn_norm, "post_attn_norm")?,
                ffn_norm: ctx.upload_f32("ffn_norm", &lw.ffn_norm)?,
                ffn,
                w_down: GpuMatrix::upload(&ctx, &format!("blk.{l}.ffn_down"), &[&lw.w_down], false)?,
                post_ffn_norm: opt(&lw.post_ffn_norm, "post_ffn_norm")?,
            });
        }
        let embed = GpuMatrix::upload(&ctx, "token_embd", &[&w.token_embd], false)?;
        let output = if same_bytes(&w.output, &w.token_embd) { None } else { Some(GpuMatrix::upload(&ctx, "output", &[&w.output], false)?) };
        let output_norm = ctx.upload_f32("output_norm", &w.output_norm)?;
        if let Some(e) = scope.pop().await {
            let bytes = w.matrices().map(|m| m.bytes().len() as u64).sum();
            return Err(Error::OutOfMemory { what: format!("the weights of {} on the GPU ({e})", model.name), bytes });
        }
        ctx.check()?;
        let mut weight_bytes = embed.bytes() + output.as_ref().map_or(0, |o| o.bytes());
        for l in &layers {
            weight_bytes += l.qkv.iter().map(|(m, _)| m.bytes()).sum::<u64>() + l.wo.bytes() + l.w_down.bytes();
            weight_bytes += match &l.ffn {
                Ffn::Gated(m) => m.bytes(),
                Ffn::Separate(g, u) => g.bytes() + u.bytes(),
            };
        }
        Ok(Arc::new(GpuModel { kernels: Kernels::new(ctx), spec: spec.clone(), embed, output, output_norm, layers, weight_bytes }))
    }

    pub fn ctx(&self) -> &Arc<GpuContext> {
        self.kernels.ctx()
    }
}

/// RoPE's (cos, sin) × `attn_factor` for `positions` positions and each pair of `inv_freq`,
/// computed as the CPU backend computes them (the GPU's own sin/cos lose accuracy on large
/// angles on some drivers).
pub fn rope_table(inv_freq: &[f32], attn_factor: f32, positions: usize) -> Vec<f32> {
    let mut t = Vec::with_capacity(positions * inv_freq.len() * 2);
    for pos in 0..positions {
        for &f in inv_freq {
            let (sin, cos) = (pos as f32 * f).sin_cos();
            t.extend([cos * attn_factor, sin * attn_factor]);
        }
    }
    t
}

/// Counters proving the per-token rule (one submit, a 4-byte readback).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct GpuStats {
    /// Single-token steps (decode, and the last prompt token) and their submits.
    pub tokens: u64,
    pub submits: u64,
    /// Prompt tokens run in prefill chunks, and those chunks' submits.
    pub prefill_tokens: u64,
    pub prefill_submits: u64,
    pub bytes_read_back: u64,
    /// Dispatches recorded (all in one compute pass per token).
    pub dispatches: u64,
}

/// What a step should leave for the caller.
#[derive(Clone, Copy)]
pub enum Want<'a> {
    /// Nothing (prompt tokens before the last).
    Nothing,
    /// The next-token logits, read back in full.
    Logits,
    /// A token sampled on the GPU.
    Token { params: &'a SamplingParams, draw: f32, penalties: &'a [(u32, u32)] },
}

pub enum StepOutput {
    Nothing,
    Logits(Vec<f32>),
    Token(u32),
}

/// A session's buffers and its recorded dispatches.
pub struct GpuSession {
    model: Arc<GpuModel>,
    pub capacity: usize,
    /// Prompt tokens one prefill submit runs (the activation buffers' rows).
    pub prefill_chunk: usize,
    step: wgpu::Buffer,
    tokens: wgpu::Buffer,
    logits: wgpu::Buffer,
    pen: wgpu::Buffer,
    result: wgpu::Buffer,
    staging: wgpu::Buffer,
    /// One token: mat-vecs, then the output head and the sampler.
    decode: Vec<Dispatch>,
    head: Vec<Dispatch>,
    sampling: Vec<Dispatch>,
    /// A chunk of prompt tokens: mat-mats (8 tokens per workgroup), no head.
    prefill: Vec<Dispatch>,
    pub stats: GpuStats,
}

/// Prefill's token rows per mat-mat workgroup.
const PREFILL_TOKENS_PER_GROUP: u32 = 8;

/// The buffers one forward pass reads and writes, each with room for `rows` tokens.
struct Activations {
    x: wgpu::Buffer,
    qkv: wgpu::Buffer,
    att: wgpu::Buffer,
    tmp: wgpu::Buffer,
    gate: wgpu::Buffer,
    up: wgpu::Buffer,
    xq: Vec<wgpu::Buffer>,
    stats: wgpu::Buffer,
    scores: wgpu::Buffer,
    part: wgpu::Buffer,
}

impl GpuSession {
    pub fn new(model: Arc<GpuModel>, capacity: usize) -> Result<GpuSession> {
        let ctx = model.ctx().clone();
        let k = &model.kernels;
        let s = &model.spec;
        let (dim, q_dim, kv_dim, hd, nh, nkv) = (s.dim, s.q_dim(), s.kv_dim(), s.head_dim, s.n_heads, s.n_kv_heads);
        let st = wgpu::BufferUsages::STORAGE;
        let f32s = |n: usize| n as u64 * 4;
        let buf = |label: &str, bytes: u64, extra: wgpu::BufferUsages| ctx.buffer(label, bytes, st | extra);
        let none = wgpu::BufferUsages::empty();
        let max_splits = capacity.div_ceil(64);
        // Prefill chunks of up to 32 tokens, fewer when the per-token attention scores
        // (n_heads × capacity) would pass 64 MiB or a binding.
        let per_token_scores = f32s(nh * capacity);
        let rows = (32u64).min((64 << 20) / per_token_scores).min(ctx.max_binding() / per_token_scores).max(1) as usize;
        let (att_w, ffn_w) = (padded_cols(q_dim), padded_cols(s.ffn_dim));
        let qkv_w = q_dim + 2 * kv_dim;
        let widest = padded_cols(dim.max(q_dim).max(s.ffn_dim));
        let a = Activations {
            x: buf("x", f32s(rows * dim), none)?,
            qkv: buf("qkv", f32s(rows * qkv_w), none)?,
            att: buf("att", f32s(rows * att_w), none)?,
            tmp: buf("tmp", f32s(rows * dim), none)?,
            gate: buf("gate", f32s(rows * ffn_w), none)?,
            up: buf("up", f32s(rows * ffn_w), none)?,
            xq: (0..4).map(|_| buf("rounded activations", f32s(rows * widest), none)).collect::<Result<_>>()?,
            stats: buf("attention split stats", f32s(rows * nh * max_splits * 2), none)?,
            scores: buf("attention scores", per_token_scores * rows as u64, none)?,
            part: buf("attention split values", f32s(rows * nh * max_splits * hd), none)?,
        };
        let step = ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some("step"), size: 48, usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST, mapped_at_creation: false });
        let tokens = buf("tokens", rows as u64 * 4, wgpu::BufferUsages::COPY_DST)?;
        let logits = buf("logits", f32s(s.vocab_size), wgpu::BufferUsages::COPY_SRC)?;
        let pen = buf("penalties", (capacity as u64 + 1) * 8, wgpu::BufferUsages::COPY_DST)?;
        let result = buf("result", 4, wgpu::BufferUsages::COPY_SRC)?;
        let staging = ctx.buffer("readback", f32s(s.vocab_size), wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST)?;
        let dummy = buf("unused binding", 16, none)?;
        let kv_bytes = (capacity * kv_dim * 2) as u64;
        // One RoPE table per distinct frequency set (Gemma 3's local and global layers differ).
        let mut rope_tables: Vec<(&[f32], wgpu::Buffer)> = Vec::new();
        for lw in &model.layers {
            if !rope_tables.iter().any(|(f, _)| *f == &lw.inv_freq[..]) {
                let table = rope_table(&lw.inv_freq[..s.rope_dims / 2], s.rope_attn_factor(), capacity);
                rope_tables.push((&lw.inv_freq, ctx.upload_f32("rope table", &table)?));
            }
        }
        let mut caches = Vec::with_capacity(s.n_layers);
        for _ in 0..s.n_layers {
            caches.push((buf("k cache", kv_bytes, none)?, buf("v cache", kv_bytes, none)?));
        }
        let eps = s.norm_eps;
        let max = ctx.limits.max_compute_workgroups_per_dimension;
        let (rope_k, scores_k, values_k, merge_k) = (k.get(KernelKind::RopeKv)?, k.get(KernelKind::AttnScores)?, k.get(KernelKind::AttnValues)?, k.get(KernelKind::AttnMerge)?);
        let (norm_add_k, act_k, quant_k) = (k.get(KernelKind::NormAdd)?, k.get(KernelKind::ActMul)?, k.get(KernelKind::QuantActs)?);
        let embed_k = k.get(KernelKind::Embed { format: model.embed.format })?;

        // The forward pass over the step's tokens, `tb` token rows per mat-vec workgroup, and
        // (decode) the output head.
        let forward = |tb: u32| -> Result<(Vec<Dispatch>, Vec<Dispatch>)> {
            let mut body = Vec::new();
            for p in &model.embed.parts {
                let dims = Dims { a: [p.rows as u32, dim as u32, p.scale_offset as u32, 0], b: [p.first_row as u32, 0, 0, 0], f: [s.embed_scale.unwrap_or(1.0), 0.0, 0.0, 0.0] };
                body.push(Dispatch::new(&ctx, "embed", embed_k.clone(), dims, &step, &[&p.buffer, &a.x, &tokens], Grid::TokensY((dim as u32 / 4).div_ceil(64)))?);
            }
            // Mat-vec inputs: rounded by a quant_acts dispatch per rounding kind (RMSNorm applied
            // there), or, in decode with f32 activations, read as f32 with RMSNorm folded into the
            // mat-vec itself.
            let fold_norm = !ctx.quantized_activations && tb == 1;
            #[allow(clippy::too_many_arguments)]
            let mv = |list: &mut Vec<Dispatch>, rounded: &mut [bool; 4], m: &GpuMatrix, x: &wgpu::Buffer, n: usize, norm: Option<&wgpu::Buffer>, bias: Option<&wgpu::Buffer>, out: &wgpu::Buffer, off: usize, op: MatVecOut, out_stride: usize| -> Result<()> {
                let x_stride = padded_cols(n);
                if fold_norm {
                    list.extend(m.matvec(k, &step, x, norm, bias, out, off, op, eps, &dummy, tb, out_stride, x_stride)?);
                    return Ok(());
                }
                let ki = if ctx.quantized_activations { act_kind_index(m.ty) } else { 3 };
                if !rounded[ki] {
                    let dims = Dims { a: [n as u32, ki as u32, norm.is_some() as u32, x_stride as u32], f: [eps, 0.0, 0.0, 0.0], ..Default::default() };
                    list.push(Dispatch::new(&ctx, "quantize activations", quant_k.clone(), dims, &step, &[x, norm.unwrap_or(&dummy), &a.xq[ki]], Grid::TokensY(1))?);
                    rounded[ki] = true;
                }
                list.extend(m.matvec(k, &step, &a.xq[ki], None, bias, out, off, op, eps, &dummy, tb, out_stride, x_stride)?);
                Ok(())
            };
            let norm_add = |body: &mut Vec<Dispatch>, norm: &wgpu::Buffer| -> Result<()> {
                let dims = Dims { a: [dim as u32, 0, 0, 0], f: [eps, 0.0, 0.0, 0.0], ..Default::default() };
                body.push(Dispatch::new(&ctx, "norm_add", norm_add_k.clone(), dims, &step, &[&a.x, &a.tmp, norm], Grid::TokensY(1))?);
                Ok(())
            };
            for (l, (lw, (kc, vc))) in model.layers.iter().zip(&caches).enumerate() {
                let mut r = [false; 4];
                for (m, off) in &lw.qkv {
                    mv(&mut body, &mut r, m, &a.x, dim, Some(&lw.attn_norm), lw.qkv_bias.as_ref(), &a.qkv, *off, MatVecOut::Store, qkv_w)?;
                }
                let flags = lw.q_norm.is_some() as u32 | (lw.k_norm.is_some() as u32) << 1 | (s.rope_interleaved as u32) << 2;
                let dims = Dims { a: [nh as u32, nkv as u32, hd as u32, s.rope_dims as u32], b: [flags, 0, 0, kv_dim as u32], f: [eps, 0.0, 0.0, 0.0] };
                let rope = rope_tables.iter().find(|(f, _)| *f == &lw.inv_freq[..]).map(|(_, b)| b).unwrap_or(&dummy);
                body.push(Dispatch::new(&ctx, "rope_kv", rope_k.clone(), dims, &step, &[&a.qkv, lw.q_norm.as_ref().unwrap_or(&dummy), lw.k_norm.as_ref().unwrap_or(&dummy), rope, kc, vc], Grid::TokensY((nh + 2 * nkv) as u32))?);
                let window = match s.sliding_window {
                    Some(win) if s.is_sliding_layer(l) => win as u32,
                    _ => 0,
                };
                let dims = Dims { a: [nh as u32, nkv as u32, hd as u32, kv_dim as u32], b: [max_splits as u32, window, capacity as u32, 0], f: [s.attn_scale, s.attn_softcap.unwrap_or(0.0), 0.0, 0.0] };
                body.push(Dispatch::new(&ctx, "attention scores", scores_k.clone(), dims, &step, &[&a.qkv, kc, &a.stats, &a.scores], Grid::AttnSplits { heads: nh as u32 })?);
                body.push(Dispatch::new(&ctx, "attention values", values_k.clone(), dims, &step, &[&a.stats, &a.scores, vc, &a.part], Grid::AttnSplits { heads: nh as u32 })?);
                let dims = Dims { a: [nh as u32, hd as u32, max_splits as u32, att_w as u32], ..Default::default() };
                body.push(Dispatch::new(&ctx, "attention merge", merge_k.clone(), dims, &step, &[&a.part, &a.att], Grid::TokensY(nh as u32))?);
                let mut r = [false; 4];
                match &lw.post_attn_norm {
                    Some(n) => {
                        mv(&mut body, &mut r, &lw.wo, &a.att, q_dim, None, None, &a.tmp, 0, MatVecOut::Store, dim)?;
                        norm_add(&mut body, n)?;
                    }
                    None => mv(&mut body, &mut r, &lw.wo, &a.att, q_dim, None, None, &a.x, 0, MatVecOut::Add, dim)?,
                }
                let gated = match s.activation {
                    Activation::Silu => MatVecOut::GatedSilu,
                    Activation::GeluTanh => MatVecOut::GatedGelu,
                };
                let mut r = [false; 4];
                match &lw.ffn {
                    Ffn::Gated(m) => mv(&mut body, &mut r, m, &a.x, dim, Some(&lw.ffn_norm), None, &a.gate, 0, gated, ffn_w)?,
                    Ffn::Separate(g, u) => {
                        mv(&mut body, &mut r, g, &a.x, dim, Some(&lw.ffn_norm), None, &a.gate, 0, MatVecOut::Store, ffn_w)?;
                        mv(&mut body, &mut r, u, &a.x, dim, Some(&lw.ffn_norm), None, &a.up, 0, MatVecOut::Store, ffn_w)?;
                        let dims = Dims { a: [ffn_w as u32, (gated == MatVecOut::GatedGelu) as u32, 0, 0], ..Default::default() };
                        body.push(Dispatch::new(&ctx, "act_mul", act_k.clone(), dims, &step, &[&a.gate, &a.up, &dummy], grid((rows * ffn_w) as u32 / 64 + 1, max))?);
                    }
                }
                let mut r = [false; 4];
                match &lw.post_ffn_norm {
                    Some(n) => {
                        mv(&mut body, &mut r, &lw.w_down, &a.gate, s.ffn_dim, None, None, &a.tmp, 0, MatVecOut::Store, dim)?;
                        norm_add(&mut body, n)?;
                    }
                    None => mv(&mut body, &mut r, &lw.w_down, &a.gate, s.ffn_dim, None, None, &a.x, 0, MatVecOut::Add, dim)?,
                }
            }
            let mut head = Vec::new();
            if tb == 1 {
                // The output head, decode only (the last prompt token runs as a decode step).
                let output = model.output.as_ref().unwrap_or(&model.embed);
                mv(&mut head, &mut [false; 4], output, &a.x, dim, Some(&model.output_norm), None, &logits, 0, MatVecOut::Store, 0)?;
                if let Some(cap) = s.final_softcap {
                    let dims = Dims { a: [s.vocab_size as u32, 0, 0, 0], f: [cap, 0.0, 0.0, 0.0], ..Default::default() };
                    head.push(Dispatch::new(&ctx, "soft_cap", k.get(KernelKind::SoftCap)?, dims, &step, &[&logits, &dummy, &dummy], grid((s.vocab_size as u32).div_ceil(64), max))?);
                }
            }
            Ok((body, head))
        };
        let (decode, head) = forward(1)?;
        let prefill = if rows > 1 { forward(PREFILL_TOKENS_PER_GROUP)?.0 } else { Vec::new() };
        let dims = Dims { a: [s.vocab_size as u32, 0, 0, 0], ..Default::default() };
        let sampling = vec![
            Dispatch::new(&ctx, "penalize", k.get(KernelKind::Penalize)?, dims, &step, &[&logits, &pen, &result], grid((capacity as u32 + 1).div_ceil(64), max))?,
            Dispatch::new(&ctx, "pick", k.get(KernelKind::Pick)?, dims, &step, &[&logits, &pen, &result], Grid::Fixed([1, 1, 1]))?,
        ];
        ctx.check()?;
        Ok(GpuSession { model, capacity, prefill_chunk: rows, step, tokens, logits, pen, result, staging, decode, head, sampling, prefill, stats: GpuStats::default() })
    }

    pub fn model(&self) -> &Arc<GpuModel> {
        &self.model
    }

    /// Runs prompt tokens from position `pos` without reading anything back: chunks of
    /// [`GpuSession::prefill_chunk`] tokens, one submit each, through the mat-mat kernels.
    pub fn prefill(&mut self, tokens: &[u32], pos: usize) -> Result<()> {
        let ctx = self.model.ctx().clone();
        ctx.check()?;
        if pos + tokens.len() > self.capacity {
            return Err(Error::ContextFull { needed: pos + tokens.len(), capacity: self.capacity });
        }
        if self.prefill.is_empty() {
            return Err(Error::gpu(GpuFailure::Internal, "this session has no prefill pass (a context of one token)"));
        }
        for (i, chunk) in tokens.chunks(self.prefill_chunk).enumerate() {
            let p = pos + i * self.prefill_chunk;
            let st = Step { pos: p as u32, n_tokens: chunk.len() as u32, ..Default::default() };
            ctx.queue.write_buffer(&self.tokens, 0, bytemuck::cast_slice(chunk));
            ctx.queue.write_buffer(&self.step, 0, bytemuck::bytes_of(&st));
            let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("prefill") });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("prefill"), timestamp_writes: None });
                self.prefill.iter().for_each(|d| d.record(&mut pass, p as u32, chunk.len() as u32));
            }
            ctx.queue.submit([enc.finish()]);
            self.stats.prefill_tokens += chunk.len() as u64;
            self.stats.prefill_submits += 1;
            self.stats.dispatches += self.prefill.len() as u64;
        }
        ctx.check()
    }

    /// Runs `token` at position `pos` (the KV cache keeps positions before it) in one submit.
    pub async fn step(&mut self, token: u32, pos: usize, want: Want<'_>) -> Result<StepOutput> {
        let ctx = self.model.ctx().clone();
        ctx.check()?;
        if pos >= self.capacity {
            return Err(Error::ContextFull { needed: pos + 1, capacity: self.capacity });
        }
        let mut st = Step { pos: pos as u32, token, n_tokens: 1, ..Default::default() };
        if let Want::Token { params, draw, penalties } = &want {
            let n = penalties.len().min(self.capacity + 1);
            st.n_penalties = n as u32;
            st.temperature = params.temperature;
            st.top_k = params.top_k as u32;
            st.top_p = params.top_p;
            st.min_p = params.min_p;
            st.repetition_penalty = params.repetition_penalty;
            st.frequency_penalty = params.frequency_penalty;
            st.presence_penalty = params.presence_penalty;
            st.draw = *draw;
            if n > 0 {
                let flat: Vec<u32> = penalties[..n].iter().flat_map(|&(t, c)| [t, c]).collect();
                ctx.queue.write_buffer(&self.pen, 0, bytemuck::cast_slice(&flat));
            }
        }
        ctx.queue.write_buffer(&self.tokens, 0, bytemuck::bytes_of(&token));
        ctx.queue.write_buffer(&self.step, 0, bytemuck::bytes_of(&st));
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("token") });
        let mut dispatched = self.decode.len();
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("token"), timestamp_writes: None });
            self.decode.iter().for_each(|d| d.record(&mut pass, pos as u32, 1));
            if !matches!(want, Want::Nothing) {
                self.head.iter().for_each(|d| d.record(&mut pass, pos as u32, 1));
                dispatched += self.head.len();
            }
            if matches!(want, Want::Token { .. }) {
                self.sampling.iter().for_each(|d| d.record(&mut pass, pos as u32, 1));
                dispatched += self.sampling.len();
            }
        }
        let is_token = matches!(want, Want::Token { .. });
        let read = match want {
            Want::Nothing => 0,
            Want::Logits => {
                let n = self.logits.size().min(self.model.spec.vocab_size as u64 * 4);
                enc.copy_buffer_to_buffer(&self.logits, 0, &self.staging, 0, n);
                n
            }
            Want::Token { .. } => {
                enc.copy_buffer_to_buffer(&self.result, 0, &self.staging, 0, 4);
                4
            }
        };
        ctx.queue.submit([enc.finish()]);
        self.stats.tokens += 1;
        self.stats.submits += 1;
        self.stats.dispatches += dispatched as u64;
        if read == 0 {
            ctx.check()?;
            return Ok(StepOutput::Nothing);
        }
        let bytes = ctx.read(&self.staging, read).await?;
        self.stats.bytes_read_back += read;
        let mut values = bytes.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]);
        Ok(if is_token {
            StepOutput::Token(values.next().map_or(0, u32::from_le_bytes))
        } else {
            StepOutput::Logits(values.map(f32::from_le_bytes).collect())
        })
    }
}

/// Timings for benchmarks (native: they wait on the queue).
#[cfg(not(target_arch = "wasm32"))]
impl GpuSession {
    /// Runs the dispatches of one token at position `pos` that `keep` selects, `reps` times in
    /// one pass, and returns the wall time per repetition in ms (the queue is drained first).
    fn time_dispatches(&self, pos: usize, reps: u32, keep: impl Fn(&Dispatch) -> bool) -> Result<f64> {
        let ctx = self.model.ctx();
        let st = Step { pos: pos as u32, n_tokens: 1, ..Default::default() };
        ctx.queue.write_buffer(&self.step, 0, bytemuck::bytes_of(&st));
        let all: Vec<&Dispatch> = self.decode.iter().chain(&self.head).chain(&self.sampling).filter(|d| keep(d)).collect();
        Ok(ctx.time_pass(&all, pos as u32, reps)? * 1000.0)
    }

    /// GPU time per token of each kind of op (by dispatch name), each measured alone over
    /// `reps` repetitions at position `pos`: `(name, dispatches per token, ms per token)`, and
    /// the whole token's dispatches together last (`"token"`).
    pub fn profile(&self, pos: usize, reps: u32) -> Result<Vec<(&'static str, usize, f64)>> {
        let mut names: Vec<&'static str> = Vec::new();
        for d in self.decode.iter().chain(&self.head).chain(&self.sampling) {
            if !names.contains(&d.name) {
                names.push(d.name);
            }
        }
        let mut out = Vec::new();
        for name in names {
            let count = self.decode.iter().chain(&self.head).chain(&self.sampling).filter(|d| d.name == name).count();
            out.push((name, count, self.time_dispatches(pos, reps, |d| d.name == name)?));
        }
        let total = self.decode.len() + self.head.len() + self.sampling.len();
        out.push(("token", total, self.time_dispatches(pos, reps, |_| true)?));
        Ok(out)
    }
}
