// One instruction-set variant of the channels-last TV kernel (see kernel.hpp).
//
// CMake compiles this file several times on x86-64 (-march=x86-64-v4, x86-64-v3, and the
// compiler's baseline) with TVX_KERNEL_NAME naming the entry point; tv_dwconv.cpp picks the best
// one the running CPU supports. Vectorisation uses the GCC/Clang vector extension (16 floats; on
// x86 without AVX-512 a struct of two ymm or four xmm, see v16), plus the target's conversion instructions
// for compressed kernels (vcvtph2ps; int8 via vpmovsxbd + vcvtdq2ps).
//
// Register blocking: TVX_CHUNK floats of (position, channel) x TVX_BATCH_TILE images of
// accumulators stay in registers across all k*k taps (one image on AVX2: 64 floats, see
// kOneImageVectors); each kernel vector is loaded (and
// dequantized: float16 converted, int8 converted and multiplied by its (tap, channel) scale) once
// and feeds TVX_BATCH_TILE multiply-adds, one per image. Batches that are not a multiple of the
// tile end with a narrower tile of the remaining images (same code, fewer accumulators). int8
// kernels one image at a time hold their scales in registers where they fit (AVX-512; see
// Pass::scale_register_chunks).
//
// Memory: a thread owns a range of output rows and walks it in tiles (rows x positions, see
// tile_of) whose stored kernels fit in L2 (float16 and int8 kernels give tiles 2x and 4x larger,
// int8 8x on cores with >= 2 MiB of L2, see block_bytes; one image: whole rows, every kernel is
// used once); every image of the batch is computed with a
// tile before the next tile is read, so the kernels come from memory
// once per call, in their stored (compressed) form: no float32 copy of any kernel is made. Layers
// whose one position's kernels are too big for such tiles to be k positions wide (C >= kSegment,
// e.g. C=1920) walk blocks of channels instead (see run_channel_blocks). While the first image
// tile of a block runs, each tap's kernel run is prefetched a fixed distance ahead, into L2
// (non-temporally instead at batch 1 on AMD Zen 5 and later; see Pass::hint; without any
// kernel prefetch, against prefetcht0 then, batch 1 ran 1.08-1.46x slower, one thread, kernels
// from DRAM, in benchmarks/openvino_kernel_micro.py: on the AMD EPYC VM the hardware prefetchers
// do not keep up with the kernel stream, and a position-major layout, one contiguous
// stream per row, did not help them: issues 17l and 17m, benchmarks/results/README.md), and the
// input rows the next row or tile needs are prefetched a slice per segment; at one image, so are
// the heads of the next row's kernel runs (see the comment before run).
// Within a row, segments of up to kSegment floats of (position, channel). Input rows are
// converted once per image and tile into float32 buffers, zero-padded and split by phase
// (column mod stride), so that every tap is one contiguous run over (position, channel) of
// kernels, input and output alike: the vector loops stay full however few channels a layer has,
// and no bounds are checked inside them (see Pass). float32 inputs are read in place instead
// where that is faster (stride 1 at batch > 1; stride > 1 with channels in whole vectors; see
// Pass::direct; channel blocks always).
// Scratch buffers are per thread and reused across calls (the pool's threads persist), so a warm
// call allocates nothing.
// Pointwise prologue (kernel.hpp; runtime.py: fuse_pointwise_convs folds the 1x1 convolution + bias
// + ReLU6/ReLU before a TV op into it): the ring's rows are computed from the convolution's narrow
// input (NHWC, or NCHW where pw_nchw) instead of converted (Pass::load_row, pointwise_block), so
// the expanded activation (MobileNetV2's 6x) is never written nor read back; such ops always take
// the ring (no in-place paths, no channel blocks). Its multiply-adds outnumber the taps' (stride 2, cin 8, C 48: 8 per
// channel and input position against 9 per output position), so the prologue is register-blocked
// (AVX-512: 8 positions x up to 3 vectors of channels, or 6 x 4: at most 24 accumulators; AVX2: 8-float
// vectors, 8 x 1, 6 x 2 or 4 x 3, the 4 x 3 blocks at cin 8, 16 and 24 one asm loop: see pw_positions,
// pointwise_chunk_asm). Rows and columns a tile shares with its neighbours
// are computed again per tile (stride 2, 8-row tiles: ~6 %; stride 1, 8-row tiles 20 positions wide:
// ~40 %). Keeping them instead (issue 17, b16_43: the row tiles of a column range walked top to
// bottom, each image's k - s shared rows copied out of the ring at a tile's end and back at the
// next one's start; benchmarks/results/openvino_ab_build_zen3_b16_43_halo.patch) did not win:
// face MobileNetV2 x0.1 batch 16, 2 threads, openvino_ab.py --switch build, TV ops main / kept
// 0.953 / 1.008 / 0.991 (float32 / float16 / int8; nulls 1.022 / 0.952 / 0.992, a run at load
// average 1.8-2.5; benchmarks/results/openvino_ab_build_zen3_b16_43_halo_x0_1_b16.md); one
// thread in a scratch harness the stride-1 C = 48 layer at 48x48 0.96-1.0x, the others unchanged.
// Where x0.1's batch-16 time goes on the AVX2-only Zen 3 (same harness, one thread, data in L3;
// ablations of main's kernel, results discarded; benchmarks/results/README.md, 'Batch 16 on the
// Zen 3: where the folded layers' time goes'): features.2 (stride 2, cin 8, C = 48, 96x96 input)
// ~4.0 ms, of which the prologue ~2.6 ms (4x the input positions of a stride-1 layer: 57 M of its
// 73 M multiply-adds, ~28 GFMA/s of the core's 51) and the multiply-add loop ~0.75-1.0 ms; the
// stride-1 features.3 ~1.9-2.1 ms, prologue ~0.85, loop ~1.05. The stride-2 loop is not slower per
// vector than the stride-1 one here; the stride-2 layer's extra time is its prologue.
// Why the loop runs at about half its hot speed inside these layers (issue 17, b16loop45; the
// harness benchmarks/results/openvino_ab_build_zen3_b16loop45_harness_scratch.cpp, one thread,
// features.3 (stride 1, 48x48), medians of 6 interleaved rounds): not the prologue's ring stores
// evicting what the loop reads: with the prologue left out (ring rows left as they are) the layer
// still takes 1.29 ms of 1.94 (the loop and the rest: 12.3 GFMA/s of taps); its outputs written to
// one L1-resident row instead 1.09 ms, every row's kernels row 0's as well 1.13: the output lines
// (read for ownership, 7 MB at batch 16) cost ~0.2 ms, the kernel stream nothing resolved; with
// the prologue on, outputs to L1 0.93x, fixed kernels 0.95x, both 0.89x of main (features.2,
// noisier: 1.52 ms of 4.2-4.5 without the prologue, its outputs ~0.3). What remains is the loop's
// ring rows from L2: per chunk of 16 floats x 4 images, stride 1 ~12 input + 9 kernel lines per 72
// ymm multiply-adds (stride 2 ~24 + 9), presumably bound by L2's 32 bytes a cycle into L1 (no
// counters on the VM). Tried and dropped: the prologue computed just before the loop needs it, in
// steps of 4 output positions (Pass::load_row up to the step's last input position, the loop
// called per step, so that rows just computed are read from L1; bit for bit the same outputs): one
// thread features.3 1.35-1.42x, features.2 1.34-1.37x as long, 8-10-position steps 1.0-1.16x (the
// prologue's one-block calls and the loop's per-step set-up cost more than L1 saves: 4-position
// steps with the prologue left out still 1.18x); in OpenVINO (openvino_ab.py --switch build, face
// MobileNetV2 x0.1 batch 16, 2 threads, TV ops main / steps) 0.744 / 0.703 / 0.747 (float32 /
// float16 / int8; nulls 0.950 / 1.055 / 1.010; benchmarks/results/
// openvino_ab_build_zen3_b16loop45_sub4_x0_1_b16.md, patch ..._b16loop45_sub.patch).
// Also tried and dropped against those output lines' read for ownership (issue 17, b16nt46;
// openvino_ab.py --switch build, A the patch benchmarks/results/openvino_ab_build_zen3_b16nt46.patch
// with its environment switch set, B main's build, face MobileNetV2 x0.1 batch 16, float32 kernels,
// 2 threads, 36 rounds of 10; B/A < 1: main faster; nulls in brackets): non-temporal stores
// (_mm256_stream_ps of the 4-image chunks' whole 64-byte-aligned lines, sfence before the op
// returns) on all 16 folded layers, two runs: TV ops 0.892 (0.973) / 0.896 (1.080), the other ops
// 0.909 (0.979) / 0.884 (1.026), wall 0.869 / 0.827; the 7 MB-output layers themselves slower
// (features.3 0.73-0.75, features.2 0.90-0.91, features.4-6 0.70-0.88): with plain stores the
// output stays in L2/L3 for the next 1x1 convolution, streamed it goes to DRAM and is read back
// from there (features.7-10 read 1.05-1.29 in those runs). Only on the layers with outputs <= 500
// KB (features.7-11, 14-17): TV ops 0.982 (0.981), other ops 0.943 (0.985), those layers 0.95-1.07. The
// next segment's output lines prefetched for writing (prefetchw, all folded layers): TV ops 0.983
// (0.995), wall 0.985 (1.002), no gain (benchmarks/results/openvino_ab_build_zen3_b16nt46_*.md).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>
#include <vector>

#if defined(__F16C__) || defined(__AVX2__) || defined(__AVX512F__)
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
#ifndef TVX_BLOCK_BYTES
#    define TVX_BLOCK_BYTES (384 * 1024)  // stored kernel bytes of a tile (L2-resident)
#endif
#ifndef TVX_PREFETCH_BYTES
#    define TVX_PREFETCH_BYTES 1024  // how far ahead each tap's kernel run is prefetched
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

// 16 floats. AVX-512 (and non-x86 targets): the GCC/Clang vector extension, one zmm (NEON: the
// compiler splits it into q registers). x86 without AVX-512 (the AVX2 and baseline variants): a
// struct of the target's own vectors (two ymm, or four xmm) whose operators work part by part.
// A 64-byte vector-extension type has no machine mode there, so g++ 12 -O3 kept every v16 value
// in memory: in the multiply-add loop each tap's accumulators went through the stack and 64-bit
// GPR moves (vmovq / vpinsrq), and the clamp (Range) was done lane by lane with vmaxss/vminss;
// with the struct, the parts are registers (objdump of kernel_avx2; -Wpsabi warned of the
// AVX-512 vector ABI without AVX-512; tests/test_openvino.py: test_vectors_in_registers_compiled).
// The AVX-512 object is byte for byte the same as before. Issue 17, AVX2-only Zen 3 VM, against
// the memory-bound loop: the kernel alone (openvino_kernel_micro.py, one thread, face MobileNetV2
// x0.1, batch 1) network sums cold 0.36x / 0.28x / 0.26x as long (float32 / float16 / int8
// kernels; hot 0.21-0.23x); in OpenVINO (openvino_ab.py --switch build, 2 threads) x0.1 batch 1
// TV ops 0.45x / 0.28x / 0.34x, wall 0.57x / 0.45x / 0.48x (null tests 0.96-1.03), ShuffleNetV2
// x1.0 batch 16 (pointwise fold off) TV ops 0.48x / 0.51x (float32 / int8), wall 0.85x
// (benchmarks/results/openvino_*_zen3_avx2main41*).
#if defined(__AVX512F__) || !(defined(__x86_64__) || defined(__i386__))
typedef float v16 __attribute__((vector_size(64)));
#else
#    define TVX_V16_PARTS 1
#    if defined(__AVX__)
typedef float vpart __attribute__((vector_size(32)));
#    else
typedef float vpart __attribute__((vector_size(16)));
#    endif
constexpr int kParts = 64 / int(sizeof(vpart));
struct v16 {
    vpart p[kParts];
};
#    define TVX_PARTS(expr)             \
        v16 r;                          \
        for (int i = 0; i < kParts; ++i) \
            r.p[i] = (expr);            \
        return r
[[gnu::always_inline]] inline v16 operator+(v16 a, v16 b) { TVX_PARTS(a.p[i] + b.p[i]); }
[[gnu::always_inline]] inline v16 operator*(v16 a, v16 b) { TVX_PARTS(a.p[i] * b.p[i]); }
[[gnu::always_inline]] inline v16 operator+(v16 a, float b) { TVX_PARTS(a.p[i] + b); }
[[gnu::always_inline]] inline v16 operator-(float a, v16 b) { TVX_PARTS(a - b.p[i]); }
[[gnu::always_inline]] inline v16 clamp_v(v16 v, float lo, float hi) {
    // broadcast here, at the store: hoisted out of the loops (asm volatile keeps them in), the
    // bounds held 2-4 of the 16 ymm across the tap loop, and g++ spilled an accumulator there
    __asm__ volatile("" : "+x"(lo), "+x"(hi));
    const vpart l = vpart{} + lo, h = vpart{} + hi;
    TVX_PARTS((v.p[i] < l ? l : v.p[i]) > h ? h : (v.p[i] < l ? l : v.p[i]));
}
#    undef TVX_PARTS
[[gnu::always_inline]] inline v16& operator+=(v16& a, v16 b) {
    for (int i = 0; i < kParts; ++i)
        a.p[i] += b.p[i];
    return a;
}
#endif
constexpr int64_t kLanes = 16;
constexpr int64_t kVectors = TVX_CHUNK / kLanes;  // accumulators held in registers per chunk and image
// int8 scales held in registers at batch 1 (Pass::scale_register_chunks): up to 27 vectors beside
// the accumulators, which only AVX-512's 32 registers hold
#if defined(__AVX512F__)
constexpr bool kScaleRegisters = true;
#else
constexpr bool kScaleRegisters = false;
#endif
// Accumulator vectors of a chunk at one image (Pass::body; batch 1, or a batch's last one-image
// tile): on AVX2 4 v16 (8 of the 16 ymm), not kVectors = 1 (TVX_CHUNK = 16, sized for the 4-image
// tile), whose 2 ymm each take one multiply-add per tap: a chain of 9 dependent multiply-adds per
// chunk (4 cycles each on Zen 3), which bound the loop (llvm-mca -mcpu=znver3: ~4.7 cycles per
// tap and 16 int8 values, the FP pipes alone ~3.4). Issue 17 (stop 42, avx2b1_42), AVX2-only Zen 3
// VM, with kRunningOffsets below: the kernel alone (openvino_kernel_micro.py --isa avx2, one
// thread, face MobileNetV2 x0.1, batch 1, against main) network sums hot / cold int8 0.96x /
// 0.88x, float16 0.96x / 0.92x, float32 1.02x / 0.96x (nulls 0.98-1.01; per layer int8 0.80-0.97x,
// float32 0.91-1.07x; benchmarks/results/openvino_kernel_micro_zen3_avx2b1_42_x0_1_b1.md); in
// scratch runs of 8 rounds int8 0.82x / 0.81x (nulls 0.98, 1.00), float16 0.93x / 0.94x of the
// null's (nulls 0.80, 0.90); 2 v16 (TVX_ONE_IMAGE_CHUNK=32) gained about half as much.
// In OpenVINO (openvino_ab.py --switch build against main, 2 threads, batch 1, 36 rounds) TV ops
// float32 / float16 / int8 x0.1 0.99x / 0.88x / 0.94x (nulls 0.996-1.02), ShuffleNetV2 x1.0
// 1.00x / 0.92x / 0.96x (nulls 0.98-1.00), x1.0 (kernels from DRAM) unchanged; wall x0.1 0.98x /
// 0.91x / 0.96x, each within its rounds' p10-p90 (benchmarks/results/openvino_*_zen3_avx2b1_42_*).
// Batch > 1 keeps kVectors (4-image tiles of such chunks would need 32 ymm).
#if defined(__AVX2__) && !defined(__AVX512F__)
#    if !defined(TVX_ONE_IMAGE_CHUNK)
#        define TVX_ONE_IMAGE_CHUNK 64  // 8 ymm accumulators
#    endif
constexpr int64_t kOneImageVectors = TVX_ONE_IMAGE_CHUNK / kLanes;
#else
constexpr int64_t kOneImageVectors = kVectors;
#endif
// The multiply-add loop walks its input and scale offsets along instead of dividing per chunk
// (Pass::chunks: int8 scales at q % C, strided input at q / C * s * C + q % C: an idiv per chunk in
// the AVX2 object). Alone (TVX_ONE_IMAGE_CHUNK=16) not resolved in the kernel alone on the Zen 3
// (int8 network sums hot 0.98x, cold 0.96x; null tests 0.94, 0.86 in that noisy run); kept beside
// the wider chunks, whose strided input offsets it walks once per vector.
// AVX2 only: the AVX-512 and baseline objects stay byte for byte the same (not measured there).
#if defined(__AVX2__) && !defined(__AVX512F__)
constexpr bool kRunningOffsets = true;
#else
constexpr bool kRunningOffsets = false;
#endif

