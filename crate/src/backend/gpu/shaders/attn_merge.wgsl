// Split-KV attention, pass 3 of 3: per query head h and token t (workgroup (h, t)), the sum of
// the splits' weighted values. dims.a = (n_heads, head_dim, max_splits, OUT row stride).
@group(0) @binding(2) var<storage, read> PART: array<f32>;
@group(0) @binding(3) var<storage, read_write> OUT: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let hd = dims.a.y;
    let ms = dims.a.z;
    let h = wid.x;
    let t = wid.y;
    if t >= step.n_tokens {
        return;
    }
    let th = t * dims.a.x + h;
    let n = (step.pos + t + 1u + WG - 1u) / WG;
    for (var d = lid; d < hd; d += WG) {
        var o = 0.0;
        for (var s = 0u; s < n; s++) {
            o += PART[(th * ms + s) * hd + d];
        }
        OUT[t * dims.a.w + h * hd + d] = o;
    }
}
