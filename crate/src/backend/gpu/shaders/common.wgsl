// Shared by every pocketlm kernel. `dims` is the dispatch's shape, written once at load;
// `step` holds the per-submit values, written once before each submit: `step.pos` is the
// position of the first of `step.n_tokens` tokens (1 in decode, a chunk of the prompt in
// prefill); kernels run token `t` at position `step.pos + t`.
struct Dims {
    a: vec4<u32>,
    b: vec4<u32>,
    f: vec4<f32>,
}

struct Step {
    pos: u32,
    token: u32,
    n_tokens: u32,
    n_penalties: u32,
    temperature: f32,
    top_k: u32,
    top_p: f32,
    min_p: f32,
    repetition_penalty: f32,
    frequency_penalty: f32,
    presence_penalty: f32,
    draw: f32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<uniform> step: Step;

const WG: u32 = 64u;
// Subgroup size used for reductions; 0: workgroup memory only (set when the adapter has
// subgroups of one fixed size, and the source then starts with `enable subgroups;`).
override SG: u32 = 0u;
var<workgroup> red: array<f32, 64>;

// Sum of `v` over the `width` consecutive invocations (a power of two dividing 64) that share
// `lid / width`; every one of them gets the sum. Must be reached by the whole workgroup.
fn lanes_sum(v: f32, lid: u32, width: u32) -> f32 {
    let first = lid - lid % width;
    if SG > 0u && width >= SG {
        red[lid] = SUBGROUP_ADD(v);
        workgroupBarrier();
        var total = 0.0;
        for (var i = 0u; i < width; i += SG) {
            total += red[first + i];
        }
        workgroupBarrier();
        return total;
    }
    red[lid] = v;
    workgroupBarrier();
    for (var s = width / 2u; s > 0u; s >>= 1u) {
        if lid - first < s {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let total = red[first];
    workgroupBarrier();
    return total;
}

fn lanes_max(v: f32, lid: u32, width: u32) -> f32 {
    let first = lid - lid % width;
    red[lid] = v;
    workgroupBarrier();
    for (var s = width / 2u; s > 0u; s >>= 1u) {
        if lid - first < s {
            red[lid] = max(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let m = red[first];
    workgroupBarrier();
    return m;
}

// The first of `len` cached positions a query attends to: the sliding window's start, or 0
// when `window` is 0 (no window).
fn window_first(len: u32, window: u32) -> u32 {
    if window > 0u && len > window {
        return len - window;
    }
    return 0u;
}

fn silu(x: f32) -> f32 {
    return x / (1.0 + exp(-x));
}

fn gelu_tanh(x: f32) -> f32 {
    let c = 0.7978845608028654;
    // tanh through exp, clamped: WGSL's tanh of a large argument is NaN on some drivers.
    let t = clamp(c * (x + 0.044715 * x * x * x), -15.0, 15.0);
    let e = exp(2.0 * t);
    return 0.5 * x * (1.0 + (e - 1.0) / (e + 1.0));
}