// Where the one-image multiply-add loop's time goes on the AVX2-only Zen 3 (issue 17, int8loop44;
// scratch harnesses benchmarks/results/openvino_int8loop44_zen3_{throughput,loop}_scratch.cpp): the
// core takes 2 vector loads a cycle (8 vmovaps ymm, 8 vpmovsxbd ymm,m64 or 8 vmulps ymm,m256 each
// 4.0 cycles; vpmovsxbd ymm,xmm from a register 1.27 cycles each), and the int8 loop needs 6 per 16
// values (2 x 8 int8, 2 scale, 2 input vectors as memory operands), so its floor is 3 cycles per 16
// multiply-adds; an inline-asm loop of just those instructions (8 accumulators, data in L1) ran
// 3.0, without the scale load 2.6, without scale 2.0, float32 (4 loads) 2.0. Not the multiply-add
// latency (8 independent accumulators; the 2-accumulator kVectors chunks ran about as fast per
// value, int8 4.3 cycles per 16 in L1, the next chunk's chains overlapping out of order), no spills
// in the tap loop (objdump of this object; a copy compiled into another file did keep the
// accumulators on the stack, 6.1 cycles), no cache-line splits (scales and activations aligned,
// int8 runs 8-byte aligned), no denormals in the harness data. This loop itself, in L1 (the
// object's code, Pass::body of 9 taps): int8 4.7-4.8 cycles per 16, float16 3.0-3.3, float32
// 3.1; perf (cpu-clock) on the kernel alone put C = 48 at 12x12 (every stream in L1/L2) at ~4.1
// cycles per 16 in the 4-vector loop, at 48x48 at ~7.4: the rest is the kernel and input streams
// missing L1 (per output row 20 KB of int8 kernels in 9 tap streams, 27 KB of input rows, 9 KB of
// output, against 32 KB of L1). Hence kL1ChunksAhead: at one image each tap's kernels kL1ChunksAhead
// chunks on are prefetched into L1 as well (prefetcht0 beside the L2 prefetch TVX_PREFETCH_BYTES
// ahead; one line per tap at int8, 2 at float16, 4 at float32). The kernel alone
// (openvino_kernel_micro.py --isa avx2, face MobileNetV2 x0.1, batch 1, 6 rounds, against main;
// null test in brackets) network sums hot / cold: 2 chunks int8 0.989 / 0.953 (1.009 / 0.999),
// float16 1.004 / 0.902 (1.018 / 1.009), float32 1.033 / 0.872 (1.022 / 1.010); 1 chunk int8
// 0.993 / 0.971, float32 1.024 / 0.904, float16 1.011 cold; 4 chunks int8 0.995 / 0.969, float32
// 1.089 hot (benchmarks/results/openvino_kernel_micro_zen3_int8loop44_l1_ahead_x0_1_b1.md); the
// next chunk's input lines too (4 prefetches per tap) int8 1.104 / 1.064, slower (null 1.038 /
// 1.028; ..._l1_next_x0_1_b1.md). In OpenVINO (openvino_ab.py --switch build against main, 2
// threads, x0.1 batch 1, 36 rounds of 20, three runs at load average 1.8-3.3; B/A > 1: this
// faster) TV ops int8 1.020 / 1.050 / 1.028 (nulls 1.030 / 1.141 / 0.982), float16 1.095 / 0.972
// / 1.020 (nulls 1.014 / 0.928 / 1.002), float32 1.086 / 1.107 / 1.066 (nulls 1.036 / 1.010 /
// 0.998); wall within its p10-p90 (openvino_ab_build_zen3_int8loop44_l1ahead_x0_1_b1*.md). So
// float32 ~7-10 % and int8 ~2-5 % (at the nulls' edge); the network ratio fused / DW
// (openvino_fused.py, short settings) float32 / float16 / int8 1.54 / 1.32 / 1.34 against stop
// 43's 1.62 / 1.33 / 1.37: int8 still above 1.3. What remains of the int8 loop's time: the load
// ports' floor (6 vector loads per 16 values; AVX-512 holds the scales in registers instead, see
// scale_register_chunks, which AVX2's 16 ymm do not fit), the loop's own overhead above it in L1
// (4.7 against 3.0: per-tap pointer loads and prefetches, not resolved further) and L1 misses.
// AVX-512 keeps none: on the Zen 4 (issue 17 stop 49, b1c49; the kernel alone, one thread, face
// MobileNetV2 x0.1, batch 1, 4 rounds, against main; no null variant in that screen) 2 chunks on
// made the network sums hot / cold float32 1.076 / 1.035, float16 1.063 / 0.981, int8 1.012 / 1.005;
// the input rows' prefetch into L2 instead of L1 0.99-1.04, TVX_PREFETCH_BYTES 2048 1.01-1.10
// (benchmarks/results/openvino_kernel_micro_zen4_b1c49_screen_scratch.{md,patch}). There the
// float16 conversion costs nothing in L1 and the L3 gives one thread 77-93 GB/s in 9 streams
// (openvino_b1c49_zen4_stream_probe_scratch.md), yet the loop takes 1.0-1.25 ns per kernel vector
// with its kernels in L2/L3 (0.53 in L1): its kernel stream runs at 25-32 GB/s, cause not found.
// Nor is it the kernel prefetches' cost: without any at batch 1 (ablation, with a null build of
// main's kernel.cpp) float16 / int8 hot 0.944 / 0.968, cold 1.501 / 1.770 (nulls 0.97-1.01;
// openvino_kernel_micro_zen4_b1c49_nopf_scratch.{md,patch}). Nor the kernel stream at all: with
// every row reading row 0's kernels (float16, ablation) hot 0.964, cold 0.568 of main's (null
// 1.001 / 1.010), 0.95-1.26 ns per vector hot (openvino_kernel_micro_zen4_b1c49_fixk_scratch.*);
// with every row's input rows fixed as well 0.916 / 0.505 of main's, still 0.96-1.26 ns (..._fixkx_scratch.*):
// the loop itself, fed its input and output as run() does, takes ~2x the probe's L1 rate, and the
// stream from memory adds ~0.54x its floor on top (cold - hot); both are open. Not the single-vector
// tail after the 4-vector chunks (C = 48: 480-float segments, 7 chunks + 2 vectors) either: those
// as one 2-vector chunk, float16 / int8 hot 1.005 / 1.019, cold 0.958 / 0.992 (null 0.99-1.01;
// openvino_kernel_micro_zen4_b1c49_tail2_scratch.*), not kept.
#if defined(__AVX2__) && !defined(__AVX512F__)
constexpr int64_t kL1ChunksAhead = 2;
#else
constexpr int64_t kL1ChunksAhead = 0;
#endif

#if !defined(TVX_V16_PARTS)
inline v16 load(const float* p) {
    v16 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void store_v(float* p, v16 v) {
    std::memcpy(p, &v, sizeof v);
}
// the accumulators' start: the bias at `at`, or zeros where the bias row p is nullptr
#    define TVX_BIAS_VECTOR(p, at) ((p) ? load(at) : v16{})
#else
// part by part (one memcpy of the whole struct went through a stack copy)
[[gnu::always_inline]] inline v16 load(const float* p) {
    v16 v;
    for (int i = 0; i < kParts; ++i)
        std::memcpy(&v.p[i], p + i * (kLanes / kParts), sizeof(vpart));
    return v;
}
[[gnu::always_inline]] inline void store_v(float* p, v16 v) {
    for (int i = 0; i < kParts; ++i)
        std::memcpy(p + i * (kLanes / kParts), &v.p[i], sizeof(vpart));
}
// part by part too: `p ? load(p + q) : v16{}` on the struct kept the accumulators in memory
[[gnu::always_inline]] inline v16 bias_vector(const float* at) {
    v16 v;
    for (int i = 0; i < kParts; ++i) {
        vpart b = {};
        if (at)
            std::memcpy(&b, at + i * (kLanes / kParts), sizeof(vpart));
        v.p[i] = b;
    }
    return v;
}
#    define TVX_BIAS_VECTOR(p, at) bias_vector((p) ? (at) : nullptr)
#endif

// 16 kernel values at w as float32, dequantized in registers; `s` (int8 only) points at their
// 16 scales.
inline v16 kernel_vector(const float* w, const float*) {
    return load(w);
}
inline v16 kernel_vector(const half* w, const float*) {
#if defined(__AVX512F__)
    return reinterpret_cast<v16>(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w))));
#elif defined(__F16C__)
    const __m256 lo = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
    const __m256 hi = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w) + 1));
    return v16{{reinterpret_cast<vpart>(lo), reinterpret_cast<vpart>(hi)}};  // (F16C: AVX, no AVX-512)
#elif defined(__aarch64__) && defined(__FLT16_MAX__) && !defined(TVX_PORTABLE_HALF)
    typedef _Float16 h16 __attribute__((vector_size(32)));
    h16 h;
    std::memcpy(&h, w, sizeof h);
    return __builtin_convertvector(h, v16);  // fcvtl/fcvtl2
#else
    float lanes[kLanes];
    for (int l = 0; l < kLanes; ++l)
        lanes[l] = to_float(w[l]);
    return load(lanes);
#endif
}
// 16 int8 kernel values at w as float32, not yet scaled
inline v16 int8_vector(const int8_t* w) {
    // GCC 12 scalarises __builtin_convertvector from int8 vectors: intrinsics where they exist,
    // elsewhere a lane loop the compiler does vectorise (SSE2, NEON)
#if defined(__AVX512F__)
    const v16 q = reinterpret_cast<v16>(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)))));
#elif defined(__AVX2__)
    const __m256 lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w))));
    const __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w + 8))));
    const v16 q{{reinterpret_cast<vpart>(lo), reinterpret_cast<vpart>(hi)}};
#else
    float lanes[kLanes];
    for (int l = 0; l < kLanes; ++l)
        lanes[l] = static_cast<float>(w[l]);
    const v16 q = load(lanes);
#endif
    return q;
}
inline v16 kernel_vector(const int8_t* w, const float* s) {
    return int8_vector(w) * load(s);
}

// The output range: [lo, hi] when a clamp is fused, else everything (infinities pass).
struct Range {
    bool on;
    v16 lo, hi;
    float lo1, hi1;
    explicit Range(const KernelArgs& a) : Range(a.clamp, a.lo, a.hi) {}
    Range(bool clamp, float l, float h) : on(clamp), lo(v16{} + l), hi(v16{} + h), lo1(l), hi1(h) {}
    v16 operator()(v16 v) const {
        if (!on)
            return v;
#if defined(TVX_V16_PARTS)
        return clamp_v(v, lo1, hi1);  // broadcast at the store, not held across the tap loop
#else
        v = v < lo ? lo : v;
        return v > hi ? hi : v;
#endif
    }
    float operator()(float v) const {
        return !on ? v : v < lo1 ? lo1 : v > hi1 ? hi1 : v;
    }
};

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

