//! The WGSL kernels as pipelines (built once, cached by variant) and the dispatches that bind
//! them to buffers (built once at load, replayed every token).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::context::GpuContext;
use super::repack::GpuFormat;
use crate::error::Result;

const COMMON: &str = include_str!("shaders/common.wgsl");
const WEIGHTS: &str = include_str!("shaders/weights.wgsl");

/// What `matvec.wgsl` does with a row's dot product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatVecOut {
    Store = 0,
    Add = 1,
    GatedSilu = 2,
    GatedGelu = 3,
}

/// Every kernel variant pocketlm builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelKind {
    /// `tokens`: token rows per workgroup (1 for decode, 8 for prefill's mat-mat).
    MatVec { format: GpuFormat, norm: bool, bias: bool, out: MatVecOut, threads_per_row: u32, tokens: u32 },
    Embed { format: GpuFormat },
    QuantActs,
    RopeKv,
    AttnScores,
    AttnValues,
    AttnMerge,
    ActMul,
    NormAdd,
    SoftCap,
    Penalize,
    Pick,
}

#[derive(Clone, Copy)]
enum Bind {
    Read,
    ReadWrite,
}
use Bind::{Read as R, ReadWrite as RW};

impl KernelKind {
    /// (source files after common.wgsl, entry point, storage bindings from binding 2 on).
    fn parts(self) -> (Vec<&'static str>, &'static str, Vec<Bind>) {
        match self {
            KernelKind::MatVec { .. } => (vec![WEIGHTS, include_str!("shaders/matvec.wgsl")], "main", vec![R, R, R, R, RW]),
            KernelKind::Embed { .. } => (vec![WEIGHTS, include_str!("shaders/embed.wgsl")], "main", vec![R, RW, R]),
            KernelKind::QuantActs => (vec![include_str!("shaders/quant_acts.wgsl")], "main", vec![R, R, RW]),
            KernelKind::RopeKv => (vec![include_str!("shaders/rope_kv.wgsl")], "main", vec![RW, R, R, R, RW, RW]),
            KernelKind::AttnScores => (vec![include_str!("shaders/attn_scores.wgsl")], "main", vec![R, R, RW, RW]),
            KernelKind::AttnValues => (vec![include_str!("shaders/attn_values.wgsl")], "main", vec![R, R, R, RW]),
            KernelKind::AttnMerge => (vec![include_str!("shaders/attn_merge.wgsl")], "main", vec![R, RW]),
            KernelKind::ActMul => (vec![include_str!("shaders/vector_ops.wgsl")], "act_mul", vec![RW, R, R]),
            KernelKind::NormAdd => (vec![include_str!("shaders/vector_ops.wgsl")], "norm_add", vec![RW, R, R]),
            KernelKind::SoftCap => (vec![include_str!("shaders/vector_ops.wgsl")], "soft_cap", vec![RW, R, R]),
            KernelKind::Penalize => (vec![include_str!("shaders/sample.wgsl")], "penalize", vec![RW, R, RW]),
            KernelKind::Pick => (vec![include_str!("shaders/sample.wgsl")], "pick", vec![RW, R, RW]),
        }
    }

    fn constants(self, subgroup_size: u32) -> Vec<(&'static str, f64)> {
        let mut c = vec![("SG", subgroup_size as f64)];
        match self {
            KernelKind::MatVec { format, norm, bias, out, threads_per_row, tokens } => {
                c.extend([("FORMAT", format as u32 as f64), ("NORM", norm as u32 as f64), ("HAS_BIAS", bias as u32 as f64), ("MODE", out as u32 as f64), ("TPR", threads_per_row as f64), ("TB", tokens as f64)]);
            }
            KernelKind::Embed { format } => c.push(("FORMAT", format as u32 as f64)),
            _ => {}
        }
        c
    }
}

pub struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Pipelines by variant, built on first use (at load) and shared by every session.
pub struct Kernels {
    ctx: Arc<GpuContext>,
    built: Mutex<HashMap<KernelKind, Arc<Kernel>>>,
    modules: Mutex<HashMap<(&'static str, &'static str), Arc<wgpu::ShaderModule>>>,
}

impl Kernels {
    pub fn new(ctx: Arc<GpuContext>) -> Kernels {
        Kernels { ctx, built: Mutex::new(HashMap::new()), modules: Mutex::new(HashMap::new()) }
    }

