// One instruction-set variant of the channels-last TV kernel (see kernel.hpp).
//
// CMake compiles this file several times on x86-64 (-march=x86-64-v4, x86-64-v3, and the
// compiler's baseline) with TVX_KERNEL_NAME naming the entry point; tv_dwconv.cpp picks the best
// one the running CPU supports. Vectorisation is the compiler's: the innermost loops run over a
// fixed-size block of TVX_BLOCK channels with unit stride, which GCC and Clang turn into vector
// FMAs of the target width (accumulators stay in registers across the taps).
//
// Loop order, chosen for memory traffic: output position (one thread owns a contiguous range)
// -> channel block -> batch row -> tap. The position's kernels (k*k x block) are read from memory
// once per call and reused from L1 for every batch row; compressed kernels (float16, int8 with a
// per (tap, channel) scale) are dequantized into that small tile in the same loop, never into a
// float32 copy of the whole kernel tensor.
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernel.hpp"

#ifndef TVX_KERNEL_NAME
#    define TVX_KERNEL_NAME kernel_generic
#endif
#ifndef TVX_BLOCK
#    define TVX_BLOCK 16
#endif

namespace tvx {
namespace {

constexpr int64_t kBlock = TVX_BLOCK;

#if defined(__FLT16_MAX__)
// The compiler's _Float16 (GCC >= 12 on x86-64 and AArch64, Clang >= 15): one vcvtph2ps / fcvtl
// per vector where the target has it (F16C is part of x86-64-v3).
using half = _Float16;
inline float to_float(half v) {
    return static_cast<float>(v);
}
inline half from_float(float v) {
    return static_cast<half>(v);
}
#else
// Portable IEEE binary16 <-> float32 on the bit patterns (branch-free, so it still vectorises).
struct half {
    uint16_t bits;
};
inline float bits_to_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}
inline float to_float(half v) {
    const uint32_t h = v.bits;
    const uint32_t sign = (h & 0x8000u) << 16;
    const uint32_t em = h & 0x7fffu;
    const uint32_t normal = (em << 13) + (112u << 23) + (em >= 0x7c00u ? (112u << 23) : 0u);
    const float mag = em < 0x0400u ? static_cast<float>(em) * 5.9604644775390625e-08f : bits_to_float(normal);
    uint32_t u;
    std::memcpy(&u, &mag, sizeof u);
    return bits_to_float(u | sign);
}
inline half from_float(float f) {  // round to nearest even; overflow to inf
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    const uint32_t sign = (u >> 16) & 0x8000u;
    u &= 0x7fffffffu;
    uint16_t out;
    if (u > 0x7f800000u) {
        out = 0x7e00u;
    } else if (u >= 0x477ff000u) {
        out = 0x7c00u;
    } else if (u < 0x38800000u) {  // subnormal or zero in half
        const float mag = bits_to_float(u) * 16777216.0f;  // * 2^24: half subnormal units
        const float r = mag + 12582912.0f - 12582912.0f;    // round to nearest even integer
        out = static_cast<uint16_t>(r);
    } else {
        const uint32_t mant_odd = (u >> 13) & 1u;
        u += 0xc8000fffu + mant_odd;  // rebias exponent (-112 << 23) and round
        out = static_cast<uint16_t>(u >> 13);
    }
    return half{static_cast<uint16_t>(out | sign)};
}
#endif

inline float to_float(float v) {
    return v;
}
inline float to_float(int8_t v) {
    return static_cast<float>(v);
}

template <typename T>
inline T store_as(float v) {
    if constexpr (std::is_same_v<T, float>)
        return v;
    else
        return from_float(v);
}

// One channel block of one output position for every batch row. `cn` is kBlock (fixed trip
// count: the compiler keeps `acc` in vector registers) or the remainder of C.
template <typename XT, int64_t CN>
inline void block(const KernelArgs& a, const XT* x, XT* y, const float* const* taps_w, const int64_t* taps_off,
                  int nt, const float* bias, int64_t cn_dyn) {
    const int64_t cn = CN > 0 ? CN : cn_dyn;
    const int64_t x_img = a.in_h * a.in_w * a.c;
    const int64_t y_img = a.out_h * a.out_w * a.c;
    for (int64_t n = 0; n < a.n; ++n) {
        float acc[kBlock];
        for (int64_t u = 0; u < cn; ++u)
            acc[u] = bias ? bias[u] : 0.0f;
        const XT* xn = x + n * x_img;
        for (int t = 0; t < nt; ++t) {
            const XT* __restrict xp = xn + taps_off[t];
            const float* __restrict wp = taps_w[t];
            for (int64_t u = 0; u < cn; ++u)
                acc[u] += wp[u] * to_float(xp[u]);
        }
        XT* __restrict yp = y + n * y_img;
        for (int64_t u = 0; u < cn; ++u)
            yp[u] = store_as<XT>(acc[u]);
    }
}

template <typename XT, typename WT>
void run(const KernelArgs& a, int64_t begin, int64_t end) {
    const int64_t C = a.c, k = a.k, kk = k * k;
    const auto* X = static_cast<const XT*>(a.x);
    const auto* Wt = static_cast<const WT*>(a.weight);
    auto* Y = static_cast<XT*>(a.y);
    std::vector<int64_t> tap_index(kk), tap_off(kk);
    std::vector<const float*> tap_w(kk);
    // float32 tile of the position's kernels for one channel block (compressed weights only)
    std::vector<float> tile(std::is_same_v<WT, float> ? 0 : kk * kBlock);

    for (int64_t p = begin; p < end; ++p) {
        const int64_t i = p / a.out_w, j = p % a.out_w;
        int nt = 0;  // taps inside the input (the others read zero padding)
        for (int64_t ky = 0; ky < k; ++ky) {
            const int64_t iy = i * a.stride + ky - a.pad;
            if (iy < 0 || iy >= a.in_h)
                continue;
            for (int64_t kx = 0; kx < k; ++kx) {
                const int64_t ix = j * a.stride + kx - a.pad;
                if (ix < 0 || ix >= a.in_w)
                    continue;
                tap_index[nt] = ky * k + kx;
                tap_off[nt] = (iy * a.in_w + ix) * C;
                ++nt;
            }
        }
        const WT* wpos = Wt + p * kk * C;
        const float* bpos = a.bias ? (a.bias_map ? a.bias + p * C : a.bias) : nullptr;
        for (int64_t cb = 0; cb < C; cb += kBlock) {
            const int64_t cn = std::min<int64_t>(kBlock, C - cb);
            for (int t = 0; t < nt; ++t) {
                const WT* w = wpos + tap_index[t] * C + cb;
                if constexpr (std::is_same_v<WT, float>) {
                    tap_w[t] = w;
                } else {
                    float* dst = tile.data() + t * kBlock;
                    if constexpr (std::is_same_v<WT, int8_t>) {
                        const float* s = a.scale + tap_index[t] * C + cb;
                        for (int64_t u = 0; u < cn; ++u)
                            dst[u] = to_float(w[u]) * s[u];
                    } else {
                        for (int64_t u = 0; u < cn; ++u)
                            dst[u] = to_float(w[u]);
                    }
                    tap_w[t] = dst;
                }
            }
            const float* b = bpos ? bpos + cb : nullptr;
            XT* y = Y + p * C + cb;
            const XT* x = X + cb;
            if (cn == kBlock)
                block<XT, kBlock>(a, x, y, tap_w.data(), tap_off.data(), nt, b, cn);
            else
                block<XT, 0>(a, x, y, tap_w.data(), tap_off.data(), nt, b, cn);
        }
    }
}

template <typename XT>
void run_x(const KernelArgs& a, int64_t begin, int64_t end) {
    switch (a.w_type) {
    case DType::f32:
        return run<XT, float>(a, begin, end);
    case DType::f16:
        return run<XT, half>(a, begin, end);
    case DType::i8:
        return run<XT, int8_t>(a, begin, end);
    }
}

}  // namespace

void TVX_KERNEL_NAME(const KernelArgs& a, int64_t begin, int64_t end) {
    if (a.x_type == DType::f16)
        run_x<half>(a, begin, end);
    else
        run_x<float>(a, begin, end);
}

}  // namespace tvx