// The pointwise prologue's vector: one register of the target, so that a block's accumulators and
// weight vectors are registers. AVX-512: v16 (one zmm of 32), blocks of 8 positions x KV <= 3
// vectors or 6 x 4 (<= 24 accumulators). AVX2: 8 floats (one ymm of 16), blocks of 8 x 1, 6 x 2
// or 4 x 3 (NP * KV accumulators + KV weights + 1 broadcast <= 16 registers): with v16 (two ymm)
// and AVX-512's shapes g++ 12 kept neither the accumulators nor the broadcasts in registers (8 x 3
// = 48 ymm; a ci step of 8 x 3 was ~820 instructions for its 48 multiply-adds, the broadcast
// written lane by lane to the stack), and the fold lost on the Zen 3 (benchmarks/results/README.md,
// 'The pointwise fold on an AVX2-only Zen 3'). Elsewhere (SSE2 baseline, NEON) v16 and AVX-512's
// shapes, not measured. At cin 8 the 4 x 3 block compiles (g++ 12, x86-64-v3) to 96 register
// multiply-adds, 3 weight loads + 4 broadcasts per input channel, no stack traffic. Tried on the Zen 3
// and dropped (issue 17, pw42b; openvino_ab.py --switch build, face MobileNetV2 x0.1 batch 16, 36
// rounds of 10, TV ops main / tried, float32 / float16 / int8, null tests in brackets): 5 x 3 and
// 7 x 2 with the weights as memory operands of the multiply-adds (15 accumulators; an empty asm
// hides the weight pointer so g++ does not hoist the loads): 0.902 (0.998) / 0.934 (1.031) /
// 0.881 (1.002), ~10 % slower (a 256-bit load per multiply-add: the Zen 3's two 256-bit loads a
// cycle, as many as its multiply-adds); pointwise_block always inlined into pointwise_chunk
// (no call and vzeroupper per block): 1.008 (1.028) / 0.977 (0.980) / 0.974 (0.981), no change
// (benchmarks/results/openvino_ab_build_zen3_pw42b_{w5x3,inline}_x0_1_b16.md).
// Also dropped (issue 17, b16_43): at cin 8, one 8-channel vector at a time over all positions with
// its 8 weight vectors held in registers (blocks of 4 positions: one broadcast per multiply-add, no
// weight loads; bit for bit the same results): alone and hot 35-38 GFMA/s against the 4 x 3 block's
// 32, but in OpenVINO TV ops main / tried 0.935 / 0.894 / 0.936 (nulls 1.043 / 1.019 / 1.032),
// features.2 (stride 2) 0.78-0.83: main's block is faster there, presumably through its ring stores
// (each position's 96 contiguous bytes at once, not 32 bytes in each of 6 passes over the row) (not
// measured further; benchmarks/results/openvino_ab_build_zen3_b16_43_w8{.patch,_x0_1_b16.md}).
#if defined(__AVX2__) && !defined(__AVX512F__)
typedef float pv __attribute__((vector_size(32)));
constexpr int64_t kPwLanes = 8;
constexpr int kPwMaxKV = 3;  // vectors per block
constexpr int pw_positions(int kv) {
    return kv == 1 ? 8 : kv == 2 ? 6 : 4;
}
inline pv pw_load(const float* p) {
    pv v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void pw_store(float* p, pv v) {
    std::memcpy(p, &v, sizeof v);
}
struct PwRange {  // Range on pv
    bool on;
    pv lo, hi;
    PwRange(bool clamp, float l, float h) : on(clamp), lo(pv{} + l), hi(pv{} + h) {}
    pv operator()(pv v) const {
        if (!on)
            return v;
        v = v < lo ? lo : v;
        return v > hi ? hi : v;
    }
};
#else
typedef v16 pv;
constexpr int64_t kPwLanes = kLanes;
constexpr int kPwMaxKV = 4;
constexpr int pw_positions(int kv) {
    return kv == 4 ? 6 : 8;
}
constexpr auto& pw_load = load;
constexpr auto& pw_store = store_v;
using PwRange = Range;
#endif

// The pointwise prologue (kernel.hpp): NP positions, channel vectors [v0, v0 + KV) (of kPwLanes
// floats), position q's C channels to dst + q * C from its cin input values at src + q * step +
// ci * (H * W where x is NCHW, else 1). Register blocks of NP x KV positions x vectors of channels
// (pw_positions; above): per input channel the KV weight
// vectors are loaded once and each feeds the NP positions, each position's input value broadcast
// once and feeding KV multiply-adds (the weights come from L1: cin x KV vectors). Whole vectors
// are stored: where C is not whole vectors the last one runs on into the next position's first
// channels, which are stored later (pointwise walks the chunks last first), or past the last
// position, into the padding or the phase's spare vector (Pass: phase), which load_row fills
// afterwards.
// CIN > 0: the input channels a.cin known at compile time (AVX2 and AVX-512: 8, 16, 24; see pointwise).
template <int KV, int NP, int CIN = 0>
void pointwise_block(const KernelArgs& a, float* dst, const float* src, int64_t step, int64_t v0) {
    const int64_t C = a.c, cols = pointwise_columns(C), cin = CIN > 0 ? CIN : a.cin, plane = a.pw_nchw ? a.in_h * a.in_w : 1;  // between channels
    pv acc[NP][KV];
    const float* w = a.pw_weight + v0 * kPwLanes;
    for (int v = 0; v < KV; ++v) {  // the bias and input channel 0 (cin >= 1)
        const pv bias = pw_load(a.pw_bias + (v0 + v) * kPwLanes), wv = pw_load(w + v * kPwLanes);
        for (int q = 0; q < NP; ++q)
            acc[q][v] = bias + wv * (src[q * step] - pv{});
    }
    w += cols;
    src += plane;
    for (int64_t ci = 1; ci < cin; ++ci, w += cols, src += plane) {
        pv wv[KV];
        for (int v = 0; v < KV; ++v)
            wv[v] = pw_load(w + v * kPwLanes);
        for (int q = 0; q < NP; ++q) {
            const pv x = src[q * step] - pv{};  // a broadcast: x - 0 is x for every x (not so x + 0 at -0)
            for (int v = 0; v < KV; ++v)
                acc[q][v] += wv[v] * x;
        }
    }
    const PwRange range(a.pre_clamp, a.pre_lo, a.pre_hi);
    for (int q = 0; q < NP; ++q)
        for (int v = 0; v < KV; ++v)
            pw_store(dst + q * C + (v0 + v) * kPwLanes, range(acc[q][v]));
}

// `count` positions in blocks of NP, the rest in one block of its own size.
template <int KV, int CIN = 0>
void pointwise_chunk(const KernelArgs& a, float* dst, const float* src, int64_t count, int64_t step, int64_t v0) {
    constexpr int NP = pw_positions(KV);
    static_assert(NP >= 1 && NP <= 8, "the remainder's switch covers up to 7 positions");
    int64_t q = 0;
    for (; q + NP <= count; q += NP)
        pointwise_block<KV, NP, CIN>(a, dst + q * a.c, src + q * step, step, v0);
    dst += q * a.c;
    src += q * step;
    switch (count - q) {  // R < NP; a case that cannot occur instantiates the 1-position block
    case 1: return pointwise_block<KV, 1, CIN>(a, dst, src, step, v0);
    case 2: return pointwise_block<KV, 2 < NP ? 2 : 1, CIN>(a, dst, src, step, v0);
    case 3: return pointwise_block<KV, 3 < NP ? 3 : 1, CIN>(a, dst, src, step, v0);
    case 4: return pointwise_block<KV, 4 < NP ? 4 : 1, CIN>(a, dst, src, step, v0);
    case 5: return pointwise_block<KV, 5 < NP ? 5 : 1, CIN>(a, dst, src, step, v0);
    case 6: return pointwise_block<KV, 6 < NP ? 6 : 1, CIN>(a, dst, src, step, v0);
    case 7: return pointwise_block<KV, 7 < NP ? 7 : 1, CIN>(a, dst, src, step, v0);
    default: return;
    }
}

#if defined(__AVX2__) && !defined(__AVX512F__) && defined(__x86_64__)
// AVX2, cin known (8, 16, 24) and 3-vector chunks: pointwise_chunk's 4 x 3 blocks as one asm loop
// over the blocks (same multiply-adds in the same order, bit for bit the same results; the clamp
// takes the accumulator as max/min's second source, so a NaN passes as in PwRange; no clamp:
// bounds -inf / inf). Registers: ymm0-11 the 12 accumulators (position q, vector v: 3q + v),
// ymm12-14 the weight vectors of one input channel, ymm15 the broadcast input value, ymm12/13
// the bounds at the block's end. g++ 12 gave each pointwise_block call ~40 instructions of set-up
// (the KernelArgs loads, its clamp test and bounds broadcast, address arithmetic) beside its 96
// multiply-adds, and inlined or written as one loop in C++ it spilled (~230 stack accesses).
// Issue 17 (pro44), Zen 3: one thread, a scratch program timing the stride-2 C 48 cin 8 prologue
// over a 96x96 image as load_row calls it (data in L2): NHWC 39.7-39.8 GFMA/s against main's
// 32.2-32.8 (NCHW 35.3-35.8 against 31.2-31.6; 33.5 / 38.2 with the bounds as memory operands of
// the clamp). A register-only loop of the same mix (12 multiply-adds, 4 broadcasts, 3 loads) runs at
// the 51 GFMA/s peak, so what the blocks lose is around them, not in the multiply-adds. In
// OpenVINO (openvino_ab.py --switch build, face MobileNetV2 x0.1 batch 16, 2 threads, 36 rounds of
// 10, TV ops main / asm, float32 / float16 / int8, nulls in brackets): 1.045 (1.007) / 1.085
// (1.021) / 1.030 (0.995); features.2 1.03 / 1.11 / 1.06, features.3 1.07 / 1.06 / 1.01; again
// 1.142 (1.076) / 1.066 (1.019) / 1.064 (0.979) (benchmarks/results/
// openvino_ab_build_zen3_pro44_asm_x0_1_b16{,_run2}.md); the network ratio (openvino_fused.py, f32
// fused / DW) read 1.29 in a disturbed run and 1.16 [0.86-1.32] in a second: not settled against
// the 1.2 target (openvino_fused_zen3_pro44_x0_1_b16{,_run2}.md). Tried and dropped (scratch):
// two groups of 2 positions x 3 vectors half an input-channel sweep apart (no block's tail of
// dependent multiply-adds), in asm 25.7-27.0 GFMA/s: with 12 accumulators one group's weights can
// only be memory operands, 1.08 loads per multiply-add; in C++ (g++ 12) the same, and the one
// loop of 4 x 3 blocks, spilled (112-274 stack accesses), 22-33 GFMA/s; g++'s 2 x 6 and 3 x 4
// blocks took most weights as memory operands, 22-30 (benchmarks/results/openvino_pro44_zen3_scratch.txt).
#define TVX_PW_W "vmovups (%[wt]), %%ymm12\n\tvmovups 32(%[wt]), %%ymm13\n\tvmovups 64(%[wt]), %%ymm14\n\t"
#define TVX_PW_FMA3(a, b, c) \
    "vfmadd231ps %%ymm12, %%ymm15, %%ymm" #a "\n\tvfmadd231ps %%ymm13, %%ymm15, %%ymm" #b "\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm" #c "\n\t"
#define TVX_PW_Q(x, a, b, c) "vbroadcastss " x ", %%ymm15\n\t" TVX_PW_FMA3(a, b, c)
#define TVX_PW_Q0(x, a, b, c) \
    "vmovups %[b0], %%ymm" #a "\n\tvmovups %[b1], %%ymm" #b "\n\tvmovups %[b2], %%ymm" #c "\n\t" TVX_PW_Q(x, a, b, c)
#define TVX_PW_NEXT "add %[cb], %[wt]\n\tadd %[pb], %[sn]\n\t"
#define TVX_PW_STEP0                                                                                         \
    TVX_PW_W TVX_PW_Q0("(%[sn])", 0, 1, 2) TVX_PW_Q0("(%[sn],%[st])", 3, 4, 5) TVX_PW_Q0("(%[sn],%[st],2)", 6, 7, 8) \
        TVX_PW_Q0("(%[sn],%[st3])", 9, 10, 11) TVX_PW_NEXT
#define TVX_PW_STEP                                                                                        \
    TVX_PW_W TVX_PW_Q("(%[sn])", 0, 1, 2) TVX_PW_Q("(%[sn],%[st])", 3, 4, 5) TVX_PW_Q("(%[sn],%[st],2)", 6, 7, 8) \
        TVX_PW_Q("(%[sn],%[st3])", 9, 10, 11) TVX_PW_NEXT
#define TVX_PW_STEP4 TVX_PW_STEP TVX_PW_STEP TVX_PW_STEP TVX_PW_STEP
#define TVX_PW_STEP7 TVX_PW_STEP4 TVX_PW_STEP TVX_PW_STEP TVX_PW_STEP
#define TVX_PW_STEP8 TVX_PW_STEP4 TVX_PW_STEP4
#define TVX_PW_OUT(r, d) "vmaxps %%ymm" #r ", %%ymm12, %%ymm" #r "\n\tvminps %%ymm" #r ", %%ymm13, %%ymm" #r "\n\tvmovups %%ymm" #r ", " d "\n\t"
#define TVX_PW_OUT3(a, b, c, d) TVX_PW_OUT(a, "(" d ")") TVX_PW_OUT(b, "32(" d ")") TVX_PW_OUT(c, "64(" d ")")
#define TVX_PW_BLOCKS(STEPS)                                                                                 \
    "1:\n\tmov %[w], %[wt]\n\tmov %[src], %[sn]\n\t" TVX_PW_STEP0 STEPS                                     \
    "vmovups %[lo], %%ymm12\n\tvmovups %[hi], %%ymm13\n\t" TVX_PW_OUT3(0, 1, 2, "%[dst]") TVX_PW_OUT3(3, 4, 5, "%[dst],%[cs]") \
        TVX_PW_OUT3(6, 7, 8, "%[dst],%[cs],2") TVX_PW_OUT3(9, 10, 11, "%[dst],%[cs3]")                      \
    "lea (%[src],%[st],4), %[src]\n\tlea (%[dst],%[cs],4), %[dst]\n\tdecq %[n]\n\tjnz 1b\n\t"

template <int CIN>
void pointwise_chunk_asm(const KernelArgs& a, float* dst, const float* src, int64_t count, int64_t step, int64_t v0) {
    static_assert(CIN == 8 || CIN == 16 || CIN == 24, "the unrolled input channels");
    static_assert(kPwLanes == 8 && sizeof(pv) == 32, "ymm vectors");
    int64_t n = count / 4;
    if (n > 0) {
        typedef float v8 __attribute__((vector_size(32), aligned(4)));
        const bool on = a.pre_clamp;
        const v8 lo = v8{} + (on ? a.pre_lo : -__builtin_inff()), hi = v8{} + (on ? a.pre_hi : __builtin_inff());
        const v8* bias = reinterpret_cast<const v8*>(a.pw_bias + v0 * kPwLanes);
        const float* w = a.pw_weight + v0 * kPwLanes;
        const float* s = src;
        float* d = dst + v0 * kPwLanes;
        const int64_t plane = a.pw_nchw ? a.in_h * a.in_w : 1, st = step * 4, st3 = 3 * st, cs = a.c * 4, cs3 = 3 * cs;
        const int64_t cb = pointwise_columns(a.c) * 4, pb = plane * 4;
        const float *wt, *sn;
#define TVX_PW_OPERANDS                                                                                      \
    : [src] "+r"(s), [dst] "+r"(d), [n] "+m"(n), [wt] "=&r"(wt), [sn] "=&r"(sn)                              \
    : [w] "m"(w), [b0] "m"(bias[0]), [b1] "m"(bias[1]), [b2] "m"(bias[2]), [lo] "m"(lo), [hi] "m"(hi), [st] "r"(st), \
      [st3] "r"(st3), [cb] "m"(cb), [pb] "m"(pb), [cs] "r"(cs), [cs3] "r"(cs3)                               \
    : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", \
      "xmm12", "xmm13", "xmm14", "xmm15"
        if constexpr (CIN == 8)
            asm volatile(TVX_PW_BLOCKS(TVX_PW_STEP7) TVX_PW_OPERANDS);
        else if constexpr (CIN == 16)
            asm volatile(TVX_PW_BLOCKS(TVX_PW_STEP8 TVX_PW_STEP7) TVX_PW_OPERANDS);
        else
            asm volatile(TVX_PW_BLOCKS(TVX_PW_STEP8 TVX_PW_STEP8 TVX_PW_STEP7) TVX_PW_OPERANDS);
#undef TVX_PW_OPERANDS
    }
    const int64_t done = count / 4 * 4;
    if (count > done)
        pointwise_chunk<3, CIN>(a, dst + done * a.c, src + done * step, count - done, step, v0);
}
#endif

// The prologue of `count` positions: channels in chunks of whole vectors (as even as they come,
// at most kPwMaxKV vectors), the last chunk first (pointwise_block).
template <int CIN = 0>
void pointwise_cin(const KernelArgs& a, float* dst, const float* src, int64_t count, int64_t step) {
    const int64_t vectors = pointwise_columns(a.c) / kPwLanes;
    const int64_t chunks = (vectors + kPwMaxKV - 1) / kPwMaxKV, kv = (vectors + chunks - 1) / chunks;
    for (int64_t v0 = (vectors - 1) / kv * kv; v0 >= 0; v0 -= kv) {
        switch (std::min(kv, vectors - v0)) {
        case 1: pointwise_chunk<1, CIN>(a, dst, src, count, step, v0); break;
        case 2: pointwise_chunk<2, CIN>(a, dst, src, count, step, v0); break;
        case 3:
#if defined(__AVX2__) && !defined(__AVX512F__) && defined(__x86_64__)
            if constexpr (CIN > 0) {
                pointwise_chunk_asm<CIN>(a, dst, src, count, step, v0);
                break;
            }
#endif
            pointwise_chunk<3, CIN>(a, dst, src, count, step, v0);
            break;
        default: pointwise_chunk<kPwMaxKV, CIN>(a, dst, src, count, step, v0); break;
        }
    }
}
// AVX2 and AVX-512: the zoo's folded input channel counts (8, 16, 24: pointwise folds at most 24, runtime.py)
// at compile time, so that the input-channel loop has a known trip count. With a run-time cin g++
// 12 -O3 kept a block's accumulators in registers inside the loop but wrote all of them to the
// stack after the peeled first channel and again after the loop, reading them back for the
// clamp and store (4 x 3 block: 24 extra 256-bit stores per block, beside 12 stores and 7 x 12
// multiply-adds at cin 8; perf on the Zen 3 put ~half of pointwise_block's samples outside the
// loop). With cin a constant, none of them go through the stack (cin 8: fully unrolled). Issue 17
// stop 42, Zen 3, 2 threads, batch 16, openvino_ab.py --switch build against a build with only
// the prefetch_runs change, face MobileNetV2 x0.1 (16 of 17 layers folded, cin 8 and 16): TV ops
// 0.912x / 0.903x / 0.902x (float32 / float16 / int8; null tests 0.979-1.005), wall 0.93x
// (benchmarks/results/openvino_ab_build_zen3_l2tile42_pwcin_x0_1_b16.md). AVX-512 too since issue
// 17 (pw49): with a run-time cin g++ 12 kept the 8 x 3 block's 24 zmm accumulators on the stack
// across the input-channel loop (117 stack accesses per block); with cin a constant only the call's
// set-up's 16-18 (the loop 3 weight loads, 8 broadcasts, 24 multiply-adds on registers). Zen 4, one thread, the prologue
// alone as load_row calls it (scratch harness, data in L2, bit for bit the same outputs): cin 8
// 30.1-30.6 -> 43.0-45.3 GFMA/s (58 the core's peak), cin 16 38-40 -> 49.6-52.3, cin 24 43.7-45.2 ->
// 50.7-53. In OpenVINO (openvino_ab.py --switch build against main's build, face MobileNetV2 x0.1
// batch 16, 2 threads, 24 rounds of 10, main / this, nulls in brackets): TV ops 1.068 (0.984) /
// 1.171 (1.015) / 1.099 (1.017) (float32 / float16 / int8), wall 1.050 / 1.099 / 1.050, features.2
// 1.10 / 1.26 / 1.16 (benchmarks/results/openvino_ab_build_zen4_pw49_cin_x0_1_b16.md); batch 1
// (folded in both, 24 rounds of 20, load 2.6-2.9): TV ops 1.078 (0.999) / 1.128 (1.050) / 1.126
// (0.982), wall 1.071 / 1.061 / 1.071 (..._b1.md). Tried and
// dropped: AVX-512's 8 x 3 blocks as one asm loop (as pointwise_chunk_asm; bounds in registers):
// 0.98-1.04x of this in the harness, no gain resolved (benchmarks/results/
// openvino_pw49_zen4_{asm512_scratch.patch,harness_scratch.cpp,harness_scratch.txt}). The
// baseline (no AVX2): run-time cin only.
inline void pointwise(const KernelArgs& a, float* dst, const float* src, int64_t count, int64_t step) {
#if defined(__AVX2__)
    switch (a.cin) {
    case 8: return pointwise_cin<8>(a, dst, src, count, step);
    case 16: return pointwise_cin<16>(a, dst, src, count, step);
    case 24: return pointwise_cin<24>(a, dst, src, count, step);
    default: break;
    }
#endif
    pointwise_cin(a, dst, src, count, step);
}

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && !defined(__AVX512F__) && defined(__x86_64__)
// AVX2, int8 and float16 kernels, one image: Pass::asm_chunks's chunks as inline asm. A chunk is
// NACC ymm accumulators (ymm0..), the bias or zeros at the start, then per tap: each kernel vector
// converted in ymm15 (int8: vpmovsxbd + vcvtdq2ps, then multiplied by its scale vector; float16:
// vcvtph2ps) feeds one vfmadd231ps with the input as memory operand, the same multiply and the
// same multiply-add per output in the same tap order as Pass::chunks (bit for bit the same
// results); then clamp (bounds in ymm14/15; no clamp: -inf / inf, a NaN passes as in Range) and
// store. int8 at C = 8 * P (P = 1, 4, 6): a chunk is whole positions and each of a tap's P scale
// vectors is loaded once into ymm14 and feeds the chunk's NACC / P positions (scales are one per
// (tap, channel), the same for every position); C = 96: one position, the scale a memory operand
// of the vmulps. So per 16 int8 multiply-adds 2 int8, 2 input and 2 / (NACC / P) scale loads
// (C = 8: 4.25, C = 32, 48: 5, C = 96: 6), against 6 in Pass::chunks. The input of a chunk's
// second position is at %[xs] bytes (contiguous, or strided in place). Issue 17 (int8asm45), the
// AVX2-only Zen 3, face MobileNetV2 x0.1 at batch 1 (bit for bit main's outputs, 290 layer cases,
// int8 and float16, with and without a clamp). Pass::body<1, false> alone with its data in L1 (9
// taps, one segment, scratch benchmarks/results/openvino_int8asm45_zen3_loop_scratch.cpp), cycles
// per 16 multiply-adds main -> asm, kernel prefetches on: int8 C = 8 5.1 -> 3.4, C = 48 5.2 ->
// 3.9, C = 96 5.4 -> 4.3; float16 3.8 -> 3.5. The kernel alone (openvino_kernel_micro.py --isa
// avx2, one thread, 6 rounds; null in brackets) network sums hot / cold int8 0.785 / 0.883 (1.051
// / 1.036), float16 0.922 / 0.924 (1.015 / 0.989), every layer faster
// (openvino_kernel_micro_zen3_int8asm45_x0_1_b1.md). In OpenVINO (openvino_ab.py --switch build
// against main's build, 2 threads, 72 rounds of 20; B/A > 1: asm faster) TV ops int8 1.230 (null
// 1.016), float16 1.079 (1.013), float32 0.996 (0.984; its code unchanged); wall int8 1.078
// [0.984-1.265] (openvino_ab_build_zen3_int8asm45_x0_1_b1*.md).
#    define TVX_ONE_IMAGE_ASM 1
#    define TVX_A_FMA(acc, xo) "vfmadd231ps " xo ", %%ymm15, %%ymm" #acc "\n\t"
#    define TVX_A_I8(wo) "vpmovsxbd " #wo "(%[wp]), %%ymm15\n\tvcvtdq2ps %%ymm15, %%ymm15\n\t"
#    define TVX_A_S(so) "vmovups " #so "(%[sp]), %%ymm14\n\t"
#    define TVX_A_R(acc, wo, xo) TVX_A_I8(wo) "vmulps %%ymm14, %%ymm15, %%ymm15\n\t" TVX_A_FMA(acc, xo)  // scale in ymm14
#    define TVX_A_M(acc, wo, o) TVX_A_I8(wo) "vmulps " #o "(%[sp]), %%ymm15, %%ymm15\n\t" TVX_A_FMA(acc, TVX_X0(o))
#    define TVX_A_H(acc, wo, xo) "vcvtph2ps " #wo "(%[wp]), %%ymm15\n\t" TVX_A_FMA(acc, xo)  // float16
#    define TVX_X0(o) #o "(%[xp])"
#    define TVX_X1(o) #o "(%[xp],%[xs])"
// int8, C = 8: one scale vector, 8 positions
#    define TVX_I8_P1                                                                                                   \
        TVX_A_S(0) TVX_A_R(0, 0, TVX_X0(0)) TVX_A_R(1, 8, TVX_X0(32)) TVX_A_R(2, 16, TVX_X0(64)) TVX_A_R(3, 24, TVX_X0(96)) \
            TVX_A_R(4, 32, TVX_X0(128)) TVX_A_R(5, 40, TVX_X0(160)) TVX_A_R(6, 48, TVX_X0(192)) TVX_A_R(7, 56, TVX_X0(224))
// int8, C = 8 * P, two positions: scale vector r (at byte o) feeds accumulator a0 = r (position 0)
// and a1 = P + r (position 1)
#    define TVX_I8_PAIR(a0, a1, w0, w1, o) TVX_A_S(o) TVX_A_R(a0, w0, TVX_X0(o)) TVX_A_R(a1, w1, TVX_X1(o))
#    define TVX_I8_P4 TVX_I8_PAIR(0, 4, 0, 32, 0) TVX_I8_PAIR(1, 5, 8, 40, 32) TVX_I8_PAIR(2, 6, 16, 48, 64) TVX_I8_PAIR(3, 7, 24, 56, 96)
#    define TVX_I8_P6                                                                                                   \
        TVX_I8_PAIR(0, 6, 0, 48, 0) TVX_I8_PAIR(1, 7, 8, 56, 32) TVX_I8_PAIR(2, 8, 16, 64, 64) TVX_I8_PAIR(3, 9, 24, 72, 96)        \
            TVX_I8_PAIR(4, 10, 32, 80, 128) TVX_I8_PAIR(5, 11, 40, 88, 160)
// int8, C = 96: one position, every scale vector used once
#    define TVX_I8_P12                                                                                                  \
        TVX_A_M(0, 0, 0) TVX_A_M(1, 8, 32) TVX_A_M(2, 16, 64) TVX_A_M(3, 24, 96) TVX_A_M(4, 32, 128) TVX_A_M(5, 40, 160)     \
            TVX_A_M(6, 48, 192) TVX_A_M(7, 56, 224) TVX_A_M(8, 64, 256) TVX_A_M(9, 72, 288) TVX_A_M(10, 80, 320)              \
                TVX_A_M(11, 88, 352)
// float16: 8 or 12 contiguous vectors (any C; strided C = 96: one position), or two positions of
// C = 32 / 48 (the second at %[xs])
#    define TVX_H_8                                                                                                     \
        TVX_A_H(0, 0, TVX_X0(0)) TVX_A_H(1, 16, TVX_X0(32)) TVX_A_H(2, 32, TVX_X0(64)) TVX_A_H(3, 48, TVX_X0(96))            \
            TVX_A_H(4, 64, TVX_X0(128)) TVX_A_H(5, 80, TVX_X0(160)) TVX_A_H(6, 96, TVX_X0(192)) TVX_A_H(7, 112, TVX_X0(224))
#    define TVX_H_12 \
        TVX_H_8 TVX_A_H(8, 128, TVX_X0(256)) TVX_A_H(9, 144, TVX_X0(288)) TVX_A_H(10, 160, TVX_X0(320)) TVX_A_H(11, 176, TVX_X0(352))
#    define TVX_H_PAIR(a0, a1, w0, w1, o) TVX_A_H(a0, w0, TVX_X0(o)) TVX_A_H(a1, w1, TVX_X1(o))
#    define TVX_H_P4 TVX_H_PAIR(0, 4, 0, 64, 0) TVX_H_PAIR(1, 5, 16, 80, 32) TVX_H_PAIR(2, 6, 32, 96, 64) TVX_H_PAIR(3, 7, 48, 112, 96)
#    define TVX_H_P6                                                                                                    \
        TVX_H_PAIR(0, 6, 0, 96, 0) TVX_H_PAIR(1, 7, 16, 112, 32) TVX_H_PAIR(2, 8, 32, 128, 64) TVX_H_PAIR(3, 9, 48, 144, 96)     \
            TVX_H_PAIR(4, 10, 64, 160, 128) TVX_H_PAIR(5, 11, 80, 176, 160)
#    define TVX_A_ACC8(M) M(0, 0) M(1, 32) M(2, 64) M(3, 96) M(4, 128) M(5, 160) M(6, 192) M(7, 224)
#    define TVX_A_ACC12(M) TVX_A_ACC8(M) M(8, 256) M(9, 288) M(10, 320) M(11, 352)
#    define TVX_A_BIAS(j, o) "vmovups " #o "(%[wp]), %%ymm" #j "\n\t"
#    define TVX_A_ZERO(j, o) "vxorps %%ymm" #j ", %%ymm" #j ", %%ymm" #j "\n\t"
#    define TVX_A_OUT(j, o) \
        "vmaxps %%ymm" #j ", %%ymm14, %%ymm" #j "\n\tvminps %%ymm" #j ", %%ymm15, %%ymm" #j "\n\tvmovups %%ymm" #j ", " #o "(%[wp])\n\t"
// Pass::chunks's kernel prefetches (fetch): each tap's chunk `ahead` bytes on with the hint (PF),
// and kL1ChunksAhead (2) chunks on into L1, a line per 64 bytes of a chunk (64, 96, 128, 192)
#    define TVX_PF64(PF) PF " (%[wp],%[ah])\n\tprefetcht0 128(%[wp])\n\t"
#    define TVX_PF96(PF) PF " (%[wp],%[ah])\n\t" PF " 64(%[wp],%[ah])\n\tprefetcht0 192(%[wp])\n\tprefetcht0 256(%[wp])\n\t"
#    define TVX_PF128(PF) PF " (%[wp],%[ah])\n\t" PF " 64(%[wp],%[ah])\n\tprefetcht0 256(%[wp])\n\tprefetcht0 320(%[wp])\n\t"
#    define TVX_PF192(PF)                                                                                               \
        PF " (%[wp],%[ah])\n\t" PF " 64(%[wp],%[ah])\n\t" PF " 128(%[wp],%[ah])\n\tprefetcht0 384(%[wp])\n\t"                  \
           "prefetcht0 448(%[wp])\n\tprefetcht0 512(%[wp])\n\t"
// a tap's pointers: kernels (+ the chunk's bytes %[wu]), int8 scales, input (+ %[xu] bytes)
#    define TVX_A_TAP_I8 "mov (%[tp]), %[wp]\n\tmov (%[tp],%[kk]), %[sp]\n\tmov (%[tp],%[kk],2), %[xp]\n\t"
#    define TVX_A_TAP_H "mov (%[tp]), %[wp]\n\tmov (%[tp],%[kk],2), %[xp]\n\t"
#    define TVX_A_CHUNK(ACC, TAP, PREFETCH, BODY)                                                                          \
        asm volatile("cmpq $0, %[b]\n\tje 1f\n\tmov %[b], %[wp]\n\t" ACC(TVX_A_BIAS) "jmp 2f\n1:\n\t" ACC(TVX_A_ZERO)         \
                     "2:\n\tmov %[tw], %[tp]\n3:\n\t" TAP "add %[wu], %[wp]\n\tadd %[xu], %[xp]\n\t" PREFETCH BODY                \
                     "add $8, %[tp]\n\tcmp %[te], %[tp]\n\tjne 3b\n\t"                                                          \
                     "vbroadcastss %[lo], %%ymm14\n\tvbroadcastss %[hi], %%ymm15\n\tmov %[d], %[wp]\n\t" ACC(TVX_A_OUT)          \
                     : [tp] "=&r"(tp), [wp] "=&r"(wp), [sp] "=&r"(sp), [xp] "=&r"(xp)                                         \
                     : [b] "rm"(b), [d] "rm"(d), [tw] "rm"(tw), [wu] "rm"(wu), [xu] "rm"(xu), [te] "r"(te), [kk] "r"(kk),    \
                       [xs] "r"(xs), [ah] "r"(ah), [lo] "m"(lo), [hi] "m"(hi)                                                 \
                     : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
                       "xmm11", "xmm12", "xmm13", "xmm14", "xmm15")
// the four prefetch variants of Pass::asm_chunks (H: Pass::hint, 1: no prefetch)
#    define TVX_A_HINTS(ACC, TAP, PF, BODY)                             \
        if constexpr (H == 1)                                           \
            TVX_A_CHUNK(ACC, TAP, "", BODY);                            \
        else if constexpr (H == 0)                                      \
            TVX_A_CHUNK(ACC, TAP, PF("prefetchnta"), BODY);             \
        else if constexpr (H == 2)                                      \
            TVX_A_CHUNK(ACC, TAP, PF("prefetcht1"), BODY);              \
        else                                                            \
            TVX_A_CHUNK(ACC, TAP, PF("prefetcht0"), BODY)
#endif

// A thread's buffers, kept across calls: the pool's threads persist, so a warm call allocates
// nothing.
struct Scratch {
    std::vector<float, Aligned<float>> rows, out, scale, bias;  // Aligned: kernel.hpp
    std::vector<int64_t> held;
    std::vector<const void*> taps;
};
thread_local Scratch scratch;

template <typename V>
typename V::value_type* sized(V& v, size_t n) {
    if (v.size() < n)
        v.resize(n);
    return v.data();
}

// Everything one thread needs for a call, and the segment step for NB images at a time (their
// accumulators share each kernel load: NB x TVX_CHUNK floats of accumulators in registers).
//
// Work is cut into tiles of output rows x positions whose stored kernels fit in L2. Input rows of
// a tile live in a ring of k slots per image (row iy in slot iy mod k: k consecutive rows never
// share a slot), each the tile's columns of a row converted to float32, zero-padded and split by
// phase: padded column q = ix + p goes to phase q mod s, position q / s. The tap (ky, kx) of
// output position j then reads phase kx mod s at position j + kx / s, so a tap is one contiguous
// run over (position, channel) for every stride, and each input row is converted once per image
// and tile, not once per output row that reads it.
template <typename XT, typename WT>
struct Pass {
    static constexpr bool kInt8 = std::is_same_v<WT, int8_t>;
    const KernelArgs& a;
    int64_t seg;         // floats of a full segment (the tiled scale and bias rows)
    int64_t span;        // positions per phase (the widest tile's, + (k - 1) / s + 1)
    int64_t phase;       // floats of one phase, rounded up to whole vectors (aligned rows)
    int64_t slot;        // floats of one row slot: s phases
    int64_t image_rows;  // floats of one image's k slots
    int64_t jb = 0;      // the tile's first output position
    int64_t je = 0;      // and its end
    float* rows;         // TVX_BATCH_TILE images x k slots
    int64_t* held;       // input row held by each (image, slot), -1: none
    float* out;          // TVX_BATCH_TILE x segment (float16 outputs)
    const WT** tap_w;    // per tap of the segment: kernels, scales, input
    const float** tap_s;
    const float** tap_x;
    int64_t ahead = TVX_PREFETCH_BYTES / int64_t(sizeof(WT));  // elements each tap's kernels are prefetched ahead
    // Switches::kernel_nta (TVEXPORT_OV_KERNEL_NTA=0|1, see tv_dwconv.cpp; on by default on AMD
    // Zen 5 and later only): at batch 1, where every kernel is used once, each tap's kernel run
    // is prefetched with the non-temporal hint (prefetchnta) instead of with locality. Issue 17ae,
    // Zen 5 VM, against prefetcht1 (below), `openvino_ab.py --switch nta`, 2 threads, 36 rounds:
    // TV ops 0.90-0.99x with float32 and float16 kernels on all four zoo networks, int8 0.94-1.00x
    // (null tests 0.99-1.03); wall 0.96-1.00x, each within its rounds' p10-p90
    // (benchmarks/results/openvino_nta_zen5_*.md). Elsewhere it stays off: on the second Xeon it
    // made the TV ops 2.16-2.81x slower (presumably because Intel's prefetchnta fills L1, not L2),
    // and on the Zen 4 (family 0x19, AVX-512) too (issue 17 stop 49, b1c49; `openvino_ab.py
    // --switch nta`, 2 threads, batch 1, TV ops B/A with nta against prefetcht1, null A'/A in
    // brackets): face MobileNetV2 x0.1 float32 / float16 / int8 1.300 (0.996) / 1.195 (1.043) /
    // 1.005 (1.030), wall 1.185 / 1.083 / 1.014; x1.0 (kernels from DRAM) float16 / int8 1.239
    // (1.044) / 1.038 (0.988) (benchmarks/results/openvino_nta_zen4_b1c49_*.md): x0.1's kernels
    // stay in the L3 from one inference to the next, which the hint seems to give up, and x1.0
    // gained nothing either, so the Zen 4 keeps prefetcht1. Before issue 17q (prefetcht0 the default) it
    // was meant to keep the kernel
    // stream from evicting what the next ops read (in face MobileNetV2 at batch 1 the ops other
    // than the TV ops took 21-38 % longer in the TV network with float32 kernels than the same ops
    // in the DW network, 0-16 % with float16/int8 ones, most on the op that reads a TV op's
    // output: issue 17k's scratch runs, both networks in one process). Not faster then (issue 17k,
    // the Zen 5 VM's first visit, against prefetcht0; benchmarks/results/openvino_nta_mnv2_*.md): no
    // wall or other-ops gain beyond the null test at x0.1 or x1.0, any kernel dtype (nor did the
    // other ops gain in issue 17ae); the L2
    // stream prefetcher presumably fetches the runs anyway. Prefetched 2-4 KiB ahead instead of
    // TVX_PREFETCH_BYTES it made float32 TV ops 12-17 % slower (scratch runs).
    // Each tap's kernel run is prefetched into L2 only (prefetcht1), not into L1 too (prefetcht0,
    // TVEXPORT_OV_KERNEL_L2=0, the kernel before issue 17q; Zen 4 VM, face MobileNetV2 x1.0 at
    // batch 1, whose kernels come from DRAM): the kernel alone (one thread) cold 0.77x / 0.81x /
    // 0.92x as long (float32 / float16 / int8; benchmarks/results/openvino_kernel_micro_prefetch_l2.md);
    // in OpenVINO the TV ops 0.83x / 0.80x / 0.97x with one thread and 0.92x / 0.89x / 0.98x with
    // two (benchmarks/results/openvino_kernel_l2_*.md); x0.1, ShuffleNetV2 x1.0 and batch 16
    // unchanged. Presumably the prefetches of k*k tap streams into L1 held its few miss buffers.
    // Rechecked on the Zen 4 with the AVX-512 kernel (stop 49, b1c49; `--switch kernel-l2`, x0.1,
    // batch 1, 2 threads, B/A, null in brackets): TV ops float16 0.947 (1.045), int8 1.012 (1.030),
    // wall 1.000 / 1.003: unchanged, as before (benchmarks/results/openvino_kernel_l2_zen4_b1c49_x0_1_b1.md).
    // The hint: 0 (nta), 2 (L2) or 3 (L1 too). A switch, not an if-else chain: g++ 12 -O3 compiled
    // `if (nta) ... else if (l2) ... else ...` here into the prefetchnta alone, skipping every
    // kernel prefetch unless nta was set (tests/test_openvino.py: test_prefetch_hints_compiled).
    int hint = a.sw.kernel_nta && a.n == 1 ? 0 : a.sw.kernel_l2 ? 2 : 3;

    void prefetch_kernels(const char* p) const {
        switch (hint) {
        case 0:
            __builtin_prefetch(p, 0, 0);
            break;
        case 2:
            __builtin_prefetch(p, 0, 2);
            break;
        default:
            __builtin_prefetch(p, 0, 3);
            break;
        }
    }

    Pass(const KernelArgs& args, int64_t tile_positions) : a(args), seg(segment_floats(args.c)) {
        span = tile_positions + (a.k - 1) / a.stride + 1;
        // + a spare vector for the pointwise prologue's last store (pointwise_block)
        phase = (span * a.c + kLanes - 1) / kLanes * kLanes + (a.pw_weight && a.c % kLanes ? kLanes : 0);
        slot = a.stride * phase;
        image_rows = a.k * slot;
        rows = sized(scratch.rows, TVX_BATCH_TILE * image_rows);
        held = sized(scratch.held, TVX_BATCH_TILE * a.k);
        out = sized(scratch.out, TVX_BATCH_TILE * seg);
        const void** taps = sized(scratch.taps, 3 * a.k * a.k);
        tap_w = reinterpret_cast<const WT**>(taps);
        tap_s = reinterpret_cast<const float**>(taps + a.k * a.k);
        tap_x = reinterpret_cast<const float**>(taps + 2 * a.k * a.k);
    }

    // Start output positions [begin, end) with empty rings.
    void start_tile(int64_t begin, int64_t end) {
        jb = begin;
        je = end;
        std::fill(held, held + TVX_BATCH_TILE * a.k, int64_t{-1});
    }

    // Input columns [first, last) that the tile reads (clipped to the row).
    int64_t first_column() const {
        return std::max<int64_t>(0, jb * a.stride - a.pad);
    }
    int64_t last_column() const {
        return std::min<int64_t>(a.in_w, (je - 1) * a.stride - a.pad + a.k);
    }

    // Column ix of row iy of image n of x with the pointwise prologue (its first channel), and the
    // floats between columns: (N, cin, H, W) where pw_nchw, else (N, H, W, cin).
    const float* pointwise_input(int64_t n, int64_t iy, int64_t ix) const {
        const auto* x = static_cast<const float*>(a.x);
        return a.pw_nchw ? x + (n * a.cin * a.in_h + iy) * a.in_w + ix : x + ((n * a.in_h + iy) * a.in_w + ix) * a.cin;
    }
    int64_t pointwise_step() const {
        return a.pw_nchw ? 1 : a.cin;
    }

    // The tile's columns of row iy of image n into image slot b (unless it is there already).
    void load_row(int b, int64_t n, int64_t iy) {
        const int64_t C = a.c, s = a.stride, p = a.pad, W = a.in_w;
        int64_t& h = held[b * a.k + iy % a.k];
        if (h == iy)
            return;
        h = iy;
        const XT* xrow = static_cast<const XT*>(a.x) + (n * a.in_h + iy) * W * C;
        const int64_t m0 = jb, m1 = std::min(jb + span, je + (a.k - 1) / s + 1);  // phase positions held
        for (int64_t r = 0; r < s; ++r) {
            float* dst = rows + b * image_rows + (iy % a.k) * slot + r * phase;  // position m0
            // positions m whose column ix = m * s + r - p lies in the row
            const int64_t lo = std::clamp<int64_t>(p - r <= 0 ? 0 : (p - r + s - 1) / s, m0, m1);
            const int64_t hi = std::clamp<int64_t>(W - 1 + p - r < 0 ? 0 : (W - 1 + p - r) / s + 1, lo, m1);
            std::fill(dst, dst + (lo - m0) * C, 0.0f);
            if constexpr (std::is_same_v<XT, float>) {
                if (a.pw_weight) {  // computed from the 1x1 convolution's input (kernel.hpp)
                    // only the positions the tile's taps read: phase r's last is je - 1 + (k - 1 - r) / s, the
                    // rest of the slot zeros. Before (issue 17, f2b16_48) every phase ran to m1, one position past
                    // the last tap (two at stride 2's odd phase): face MobileNetV2 x0.1's stride-2 layer (C 48,
                    // cin 8, 8 x 20-position tiles) computed 43-44 columns for a tile's 40-41, and its 21-22-position
                    // runs left 1-2 positions to pointwise_chunk's slow 1-2-position blocks. Outputs bit for bit the
                    // same. One thread, batch 16, half the rows (scratch harness): that layer 0.931-0.972x as long
                    // (null 0.976-1.013). In OpenVINO (openvino_ab.py --switch build, batch 16, 2 threads, three
                    // runs, time before over after, nulls in brackets): TV ops 1.040, 1.082, 1.028 (0.991, 1.041,
                    // 1.004), features.2 1.07, 1.18, 1.07 (0.98, 1.07, 1.00), wall 1.033, 1.058, 1.033 (1.002,
                    // 1.026, 1.016)
                    // (benchmarks/results/openvino_ab_build_zen3_f2b16_48_span_x0_1_b16*.md).
                    const int64_t used = r < a.k ? std::clamp<int64_t>(je + (a.k - 1 - r) / s, lo, hi) : lo;
                    if (used > lo)
                        pointwise(a, dst + (lo - m0) * C, pointwise_input(n, iy, lo * s + r - p), used - lo, s * pointwise_step());
                    std::fill(dst + (used - m0) * C, dst + (m1 - m0) * C, 0.0f);  // after: pointwise_block stores whole vectors
                    continue;
                }
            }
            std::fill(dst + (hi - m0) * C, dst + (m1 - m0) * C, 0.0f);
            if (s == 1) {
                convert(dst + (lo - m0) * C, xrow + (lo - p) * C, (hi - lo) * C);
            } else {
                for (int64_t m = lo; m < hi; ++m)
                    convert(dst + (m - m0) * C, xrow + (m * s + r - p) * C, C);
            }
        }
    }

    // Output row i, positions [j0, j0 + positions) of the tile, images [n0, n0 + NB); `kernels`
    // points at the row's stored kernels (tap, position, channel); `bias` at the segment's bias
    // or nullptr. `fetch`: the kernels come from memory (first images of a tile): prefetch each
    // tap's run a fixed distance ahead.
    template <int NB>
    void segment(int64_t n0, int64_t i, int64_t j0, int64_t positions, const WT* kernels, const float* bias, bool fetch) {
        if (direct()) {
            segment_direct<NB>(n0, i, j0, positions, kernels, bias, fetch);
            return;
        }
        const int64_t C = a.c, k = a.k, s = a.stride, p = a.pad, ow = a.out_w;
        int nt = 0;
        for (int64_t ky = 0; ky < k; ++ky) {
            const int64_t iy = i * s + ky - p;
            if (iy < 0 || iy >= a.in_h)
                continue;  // the tap reads zero padding: skipped
            for (int b = 0; b < NB; ++b)
                load_row(b, n0 + b, iy);
            for (int64_t kx = 0; kx < k; ++kx) {
                tap_w[nt] = kernels + (ky * k + kx) * ow * C + j0 * C;
                if constexpr (kInt8)
                    tap_s[nt] = a.scale + (ky * k + kx) * seg;
                tap_x[nt] = rows + (iy % k) * slot + (kx % s) * phase + (j0 - jb + kx / s) * C;
                ++nt;
            }
        }
        // float32 outputs are written in place; float16 ones go through `out` and are converted
        float* dst[NB];
        for (int b = 0; b < NB; ++b)
            dst[b] = kDirectOut ? reinterpret_cast<float*>(static_cast<XT*>(a.y) + (((n0 + b) * a.out_h + i) * ow + j0) * C)
                                : out + b * positions * C;
        body<NB>(nt, positions * C, dst, bias, image_rows, fetch);
        if constexpr (!kDirectOut)
            for (int b = 0; b < NB; ++b)
                store(static_cast<XT*>(a.y) + (((n0 + b) * a.out_h + i) * ow + j0) * C, dst[b], positions * C);
    }

    static constexpr bool kDirectOut = std::is_same_v<XT, float>;

    // float32 activations, read in place (no ring copy) where that is faster. Stride 1: a tap of
    // consecutive positions is one contiguous run of the channels-last input; positions whose taps
    // would read a padding column (the first and last p of a row) run alone with those taps left
    // out. Not when an input row is a multiple of 4 KiB: then the k rows (and images) a segment
    // reads at once map to the same L1 sets and evict each other (C=32 at 96x96 ran slower in
    // place); the ring's slots are laid out without that conflict. At batch 1 only with channels
    // in whole vectors (issue 17w; face MobileNetV2 x1.0, whose stride-1 layers all qualify but
    // C=32 at 96x96: TV ops 0.90-0.94x with 2 threads and 0.90-0.95x with one, every kernel dtype,
    // benchmarks/results/openvino_direct_b1_*.md; the kernel alone cold 0.92-0.94x). Other channel
    // counts keep the ring (in place, ShuffleNetV2 x1.0's 58, 116 and 232 channels measured
    // 1.03-1.07x, nulls 0.99-1.03, presumably the lone edge positions' scalar tails; measured before
    // AVX-512's masked tails (masked_tail), not re-measured with them). Before issue
    // 17w batch 1 always took the ring: in place had measured slower while the kernel stream was
    // prefetched into L1 (face MobileNetV2, TV ops +1-50%). Nor with fewer than 2 vectors of
    // channels and float16 or int8 kernels: a lone edge position is then mostly or wholly scalar
    // tail, which the ring's zero padding avoids (C=8 at 96x96, batch 16: one thread 0.60 ->
    // 0.42-0.51 ms; in face MobileNetV2 x0.1, 7-15 % on that layer); with float32 kernels in place
    // stayed faster there (4-19 %, cause not measured). AVX-512 takes them in place too, its tails
    // being masked vectors (masked_tail; bit for bit the same outputs), at batch > 1 only: at batch 1
    // C = 16 with float16 / int8 kernels (no tails) measured no faster in place (tail49, Zen 4, face
    // MobileNetV2 x0.5 features.1, C = 16 at 96x96, batch 1, 2 threads, openvino_ab.py --switch
    // build, ring / in place with nulls A'/A in brackets: float16 0.82 (0.88) and 1.01 (0.99), int8
    // 0.96 (0.95); TV ops 0.917 (0.925), 1.031 (1.010), 0.989 (0.981);
    // benchmarks/results/openvino_ab_build_zen4_tail49_c16_b1_*): issue 17 (reg49), Zen 4, that
    // C = 8 layer at batch 16, kernel alone (one thread, 6 rounds, against the ring; nulls in
    // brackets) float16 hot 0.754 (1.006), cold 0.737 (1.022), int8 hot 0.827 (0.922), cold 0.976
    // (0.954); in OpenVINO (openvino_ab.py --switch build against main, 2 threads, two runs; B/A > 1:
    // this faster) that layer float16 1.07 / 1.03 (nulls 0.97 / 0.98), int8 1.09 / 1.05 (1.03 / 0.96),
    // TV ops within the nulls (benchmarks/results/openvino_*_zen4_reg49_direct_c8_*): small, kept. Stride > 1, at any batch, when C is whole
    // vectors: the same split into edge positions and one run of the rest, the run's input strided
    // (s * C floats per position; see body); this replaces the per-position phase-split copy (one
    // thread, 96x96 input, batch 16: C=16 0.67 -> 0.37 ms, C=32 2.0 -> 1.3, C=48 2.4 -> 2.0, C=96
    // 5.3 -> 4.9; batch 1: 10-25 % faster).
    bool direct() const {
        if (!kDirectOut || a.pw_weight)  // the pointwise prologue is computed into the ring
            return false;
        if (a.stride == 1)
            return (a.n > 1 || a.c % kLanes == 0) && (a.c >= 2 * kLanes || std::is_same_v<WT, float> || (kMaskedTail && a.n > 1)) &&
                   (a.in_w * a.c * int64_t(sizeof(float))) % 4096 != 0;
        return a.c % kLanes == 0;
    }

    template <int NB>
    void segment_direct(int64_t n0, int64_t i, int64_t j0, int64_t positions, const WT* kernels, const float* bias, bool fetch) {
        const int64_t C = a.c, p = a.pad, k = a.k, s = a.stride;
        // positions whose every tap column j * s - p + kx (kx < k) lies in [0, W)
        const int64_t lo = std::clamp<int64_t>((p + s - 1) / s, j0, j0 + positions);
        const int64_t last = a.in_w - k + p;  // the last such j * s
        const int64_t hi = std::clamp<int64_t>(last < 0 ? 0 : last / s + 1, lo, j0 + positions);
        for (int64_t j = j0; j < lo; ++j)
            positions_direct<NB>(n0, i, j0, j, 1, 0, C, kernels, bias, fetch);
        if (hi > lo)
            positions_direct<NB>(n0, i, j0, lo, hi - lo, 0, (hi - lo) * C, kernels, bias, fetch);
        for (int64_t j = hi; j < j0 + positions; ++j)
            positions_direct<NB>(n0, i, j0, j, 1, 0, C, kernels, bias, fetch);
    }

    // Positions [j, j + count) of segment j0 read in place (float32 input), taps with a column
    // outside the row left out (only ever for count == 1); floats [c0, c0 + len) of the run's
    // (position, channel) (a channel block of one position, or all of them).
    template <int NB>
    void positions_direct(int64_t n0, int64_t i, int64_t j0, int64_t j, int64_t count, int64_t c0, int64_t len, const WT* kernels,
                          const float* bias, bool fetch) {
        const int64_t C = a.c, k = a.k, s = a.stride, p = a.pad, ow = a.out_w, W = a.in_w, H = a.in_h;
        const float* X = static_cast<const float*>(a.x);
        const int64_t off = (j - j0) * C + c0;  // into the segment's tiled bias / scale rows
        int nt = 0;
        for (int64_t ky = 0; ky < k; ++ky) {
            const int64_t iy = i * s + ky - p;
            if (iy < 0 || iy >= H)
                continue;
            for (int64_t kx = 0; kx < k; ++kx) {
                const int64_t ix = j * s - p + kx;
                if (ix < 0 || ix + (count - 1) * s >= W)
                    continue;  // only for a lone edge position
                tap_w[nt] = kernels + (ky * k + kx) * ow * C + j * C + c0;
                if constexpr (kInt8)
                    tap_s[nt] = a.scale + (ky * k + kx) * seg + off;
                tap_x[nt] = X + ((n0 * H + iy) * W + ix) * C + c0;
                ++nt;
            }
        }
        float* dst[NB];
        for (int b = 0; b < NB; ++b)
            dst[b] = static_cast<float*>(a.y) + (((n0 + b) * a.out_h + i) * ow + j) * C + c0;
        if (s == 1) {
            if constexpr (kHalfTail) {
                if (len % kLanes == kHalfLanes) {  // the last 8 floats as one ymm (see half_tail)
                    if (len > kHalfLanes)
                        body<NB>(nt, len - kHalfLanes, dst, bias ? bias + off : nullptr, H * W * C, fetch);
                    half_tail<NB>(nt, len - kHalfLanes, dst, bias ? bias + off : nullptr, H * W * C);
                    return;
                }
            }
            body<NB>(nt, len, dst, bias ? bias + off : nullptr, H * W * C, fetch);
        } else
            body<NB, true>(nt, len, dst, bias ? bias + off : nullptr, H * W * C, fetch);
    }

    // AVX2, float32 kernels, in place at stride 1 (positions_direct): where a run's (position,
    // channel) floats end 8 short of whole vectors of 16 (C % 16 == 8: a lone edge position of C =
    // 8, or a run of an odd number of its positions; C = 24, 40, 232, ...) those 8 go through
    // half_tail, one ymm per image, not through body's scalar tail (per float, image and tap a
    // load, multiply-add and store of the output). Issue 17 (f1b16_48), the AVX2-only Zen 3: face
    // MobileNetV2 x0.1's features.1 (not folded, C = 8 at 96x96, k 3, stride 1) at batch 16 runs
    // each row in two segments of 64 + 32 positions, each split into a lone edge position (6 taps)
    // and a run of 63 / 31 positions: per row and 4-image tile 4 such 8-float tails, ~2 % of the
    // multiply-adds. The kernel alone (one thread, that layer, scratch
    // benchmarks/results/openvino_f1b16_48_zen3_layer_scratch.py, medians of 4-6 interleaved
    // rounds, results discarded in the ablations): those tails left out 0.67-0.81x hot, 0.71-0.76x
    // cold; with half_tail 0.73-0.88x hot, 0.77-0.90x cold (nulls 0.88-1.04); what half_tail's
    // calls still cost, left out on top of it, 0.96-0.97x hot, 0.93x cold. In OpenVINO
    // (openvino_ab.py --switch build against main's build, 2 threads, batch 16, float32 kernels,
    // 36 rounds of 10; B/A > 1: this faster, null A'/A in brackets): face MobileNetV2 x0.1
    // features.1 1.25 (1.00) / 1.24 (1.00) in two runs (981 -> 785 us, 1276 -> 1028 us), TV ops
    // 1.035 (1.019) / 1.024 (0.997), wall 1.029 (1.011) / 1.026 (0.999); ShuffleNetV2 x1.0 (its
    // C = 232 layers at 7x7 take it) stage4.1-4.3 1.08-1.09, TV ops 1.000 (0.980)
    // (benchmarks/results/openvino_ab_build_zen3_f1b16_48_half_*_b16.md). The baseline object keeps
    // body's scalar tail (not measured there); the AVX-512 one takes masked_tail (below) for every
    // tail of 1-15 floats, kernel dtype and contiguous path since issue 17 (reg49).
#if defined(TVX_V16_PARTS) && defined(__AVX__)
    static constexpr bool kHalfTail = std::is_same_v<WT, float>;
#else
    static constexpr bool kHalfTail = false;
#endif
    static constexpr int64_t kHalfLanes = kLanes / 2;

    // dst[b][u, u + 8) as body computes them, contiguous input (kHalfTail)
    template <int NB>
    void half_tail(int nt, int64_t u, float* const* dst, const float* bias, int64_t img) {
        if constexpr (kHalfTail) {
            typedef float v8 __attribute__((vector_size(32)));
            const auto ld = [](const float* p) {
                v8 v;
                std::memcpy(&v, p, sizeof v);
                return v;
            };
            const v8 start = bias ? ld(bias + u) : v8{};
            v8 acc[NB];
            for (int b = 0; b < NB; ++b)
                acc[b] = start;
            for (int t = 0; t < nt; ++t) {
                const v8 w = ld(reinterpret_cast<const float*>(tap_w[t]) + u);
                for (int b = 0; b < NB; ++b)
                    acc[b] += w * ld(tap_x[t] + b * img + u);
            }
            const Range range(a);  // no clamp: bounds -inf / inf (a NaN passes either way, as in Range)
            const v8 lo = v8{} + (range.on ? range.lo1 : -__builtin_inff()), hi = v8{} + (range.on ? range.hi1 : __builtin_inff());
            for (int b = 0; b < NB; ++b) {
                v8 v = acc[b] < lo ? lo : acc[b];
                v = v > hi ? hi : v;
                std::memcpy(dst[b] + u, &v, sizeof v);
            }
        }
    }

    // dst[b][0, len) = clamp(bias + sum over the nt taps of tap_w * tap_x (+ b * img)) for the
    // NB images; tap_s: int8 scales. kStrided: the input of consecutive positions lies stride * C
    // floats apart (in place at stride > 1; C a multiple of kLanes, so a vector never straddles
    // two positions), float q of (position, channel) at xoff(q); else contiguous like the kernels.
    template <int NB, bool kStrided = false>
    void body(int nt, int64_t len, float* const* dst, const float* bias, int64_t img, bool fetch) {
        const Range range(a);
        int64_t u = 0;
        if constexpr (NB == 1 && kInt8 && kScaleRegisters) {
            if (a.sw.scale_registers)
                u = scale_register_chunks<kStrided>(nt, len, dst, bias, fetch);
        }
#if defined(TVX_ONE_IMAGE_ASM)
        if constexpr (NB == 1 && !std::is_same_v<WT, float>)
            u = asm_runs<kStrided>(nt, len, dst, bias, fetch);
#endif
        if constexpr (NB == 1 && kOneImageVectors > kVectors)
            u = chunks<1, kStrided, kOneImageVectors>(nt, u, len, dst, bias, img, fetch);
        u = chunks<NB, kStrided, kVectors>(nt, u, len, dst, bias, img, fetch);
        const auto xoff = input_offset<kStrided>();
        const auto soff = scale_offset();
        for (; u + kLanes <= len; u += kLanes) {  // then single vectors
            v16 acc[NB];
            for (int b = 0; b < NB; ++b)
                acc[b] = TVX_BIAS_VECTOR(bias, bias + u);
            const int64_t xu = xoff(u), su = soff(u);
            for (int t = 0; t < nt; ++t) {
                const v16 w = kernel_vector(tap_w[t] + u, kInt8 ? tap_s[t] + su : nullptr);
                for (int b = 0; b < NB; ++b)
                    acc[b] += w * load(tap_x[t] + b * img + xu);
            }
            for (int b = 0; b < NB; ++b)
                store_v(dst[b] + u, range(acc[b]));
        }
        if constexpr (kMaskedTail && !kStrided) {
            if (u < len)
                masked_tail<NB>(nt, u, len, dst, bias, img);
            return;
        }
        for (int b = 0; b < NB; ++b) {
            float* __restrict o = dst[b];
            for (int64_t q = u; q < len; ++q)  // fewer than 16 floats left
                o[q] = bias ? bias[q] : 0.0f;
            for (int t = 0; t < nt; ++t) {
                const WT* __restrict wp = tap_w[t];
                const float* __restrict xp = tap_x[t] + b * img;
                for (int64_t q = u; q < len; ++q) {
                    if constexpr (kInt8)
                        o[q] += static_cast<float>(wp[q]) * tap_s[t][q] * xp[xoff(q)];
                    else
                        o[q] += to_float(wp[q]) * xp[xoff(q)];
                }
            }
            for (int64_t q = u; q < len; ++q)
                o[q] = range(o[q]);
        }
    }

    // AVX-512: the last 1-15 floats of a contiguous run as one masked vector per image (masked
    // loads read nothing past the run's end, the masked store writes only those floats): the same
    // multiply-adds in the same tap order as body's scalar loop, which the other variants keep
    // (AVX2 has half_tail for C % 16 == 8 instead). Bit for bit main's outputs (the micro driver's
    // `check` over 293 geometries: C 3-1930, k 3/5, stride 1/2, every kernel dtype, batch 1-16).
    // Issue 17 (reg49), the AVX-512 Zen 4 VM: face MobileNetV2 x0.1's features.1 (C = 8 at 96x96,
    // stride 1, float32 kernels, batch 16; in place, 4 tails of 8 floats per row and image, lone
    // edge positions wholly tail) the kernel alone (openvino_kernel_micro.py, one thread, 8
    // rounds, B/A against main; null in brackets) hot 0.825 (0.995), cold 0.823 (0.920), the
    // other x0.1 layers (C % 16 == 0, no tails) 0.95-1.04 (0.96-1.06); in OpenVINO
    // (openvino_ab.py --switch build, x0.1 batch 16, float32; main / this, null A'/A in brackets)
    // features.1 1.13 (0.95) with 2 threads (435 against 490 us), 1.14 (1.10) and 1.15 (1.06)
    // with one (793-830 against 902-954 us), TV ops 1.029 / 1.032 / 1.016 (0.985 / 1.008 / 1.015)
    // (benchmarks/results/openvino_*_zen4_reg49_masked_*). The same run timed the AVX2 variant
    // (TVX_CHUNK 16, x86-64-v3) on this CPU: features.1 0.98 hot, 0.83 cold (half_tail), every
    // other layer 1.03-1.26x as long as AVX-512. Face ShuffleNetV2 x1.0 at batch 16 (float32, its
    // stride-1 C = 58 / 116 / 232 layers in place, C % 16 = 10 / 4 / 8: runs end in tails): kernel
    // alone those layers hot 0.865-0.898, cold 0.871-0.923 (nulls 0.989-1.004); in OpenVINO (2
    // threads) TV ops main / this 1.073 (null 1.019), those layers 1.03-1.40, wall 1.009 (1.006).
    // -DTVX_SCALAR_TAIL keeps the scalar loop (A/B).
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && !defined(TVX_SCALAR_TAIL)
    static constexpr bool kMaskedTail = true;
#else
    static constexpr bool kMaskedTail = false;
#endif
    template <int NB>
    void masked_tail(int nt, int64_t u, int64_t len, float* const* dst, const float* bias, int64_t img) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
        const __mmask16 m = static_cast<__mmask16>((1u << (len - u)) - 1u);
        const auto ld = [m](const float* p) { return reinterpret_cast<v16>(_mm512_maskz_loadu_ps(m, p)); };
        const v16 start = bias ? ld(bias + u) : v16{};
        v16 acc[NB];
        for (int b = 0; b < NB; ++b)
            acc[b] = start;
        for (int t = 0; t < nt; ++t) {
            v16 w;
            if constexpr (kInt8)
                w = reinterpret_cast<v16>(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, tap_w[t] + u)))) * ld(tap_s[t] + u);
            else if constexpr (std::is_same_v<WT, half>)
                w = reinterpret_cast<v16>(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, tap_w[t] + u)));
            else
                w = ld(tap_w[t] + u);
            for (int b = 0; b < NB; ++b)
                acc[b] += w * ld(tap_x[t] + b * img + u);
        }
        const Range range(a);
        for (int b = 0; b < NB; ++b)
            _mm512_mask_storeu_ps(dst[b] + u, m, reinterpret_cast<__m512>(range(acc[b])));
