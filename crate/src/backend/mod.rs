//! Compute backends. `cpu` (scalar everywhere, simd128 on wasm) always exists; the WebGPU
//! backend sits beside it with the same ops.

pub mod cpu;
pub mod gpu;
