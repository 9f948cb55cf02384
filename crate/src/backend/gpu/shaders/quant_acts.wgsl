// The activations a mat-vec reads, rounded as the CPU backend and llama.cpp quantize them
// (8-bit blocks with an f16 scale per 32 for Q4_0/Q5_x/Q8_0 weights, 8-bit with an f32 scale
// per 256 for the K-quants, f16 for F16 weights), so that both backends compute the same
// products; RMSNorm is applied first when dims.a.z is 1. One workgroup.
// dims.a = (n, kind: 0 per-32, 1 per-256, 2 f16, 3 f32, norm, -), dims.f.x = eps.
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read> NW: array<f32>;
@group(0) @binding(4) var<storage, read_write> XQ: array<f32>;

var<private> norm_scale: f32 = 1.0;
var<workgroup> ssum: f32;

fn xin(i: u32) -> f32 {
    if dims.a.z != 0u {
        return X[i] * norm_scale * NW[i];
    }
    return X[i];
}

fn f16_round(v: f32) -> f32 {
    return unpack2x16float(pack2x16float(vec2<f32>(v, 0.0))).x;
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32) {
    let n = dims.a.x;
    let kind = dims.a.y;
    if dims.a.z != 0u {
        // Summed in order by one invocation, as the CPU sums: the rounding that follows is
        // then fed the same values (a tree sum differs in the last bit, which can move a
        // rounded activation by one step).
        if lid == 0u {
            var ss = 0.0;
            for (var i = 0u; i < n; i++) {
                ss += X[i] * X[i];
            }
            ssum = ss;
        }
        norm_scale = 1.0 / sqrt(workgroupUniformLoad(&ssum) / f32(n) + dims.f.x);
    }
    if kind >= 2u {
        for (var i = lid; i < n; i += WG) {
            let v = xin(i);
            XQ[i] = select(v, f16_round(v), kind == 2u);
        }
        return;
    }
    let bs = select(32u, 256u, kind == 1u);
    for (var b = lid; b < n / bs; b += WG) {
        var amax = 0.0;
        var signed_max = 0.0;
        for (var j = 0u; j < bs; j++) {
            let v = xin(b * bs + j);
            if abs(v) > amax {
                amax = abs(v);
                signed_max = v;
            }
        }
        if kind == 0u {
            // 127 / amax correctly rounded (WGSL's division may be off by an ulp or two): one
            // Newton step on the quotient.
            var id = 127.0 / amax;
            id = fma(fma(-amax, id, 127.0), 1.0 / amax, id);
            id = select(0.0, id, amax != 0.0);
            let d = f16_round(amax / 127.0);
            for (var j = 0u; j < bs; j++) {
                XQ[b * bs + j] = round(xin(b * bs + j) * id) * d;
            }
        } else {
            let iscale = select(0.0, -127.0 / signed_max, amax != 0.0);
            let d = select(0.0, 1.0 / iscale, amax != 0.0);
            for (var j = 0u; j < bs; j++) {
                XQ[b * bs + j] = min(round(iscale * xin(b * bs + j)), 127.0) * d;
            }
        }
    }
}