#else
        (void)nt, (void)u, (void)len, (void)dst, (void)bias, (void)img;
#endif
    }

    // int8 scales: tap_s[t] points at a position's start in the tap's tiled scale row (kernel.hpp:
    // the tap's C scales repeated over a segment's positions). With channels in whole vectors a
    // vector never straddles two positions, so the scales of float q are also those at q % C:
    // only the first C floats of each row are read, which stay in L1 beside the kernel and input
    // streams (a segment's rows of 9 taps are 18 KiB; face MobileNetV2 x0.1 batch 1, int8 TV ops
    // 3-9 % faster, measured before scale_register_chunks took most of those layers)
    // One image through the ring (!direct(): a tap's scales start at a segment's first position),
    // C not whole vectors: the scales of float q are also those at q % L, L = lcm(C, kLanes) where
    // that is within the tiled row (L <= seg; C = 8: L = 16, C = 24: 48): each tap reads the
    // first L floats of its row instead of the whole row (C = 8: 64 bytes instead of 2 KiB per
    // tap, 18 KiB less in L1 beside the ring's input rows and the kernel stream). Issue 17 stop 43
    // (int8b1_43), AVX2-only Zen 3, the kernel alone (ov_kernel_micro, one thread, 3 rounds, scratch):
    // C = 8 at 96x96 (face MobileNetV2 x0.1's first TV layer) hot 98.4 -> 92.8 us, cold 114.3 ->
    // 103.3 us; the other x0.1 geometries (C % 16 == 0: already q % C) unchanged. In OpenVINO
    // (openvino_ab.py --switch build against main, x0.1, batch 1, 2 threads, 36 rounds of 20): int8
    // TV ops 0.96x (B/A 1.040, null 1.010), that layer 0.88x (1.14, null 1.05); float16, whose code
    // is the same, read 1.07x (B/A 0.937, null 0.981) in the same run: a small gain, near the noise
    // (benchmarks/results/openvino_ab_build_zen3_int8b1_43_period_x0_1_b1.md). Batch > 1 and the
    // in-place paths keep the whole row (not measured). The scale multiply itself costs the int8
    // loop ~25-30 % (the kernel alone with it left out, scratch: C = 48 at 24x24 hot 32.4 -> 23.1
    // us, C = 8 at 96x96 92.1 -> 67.5), which the format needs. Prefetching the int8 kernel
    // stream into L1 too (prefetcht0) at batch 1 gained nothing in the same scratch runs.
    // Returns the period (0: none, q itself).
    int64_t scale_period() const {
        if (!kInt8)
            return 0;
        if (a.c % kLanes == 0)
            return a.c;
        if (a.n != 1 || direct())
            return 0;
        int64_t period = a.c;
        while (period % kLanes != 0)
            period += a.c;
        return period <= seg ? period : 0;
    }
    auto scale_offset() const {
        const int64_t period = scale_period();
        return [period](int64_t q) { return period ? q % period : q; };
    }

    // float q of (position, channel) in the input, from the start of a run (see body: kStrided)
    template <bool kStrided>
    auto input_offset() const {
        const int64_t C = a.c, sC = a.stride * a.c;
        return [C, sC](int64_t q) { return kStrided ? q / C * sC + q % C : q; };
    }

    // The multiply-add loop from float u in chunks of KV vectors x NB images of accumulators (held
    // in registers across the taps); returns where it stopped (fewer than KV vectors left). NT > 0:
    // exactly NT taps, int8, one image, and the tap's scale row repeats every P vectors from u
    // (P * kLanes a multiple of C, u of P * kLanes): each tap's P scale vectors are loaded once,
    // before the loop, and stay in registers (see scale_register_chunks).
    template <int NB, bool kStrided, int64_t KV, int NT = 0, int P = 0>
    int64_t chunks(int nt, int64_t u, int64_t len, float* const* dst, const float* bias, int64_t img, bool fetch) {
        static_assert(NT == 0 || (kInt8 && NB == 1 && KV % P == 0));
        const Range range(a);
        const auto xoff = input_offset<kStrided>();
        const auto soff = scale_offset();
        constexpr int64_t kFloats = KV * kLanes;
        constexpr int64_t kChunkBytes = kFloats * int64_t(sizeof(WT));
        v16 scales[NT > 0 ? NT : 1][P > 0 ? P : 1];
        if constexpr (NT > 0)
            for (int t = 0; t < NT; ++t)
                for (int r = 0; r < P; ++r)
                    scales[t][r] = load(tap_s[t] + r * kLanes);
        // kRunningOffsets: the offsets walked along instead (no division per chunk)
        const int64_t C = a.c, sC = a.stride * a.c;
        const int64_t period = NT == 0 ? scale_period() : 0;  // scale_offset's
        const bool short_scale = period != 0;
        int64_t run_x = 0, run_c = 0, run_s = 0;
        if constexpr (kRunningOffsets) {
            if (u + kFloats <= len) {
                run_x = xoff(u);
                run_c = kStrided ? u % C : 0;
                run_s = NT == 0 ? soff(u) : 0;
            }
        }
        for (; u + kFloats <= len; u += kFloats) {
            v16 acc[NB][KV];
            for (int b = 0; b < NB; ++b)
                for (int64_t v = 0; v < KV; ++v)
                    acc[b][v] = TVX_BIAS_VECTOR(bias, bias + u + v * kLanes);
            int64_t xu;
            int64_t xo[KV];  // the chunk's vectors in the input, from xu
            int64_t so[KV] = {};  // and their int8 scales, from tap_s (NT > 0: in registers instead)
            if constexpr (kRunningOffsets) {
                xu = run_x;
                int64_t xr = 0;
                for (int64_t v = 0; v < KV; ++v) {
                    xo[v] = xr;
                    so[v] = run_s;
                    xr += kLanes;
                    run_s += kLanes;
                    if (short_scale && run_s >= period)
                        run_s -= period;
                    if constexpr (kStrided) {
                        run_c += kLanes;
                        if (run_c >= C) {
                            run_c -= C;
                            xr += sC - C;
                        }
                    }
                }
                run_x += xr;
            } else {
                xu = xoff(u);
                for (int64_t v = 0; v < KV; ++v) {
                    xo[v] = xoff(u + v * kLanes) - xu;
                    if constexpr (NT == 0)
                        so[v] = soff(u + v * kLanes);
                }
            }
            const auto tap = [&](int t) {
                const WT* wp = tap_w[t] + u;
                const float* xp = tap_x[t] + xu;
                if (fetch) {
                    const char* ahead_p = reinterpret_cast<const char*>(wp + ahead);
                    for (int64_t o = 0; o < kChunkBytes; o += 64)
                        prefetch_kernels(ahead_p + o);
                    if constexpr (kL1ChunksAhead > 0 && NB == 1 && KV == kOneImageVectors) {
                        const char* next = reinterpret_cast<const char*>(wp + kL1ChunksAhead * kFloats);
                        for (int64_t o = 0; o < kChunkBytes; o += 64)
                            __builtin_prefetch(next + o, 0, 3);  // into L1 (see kL1ChunksAhead)
                    }
                }
                const float* xb[NB];  // one base register per image, vectors at fixed offsets
                for (int b = 0; b < NB; ++b)
                    xb[b] = xp + b * img;
                for (int64_t v = 0; v < KV; ++v) {
                    v16 w;
                    if constexpr (NT > 0)
                        w = int8_vector(wp + v * kLanes) * scales[t][v % P];
                    else
                        w = kernel_vector(wp + v * kLanes, kInt8 ? tap_s[t] + so[v] : nullptr);
                    for (int b = 0; b < NB; ++b)
                        acc[b][v] += w * load(xb[b] + (kStrided ? xo[v] : v * kLanes));
                }
            };
            if constexpr (NT > 0) {
#pragma GCC unroll 9  // whole, so that scales[t] are registers (a runtime nt stays rolled)
                for (int t = 0; t < NT; ++t)
                    tap(t);
            } else {
                for (int t = 0; t < nt; ++t)
                    tap(t);
            }
            for (int b = 0; b < NB; ++b)
                for (int64_t v = 0; v < KV; ++v)
                    store_v(dst[b] + u + v * kLanes, range(acc[b][v]));
        }
        return u;
    }

