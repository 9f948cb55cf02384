//! The GPU backend: plain wgpu + WGSL, WebGPU in the browser and Vulkan natively. The same
//! ops as the CPU backend, designed for decode: weights repacked at load and dequantized inside
//! the mat-vec kernels, RMSNorm folded into the next mat-vec, Q/K/V and gate/up fused, RoPE
//! folded into the KV-cache write, split-KV attention, sampling on the device, and per token
//! one submit with a 4-byte readback.

pub mod context;
pub mod kernels;
pub mod model;
pub mod ops;
pub mod repack;

pub use context::{AdapterSummary, GpuContext, GpuOptions};
pub use model::{GpuModel, GpuSession, GpuStats, StepOutput, Want};
pub use wgpu;