    pub fn ctx(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    pub fn get(&self, kind: KernelKind) -> Result<Arc<Kernel>> {
        if let Some(k) = self.built.lock().unwrap_or_else(|p| p.into_inner()).get(&kind) {
            return Ok(k.clone());
        }
        let (sources, entry, binds) = kind.parts();
        let module = self.module(&sources)?;
        let device = &self.ctx.device;
        let mut entries = Vec::new();
        for i in 0..2 {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Uniform, has_dynamic_offset: false, min_binding_size: None },
                count: None,
            });
        }
        for (i, b) in binds.iter().enumerate() {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: 2 + i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Storage { read_only: matches!(b, Bind::Read) }, has_dynamic_offset: false, min_binding_size: None },
                count: None,
            });
        }
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: None, entries: &entries });
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor { label: None, bind_group_layouts: &[Some(&layout)], immediate_size: 0 });
        let constants = kind.constants(self.ctx.summary.subgroup_size);
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&format!("{kind:?}")),
            layout: Some(&pl),
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions { constants: &constants, zero_initialize_workgroup_memory: false },
            cache: None,
        });
        self.ctx.check()?;
        let k = Arc::new(Kernel { pipeline, layout });
        self.built.lock().unwrap_or_else(|p| p.into_inner()).insert(kind, k.clone());
        Ok(k)
    }

    fn module(&self, sources: &[&'static str]) -> Result<Arc<wgpu::ShaderModule>> {
        let key = (sources[0], *sources.last().unwrap_or(&""));
        if let Some(m) = self.modules.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(m.clone());
        }
        let sg = self.ctx.summary.subgroup_size > 0;
        let f16 = self.ctx.summary.shader_f16;
        // Browsers require the subgroups enable directive; naga (native) has subgroups without
        // it and rejects the directive.
        let mut src = String::from(if sg && cfg!(target_arch = "wasm32") { "enable subgroups;\n" } else { "" });
        if f16 {
            src.push_str("enable f16;\n");
        }
        src.push_str(&COMMON.replace("SUBGROUP_ADD", if sg { "subgroupAdd" } else { "" }));
        for s in sources {
            // The KV cache's f16 pairs: native f16 loads, or u32 words unpacked.
            let s = if f16 { s.replace("KV_WORD", "vec2<f16>").replace("KV_PAIR", "vec2<f32>") } else { s.replace("KV_WORD", "u32").replace("KV_PAIR", "unpack2x16float") };
            src.push_str(&s);
        }
        let module = self.ctx.device.create_shader_module(wgpu::ShaderModuleDescriptor { label: None, source: wgpu::ShaderSource::Wgsl(src.into()) });
        self.ctx.check()?;
        let m = Arc::new(module);
        self.modules.lock().unwrap_or_else(|p| p.into_inner()).insert(key, m.clone());
        Ok(m)
    }
}

/// The `Dims` uniform of common.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Dims {
    pub a: [u32; 4],
    pub b: [u32; 4],
    pub f: [f32; 4],
}

/// The `Step` uniform of common.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Step {
    pub pos: u32,
    pub token: u32,
    pub n_tokens: u32,
    pub n_penalties: u32,
    pub temperature: f32,
    pub top_k: u32,
    pub top_p: f32,
    pub min_p: f32,
    pub repetition_penalty: f32,
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    pub draw: f32,
}

/// How many workgroups a dispatch runs, for a step of `n` tokens from position `pos`.
#[derive(Debug, Clone, Copy)]
pub enum Grid {
    Fixed([u32; 3]),
    /// `[x, n, 1]`: one row of workgroups per token.
    TokensY(u32),
    /// `[x, y, ceil(n / tokens_per_group)]`.
    TokensZ([u32; 2], u32),
    /// Attention splits: `[heads, ceil((pos + n) / 64), n]`.
    AttnSplits { heads: u32 },
}

/// A kernel bound to its buffers, recorded into every token's pass.
pub struct Dispatch {
    pub kernel: Arc<Kernel>,
    pub bind_group: wgpu::BindGroup,
    pub grid: Grid,
    pub name: &'static str,
}

impl Dispatch {
    pub fn new(ctx: &GpuContext, name: &'static str, kernel: Arc<Kernel>, dims: Dims, step: &wgpu::Buffer, buffers: &[&wgpu::Buffer], grid: Grid) -> Result<Dispatch> {
        let dims_buf = ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some(name), size: 48, usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST, mapped_at_creation: false });
        ctx.queue.write_buffer(&dims_buf, 0, bytemuck::bytes_of(&dims));
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: dims_buf.as_entire_binding() }, wgpu::BindGroupEntry { binding: 1, resource: step.as_entire_binding() }];
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry { binding: 2 + i as u32, resource: b.as_entire_binding() });
        }
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(name), layout: &kernel.layout, entries: &entries });
        ctx.check()?;
        Ok(Dispatch { kernel, bind_group, grid, name })
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>, pos: u32, n: u32) {
        let [x, y, z] = match self.grid {
            Grid::Fixed(g) => g,
            Grid::TokensY(x) => [x, n, 1],
            Grid::TokensZ([x, y], tb) => [x, y, n.div_ceil(tb)],
            Grid::AttnSplits { heads } => [heads, (pos + n).div_ceil(64), n],
        };
        pass.set_pipeline(&self.kernel.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(x, y, z);
    }
}

/// Workgroups for `n` independent groups, folded into two dimensions past the per-dimension limit.
pub fn fold(n: u32, max_per_dim: u32) -> [u32; 2] {
    if n <= max_per_dim {
        [n.max(1), 1]
    } else {
        let y = n.div_ceil(max_per_dim);
        [n.div_ceil(y), y]
    }
}

pub fn grid(n: u32, max_per_dim: u32) -> Grid {
    let [x, y] = fold(n, max_per_dim);
    Grid::Fixed([x, y, 1])
}
