// One instruction-set variant of the channels-last TV kernel (see kernel.hpp).
//
// CMake compiles this file several times on x86-64 (-march=x86-64-v4, x86-64-v3, and the
// compiler's baseline) with TVX_KERNEL_NAME naming the entry point; tv_dwconv.cpp picks the best
// one the running CPU supports. Vectorisation uses the GCC/Clang vector extension (16 floats),
// which the compiler maps to the target's registers; TVX_CHUNK floats of accumulators stay in
// registers across all taps.
//
// A thread owns a range of output rows and walks it in blocks of rows whose kernels (h, k*k, w, C
// layout: one contiguous run per row and tap) fit in L2; every image of the batch is computed
// with a block before the next block is read, so the kernels come from memory once per call.
// Compressed kernels (float16, int8 with a per (tap, channel) scale) are dequantized block by
// block into that L2-sized buffer, never into a float32 copy of the whole kernel tensor.
// Within a row, segments of up to kSegment floats of (position, channel). Input rows are
// converted once into float32 buffers, zero-padded and split by phase (column mod stride), so
// that every tap is one contiguous run over (position, channel) of kernels, input and output
// alike: the vector loops stay full however few channels a layer has, and no bounds are checked
// inside them (see Pass).
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__F16C__)
#    include <immintrin.h>
#endif

#include "kernel.hpp"

#ifndef TVX_KERNEL_NAME
#    define TVX_KERNEL_NAME kernel_generic
#endif
#ifndef TVX_CHUNK
#    define TVX_CHUNK 16  // floats per register-held accumulator block: 16, 32 or 64
#endif
#ifndef TVX_BATCH_TILE
#    define TVX_BATCH_TILE 1  // images sharing each kernel load (accumulators: TILE x CHUNK floats)
#endif

namespace tvx {
namespace {

#if defined(__FLT16_MAX__) && !defined(TVX_PORTABLE_HALF)
// The compiler's _Float16 (GCC >= 12 on x86-64 and AArch64, Clang >= 15).
using half = _Float16;
inline float to_float(half v) {
    return static_cast<float>(v);
}
inline half from_float(float v) {
    return static_cast<half>(v);
}
#else
// Portable IEEE binary16 <-> float32 on the bit patterns, for older compilers (tested against
// numpy for all 65536 values by tests/test_openvino.py).
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

// dst[u] = float(src[u]) (* scale[u] for int8), u < n
template <typename WT>
inline void dequantize(float* __restrict dst, const WT* __restrict src, const float* __restrict scale, int64_t n) {
    if constexpr (std::is_same_v<WT, int8_t>) {
        for (int64_t u = 0; u < n; ++u)
            dst[u] = static_cast<float>(src[u]) * scale[u];
    } else {
        int64_t u = 0;
#if defined(__F16C__) && defined(__FLT16_MAX__) && !defined(TVX_PORTABLE_HALF)
        for (; u + 8 <= n; u += 8)  // GCC 12 does not vectorise _Float16 -> float on its own
            _mm256_storeu_ps(dst + u, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + u))));
#endif
        for (; u < n; ++u)
            dst[u] = to_float(src[u]);
    }
}

// GCC/Clang vector extension: 16 floats, split by the compiler into what the target has
// (one zmm, two ymm, four xmm or NEON q registers).
typedef float v16 __attribute__((vector_size(64)));
constexpr int64_t kLanes = 16;
constexpr int64_t kVectors = TVX_CHUNK / kLanes;  // accumulators held in registers per chunk

