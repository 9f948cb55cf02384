// Reading repacked weights: `W` is one part of a matrix (a run of whole rows) as the Rust side
// `repack` module lays it out; dims.a.y is the number of columns, dims.a.z the word offset of
// the scales region where a format has one. `chunk4(row, c, k)` gives values 4k..4k+3 of the
// 32-value chunk `c` of row `row` (row counted within the part), dequantized to f32.
@group(0) @binding(2) var<storage, read> W: array<u32>;
// Which layout W holds: the `case`s of chunk4 below.
override FORMAT: u32 = 0u;

fn byte_at(word_base: u32, i: u32) -> u32 {
    return (W[word_base + i / 4u] >> ((i % 4u) * 8u)) & 255u;
}

fn bytes4(w: u32) -> vec4<u32> {
    return vec4<u32>(w, w >> 8u, w >> 16u, w >> 24u) & vec4<u32>(255u);
}

fn nibbles(w: u32, shift: u32) -> vec4<f32> {
    return vec4<f32>((vec4<u32>(w, w >> 8u, w >> 16u, w >> 24u) >> vec4<u32>(shift)) & vec4<u32>(15u));
}

fn i8x4(w: u32) -> vec4<f32> {
    return vec4<f32>(vec4<i32>(bitcast<i32>(w << 24u), bitcast<i32>(w << 16u), bitcast<i32>(w << 8u), bitcast<i32>(w)) >> vec4<u32>(24u));
}

// f16 scale number `i` of the scales region (two per word).
fn scale16(i: u32) -> f32 {
    let s = unpack2x16float(W[dims.a.z + i / 2u]);
    return select(s.x, s.y, (i & 1u) == 1u);
}

fn chunk4(row: u32, c: u32, k: u32) -> vec4<f32> {
    let cols = dims.a.y;
    let blk = row * (cols / 32u) + c;
    switch FORMAT {
        // Q4_0: 4 words of codes per block, value j in the low nibble of byte j, j+16 in its high one.
        case 0u: {
            return (nibbles(W[blk * 4u + (k & 3u)], (k >> 2u) * 4u) - 8.0) * scale16(blk);
        }
        // Q8_0: 8 words of i8 codes per block.
        case 1u: {
            return i8x4(W[blk * 8u + k]) * scale16(blk);
        }
        // Q4_K super-blocks as in the file (144 bytes = 36 words).
        case 2u: {
            let base = (row * (cols / 256u) + c / 8u) * 36u;
            let j = c % 8u;
            let dm = unpack2x16float(W[base]);
            var sc: u32;
            var m: u32;
            if j < 4u {
                sc = byte_at(base + 1u, j) & 63u;
                m = byte_at(base + 1u, j + 4u) & 63u;
            } else {
                sc = (byte_at(base + 1u, j + 4u) & 15u) | ((byte_at(base + 1u, j - 4u) >> 6u) << 4u);
                m = (byte_at(base + 1u, j + 4u) >> 4u) | ((byte_at(base + 1u, j) >> 6u) << 4u);
            }
            let w = W[base + 4u + 8u * (j / 2u) + k];
            return nibbles(w, (j % 2u) * 4u) * (dm.x * f32(sc)) - vec4<f32>(dm.y * f32(m));
        }
        // Q6_K super-blocks padded from 210 to 212 bytes (53 words).
        case 3u: {
            let base = (row * (cols / 256u) + c / 8u) * 53u;
            let j = c % 8u;
            let half = j / 4u;
            let part = j % 4u;
            let lo = (bytes4(W[base + 16u * half + 8u * (part & 1u) + k]) >> vec4<u32>(4u * (part >> 1u))) & vec4<u32>(15u);
            let hi = (bytes4(W[base + 32u + 8u * half + k]) >> vec4<u32>(2u * part)) & vec4<u32>(3u);
            let q = vec4<f32>(vec4<i32>(lo | (hi << vec4<u32>(4u))) - vec4<i32>(32));
            let sb = byte_at(base + 48u, 8u * half + 2u * part + k / 4u);
            let s = f32(bitcast<i32>(sb << 24u) >> 24u);
            return q * (unpack2x16float(W[base + 52u]).x * s);
        }
        // i8 codes with an f32 scale and offset per block (Q4_1, Q5_0, Q5_1, Q5_K, exactly).
        case 4u: {
            let sm = dims.a.z + blk * 2u;
            return i8x4(W[blk * 8u + k]) * bitcast<f32>(W[sm]) + vec4<f32>(bitcast<f32>(W[sm + 1u]));
        }
        // F16, two values per word.
        case 5u: {
            let i = (row * cols + c * 32u + 4u * k) / 2u;
            return vec4<f32>(unpack2x16float(W[i]), unpack2x16float(W[i + 1u]));
        }
        // F32.
        default: {
            let i = row * cols + c * 32u + 4u * k;
            return vec4<f32>(bitcast<f32>(W[i]), bitcast<f32>(W[i + 1u]), bitcast<f32>(W[i + 2u]), bitcast<f32>(W[i + 3u]));
        }
    }
}