#if defined(TVX_ONE_IMAGE_ASM)
    // int8 and float16 kernels, one image, AVX2: whole chunks from float 0 of the run as inline asm
    // (TVX_A_CHUNK) where the layout has one; returns the floats done (0 where none), the chunk loop
    // takes the rest. int8 at C = 8, 32, 48, 96: a run starts at a position (tap_s[t]: a position's
    // scales), so every chunk, whole positions, reads each tap's first P scale vectors. float16:
    // any C contiguous, C = 32, 48, 96 strided.
    enum Layout { kI8P1, kI8P4, kI8P6, kI8P12, kH8, kH12, kHP4, kHP6 };
    template <bool kStrided>
    int64_t asm_runs(int nt, int64_t len, float* const* dst, const float* bias, bool fetch) {
        if constexpr (kInt8) {
            switch (a.c) {
            case 8:
                if constexpr (!kStrided)  // (C % 16 != 0: never in place at stride > 1, see direct)
                    return asm_hint<kI8P1, 8, false>(nt, len, dst, bias, fetch);
                return 0;
            case 32:
                return asm_hint<kI8P4, 8, kStrided>(nt, len, dst, bias, fetch);
            case 48:
                return asm_hint<kI8P6, 12, kStrided>(nt, len, dst, bias, fetch);
            case 96:
                return asm_hint<kI8P12, 12, kStrided>(nt, len, dst, bias, fetch);
            default:
                return 0;
            }
        } else if constexpr (std::is_same_v<WT, half>) {
            if constexpr (!kStrided) {
                if (len % 96 != 0 && len % 64 == 0)  // (C = 8's 512-float segments)
                    return asm_hint<kH8, 8, false>(nt, len, dst, bias, fetch);
                return asm_hint<kH12, 12, false>(nt, len, dst, bias, fetch);
            }
            switch (a.c) {
            case 32:
                return asm_hint<kHP4, 8, true>(nt, len, dst, bias, fetch);
            case 48:
                return asm_hint<kHP6, 12, true>(nt, len, dst, bias, fetch);
            case 96:
                return asm_hint<kH12, 12, true>(nt, len, dst, bias, fetch);
            default:
                return 0;
            }
        }
        return 0;
    }
    template <int L, int NACC, bool kStrided>
    int64_t asm_hint(int nt, int64_t len, float* const* dst, const float* bias, bool fetch) {
        if (nt <= 0 || len < NACC * 8)
            return 0;
        switch (!fetch ? 1 : hint) {  // Pass::hint's prefetch, none without fetch
        case 0:
            return asm_chunks<L, NACC, kStrided, 0>(nt, len, dst, bias);
        case 1:
            return asm_chunks<L, NACC, kStrided, 1>(nt, len, dst, bias);
        case 2:
            return asm_chunks<L, NACC, kStrided, 2>(nt, len, dst, bias);
        default:
            return asm_chunks<L, NACC, kStrided, 3>(nt, len, dst, bias);
        }
    }
    template <int L, int NACC, bool kStrided, int H>
    int64_t asm_chunks(int nt, int64_t len, float* const* dst, const float* bias) {
        static_assert(kL1ChunksAhead == 2, "the asm's L1 prefetch is 2 chunks on");
        constexpr int64_t kFloats = NACC * 8;
        // input bytes from one chunk to the next, and between a chunk's positions (strided: s * C floats)
        const int64_t xs = (kStrided ? a.stride * a.c : a.c) * int64_t(sizeof(float));
        const int64_t xstep = kStrided ? kFloats / a.c * xs : kFloats * int64_t(sizeof(float));
        const Range range(a);
        const float lo = range.on ? range.lo1 : -__builtin_inff(), hi = range.on ? range.hi1 : __builtin_inff();
        const char* tw = reinterpret_cast<const char*>(tap_w);
        const char* te = reinterpret_cast<const char*>(tap_w + nt);
        const int64_t kk = reinterpret_cast<const char*>(tap_s) - tw;  // tap_s and tap_x follow tap_w, kk bytes apart (Pass)
        const int64_t ah = ahead * int64_t(sizeof(WT));
        const char *tp, *wp, *sp, *xp;
        int64_t u = 0, xu = 0;
        for (; u + kFloats <= len; u += kFloats, xu += xstep) {
            const float* b = bias ? bias + u : nullptr;
            float* d = dst[0] + u;
            const int64_t wu = u * int64_t(sizeof(WT));
            if constexpr (L == kI8P1) {
                TVX_A_HINTS(TVX_A_ACC8, TVX_A_TAP_I8, TVX_PF64, TVX_I8_P1);
            } else if constexpr (L == kI8P4) {
                TVX_A_HINTS(TVX_A_ACC8, TVX_A_TAP_I8, TVX_PF64, TVX_I8_P4);
            } else if constexpr (L == kI8P6) {
                TVX_A_HINTS(TVX_A_ACC12, TVX_A_TAP_I8, TVX_PF96, TVX_I8_P6);
            } else if constexpr (L == kI8P12) {
                TVX_A_HINTS(TVX_A_ACC12, TVX_A_TAP_I8, TVX_PF96, TVX_I8_P12);
            } else if constexpr (L == kH8) {
                TVX_A_HINTS(TVX_A_ACC8, TVX_A_TAP_H, TVX_PF128, TVX_H_8);
            } else if constexpr (L == kH12) {
                TVX_A_HINTS(TVX_A_ACC12, TVX_A_TAP_H, TVX_PF192, TVX_H_12);
            } else if constexpr (L == kHP4) {
                TVX_A_HINTS(TVX_A_ACC8, TVX_A_TAP_H, TVX_PF128, TVX_H_P4);
            } else {
                TVX_A_HINTS(TVX_A_ACC12, TVX_A_TAP_H, TVX_PF192, TVX_H_P6);
            }
        }
        return u;
    }
