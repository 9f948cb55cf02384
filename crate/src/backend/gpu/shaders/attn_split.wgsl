// Split-KV attention ("flash decoding"), first pass: workgroup (h, s) scores positions
// 64s .. 64s+63 against query head h, and writes its running max, its sum of exponentials and
// its exp-weighted sum of values; attn_merge combines the splits.
// dims.a = (n_heads, n_kv_heads, head_dim, kv_dim), dims.b = (max_splits, sliding window or 0, -, -)
// dims.f = (score scale, soft-cap or 0, -, -). The cache holds step.pos + 1 positions.
@group(0) @binding(2) var<storage, read> Q: array<f32>;
@group(0) @binding(3) var<storage, read> KC: array<u32>;
@group(0) @binding(4) var<storage, read> VC: array<u32>;
@group(0) @binding(5) var<storage, read_write> PART: array<f32>;

const NONE: f32 = -1.0e30;
var<workgroup> weight: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let nh = dims.a.x;
    let hd = dims.a.z;
    let kv_dim = dims.a.w;
    let ms = dims.b.x;
    let h = wid.x;
    let s = wid.y;
    let len = step.pos + 1u;
    var first = 0u;
    if dims.b.y > 0u && len > dims.b.y {
        first = len - dims.b.y;
    }
    let kvh = h / (nh / dims.a.y);
    let p = s * WG + lid;
    let valid = p < len && p >= first;
    var score = NONE;
    if valid {
        let kb = (p * kv_dim + kvh * hd) / 2u;
        let qb = h * hd;
        var acc = 0.0;
        for (var i = 0u; i < hd / 2u; i++) {
            let k = unpack2x16float(KC[kb + i]);
            acc += Q[qb + 2u * i] * k.x + Q[qb + 2u * i + 1u] * k.y;
        }
        score = acc * dims.f.x;
        if dims.f.y > 0.0 {
            let t = clamp(score / dims.f.y, -15.0, 15.0);
            let e = exp(2.0 * t);
            score = dims.f.y * (e - 1.0) / (e + 1.0);
        }
    }
    let m = lanes_max(score, lid, WG);
    var e = 0.0;
    if valid {
        e = exp(score - m);
    }
    weight[lid] = e;
    let l = lanes_sum(e, lid, WG);
    let slot = h * ms + s;
    for (var d = lid; d < hd / 2u; d += WG) {
        var acc = vec2<f32>(0.0);
        for (var j = 0u; j < WG; j++) {
            let pj = s * WG + j;
            if pj < len && pj >= first {
                acc += weight[j] * unpack2x16float(VC[(pj * kv_dim + kvh * hd) / 2u + d]);
            }
        }
        let o = nh * ms * 2u + slot * hd + 2u * d;
        PART[o] = acc.x;
        PART[o + 1u] = acc.y;
    }
    if lid == 0u {
        PART[slot * 2u] = m;
        PART[slot * 2u + 1u] = l;
    }
}
