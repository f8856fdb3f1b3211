// The channels-last translation-variant depthwise kernel: plain C++, no OpenVINO headers, so that
// kernel.cpp can be compiled once per instruction set (see CMakeLists.txt) and picked at run time.
//
// Layouts (row-major):
//   x      (N, H, W, C)   float32 | float16
//   weight (h, k*k, w, C) float32 | float16 | int8      (one kernel per output position;
//                                                        a tap's kernels for a row are one run)
//   scale  (k*k, S)       float32, int8 weights only    (w_real = float(w) * scale; S =
//                                                        segment_floats(C): the (k*k, C) scale
//                                                        repeated over a segment's positions)
//   bias   (h, w, C) map, or (1, P, C) per channel repeated like scale (P * C = S); float32,
//          optional
//   y      (N, h, w, C)   same type as x
//
//   y[n, i, j, c] = clamp(bias + sum_{ky, kx} w[i, ky*k + kx, j, c] * x[n, i*s + ky - p, j*s + kx - p, c])
//
// taps outside the input are zero (padding p); clamp to [lo, hi] only when `clamp` is set (a
// following Clip/Relu fused into the op). Accumulation is float32; compressed kernels are
// dequantized in registers, inside the multiply-add loop.
//
// Pointwise prologue (pw_weight set; float32 x only): x is the (N, H, W, cin) input of a 1x1
// convolution (+ bias, + clamp) folded into the op ((N, cin, H, W) where pw_nchw), whose C-channel
// output the op reads:
//   x_op[n, iy, ix, c] = pre_clamp(pw_bias[c] + sum_ci x[n, iy, ix, ci] * pw_weight[ci, c])
// computed on the fly as the ring's input rows are filled (kernel.cpp: Pass::load_row) and never
// stored whole; padding is zero after it. pw_weight (cin, Cp) and pw_bias (Cp) float32, Cp = C
// rounded up to whole vectors (pointwise_columns), the extra columns zero
// (tvexport/openvino/runtime.py: fuse_pointwise_convs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#if defined(__unix__) || defined(__APPLE__)
#    include <unistd.h>
#endif
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#    include <cpuid.h>
#endif

namespace tvx {

// Allocator of 64-byte aligned storage, so that vector loads do not straddle cache lines (the
// kernel's scratch buffers; benchmarks/ov_kernel_micro's data).
template <typename T>
struct Aligned {
    using value_type = T;
    Aligned() = default;
    template <typename U>
    Aligned(const Aligned<U>&) {}
    T* allocate(std::size_t n) {
        return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64)));
    }
    void deallocate(T* p, std::size_t) {
        ::operator delete(p, std::align_val_t(64));
    }
    template <typename U>
    bool operator==(const Aligned<U>&) const {
        return true;
    }
    template <typename U>
    bool operator!=(const Aligned<U>&) const {
        return false;
    }
};

enum class DType : int { f32 = 0, f16 = 1, i8 = 2 };

// Whether an x86-64 core has at least 2 MiB of L2 (glibc's sysconf, read once; false where it is
// not known, and on other architectures, where wide int8 tiles were not measured): the default of
// Switches::int8_wide_tiles.
inline bool l2_at_least_2mib() {
#if defined(_SC_LEVEL2_CACHE_SIZE) && (defined(__x86_64__) || defined(_M_X64))
    static const bool wide = sysconf(_SC_LEVEL2_CACHE_SIZE) >= (2L << 20);
    return wide;
#else
    return false;
#endif
}

// Whether the CPU is an AMD Zen 5 or later (CPUID vendor AuthenticAMD, family >= 0x1A; read
// once; false elsewhere and with compilers without <cpuid.h>): the default of
// Switches::kernel_nta, measured faster only there (slower on a Xeon and on the Zen 4, family
// 0x19: kernel.cpp, Pass::hint).
inline bool amd_zen5_or_later() {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    static const bool zen5 = [] {
        unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
        if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx) || ebx != signature_AMD_ebx || edx != signature_AMD_edx || ecx != signature_AMD_ecx)
            return false;  // not "AuthenticAMD"
        if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
            return false;
        const unsigned base = (eax >> 8) & 0xfu;
        const unsigned family = base == 0xfu ? base + ((eax >> 20) & 0xffu) : base;
        return family >= 0x1au;
    }();
    return zen5;
