//! The device: adapter and device creation with the adapter's real limits and the optional
//! features pocketlm uses, buffer creation checked against those limits, readback, and the
//! failures (no adapter, a lost device, an error the device reported) as typed errors.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, GpuFailure, Result};

/// What the backend may use when the adapter has it (tests turn features off to cover the
/// fallback paths on a device that has them).
#[derive(Debug, Clone)]
pub struct GpuOptions {
    /// Reduce with subgroup operations when the adapter has subgroups of one fixed size.
    pub subgroups: bool,
    /// Ask for `shader-f16` when the adapter has it.
    pub f16: bool,
    /// Put at most this many bytes of a weight matrix in one buffer even if the adapter binds
    /// more (tests of the split of large tensors across bindings).
    pub max_weight_binding: Option<u64>,
    /// Round mat-vec inputs as the CPU backend and llama.cpp quantize them (8-bit blocks), so
    /// both backends compute the same products and pick the same tokens; `false` keeps f32
    /// activations with RMSNorm folded into the mat-vec (one dispatch fewer per input).
    pub quantized_activations: bool,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions { subgroups: true, f16: true, max_weight_binding: None, quantized_activations: true }
    }
}

/// The adapter as a caller sees it (for `engine.info()` and benchmarks).
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub driver: String,
    /// Subgroup size the kernels reduce with; 0 when they use workgroup memory only.
    pub subgroup_size: u32,
    pub shader_f16: bool,
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
}

pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub limits: wgpu::Limits,
    pub summary: AdapterSummary,
    pub quantized_activations: bool,
    max_weight_binding: u64,
    lost: Arc<AtomicBool>,
    /// The first error the device reported outside an error scope.
    error: Arc<Mutex<Option<String>>>,
}

impl GpuContext {
    /// Opens the default adapter (high performance) with its own limits.
    pub async fn new(opts: &GpuOptions) -> Result<Arc<GpuContext>> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() })
            .await
            .map_err(|e| Error::gpu(GpuFailure::NoAdapter, format!("no GPU adapter: {e}")))?;
        let info = adapter.get_info();
        let features = adapter.features();
        let mut required = wgpu::Features::empty();
        let subgroup_size = if opts.subgroups && features.contains(wgpu::Features::SUBGROUP) && info.subgroup_min_size == info.subgroup_max_size && (4..=64).contains(&info.subgroup_min_size) {
            required |= wgpu::Features::SUBGROUP;
            info.subgroup_min_size
        } else {
            0
        };
        let shader_f16 = opts.f16 && features.contains(wgpu::Features::SHADER_F16);
        if shader_f16 {
            required |= wgpu::Features::SHADER_F16;
        }
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("pocketlm"),
                required_features: required,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::default(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::gpu(GpuFailure::NoAdapter, format!("the adapter '{}' gave no device: {e}", info.name)))?;
        let lost = Arc::new(AtomicBool::new(false));
        let error = Arc::new(Mutex::new(None));
        {
            let lost = lost.clone();
            device.set_device_lost_callback(move |_, _| lost.store(true, Ordering::SeqCst));
            let error = error.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                let mut slot = error.lock().unwrap_or_else(|p| p.into_inner());
                if slot.is_none() {
                    *slot = Some(e.to_string());
                }
            }));
        }
        let summary = AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            driver: info.driver.clone(),
            subgroup_size,
            shader_f16,
            max_buffer_size: limits.max_buffer_size,
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        };
        let max_weight_binding = opts.max_weight_binding.unwrap_or(u64::MAX);
        Ok(Arc::new(GpuContext { device, queue, limits, summary, quantized_activations: opts.quantized_activations, max_weight_binding, lost, error }))
    }

    /// Fails when the device was lost or reported an error since the last check.
    pub fn check(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(Error::gpu(GpuFailure::DeviceLost, "the GPU device was lost"));
        }
        if let Some(e) = self.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if e.to_lowercase().contains("out of memory") {
                return Err(Error::OutOfMemory { what: format!("the GPU device ({e})"), bytes: 0 });
            }
            return Err(Error::gpu(GpuFailure::Internal, e));
        }
        Ok(())
    }

    /// Marks the device lost (what the browser's `device.lost` does), for tests of recovery.
    pub fn simulate_loss(&self) {
        self.lost.store(true, Ordering::SeqCst);
    }

    /// Largest binding the kernels can address, in bytes (a multiple of 16).
    pub fn max_binding(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size) & !15
    }

    /// Most bytes of a weight matrix one buffer holds.
    pub fn max_weight_binding(&self) -> u64 {
        self.max_binding().min(self.max_weight_binding)
    }

    /// A storage buffer of `size` bytes (at least 16), checked against the limits.
    pub fn buffer(&self, label: &str, size: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
        let size = size.max(16).next_multiple_of(16);
        if size > self.max_binding() {
            return Err(Error::gpu(
                GpuFailure::Limit,
                format!("{label} needs a buffer of {size} bytes; the adapter binds at most {} (maxStorageBufferBindingSize / maxBufferSize)", self.max_binding()),
            ));
        }
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size, usage, mapped_at_creation: false }))
    }

    /// A read-only storage buffer holding `words`.
    pub fn upload(&self, label: &str, words: &[u32]) -> Result<wgpu::Buffer> {
        let buf = self.buffer(label, words.len() as u64 * 4, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST)?;
        if !words.is_empty() {
            self.queue.write_buffer(&buf, 0, bytemuck::cast_slice(words));
        }
        Ok(buf)
    }

    pub fn upload_f32(&self, label: &str, values: &[f32]) -> Result<wgpu::Buffer> {
        self.upload(label, bytemuck::cast_slice(values))
    }

    /// Waits for the queue and returns the first `len` bytes of the MAP_READ buffer `staging`.
    pub async fn read(&self, staging: &wgpu::Buffer, len: u64) -> Result<Vec<u8>> {
        let slice = staging.slice(0..len);
        let mapped = map_read(&self.device, slice).await;
        self.check()?;
        mapped.map_err(|_| Error::gpu(GpuFailure::DeviceLost, "reading back from the GPU failed (device lost)"))?;
        let data = slice.get_mapped_range().map_err(|e| Error::gpu(GpuFailure::Internal, format!("mapping a readback buffer: {e}")))?.to_vec();
        staging.unmap();
        Ok(data)
    }
}