#endif
    // int8 kernels, one image (batch 1, or a batch's last narrower tile), 9 or 6 taps present (k =
    // 3; 6 in an edge row or at a lone edge position; also a k = 5 position with 9 or 6 taps inside
    // the image, e.g. a corner at stride 2), and a tap's tiled scale row that repeats every P =
    // 1, 2 or 3 vectors (C divides 16, 32 or 48: C = 8, 16, 24, 32, 48 in the zoo): chunks of
    // kVectors (P = 1, 2) or 3 (P = 3) vectors, whose P x nt scale vectors are loaded once per call
    // and stay in registers (up to 27 of AVX-512's 32 beside 3 accumulators; g++ 12 -O3
    // -march=x86-64-v4 spills one of them at P = 3 with 9 taps); float q's scales are at
    // tap_s[t][q % (P * kLanes)], tap_s[t] being a position's start. The chunk loop loads a scale
    // vector beside every kernel vector, which at one image (no other image shares the load)
    // costs time: face MobileNetV2 x0.1, batch 1, 2 threads, int8 TV ops 1.07-1.23x and wall
    // 1.04-1.12x with the scales loaded (TVEXPORT_OV_SCALE_REGISTERS=0; null tests 0.93-1.05; 8
    // runs of `openvino_ab.py --switch scale-registers --kernel-dtype int8 --rounds 36 --block 20`,
    // one of them benchmarks/results/openvino_scale_registers.md; a 9th, at load average 2,
    // resolved nothing: 1.015, null 0.963); 11 of its 17 TV layers are reached (C = 8, 48), the
    // C = 8 one most (1.14-1.46x). Face MobileNetV2 x1.0 (only its C = 32 layer reached, whose
    // 2.7 MB of kernels come from memory): that layer 0.97-1.16x over 6 runs (nulls 0.93-1.05),
    // TV ops 1.05x, null 1.00, in openvino_scale_registers_x1_0.md: no loss, a gain not resolved.
    // Rechecked on the Zen 4 (stop 49, b1c49; x0.1, batch 1, 2 threads, 36 rounds of 20): int8 TV ops
    // 1.150x as long with the scales loaded (null 1.037), the reached layers 1.171x (1.029), wall
    // 1.055x (1.010) (benchmarks/results/openvino_scale_registers_zen4_b1c49_x0_1_b1.md): kept on.
    // Returns the floats done (whole chunks from 0); the chunk loop takes the rest.
    // Tried and dropped with it (issue 17j; scratch switches in a copy of openvino_ab.py, same
    // command and model, TV ops candidate / current loop, null tests beside): 8 accumulators per
    // chunk at one image (two chunks: the FMA dependency chain), every dtype: int8 1.08-1.19,
    // float16 0.99-1.05, float32 1.01-1.04 (nulls 1.005-1.11), no gain; C % 16 == 0: chunks of 4
    // positions x one 16-channel group (issue 17i's layout) with the group's 9 scales in
    // registers, int8 0.92-1.05 over 4 runs (nulls 0.98-1.09), not resolved, while the period-3
    // chunks above alone gave 0.88, 0.89 (nulls 0.98, 0.98). Issue 17t: for C >= 64 (scales loaded
    // beside each kernel vector, which bound the loop at one image), blocks of 3 positions sharing
    // each tap's scale loads, with 2048-float segments: kernel alone int8 hot 0.87x, cold 0.94x,
    // in OpenVINO not resolved (benchmarks/results/README.md; commit 55e35de, reverted).
    template <bool kStrided>
    int64_t scale_register_chunks(int nt, int64_t len, float* const* dst, const float* bias, bool fetch) {
        const int64_t C = a.c;
        const int period = kLanes % C == 0 ? 1 : 2 * kLanes % C == 0 ? 2 : 3 * kLanes % C == 0 ? 3 : 0;
        const auto with_period = [&](auto p) -> int64_t {
            constexpr int P = decltype(p)::value;
            constexpr int64_t KV = P == 3 ? 3 : kVectors % P == 0 ? kVectors : P * kVectors;  // whole periods
            if (len < KV * kLanes)
                return 0;  // not one chunk (a lone position of few channels): nothing to hold
            if (nt == 9)
                return chunks<1, kStrided, KV, 9, P>(nt, 0, len, dst, bias, 0, fetch);
            if (nt == 6)
                return chunks<1, kStrided, KV, 6, P>(nt, 0, len, dst, bias, 0, fetch);
            return 0;
        };
        switch (period) {
        case 1:
            return with_period(std::integral_constant<int, 1>{});
        case 2:
            return with_period(std::integral_constant<int, 2>{});
        case 3:
            return with_period(std::integral_constant<int, 3>{});
        default:
            return 0;
        }
    }
};

