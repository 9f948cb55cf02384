// Split-KV attention, pass 2 of 3: workgroup (h, s, t) combines every split's max and sum into
// the softmax's (online-softmax rescaling), turns its scores into probabilities rounded to f16
// (as ggml multiplies them with the f16 values) and sums its positions' values.
// dims as attn_scores.wgsl. PART[((t * n_heads + h) * max_splits + s) * head_dim + d].
@group(0) @binding(2) var<storage, read> STATS: array<f32>;
@group(0) @binding(3) var<storage, read> SCORES: array<f32>;
@group(0) @binding(4) var<storage, read> VC: array<KV_WORD>;
@group(0) @binding(5) var<storage, read_write> PART: array<f32>;

var<workgroup> weight: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let nh = dims.a.x;
    let hd = dims.a.z;
    let ms = dims.b.x;
    let h = wid.x;
    let s = wid.y;
    let t = wid.z;
    if t >= step.n_tokens {
        return;
    }
    let len = step.pos + t + 1u;
    let th = t * nh + h;
    let first = window_first(len, dims.b.y);
    let n = (len + WG - 1u) / WG;
    var m = -1.0e30;
    for (var i = 0u; i < n; i++) {
        m = max(m, STATS[(th * ms + i) * 2u]);
    }
    var l = 0.0;
    for (var i = 0u; i < n; i++) {
        l += STATS[(th * ms + i) * 2u + 1u] * exp(STATS[(th * ms + i) * 2u] - m);
    }
    let p = s * WG + lid;
    var w = 0.0;
    if p < len && p >= first {
        // exp(s - m) * (1 / l): the CPU's softmax multiplies by the reciprocal.
        w = unpack2x16float(pack2x16float(vec2<f32>(exp(SCORES[th * dims.b.z + p] - m) * (1.0 / l), 0.0))).x;
    }
    weight[lid] = w;
    workgroupBarrier();
    let kvh = h / (nh / dims.a.y);
    for (var d = lid; d < hd / 2u; d += WG) {
        var acc = vec2<f32>(0.0);
        for (var j = 0u; j < WG; j++) {
            let pj = s * WG + j;
            if pj < len && pj >= first {
                let v = KV_PAIR(VC[(pj * dims.a.w + kvh * hd) / 2u + d]);
                acc.x += weight[j] * v.x;
                acc.y += weight[j] * v.y;
            }
        }
        let o = (th * ms + s) * hd + 2u * d;
        PART[o] = acc.x;
        PART[o + 1u] = acc.y;
    }
}
