// The channels-last translation-variant depthwise kernel: plain C++, no OpenVINO headers, so that
// kernel.cpp can be compiled once per instruction set (see CMakeLists.txt) and picked at run time.
//
// Layouts (row-major):
//   x      (N, H, W, C)   float32 | float16
//   weight (h, k*k, w, C) float32 | float16 | int8      (one kernel per output position;
//                                                        a tap's kernels for a row are one run)
//   scale  (k*k, C)       float32, int8 weights only    (w_real = float(w) * scale)
//   bias   (h, w, C) or (C)  float32, optional
//   y      (N, h, w, C)   same type as x
//
//   y[n, i, j, c] = bias + sum_{ky, kx} w[i, ky*k + kx, j, c] * x[n, i*s + ky - p, j*s + kx - p, c]
//
// taps outside the input are zero (padding p). Accumulation is float32.
#pragma once

#include <cstdint>

namespace tvx {

enum class DType : int { f32 = 0, f16 = 1, i8 = 2 };

struct KernelArgs {
    const void* x;
    const void* weight;
    const float* scale;  // nullptr unless weight is int8
    const float* bias;   // nullptr when absent
    void* y;
    int64_t n, in_h, in_w, c;  // input (N, H, W, C)
    int64_t out_h, out_w;      // output positions
    int64_t k, stride, pad;
    bool bias_map;  // bias is (h, w, C) rather than (C)
    DType x_type, w_type;
};

// Output rows are processed in segments of up to kSegment floats of (position, channel).
constexpr int64_t kSegment = 512;
// Rows are grouped in blocks whose float32 kernels take about this many bytes (L2-resident while
// every image of the batch is computed).
constexpr int64_t kBlockBytes = 256 * 1024;

struct Segments {
    int64_t positions;  // output positions per segment
    int64_t per_row;    // segments per output row
};

inline Segments segments(const KernelArgs& a) {
    const int64_t per = a.c >= kSegment ? 1 : kSegment / a.c;
    return {per, (a.out_w + per - 1) / per};
}

inline int64_t rows_per_block(const KernelArgs& a) {
    const int64_t row_bytes = a.k * a.k * a.out_w * a.c * static_cast<int64_t>(sizeof(float));
    return row_bytes >= kBlockBytes ? 1 : kBlockBytes / row_bytes;
}

// Computes output rows [row_begin, row_end) of every image.
using KernelFn = void (*)(const KernelArgs&, int64_t row_begin, int64_t row_end);

void kernel_generic(const KernelArgs&, int64_t, int64_t);
#if defined(TVX_MULTI_ISA)
void kernel_avx2(const KernelArgs&, int64_t, int64_t);
void kernel_avx512(const KernelArgs&, int64_t, int64_t);
#endif

}  // namespace tvx