// f(std::integral_constant<int, nb>) for a run-time nb <= NB (the last, narrower tile of a batch)
template <int NB, typename F>
void with_tile(int nb, F&& f) {
    if constexpr (NB > 1) {
        if (nb < NB)
            return with_tile<NB - 1>(nb, f);
    }
    f(std::integral_constant<int, NB>{});
}

// Prefetches bytes [from, to) of `count` runs of `run` bytes each, run r starting at `base(r)`:
// the line at byte o of the whole is base(o / run) + o % run, in order of o. The division and
// base(r) (which divides again) are done once per call and per run, not per line: perf on the
// AVX2-only Zen 3 (face MobileNetV2 x0.1, batch 16, folded layers: runs of 0.3-1.3 KB) put ~60 %
// of run()'s samples, ~8 % of the extension's, on the per-line idivs and the address arithmetic
// around them. The prefetched lines and their order are the same as before. Issue 17 stop 42,
// Zen 3, 2 threads, batch 16, TV ops main / this (openvino_ab.py --switch build, null test in
// brackets): with the pointwise change below, ShuffleNetV2 x1.0 (one folded layer of 19, so
// mostly this change; every layer 1.06-1.42) float32 / int8 1.161 (0.968) / 1.162 (0.969); this
// change alone, face MobileNetV2 x0.1 (a noisier run) float32 / float16 / int8 1.072 (0.952) /
// 1.034 (0.972) / 1.045 (1.013) (benchmarks/results/openvino_ab_build_zen3_*l2tile42* and
// *prefetch_runs*). The Zen 5 run of a version of it (openvino_build_ab_zen5_prefetch_runs_v2_scratch.md)
// resolved nothing there; AVX-512 variants run the same prefetches.
template <typename Base>
void prefetch_runs(Base base, int64_t run, int64_t from, int64_t to) {
    int64_t o = from / 64 * 64;
    if (o >= to)
        return;
    int64_t r = o / run, in = o % run;
    const char* p = base(r);
    for (; o < to; o += 64) {
        __builtin_prefetch(p + in, 0, 3);
        in += 64;
        if (in >= run && o + 64 < to) {  // the next line is in a later run (several where a run is under 64 bytes)
            r += in / run;
            in %= run;
            p = base(r);
        }
    }
}

// Output tile (rows x positions) of a thread's row range: with one image every kernel is used
// once, so whole rows; otherwise the tile's stored kernels fit block_bytes, preferring whole
// rows, but at least kMinRows rows (narrower tiles, whole segments wide) so that the input rows a
// tile re-reads at its top and bottom edges stay a small part of what it reads.
struct Tile {
    int64_t rows, positions;
};
constexpr int64_t kMinRows = 8;

// Stored kernel bytes of a tile or channel block at batch > 1: TVX_BLOCK_BYTES, twice that for
// int8 kernels where Switches::int8_wide_tiles (by default on x86-64 cores with >= 2 MiB of L2;
// TVEXPORT_OV_INT8_WIDE_TILES=0|1 in tv_dwconv.cpp; benchmarks/openvino_ab.py --switch
// int8-wide-tiles). Issue 17ac, on the second Xeon VM (48 KiB L1d, 2 MiB L2), batch 16. The kernel
// alone, one thread, DeepLabV3+, face MobileNetV2 x1.0 and ShuffleNetV2 x1.0 geometries: int8
// network sums cold 0.79x (hot 0.85x, not resolved: float16, unchanged, read 0.86x in the same
// run); DeepLabV3+'s C = 1920 layer cold 0.67-0.73x (one thread: its 16 rows in one row tile
// instead of two, so no halo rows are read twice; with two threads' 8 rows each, 3 channel blocks
// of 640 instead of 6 of 320), C = 144 at 48x48 0.76-0.79x. 768 KiB tiles for float32 made that
// network sum 1.11x slower cold, and float16 gained nothing resolved
// (benchmarks/results/openvino_kernel_micro_xeon_b16_block.md, _int8_wide_tiles.md). In OpenVINO,
// two threads, int8 TV ops (null test in brackets): DeepLabV3+ 0.764x (0.959), face MobileNetV2
// x1.0 0.962x (0.969), x0.1 and ShuffleNetV2 x1.0 unchanged
// (benchmarks/results/openvino_int8_wide_tiles_xeon_*.md). Not measured on a core with less L2
// (the Zen 4 VM's 1 MiB), where it stays off.
// Switches::block_bytes (TVEXPORT_OV_BLOCK_BYTES=N, tv_dwconv.cpp) replaces TVX_BLOCK_BYTES at
// run time, for A/B runs (openvino_ab.py --switch block-bytes / block-bytes-wide). Issue 17 stop
// 42, the AVX2-only Zen 3 (512 KiB L2, where 384 KiB of kernels leave little room for a tile's
// input rows and outputs of 16 images): face MobileNetV2 x0.1 at batch 16, 2 threads, TV ops B/A
// (null A'/A), 24 rounds of 10: 192 KiB float32 / float16 / int8 1.119 (1.025) / 1.075 (1.066) /
// 1.016 (0.998), in a run under load (load average 3.5; its stride-2 C = 48 layer 1.00-1.12);
// 768 KiB 0.954 (1.059) / 1.011 (0.995) / 0.992 (1.001), quiet: neither smaller nor larger tiles
// are faster, so the budget stays a constant (benchmarks/results/openvino_block_bytes*_zen3_*.md).
// perf put x0.1's batch-16 time in the multiply-add loop (body, ~41 % of the extension's
// samples), the pointwise prologue (~42 %; see pointwise) and the input prefetch's divisions
// (prefetch_runs), not in tile-size effects.
inline int64_t block_bytes(const KernelArgs& a, int64_t elem_bytes) {
    const int64_t base = a.sw.block_bytes > 0 ? a.sw.block_bytes : int64_t(TVX_BLOCK_BYTES);
    return elem_bytes == 1 && a.sw.int8_wide_tiles ? 2 * base : base;
}

inline Tile tile_of(const KernelArgs& a, int64_t row_count, int64_t elem_bytes) {
    if (a.n == 1)
        return {row_count, a.out_w};
    const int64_t position_bytes = a.k * a.k * a.c * elem_bytes;  // one position's kernels, every tap
    const int64_t budget = block_bytes(a, elem_bytes);
    const int64_t rows = std::max<int64_t>(1, budget / (position_bytes * a.out_w));
    if (rows >= std::min(kMinRows, row_count))
        return {rows, a.out_w};
    const int64_t per_seg = segment_positions(a.c);
    const int64_t r = std::min(kMinRows, row_count);
    const int64_t q = std::max<int64_t>(1, budget / (position_bytes * r * per_seg)) * per_seg;
    return {r, std::min(q, a.out_w)};
}

// Channel blocks, for batch > 1, stride 1 and float32 activations when a segment is one position
// (C >= kSegment) and tile_of's tiles would be narrower than k positions and than the row (one
// position's kernels for all taps are k*k*C values: 69 KB at C=1920, k=3, so a tile of 8 rows is
// 1 position wide).
// Such tiles re-read each image's input columns in every neighbouring tile (a 1-position tile of
// 8 rows converts 3 columns x 10 rows: the input ~3.75x at k = 3). Instead a thread walks its rows
// in tiles of `rows` rows x blocks of channels: a block's kernels for those rows fit
// block_bytes and serve every image; each image's input is read in place once per block and
// row tile (plus the k - 1 halo rows: ~2x with DeepLabV3+'s float32 2-row tiles, 1.25-1.4x with
// compressed kernels); each (position, block) is one call of the multiply-add loop. Blocks are
// at least kMinBlock floats where one row's kernels allow it (fewer rows instead; a row whose
// k*k*ow*kMinBlock stored values exceed block_bytes, e.g. float32 k=3 with ow > 42, gets
// narrower blocks: no zoo layer, not measured): in issue 17f's harness runs (scratch, not in
// benchmarks/) 64-float blocks were slower than the narrow tiles, the per-call cost outweighing
// the saved reads, and 256-320-float blocks faster; benchmarks/results/openvino_fused.md has the
// network rows measured with this path, benchmarks/openvino_ab.py times it against the tile path
// (TVEXPORT_OV_CHANNEL_BLOCKS=0, see tv_dwconv.cpp) in one process.
// Tried and dropped (issue 17h; scratch harnesses and a scratch copy of openvino_ab.py, AVX-512
// Zen 5 VM, whose register-only multiply-add peak is ~128 GFMA/s per core, 2 vectors per cycle:
// benchmarks/openvino_kernel_micro.py's `fma`): register blocking over 4 adjacent
// output positions x 4 images per 16 channels (each input vector feeds the k outputs that read
// it), reading a ring of input rows packed per 16 channels, ran 32-37 GFMA/s per core with its
// data in L2 against ~20 for `body`, yet the DeepLabV3+ batch-16 ASPP TV ops took 1.4-1.5x longer
// (float32 11.5 -> 16.8 ms, int8 11.1 -> 15.6 ms, 2 threads, a scratch A/B in one process, not in
// benchmarks/results): with its data in memory the layer is likely bound by traffic (estimated
// from the layout, the VM has no hardware counters: input read ~2x through the 2-row tiles' halo
// rows, output written with read-for-ownership: roughly 140 MB at float32 against the floor's
// 80 MB, ~3.8 ms at 36.7 GB/s against 3.5-4.2 ms measured), which the packed loop overlaps worse.
// Non-temporal output stores and 64-128-float blocks with 5-8-row tiles (input read 1.25-1.5x)
// were not faster in the harness either. Issue 17ad tried such blocks again without the packed
// ring, on the input read in place (3 or 4 positions x 16 channels x 4 images, k = 3, C % 16 ==
// 0, both this path and the tile path; benchmarks/results/openvino_kernel_micro_position_regs_b16_*
// and its .patch): the kernel alone at batch 16, one thread, Zen 5 VM, face MobileNetV2 x1.0
// network sums 1.01-1.19x and this C = 1920 layer 0.92-1.32x as long as the loop here (g++ 12
// kept neither the accumulators nor the kernel vectors of a 4-position block in registers).
// Issue 17 (stop 34) repeated 17ad's 3-position blocks inside `body` (each input vector loaded
// once per tap row): the kernel alone at batch 16, one thread, cold, face MobileNetV2 x0.1
// network sums 1.04x, its stride-1 C = 48 layer at 48x48 1.18x, g++ folding the input loads back
// into the multiply-adds. Issue 17ag wrote such blocks by hand (AVX-512 intrinsics for the kernels,
// inline asm per image so that each input vector is loaded once: 0.75 loads per multiply-add at 4
// positions, bit-identical results): hot 0.98x, but cold (kernels from memory, as in a network)
// 1.03x, the C = 48/96 layers up to 1.19x (benchmarks/results/openvino_position_blocks_zen5_17ag_scratch.md,
// its patch benchmarks/results/openvino_kernel_micro_zen5_b16_17ag_scratch.patch). That and other
// batch-16 variants that were not faster, and an ablation of the loop's memory streams:
// benchmarks/results/README.md ('Batch 16 on the Zen 5').
// Issue 17 stop 44 (dlv3_44), the AVX2-only Zen 3 (32 KiB L1d, 512 KiB L2), where DeepLabV3+'s
// C = 1920 layer at 16x16, batch 16, runs this path (one thread: 2-row tiles x 6 blocks of 320
// channels): the kernel alone (one thread, float32, constants 16 bytes past a line as OpenVINO
// hands them; benchmarks/results/openvino_kernel_micro_zen3_dlv3_44_ablation_scratch.{md,patch})
// 15.1 ms, 3.4x its floor at the run's 18.0 GB/s read stream (OpenVINO's counters: 15.7 ms, 3.5x),
// 9.3 cycles per vector of 16 multiply-adds. Ablations (results discarded): each stream's
// addresses held fixed so that it stays in cache, the output 0.78-0.81x, the kernels 0.74-0.79x,
// the input 0.79-0.84x, all three 0.62-0.64x, and with the input prefetch left out as well
// 0.54-0.56x (8.2 ms, 5.1 cycles per vector: the loop with its operands in L2); every operand in
// L1 (all taps on one position) 0.25x (3.6 ms, 2.2 cycles; the register-only compute floor is 1.4
// ms). So the multiply-add loop alone, fed from L2, takes ~1.8x the layer's 4.5 ms floor (5
// lines from L2 per 8 ymm multiply-adds: at C = 1920 and 16 columns a row is 30 x 4 KiB and an
// image 30 x 64 KiB, so the k*k taps' kernel lines of a position, the k rows of a column and all
// images' lines of a (position, channel) share one L1 set, and the images one L2 set: no line is
// used from L1 twice), and the memory streams add ~7 ms, overlapped badly: ~112 MB (kernels once,
// input, output and its read-for-ownership; the halo rows from L3) in 15 ms is ~7 GB/s, neither
// bandwidth- nor multiply-add-bound. The constants' 16-byte offset (one of a kernel vector's two
// 256-bit loads straddles two lines) makes the L2-fed loop 1.37x as long as aligned constants
// (6.3 -> 8.7 ms), the whole layer 1.03-1.13x (scratch runs, noisy). Tried, none faster: a packed
// ring (a block's input rows of all images copied once per block into a contiguous per-thread
// buffer, 64-96-float blocks: no set aliasing, the input read from memory once) 1.15-1.19x; each
// position's 4 image tiles back to back (kernels reused from L1, a block's input rows of all 16
// images in L2) 1.14-1.23x; in scratch runs on the shared machine (15-22 ms, noisy) tiles of
// 192 / 768 KiB, the tile path (TVEXPORT_OV_CHANNEL_BLOCKS=0), TVEXPORT_OV_BLOCKS_OUTER=0, the
// input prefetch into L2 instead of L1, the kernel prefetch for every image tile, the output lines
// prefetched for writing 1-2 positions ahead: 0.99-1.16x, no gain resolved; non-temporal output
// stores 1.7x slower. Left: making the loop itself L1-fed (position blocks, tried on the Zen 5
// only: issues 17ad/17ag), not measured here; and kMinBlock 512 (one thread, rows x blocks of
// channels: float32 1 x 3 of 640, float16 2 x 3 of 640, int8 5 x 4 of 480, against 2 x 6 of 320,
// 5 x 8 of 240 and 10 x 8 of 240), the one lead: kernel alone B/A
// hot / cold float32 0.94 / 0.91, float16 0.84 / 0.89, int8 0.91 / 0.84, but its null test read
// 0.93-1.11 in that run (load 2-5; benchmarks/results/openvino_kernel_micro_zen3_dlv3_44_min_block_scratch.md):
// not resolved, not run in OpenVINO (nor on face MobileNetV2's C >= kSegment layers), not kept.
// Since run in OpenVINO (minblock44, openvino_ab_build_zen3_minblock44_dlv3_b16.md, 12 rounds of 3, load 1.9-3.1) TV ops
// B/A (main / 512) float32 1.077 (null 1.012), float16 0.927 (null 0.942), int8 1.094 (null 0.993): not kept.
// Rerun (minblock45, openvino_ab_build_zen3_minblock45_dlv3_b16_{float32,float16,int8}.md, one dtype a run, 24
// rounds of 3, load 1.2-2.6): float32 0.987 (null 0.997), float16 1.043 (1.012), int8 0.976 (0.902, another
// process ran beside it): the float32 / int8 gain did not repeat; run-to-run spread (5-9 %) exceeds any effect.
// Face MobileNetV2 x1.0 / x0.1 at batch 16 never reach this path (a probe build's trace, 2 threads, all three
// dtypes: their C >= kSegment layers take the tile path, see below), so 512 changes nothing there. Stays 256.
constexpr int64_t kMinBlock = 256;