inline v16 load(const float* p) {
    v16 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void store_v(float* p, v16 v) {
    std::memcpy(p, &v, sizeof v);
}

template <typename XT>
inline void convert(float* __restrict dst, const XT* __restrict src, int64_t n) {
    if constexpr (std::is_same_v<XT, float>) {
        std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
    } else {
        for (int64_t u = 0; u < n; ++u)
            dst[u] = to_float(src[u]);
    }
}

template <typename XT>
inline void store(XT* __restrict y, const float* __restrict acc, int64_t n) {
    if constexpr (std::is_same_v<XT, float>) {
        std::memcpy(y, acc, static_cast<size_t>(n) * sizeof(float));
    } else {
        for (int64_t u = 0; u < n; ++u)
            y[u] = from_float(acc[u]);
    }
}

// Software prefetch of bytes [offset, offset + n) of a region: the loops below read several short
// runs at once (k input rows, k*k kernel runs), which the hardware prefetchers track poorly.
inline void prefetch(const void* base, int64_t offset, int64_t n) {
    const char* p = static_cast<const char*>(base);
    for (int64_t o = offset; o < offset + n; o += 64)
        __builtin_prefetch(p + o, 0, 3);
}

// Everything one thread needs for a call, and the segment step for NB images at a time (their
// accumulators share each kernel load: NB x TVX_CHUNK floats of accumulators in registers).
//
// Input rows live in a ring of k slots per image (row iy in slot iy mod k: k consecutive rows
// never share a slot), each a whole row converted to float32, zero-padded and split by phase:
// padded column q = ix + p goes to phase q mod s, position q / s. The tap (ky, kx) of output
// position j then reads phase kx mod s at position j + kx / s, so a tap is one contiguous run
// over (position, channel) for every stride, and each input row is converted once per image
// and row block, not once per output row that reads it.
template <typename XT>
struct Pass {
    const KernelArgs& a;
    Segments g;
    int64_t span;        // positions per phase
    int64_t slot;        // floats of one row slot: s phases x span x C
    int64_t image_rows;  // floats of one image's k slots
    std::vector<float> rows;     // TVX_BATCH_TILE images x k slots
    std::vector<int64_t> held;   // input row held by each (image, slot), -1: none
    std::vector<float> out;      // TVX_BATCH_TILE x segment
    std::vector<const float*> tap_w, tap_x;

    Pass(const KernelArgs& args) : a(args), g(segments(args)) {
        span = a.out_w + (a.k - 1) / a.stride + 1;
        slot = a.stride * span * a.c;
        image_rows = a.k * slot;
        rows.resize(TVX_BATCH_TILE * image_rows);
        held.assign(TVX_BATCH_TILE * a.k, -1);
        out.resize(TVX_BATCH_TILE * g.positions * a.c);
        tap_w.resize(a.k * a.k);
        tap_x.resize(a.k * a.k);
    }

    void forget_rows() {
        std::fill(held.begin(), held.end(), -1);
    }

    // Row iy of image n into image slot b (unless it is there already).
    void load_row(int b, int64_t n, int64_t iy) {
        const int64_t C = a.c, s = a.stride, p = a.pad, W = a.in_w;
        int64_t& h = held[b * a.k + iy % a.k];
        if (h == iy)
            return;
        h = iy;
        const XT* xrow = static_cast<const XT*>(a.x) + (n * a.in_h + iy) * W * C;
        for (int64_t r = 0; r < s; ++r) {
            float* dst = rows.data() + b * image_rows + (iy % a.k) * slot + r * span * C;
            // positions m whose column ix = m * s + r - p lies in the row
            const int64_t ml = std::min(span, p - r <= 0 ? int64_t{0} : (p - r + s - 1) / s);
            const int64_t mh = std::max(ml, std::min(span, W - 1 + p - r < 0 ? int64_t{0} : (W - 1 + p - r) / s + 1));
            std::fill(dst, dst + ml * C, 0.0f);
            std::fill(dst + mh * C, dst + span * C, 0.0f);
            if (s == 1) {
                convert(dst + ml * C, xrow + (ml - p) * C, (mh - ml) * C);
            } else {
                for (int64_t m = ml; m < mh; ++m)
                    convert(dst + m * C, xrow + (m * s + r - p) * C, C);
            }
        }
    }

    // Output row i, positions [j0, j0 + positions), images [n0, n0 + NB); `kernels` points at
    // the row's float32 kernels (tap, position, channel); bias at the segment's bias or nullptr.
    template <int NB>
    void segment(int64_t n0, int64_t i, int64_t j0, int64_t positions, const float* kernels, const float* bias) {
        const int64_t C = a.c, k = a.k, s = a.stride, p = a.pad, ow = a.out_w;
        const int64_t len = positions * C;
        int nt = 0;
        for (int64_t ky = 0; ky < k; ++ky) {
            const int64_t iy = i * s + ky - p;
            if (iy < 0 || iy >= a.in_h)
                continue;  // the tap reads zero padding: skipped
            for (int b = 0; b < NB; ++b)
                load_row(b, n0 + b, iy);
            for (int64_t kx = 0; kx < k; ++kx) {
                tap_w[nt] = kernels + (ky * k + kx) * ow * C + j0 * C;
                tap_x[nt] = rows.data() + (iy % k) * slot + ((kx % s) * span + j0 + kx / s) * C;
                ++nt;
            }
        }
        const int64_t img = image_rows;
        // float32 outputs are written in place; float16 ones go through `out` and are converted
        constexpr bool kDirect = std::is_same_v<XT, float>;
        float* dst[NB];
        for (int b = 0; b < NB; ++b)
            dst[b] = kDirect ? reinterpret_cast<float*>(static_cast<XT*>(a.y) + (((n0 + b) * a.out_h + i) * ow + j0) * C)
                             : out.data() + b * len;
        int64_t u = 0;
        for (; u + TVX_CHUNK <= len; u += TVX_CHUNK) {
            v16 acc[NB][kVectors];
            for (int b = 0; b < NB; ++b)
                for (int64_t v = 0; v < kVectors; ++v)
                    acc[b][v] = bias ? load(bias + u + v * kLanes) : v16{};
            for (int t = 0; t < nt; ++t) {
                const float* wp = tap_w[t] + u;
                const float* xp = tap_x[t] + u;
                for (int64_t v = 0; v < kVectors; ++v) {
                    const v16 w = load(wp + v * kLanes);
                    for (int b = 0; b < NB; ++b)
                        acc[b][v] += w * load(xp + b * img + v * kLanes);
                }
            }
            for (int b = 0; b < NB; ++b)
                for (int64_t v = 0; v < kVectors; ++v)
                    store_v(dst[b] + u + v * kLanes, acc[b][v]);
        }
        for (; u + kLanes <= len; u += kLanes) {  // then single vectors
            v16 acc[NB];
            for (int b = 0; b < NB; ++b)
                acc[b] = bias ? load(bias + u) : v16{};
            for (int t = 0; t < nt; ++t) {
                const v16 w = load(tap_w[t] + u);
                for (int b = 0; b < NB; ++b)
                    acc[b] += w * load(tap_x[t] + b * img + u);
            }
            for (int b = 0; b < NB; ++b)
                store_v(dst[b] + u, acc[b]);
        }
        for (int b = 0; b < NB; ++b) {
            float* __restrict o = dst[b];
            for (int64_t q = u; q < len; ++q)  // fewer than 16 floats left
                o[q] = bias ? bias[q] : 0.0f;
            for (int t = 0; t < nt; ++t) {
                const float* __restrict wp = tap_w[t];
                const float* __restrict xp = tap_x[t] + b * img;
                for (int64_t q = u; q < len; ++q)
                    o[q] += wp[q] * xp[q];
            }
            if constexpr (!kDirect)
                store(static_cast<XT*>(a.y) + (((n0 + b) * a.out_h + i) * ow + j0) * C, o, len);
        }
    }
};

template <typename XT, typename WT>
void run(const KernelArgs& a, int64_t row_begin, int64_t row_end) {
    constexpr bool kF32 = std::is_same_v<WT, float>;
    const int64_t C = a.c, k = a.k, kk = k * k, s = a.stride, p = a.pad, W = a.in_w, H = a.in_h, ow = a.out_w;
    Pass<XT> pass(a);
    const Segments g = pass.g;
    const int64_t seg = g.positions * C;
    const int64_t row_kernels = kk * ow * C;  // kernel values of one output row
    const int64_t block = rows_per_block(a);
    const auto* X = static_cast<const XT*>(a.x);
    const auto* Wt = static_cast<const WT*>(a.weight);
    std::vector<float> tile(kF32 ? 0 : block * row_kernels);  // a block of rows' kernels, dequantized
    std::vector<float> scale_row;                              // int8: scale[t, c] repeated over positions
    if constexpr (std::is_same_v<WT, int8_t>) {
        scale_row.resize(kk * ow * C);
        for (int64_t t = 0; t < kk; ++t)
            for (int64_t u = 0; u < ow * C; ++u)
                scale_row[t * ow * C + u] = a.scale[t * C + u % C];
    }
    std::vector<float> bias_row;  // per-channel bias repeated over positions
    if (a.bias && !a.bias_map) {
        bias_row.resize(seg);
        for (int64_t u = 0; u < seg; ++u)
            bias_row[u] = a.bias[u % C];
    }

    for (int64_t rb = row_begin; rb < row_end; rb += block) {
        const int64_t re = std::min(row_end, rb + block);
        const float* kernels;  // rows [rb, re) of kernels as float32, (row, tap, position, channel)
        if constexpr (kF32) {
            kernels = Wt + rb * row_kernels;
        } else {
            for (int64_t i = rb; i < re; ++i)
                dequantize(tile.data() + (i - rb) * row_kernels, Wt + i * row_kernels, scale_row.empty() ? nullptr : scale_row.data(), row_kernels);
            kernels = tile.data();
        }
        // the block's kernels (sized for L2) serve every image, TVX_BATCH_TILE images at a time
        for (int64_t n0 = 0; n0 < a.n;) {
            const int64_t nb = a.n - n0 >= TVX_BATCH_TILE ? TVX_BATCH_TILE : 1;
            pass.forget_rows();
            for (int64_t i = rb; i < re; ++i) {
                // what the next row needs from memory, fetched a slice per segment while this
                // row computes: its new input rows (these images, or the next ones at the
                // block's end) and, on first use, its kernels
                const bool last = i + 1 == re;
                const int64_t next_n = last ? n0 + nb : n0, next_i = last ? rb : i + 1;
                const int64_t first_new = std::max<int64_t>(0, next_i * s - p + (last ? 0 : k - s));
                const int64_t last_row = std::min<int64_t>(H, next_i * s - p + k);
                const int64_t x_bytes = next_n < a.n && last_row > first_new ? (last_row - first_new) * W * C * int64_t(sizeof(XT)) : 0;
                const int64_t w_bytes = kF32 && n0 == 0 && !last ? row_kernels * int64_t(sizeof(float)) : 0;
                const float* w_next = kernels + (i + 1 - rb) * row_kernels;
                const float* row_k = kernels + (i - rb) * row_kernels;
                for (int64_t j0 = 0, q = 0; j0 < ow; j0 += g.positions, ++q) {
                    for (int64_t b = 0; b < nb && next_n + b < a.n; ++b)
                        prefetch(X + ((next_n + b) * H + first_new) * W * C, x_bytes * q / g.per_row, x_bytes / g.per_row + 64);
                    prefetch(w_next, w_bytes * q / g.per_row, w_bytes / g.per_row + 64);
                    const int64_t positions = std::min(ow, j0 + g.positions) - j0;
                    const float* bias = !a.bias ? nullptr : a.bias_map ? a.bias + (i * ow + j0) * C : bias_row.data();
                    if (nb == TVX_BATCH_TILE)
                        pass.template segment<TVX_BATCH_TILE>(n0, i, j0, positions, row_k, bias);
                    else
                        pass.template segment<1>(n0, i, j0, positions, row_k, bias);
                }
            }
            n0 += nb;
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

void TVX_KERNEL_NAME(const KernelArgs& a, int64_t row_begin, int64_t row_end) {
    if (a.x_type == DType::f16)
        run_x<half>(a, row_begin, row_end);
    else
        run_x<float>(a, row_begin, row_end);
}

}  // namespace tvx