#[cfg(not(target_arch = "wasm32"))]
async fn map_read(device: &wgpu::Device, slice: wgpu::BufferSlice<'_>) -> std::result::Result<(), ()> {
    let done = Arc::new(Mutex::new(None));
    let slot = done.clone();
    slice.map_async(wgpu::MapMode::Read, move |r| *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(r.is_ok()));
    // The thread whose poll sees the work finish runs the callbacks, after its poll returns:
    // with the device shared between threads, ours can return before another thread's poll
    // has run our callback, so wait for the callback itself (a lost device runs it with an
    // error).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        device.poll(wgpu::PollType::wait_indefinitely()).map_err(|_| ())?;
        if let Some(ok) = done.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return if ok { Ok(()) } else { Err(()) };
        }
        if std::time::Instant::now() > deadline {
            return Err(());
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}

#[cfg(target_arch = "wasm32")]
async fn map_read(_device: &wgpu::Device, slice: wgpu::BufferSlice<'_>) -> std::result::Result<(), ()> {
    // The browser calls back from its event loop: wait on a promise the callback resolves.
    let mut resolve_fn = None;
    let promise = js_sys::Promise::new(&mut |resolve, _reject| resolve_fn = Some(resolve));
    let resolve = resolve_fn.ok_or(())?;
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = resolve.call1(&wasm_bindgen::JsValue::NULL, &wasm_bindgen::JsValue::from_bool(r.is_ok()));
    });
    let ok = wasm_bindgen_futures::JsFuture::from(promise).await.map_err(|_| ())?;
    if ok.as_bool() == Some(true) { Ok(()) } else { Err(()) }
}

#[cfg(not(target_arch = "wasm32"))]
impl GpuContext {
    /// Seconds per repetition of `dispatches`, recorded `reps` times in one pass at position
    /// `pos` (one token) and timed from submit to completion, the queue drained first.
    pub fn time_pass(&self, dispatches: &[&super::kernels::Dispatch], pos: u32, reps: u32) -> Result<f64> {
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for _ in 0..reps {
                dispatches.iter().for_each(|d| d.record(&mut pass, pos, 1));
            }
        }
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        let t0 = std::time::Instant::now();
        self.queue.submit([enc.finish()]);
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::gpu(GpuFailure::DeviceLost, e))?;
        self.check()?;
        Ok(t0.elapsed().as_secs_f64() / reps as f64)
    }
}

/// Runs a future to completion on this thread (native: wgpu's futures finish once polled).
#[cfg(not(target_arch = "wasm32"))]
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}