#else
    return false;
#endif
}

// The op's switches for A/B runs (benchmarks/openvino_ab.py --switch), each from an environment
// variable read when an op is constructed and kept by its clones (tv_dwconv.cpp: switches_from_env,
// which says what each measured).
struct Switches {
    bool channel_blocks = true;   // run_channel_blocks may be chosen (kernel.cpp: run); off: the tile path
    bool blocks_outer = true;     // run_channel_blocks: each channel block walks all the rows; off: each row tile all the blocks
    bool scale_registers = true;  // int8, one image: scales held in registers where they fit (kernel.cpp: Pass::scale_register_chunks)
    bool kernel_nta = amd_zen5_or_later();  // batch 1: prefetch the kernel stream with the non-temporal hint (prefetchnta), not into L2 / L1
    bool kernel_l2 = true;        // prefetch the kernel stream into L2 only (prefetcht1); off: into L1 too (prefetcht0)
    bool kernel_rows = true;      // one image: prefetch the head of each tap's kernel run in the next row (kernel.cpp: the comment before run)
    int64_t serial_bytes = 0;     // the op: layers moving fewer bytes run on the calling thread, not split over the pool
    bool int8_wide_tiles = l2_at_least_2mib();  // batch > 1: int8 kernel tiles of 2 x TVX_BLOCK_BYTES (kernel.cpp: block_bytes)
    int64_t block_bytes = 0;      // batch > 1: stored kernel bytes of a tile (before int8_wide_tiles' doubling); 0: the kernel's default (kernel.cpp: block_bytes)
};

struct KernelArgs {
    const void* x;  // (N, H, W, C); with the pointwise prologue (N, H, W, cin) or (N, cin, H, W)
    const void* weight;
    const float* scale;  // nullptr unless weight is int8
    const float* bias;   // nullptr when absent
    void* y;
    int64_t n, in_h, in_w, c;  // input (N, H, W, C)
    int64_t out_h, out_w;      // output positions
    int64_t k, stride, pad;
    bool bias_map;  // bias is (h, w, C) rather than (1, P, C)
    DType x_type, w_type;
    bool clamp;  // clamp the output to [lo, hi]
    float lo, hi;
    Switches sw;
    // pointwise prologue (see the top): nullptr when off
    const float* pw_weight = nullptr;  // (cin, pointwise_columns(c))
    const float* pw_bias = nullptr;    // (pointwise_columns(c))
    int64_t cin = 0;
    bool pw_nchw = false;  // x is (N, cin, H, W)
    bool pre_clamp = false;  // clamp the prologue's output to [pre_lo, pre_hi]
    float pre_lo = 0.0f, pre_hi = 0.0f;
};

// Columns of the pointwise prologue's weight and bias: C rounded up to whole 16-float vectors.
constexpr int64_t pointwise_columns(int64_t c) {
    return (c + 15) / 16 * 16;
}

// Output rows are processed in segments of up to kSegment floats of (position, channel). 2048 was
// tried (issue 17u; benchmarks/results/README.md): TV ops 0.91-0.96x at batch 16 on face
// MobileNetV2 x1.0, but int8 1.05-1.09x at batch 1 on x0.1 and ShuffleNetV2 x1.0; not kept.
constexpr int64_t kSegment = 512;

// Positions per segment: whole positions, at least one.
constexpr int64_t segment_positions(int64_t c) {
    return c >= kSegment ? 1 : kSegment / c;
}

// Floats of (position, channel) in a full segment: the length S of the tiled scale and bias rows.
constexpr int64_t segment_floats(int64_t c) {
    return segment_positions(c) * c;
}

// Computes output rows [row_begin, row_end) of every image.
using KernelFn = void (*)(const KernelArgs&, int64_t row_begin, int64_t row_end);

void kernel_generic(const KernelArgs&, int64_t, int64_t);
#if defined(TVX_MULTI_ISA)
void kernel_avx2(const KernelArgs&, int64_t, int64_t);
void kernel_avx512(const KernelArgs&, int64_t, int64_t);
#endif

}  // namespace tvx