template <typename XT, typename WT>
void run_channel_blocks(const KernelArgs& a, int64_t row_begin, int64_t row_end) {
    const int64_t C = a.c, ow = a.out_w, k = a.k, s = a.stride, p = a.pad, H = a.in_h, W = a.in_w;
    const int64_t channel_row = k * k * ow * int64_t(sizeof(WT));  // stored kernel bytes of one channel of a row
    const int64_t budget = block_bytes(a, sizeof(WT));
    const int64_t rows = std::clamp<int64_t>(budget / (channel_row * kMinBlock), 1, row_end - row_begin);
    const int64_t widest = std::max<int64_t>(1, budget / (channel_row * rows) / TVX_CHUNK) * TVX_CHUNK;
    const int64_t blocks = (C + widest - 1) / widest;
    const int64_t block = ((C + blocks - 1) / blocks + TVX_CHUNK - 1) / TVX_CHUNK * TVX_CHUNK;  // even blocks, whole chunks
    Pass<XT, WT> pass(a, 1);
    pass.ahead = C;  // a tap's kernels of the next position, same channels
    const auto* Wt = static_cast<const WT*>(a.weight);
    const auto* X = static_cast<const float*>(a.x);
    // (row tile, block) pairs. blocks_outer: each block walks all the thread's row tiles, so the
    // halo rows a tile shares with the previous one were read about 1.3 MB of reads ago (the
    // block's other images, at DeepLabV3+'s C=1920, batch 16) rather than about 10 MB (every other
    // block), more likely still in cache. No gain resolved: DeepLabV3+ batch 16 ASPP TV ops, off / on
    // (benchmarks/results/openvino_blocks_outer.md, runs in all 6 orders of the copies): float32 /
    // float16 / int8 kernels 1.037 / 1.039 / 1.006x, null tests 0.940 / 1.018 / 0.988; earlier runs
    // with the off copy always in the middle (a position that read identical code 4-17 % slower)
    // read 1.00-1.18x. It never measured slower, so it stays. Face MobileNetV2's C >= kSegment
    // layers take the tile path at 96x96 (whole-row tiles at least k positions wide). Off: each
    // row tile walks all the blocks (TVEXPORT_OV_BLOCKS_OUTER=0, see tv_dwconv.cpp).
    const int64_t tiles = (row_end - row_begin + rows - 1) / rows, nblocks = (C + block - 1) / block;
    for (int64_t q = 0; q < tiles * nblocks; ++q) {
        const int64_t rb = row_begin + (a.sw.blocks_outer ? q % tiles : q / nblocks) * rows, re = std::min(row_end, rb + rows);
        const int64_t c0 = (a.sw.blocks_outer ? q / tiles : q % nblocks) * block, len = std::min(block, C - c0);
        for (int64_t n0 = 0; n0 < a.n;) {
            const int nb = static_cast<int>(std::min<int64_t>(TVX_BATCH_TILE, a.n - n0));
            for (int64_t i = rb; i < re; ++i) {
                const WT* row_k = Wt + i * k * k * ow * C;
                // the block's channels of the input rows the next row needs (these images, or
                // the next ones after the last row), s columns per position
                const bool last = i + 1 == re;
                const int64_t next_n = last ? n0 + nb : n0, next_i = last ? rb : i + 1;
                const int64_t r0 = std::max<int64_t>(0, next_i * s - p + (last ? 0 : k - s));
                const int64_t r1 = std::min<int64_t>(H, next_i * s - p + k);
                const int64_t images = std::min<int64_t>(nb, a.n - next_n);
                for (int64_t j = 0; j < ow; ++j) {
                    for (int64_t b = 0; b < images; ++b)
                        for (int64_t r = r0; r < r1; ++r)
                            for (int64_t ix = j * s; ix < std::min(W, j * s + s); ++ix) {
                                const char* src = reinterpret_cast<const char*>(X + (((next_n + b) * H + r) * W + ix) * C + c0);
                                for (int64_t o = 0; o < len * int64_t(sizeof(float)); o += 64)
                                    __builtin_prefetch(src + o, 0, 3);
                            }
                    const float* bias = !a.bias ? nullptr : a.bias_map ? a.bias + (i * ow + j) * C : a.bias;
                    with_tile<TVX_BATCH_TILE>(nb, [&](auto t) { pass.template positions_direct<t()>(n0, i, j, j, 1, c0, len, row_k, bias, n0 == 0); });
                }
            }
            n0 += nb;
        }
    }
}

// Next row's kernel heads: at one image, while a row runs, the first `ahead` values of each of the
// next row's k*k tap runs are prefetched, a share of the taps per segment
// (TVEXPORT_OV_KERNEL_ROWS=0 turns it off; --switch kernel-rows). The multiply-add loop prefetches
// each tap's run `ahead` values on in memory: at the end of a run that is the row's next tap, whose
// head was read at the row's start, and only the last tap's reaches the next row (its tap 0). So
// k*k - 1 heads per row came from memory on demand, most of a run where runs are short (ow * C
// values: 0.5-2.3 KiB at int8 in face MobileNetV2 x0.1 and ShuffleNetV2 x1.0). Issue 17aa (Zen 4
// VM): in OpenVINO at batch 1 TV ops int8 0.65-0.93x, float16/float32 0.86-1.05x
// (benchmarks/results/README.md, 'The next row's kernel heads'). Not done at batch > 1, where a
// tile's kernels serve every image (a scratch version that did read 0.99-1.06x at batch 16). A
// thread's first row gets no such prefetch; taps that read only padding are prefetched all the same.
// Rechecked on the Zen 4 (issue 17 stop 49, b1c49; `--switch kernel-rows`, x0.1, batch 1, 2 threads, TV
// ops with / without, nulls in brackets): float16 1.065 (1.055) and 0.995 (1.013), int8 1.049 (0.994) and
// 0.971 (0.983) in two runs, wall 0.98-1.04: no change resolved on x0.1 (17aa's gain was int8's, 0.92 there);
// kept (benchmarks/results/openvino_kernel_rows_zen4_b1c49_x0_1_b1*.md).
template <typename XT, typename WT>
void run(const KernelArgs& a, int64_t row_begin, int64_t row_end) {
    const Tile tile = tile_of(a, row_end - row_begin, sizeof(WT));
    if constexpr (std::is_same_v<XT, float>) {
        if (a.sw.channel_blocks && !a.pw_weight && a.n > 1 && a.stride == 1 && segment_positions(a.c) == 1 && tile.positions < std::min(a.k, a.out_w))
            return run_channel_blocks<XT, WT>(a, row_begin, row_end);
    }
    const int64_t C = a.c, k = a.k, s = a.stride, p = a.pad, W = a.in_w, H = a.in_h, ow = a.out_w;
    Pass<XT, WT> pass(a, tile.positions);
    const int64_t per_seg = segment_positions(C);
    const int64_t row_kernels = k * k * ow * C;  // kernel values of one output row
    const auto* X = static_cast<const XT*>(a.x);
    const auto* Wt = static_cast<const WT*>(a.weight);

    for (int64_t rb = row_begin; rb < row_end; rb += tile.rows) {
        const int64_t re = std::min(row_end, rb + tile.rows);
        for (int64_t jb = 0; jb < ow; jb += tile.positions) {
            const int64_t je = std::min(ow, jb + tile.positions);
            const int64_t segments = (je - jb + per_seg - 1) / per_seg;
            // the tile's kernels (sized for L2) serve every image, TVX_BATCH_TILE images at a time
            for (int64_t n0 = 0; n0 < a.n;) {
                const int nb = static_cast<int>(std::min<int64_t>(TVX_BATCH_TILE, a.n - n0));
                pass.start_tile(jb, je);
                const int64_t c0 = pass.first_column();
                // bytes of the tile's columns of a row (with the pointwise prologue: x's, of one channel plane where NCHW)
                const int64_t xc = !a.pw_weight ? C : a.pw_nchw ? 1 : a.cin;
                const int64_t run = (pass.last_column() - c0) * xc * int64_t(sizeof(XT));
                for (int64_t i = rb; i < re; ++i) {
                    // the input rows the next row needs (these images, or the next ones at the
                    // tile's end), fetched a slice per segment while this row computes
                    const bool last = i + 1 == re;
                    const int64_t next_n = last ? n0 + nb : n0, next_i = last ? rb : i + 1;
                    const int64_t first_new = std::max<int64_t>(0, next_i * s - p + (last ? 0 : k - s));
                    const int64_t new_rows = std::max<int64_t>(0, std::min<int64_t>(H, next_i * s - p + k) - first_new);
                    const int64_t images = std::min<int64_t>(nb, a.n - next_n);
                    const int64_t planes = a.pw_weight && a.pw_nchw ? a.cin : 1;  // runs per input row
                    const int64_t x_bytes = images > 0 ? images * new_rows * planes * run : 0;
                    // where run r starts (prefetch_runs calls it per cache line, so two plain lambdas, not
                    // one with a branch: that made the unfused TV ops of face MobileNetV2 x0.1 at batch 16
                    // 1.5-1.8x slower). One plane: image r / new_rows, row r % new_rows; NCHW x with the
                    // pointwise prologue: image, then plane, then row
                    const auto row_start = [&](int64_t r) {
                        return reinterpret_cast<const char*>(X + ((next_n + r / new_rows) * H + first_new + r % new_rows) * W * xc + c0 * xc);
                    };
                    const auto plane_start = [&](int64_t r) {
                        const int64_t run_row = r / new_rows, image = next_n + run_row / planes, plane = run_row % planes;
                        return reinterpret_cast<const char*>(X + ((image * planes + plane) * H + first_new + r % new_rows) * W + c0);
                    };
                    const WT* row_k = Wt + i * row_kernels;
                    // one image: the head of each tap's kernel run in the next row, a share of the
                    // taps per segment like the input rows (see the comment before run)
                    const int64_t k_head = std::min((je - jb) * C, pass.ahead) * int64_t(sizeof(WT));
                    const int64_t k_taps = a.sw.kernel_rows && a.n == 1 && i + 1 < re ? k * k : 0;
                    const char* next_k = reinterpret_cast<const char*>(row_k + row_kernels + jb * C);
                    for (int64_t j0 = jb, q = 0; j0 < je; j0 += per_seg, ++q) {
                        if (x_bytes > 0 && planes == 1)
                            prefetch_runs(row_start, run, x_bytes * q / segments, x_bytes * (q + 1) / segments);
                        else if (x_bytes > 0)
                            prefetch_runs(plane_start, run, x_bytes * q / segments, x_bytes * (q + 1) / segments);
                        for (int64_t r = k_taps * q / segments; r < k_taps * (q + 1) / segments; ++r)
                            for (int64_t o = 0; o < k_head; o += 64)
                                pass.prefetch_kernels(next_k + r * ow * C * int64_t(sizeof(WT)) + o);
                        const int64_t positions = std::min(je, j0 + per_seg) - j0;
                        const float* bias = !a.bias ? nullptr : a.bias_map ? a.bias + (i * ow + j0) * C : a.bias;
                        with_tile<TVX_BATCH_TILE>(nb, [&](auto t) { pass.template segment<t()>(n0, i, j0, positions, row_k, bias, n0 == 0); });
                    }
                }
                n0 += nb;
            }
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

// OpenVINO's CPU plugin hands an op its constant inputs 16-byte aligned (weight, scale and bias
// were seen at 0, 16, 32 and 48 bytes mod 64; activations at 0), so every vector load of a
// misaligned int8 scale row (one per kernel vector where the scales are not in registers) or
// per-channel bias row straddles two cache lines. Those rows are small next to the kernels
// (k*k x S and S floats, S = segment_floats(C) <= max(kSegment, C): at most 376 KB of scales,
// C = 1920 at k = 7): a misaligned one is copied into this thread's aligned scratch first. Only
// the table's start is aligned: where S is not a multiple of 16 floats (C = 24: 504) some tap
// rows still straddle lines (at batch 1 such layers hold their scales in registers).
// Bias maps (h, w, C) and the kernels are as large as a layer's stream and are read in place
// (misaligned kernels cost float32 11 % with the kernels in cache, 1-3 % streamed from memory).
// One thread, face MobileNetV2 x1.0, int8, Zen 4 VM: hot 0.876x, cold 0.937x (issue 17o;
// benchmarks/results/openvino_kernel_micro_scale_align.md).
void TVX_KERNEL_NAME(const KernelArgs& args, int64_t row_begin, int64_t row_end) {
    const auto misaligned = [](const float* p) { return p && reinterpret_cast<uintptr_t>(p) % 64 != 0; };
    KernelArgs a = args;
    const int64_t S = segment_floats(a.c);
    if (a.w_type == DType::i8 && misaligned(a.scale)) {
        float* s = sized(scratch.scale, a.k * a.k * S);
        std::memcpy(s, a.scale, sizeof(float) * a.k * a.k * S);
        a.scale = s;
    }
    if (!a.bias_map && misaligned(a.bias)) {
        float* b = sized(scratch.bias, S);
        std::memcpy(b, a.bias, sizeof(float) * S);
        a.bias = b;
    }
    if (a.x_type == DType::f16)
        run_x<half>(a, row_begin, row_end);
    else
        run_x<float>(a, row_begin, row_end);
}

}  // namespace tvx
