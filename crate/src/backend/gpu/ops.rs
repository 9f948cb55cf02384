//! Single kernels run on their own, for tests against the CPU backend and for benchmarks
//! (the model path records the same dispatches once per session instead).

use std::sync::Arc;

use half::f16;

use super::context::GpuContext;
use super::kernels::{grid, Dims, Dispatch, Grid, KernelKind, Kernels, MatVecOut, Step};
use super::model::{rope_table, GpuMatrix};
use crate::error::Result;
use crate::quant::QMatrix;
use crate::sampling::SamplingParams;

pub struct OpRunner {
    pub kernels: Kernels,
    step: wgpu::Buffer,
    dummy: wgpu::Buffer,
}

fn pack_f16(v: &[f16]) -> Vec<u32> {
    v.chunks(2).map(|p| p[0].to_bits() as u32 | (p.get(1).map_or(0, |h| h.to_bits()) as u32) << 16).collect()
}

impl OpRunner {
    pub fn new(ctx: Arc<GpuContext>) -> Result<OpRunner> {
        let step = ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some("step"), size: 48, usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST, mapped_at_creation: false });
        let dummy = ctx.buffer("dummy", 16, wgpu::BufferUsages::STORAGE)?;
        Ok(OpRunner { kernels: Kernels::new(ctx), step, dummy })
    }

    fn ctx(&self) -> &Arc<GpuContext> {
        self.kernels.ctx()
    }

    fn rw(&self, label: &str, values: &[f32]) -> Result<wgpu::Buffer> {
        let ctx = self.ctx();
        let b = ctx.buffer(label, values.len() as u64 * 4, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST)?;
        ctx.queue.write_buffer(&b, 0, bytemuck::cast_slice(values));
        Ok(b)
    }

    /// Records `dispatches` in one pass after writing `step`, then reads `n` words of `out`.
    pub async fn run(&self, dispatches: &[Dispatch], step: Step, out: &wgpu::Buffer, n: usize) -> Result<Vec<u32>> {
        let ctx = self.ctx();
        // One token unless told otherwise.
        let step = Step { n_tokens: step.n_tokens.max(1), ..step };
        ctx.queue.write_buffer(&self.step, 0, bytemuck::bytes_of(&step));
        let staging = ctx.buffer("staging", n as u64 * 4, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST)?;
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            dispatches.iter().for_each(|d| d.record(&mut pass, step.pos, step.n_tokens));
        }
        enc.copy_buffer_to_buffer(out, 0, &staging, 0, n as u64 * 4);
        ctx.queue.submit([enc.finish()]);
        let bytes = ctx.read(&staging, n as u64 * 4).await?;
        Ok(bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    async fn run_f32(&self, dispatches: &[Dispatch], step: Step, out: &wgpu::Buffer, n: usize) -> Result<Vec<f32>> {
        Ok(self.run(dispatches, step, out, n).await?.into_iter().map(f32::from_bits).collect())
    }

    /// `out (op)= W · x` with `W` the rows of `mats` stacked (`gated`: a gate and an up matrix),
    /// `x` RMSNorm-ed by `norm` first when given. `out` starts as `out_init`.
    #[allow(clippy::too_many_arguments)]
    pub async fn matvec(&self, mats: &[&QMatrix], gated: bool, x: &[f32], norm: Option<(&[f32], f32)>, bias: Option<&[f32]>, op: MatVecOut, out_init: &[f32]) -> Result<Vec<f32>> {
        let ctx = self.ctx();
        let m = GpuMatrix::upload(ctx, "W", mats, gated)?;
        let xb = ctx.upload_f32("x", x)?;
        let nb = norm.map(|(w, _)| ctx.upload_f32("norm", w)).transpose()?;
        let bb = bias.map(|b| ctx.upload_f32("bias", b)).transpose()?;
        let out = self.rw("out", out_init)?;
        let d = m.matvec(&self.kernels, &self.step, &xb, nb.as_ref(), bb.as_ref(), &out, 0, op, norm.map_or(0.0, |n| n.1), &self.dummy, 1, 0, m.cols)?;
        self.run_f32(&d, Step::default(), &out, out_init.len()).await
    }

    /// Row `token` of `m`, dequantized, times `scale`.
    pub async fn embed(&self, m: &QMatrix, token: u32, scale: f32) -> Result<Vec<f32>> {
        let ctx = self.ctx();
        let g = GpuMatrix::upload(ctx, "embedding", &[m], false)?;
        let out = self.rw("x", &vec![0.0; m.cols])?;
        let tokens = ctx.upload("tokens", &[token])?;
        let kernel = self.kernels.get(KernelKind::Embed { format: g.format })?;
        let mut d = Vec::new();
        for p in &g.parts {
            let dims = Dims { a: [p.rows as u32, m.cols as u32, p.scale_offset as u32, 0], b: [p.first_row as u32, 0, 0, 0], f: [scale, 0.0, 0.0, 0.0] };
            d.push(Dispatch::new(ctx, "embed", kernel.clone(), dims, &self.step, &[&p.buffer, &out, &tokens], Grid::TokensY((m.cols as u32 / 4).div_ceil(64)))?);
        }
        self.run_f32(&d, Step { token, n_tokens: 1, ..Default::default() }, &out, m.cols).await
    }

    /// RoPE (and Q/K norms) over `qkv` at `pos`, K and V written to an f16 cache of `pos + 1`
    /// positions. Returns (Q after RoPE, the K cache row, the V cache row) as f32.
    #[allow(clippy::too_many_arguments)]
    pub async fn rope_kv(&self, qkv: &[f32], n_heads: usize, n_kv_heads: usize, head_dim: usize, rope_dims: usize, interleaved: bool, pos: usize, inv_freq: &[f32], attn_factor: f32, norms: Option<(&[f32], &[f32], f32)>) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let ctx = self.ctx();
        let (q_dim, kv_dim) = (n_heads * head_dim, n_kv_heads * head_dim);
        let qb = self.rw("qkv", qkv)?;
        let kc = self.rw("k", &vec![0.0; (pos + 1) * kv_dim / 2])?;
        let vc = self.rw("v", &vec![0.0; (pos + 1) * kv_dim / 2])?;
        let inv = ctx.upload_f32("rope table", &rope_table(&inv_freq[..rope_dims / 2], attn_factor, pos + 1))?;
        let (qn, kn, eps) = match norms {
            Some((q, k, eps)) => (Some(ctx.upload_f32("qn", q)?), Some(ctx.upload_f32("kn", k)?), eps),
            None => (None, None, 0.0),
        };
        let flags = qn.is_some() as u32 * 3 | (interleaved as u32) << 2;
        let dims = Dims { a: [n_heads as u32, n_kv_heads as u32, head_dim as u32, rope_dims as u32], b: [flags, 0, 0, kv_dim as u32], f: [eps, 0.0, 0.0, 0.0] };
        let kernel = self.kernels.get(KernelKind::RopeKv)?;
        let d = [Dispatch::new(ctx, "rope_kv", kernel, dims, &self.step, &[&qb, qn.as_ref().unwrap_or(&self.dummy), kn.as_ref().unwrap_or(&self.dummy), &inv, &kc, &vc], Grid::Fixed([(n_heads + 2 * n_kv_heads) as u32, 1, 1]))?];
        let step = Step { pos: pos as u32, ..Default::default() };
        let q = self.run_f32(&d, step, &qb, q_dim).await?;
        let unpack = |w: Vec<u32>| -> Vec<f32> { w[pos * kv_dim / 2..].iter().flat_map(|&w| [f16::from_bits(w as u16).to_f32(), f16::from_bits((w >> 16) as u16).to_f32()]).collect() };
        let k = unpack(self.run(&[], step, &kc, (pos + 1) * kv_dim / 2).await?);
        let v = unpack(self.run(&[], step, &vc, (pos + 1) * kv_dim / 2).await?);
        Ok((q, k, v))
    }

    /// Attention of `q` over `n_ctx` cached positions (f16 `[pos][kv_dim]`), split-KV.
    #[allow(clippy::too_many_arguments)]
    pub async fn attention(&self, q: &[f32], k_cache: &[f16], v_cache: &[f16], n_heads: usize, n_kv_heads: usize, head_dim: usize, window: usize, n_ctx: usize, scale: f32, soft_cap: Option<f32>) -> Result<Vec<f32>> {
        let ctx = self.ctx();
        let kv_dim = n_kv_heads * head_dim;
        let max_splits = n_ctx.div_ceil(64);
        let qb = ctx.upload_f32("q", q)?;
        let kc = ctx.upload("k", &pack_f16(k_cache))?;
        let vc = ctx.upload("v", &pack_f16(v_cache))?;
        let stats = self.rw("stats", &vec![0.0; n_heads * max_splits * 2])?;
        let scores = self.rw("scores", &vec![0.0; n_heads * n_ctx])?;
        let part = self.rw("part", &vec![0.0; n_heads * max_splits * head_dim])?;
        let out = self.rw("out", &vec![0.0; n_heads * head_dim])?;
        let dims = Dims { a: [n_heads as u32, n_kv_heads as u32, head_dim as u32, kv_dim as u32], b: [max_splits as u32, window as u32, n_ctx as u32, 0], f: [scale, soft_cap.unwrap_or(0.0), 0.0, 0.0] };
        let heads = Grid::AttnSplits { heads: n_heads as u32 };
        let score = Dispatch::new(ctx, "attention scores", self.kernels.get(KernelKind::AttnScores)?, dims, &self.step, &[&qb, &kc, &stats, &scores], heads)?;
        let values = Dispatch::new(ctx, "attention values", self.kernels.get(KernelKind::AttnValues)?, dims, &self.step, &[&stats, &scores, &vc, &part], heads)?;
        let dims = Dims { a: [n_heads as u32, head_dim as u32, max_splits as u32, 0], ..Default::default() };
        let merge = Dispatch::new(ctx, "merge", self.kernels.get(KernelKind::AttnMerge)?, dims, &self.step, &[&part, &out], Grid::Fixed([n_heads as u32, 1, 1]))?;
        self.run_f32(&[score, values, merge], Step { pos: n_ctx as u32 - 1, ..Default::default() }, &out, n_heads * head_dim).await
    }

    /// `x = act(x) * y` (`gelu` or SiLU), `x += RMSNorm(y) * w` and `x = cap * tanh(x / cap)`.
    pub async fn vector_op(&self, kind: KernelKind, x: &[f32], y: &[f32], w: &[f32], scalar: f32, gelu: bool) -> Result<Vec<f32>> {
        let ctx = self.ctx();
        let a = self.rw("a", x)?;
        let b = ctx.upload_f32("b", y)?;
        let c = ctx.upload_f32("c", w)?;
        let n = x.len() as u32;
        let dims = Dims { a: [n, gelu as u32, 0, 0], f: [scalar, 0.0, 0.0, 0.0], ..Default::default() };
        let g = if kind == KernelKind::NormAdd { Grid::Fixed([1, 1, 1]) } else { grid(n.div_ceil(64), ctx.limits.max_compute_workgroups_per_dimension) };
        let d = [Dispatch::new(ctx, "vector op", self.kernels.get(kind)?, dims, &self.step, &[&a, &b, &c], g)?];
        self.run_f32(&d, Step::default(), &a, x.len()).await
    }

    /// The token the GPU samples from `logits` with `params`, the uniform `draw` and the
    /// penalties' (token, count) pairs.
    pub async fn sample(&self, logits: &[f32], params: &SamplingParams, draw: f32, penalties: &[(u32, u32)]) -> Result<u32> {
        let ctx = self.ctx();
        let lb = self.rw("logits", logits)?;
        let flat: Vec<u32> = penalties.iter().flat_map(|&(t, c)| [t, c]).collect();
        let pen = ctx.upload("penalties", &flat)?;
        let result = self.rw("result", &[0.0])?;
        let dims = Dims { a: [logits.len() as u32, 0, 0, 0], ..Default::default() };
        let max = ctx.limits.max_compute_workgroups_per_dimension;
        let d = [
            Dispatch::new(ctx, "penalize", self.kernels.get(KernelKind::Penalize)?, dims, &self.step, &[&lb, &pen, &result], grid((penalties.len() as u32).div_ceil(64), max))?,
            Dispatch::new(ctx, "pick", self.kernels.get(KernelKind::Pick)?, dims, &self.step, &[&lb, &pen, &result], Grid::Fixed([1, 1, 1]))?,
        ];
        let step = Step {
            n_penalties: penalties.len() as u32,
            temperature: params.temperature,
            top_k: params.top_k as u32,
            top_p: params.top_p,
            min_p: params.min_p,
            repetition_penalty: params.repetition_penalty,
            frequency_penalty: params.frequency_penalty,
            presence_penalty: params.presence_penalty,
            draw,
            ..Default::default()
        };
        Ok(self.run(&d, step, &result, 1).await?[0])
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl OpRunner {
    /// Seconds per decode mat-vec `W · x` of `m` (f32 input), over `reps` runs in one pass, and
    /// the bytes of weights each run reads.
    pub fn time_matvec(&self, m: &QMatrix, reps: u32) -> Result<(f64, u64)> {
        let ctx = self.ctx();
        let g = GpuMatrix::upload(ctx, "W", &[m], false)?;
        let x = ctx.upload_f32("x", &vec![0.5; m.cols])?;
        let out = self.rw("out", &vec![0.0; m.rows])?;
        let d = g.matvec(&self.kernels, &self.step, &x, None, None, &out, 0, MatVecOut::Store, 0.0, &self.dummy, 1, 0, m.cols)?;
        ctx.queue.write_buffer(&self.step, 0, bytemuck::bytes_of(&Step { n_tokens: 1, ..Default::default() }));
        Ok((ctx.time_pass(&d.iter().collect::<Vec<_>>(), 0, reps)?, g.bytes()))
    }
}
