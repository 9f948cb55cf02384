// Split-KV attention, second pass: per query head, the splits' partial results rescaled to a
// common max and normalized. dims.a = (n_heads, head_dim, max_splits, -).
@group(0) @binding(2) var<storage, read> PART: array<f32>;
@group(0) @binding(3) var<storage, read_write> OUT: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let nh = dims.a.x;
    let hd = dims.a.y;
    let ms = dims.a.z;
    let h = wid.x;
    let n = (step.pos + 1u + WG - 1u) / WG;
    var m = -1.0e30;
    for (var s = 0u; s < n; s++) {
        m = max(m, PART[(h * ms + s) * 2u]);
    }
    var l = 0.0;
    for (var s = 0u; s < n; s++) {
        l += PART[(h * ms + s) * 2u + 1u] * exp(PART[(h * ms + s) * 2u] - m);
    }
    for (var d = lid; d < hd; d += WG) {
        var o = 0.0;
        for (var s = 0u; s < n; s++) {
            o += PART[nh * ms * 2u + (h * ms + s) * hd + d] * exp(PART[(h * ms + s) * 2u] - m);
        }
        OUT[h * hd + d] = o / l;
    }
}
