// Microbenchmark driver for the OpenVINO extension's TV kernel (tvexport/openvino/ext/kernel.cpp),
// without OpenVINO: benchmarks/openvino_kernel_micro.py compiles kernel.cpp as CMakeLists.txt
// compiles one of its variants (AVX-512, or AVX2 on CPUs without AVX-512; TVX_MICRO_KERNEL names its
// entry point, this file compiled for the same ISA), links it with this file, and runs it. The kernel runs on the
// calling thread over every output row (tvx::TVX_MICRO_KERNEL(args, 0, out_h)), with synthetic data in
// kernel.hpp's layouts: x (N, H, W, C) float32, weight (h, k*k, w, C), int8 scales (k*k, S) tiled
// over a segment, a per-channel bias (1, P, C) tiled likewise, output clamped to [0, 6] (the
// baked face MobileNetV2 layers: BatchNorm folded into a per-channel bias, ReLU6 fused).
//
//   main bench MIN_ITERS MIN_MS WARMUP COLD_BYTES CASE...   CASE = C,k,stride,out_h,out_w,dtype[,N]
//       (dtype f32|f16|i8; N images, default 1): per case and memory state one JSON line: hot (one copy of the kernels,
//       called again and again) and cold (rotating over copies totalling more than COLD_BYTES, so
//       every call streams its kernels from DRAM); WARMUP calls, then at least MIN_ITERS timed
//       calls and MIN_MS milliseconds; per-call nanoseconds, all samples
//   main stream BYTES ITERS     one thread's read bandwidth (sum of a float buffer) and copy
//       bandwidth (memcpy), one JSON line each, per-iteration nanoseconds
//   main clock        the core's clock estimated from a chain of dependent adds (one per cycle),
//       one JSON line: GHz, for cycles per kernel vector
//   main fma          the core's register-only multiply-add peak: 12 independent chains of 512-bit
//       multiply-adds (AVX2 build: 256-bit, two per vector of 16) (enough to fill two pipes of latency 4), no memory operands; one JSON line:
//       vectors of 16 multiply-adds per ns, the compute floor the kernel's times are set against
//   main check DIR C k stride out_h out_w dtype N
//       writes x, weight, scale, bias (untiled) and y of one call to DIR/*.bin (raw, little
//       endian) for a float64 reference in numpy (tests/test_ov_kernel_micro.py)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <immintrin.h>
#include <new>
#include <string>
#include <vector>

#include "kernel.hpp"

#ifndef TVX_MICRO_KERNEL
#    define TVX_MICRO_KERNEL kernel_avx512
#endif

namespace {

using Clock = std::chrono::steady_clock;

struct Case {
    int64_t c, k, stride, oh, ow, n;
    tvx::DType w_type;
    std::string dtype;
};

int64_t elem_bytes(tvx::DType t) {
    return t == tvx::DType::f32 ? 4 : t == tvx::DType::f16 ? 2 : 1;
}

Case parse_case(const char* spec) {
    Case cs{};
    char dt[8] = {};
    long long c, k, s, oh, ow, n = 1;
    int end6 = -1, end7 = -1;  // characters consumed: the whole spec must be read, nothing after
    const int got = std::sscanf(spec, "%lld,%lld,%lld,%lld,%lld,%7[a-z0-9]%n,%lld%n", &c, &k, &s, &oh, &ow, dt, &end6, &n, &end7);
    const size_t len = std::strlen(spec);
    const bool whole = (got == 6 && end6 >= 0 && static_cast<size_t>(end6) == len) || (got == 7 && end7 >= 0 && static_cast<size_t>(end7) == len);
    if (!whole || n < 1 || c < 1 || k < 1 || k % 2 == 0 || s < 1 || oh < 1 || ow < 1) {
        std::fprintf(stderr, "bad case %s (want C,k,stride,out_h,out_w,f32|f16|i8[,N])\n", spec);
        std::exit(2);
    }
    cs.c = c, cs.k = k, cs.stride = s, cs.oh = oh, cs.ow = ow, cs.n = n, cs.dtype = dt;
    if (cs.dtype == "f32")
        cs.w_type = tvx::DType::f32;
    else if (cs.dtype == "f16")
        cs.w_type = tvx::DType::f16;
    else if (cs.dtype == "i8")
        cs.w_type = tvx::DType::i8;
    else {
        std::fprintf(stderr, "bad dtype %s\n", dt);
        std::exit(2);
    }
    return cs;
}

// Deterministic pseudo-random numbers (xorshift64*), floats in [-1, 1).
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 2654435761u + 1) {}
    uint64_t next() {
        s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
        return s * 2685821657736338717ull;
    }
    float uniform() {
        return static_cast<float>(next() >> 40) / 8388608.0f - 1.0f;
    }
};

void* aligned(size_t bytes) {
    return ::operator new((bytes + 4095) / 4096 * 4096, std::align_val_t(4096));
}
void release(void* p) {
    ::operator delete(p, std::align_val_t(4096));
}

// n kernel values of dtype t from the generator (float16 and int8 always finite and normal)
void fill_weight(void* dst, tvx::DType t, int64_t n, Rng& rng) {
    if (t == tvx::DType::f32) {
        auto* p = static_cast<float*>(dst);
        for (int64_t i = 0; i < n; ++i)
            p[i] = rng.uniform();
    } else if (t == tvx::DType::f16) {
        auto* p = static_cast<uint16_t*>(dst);  // IEEE binary16 bits (F16C, part of x86-64-v4)
        for (int64_t i = 0; i < n; ++i)
            p[i] = _cvtss_sh(rng.uniform(), _MM_FROUND_TO_NEAREST_INT);
    } else {
        auto* p = static_cast<int8_t*>(dst);
        for (int64_t i = 0; i < n; ++i)
            p[i] = static_cast<int8_t>(std::lround(rng.uniform() * 127.0f));
    }
}

// 64-byte aligned float buffers, as OpenVINO's CPU plugin gives an op its activations (malloc's
// 16-byte alignment made every vector load of the input read in place split two cache lines)
using Floats = std::vector<float, tvx::Aligned<float>>;

// Bytes past a 64-byte boundary at which the constants (kernel copies, tiled scale and bias)
// start: $TVX_MICRO_CONST_OFFSET, a multiple of 4 below 64 (default 0). OpenVINO's CPU plugin
// hands an op its constants 16-byte aligned (0, 16, 32 or 48 mod 64), its activations 64-byte
// aligned.
int64_t const_offset() {
    const char* v = std::getenv("TVX_MICRO_CONST_OFFSET");
    char* end = nullptr;
    const long long off = v && *v ? std::strtoll(v, &end, 10) : 0;
    if ((v && *v && *end) || off < 0 || off >= 64 || off % 4) {
        std::fprintf(stderr, "TVX_MICRO_CONST_OFFSET must be a multiple of 4 in [0, 64), not %s\n", v);
        std::exit(2);
    }
    return off;
}

// The layer's data: input, one or more copies of the kernels, tiled scale and bias, output.
struct Layer {
    Case cs;
    int64_t in_h, in_w, pad, n;
    int64_t kernel_bytes, copy_stride, copies, off = const_offset();
    Floats x, y, scale_tiled, bias_tiled, scale_raw, bias_raw;
    char* kernel_block = nullptr;
    char* kernels = nullptr;  // kernel_block + off

    Layer(const Case& c, int64_t batch, int64_t min_total_bytes, uint64_t seed) : cs(c), n(batch) {
        in_h = cs.oh * cs.stride, in_w = cs.ow * cs.stride, pad = cs.k / 2;
        const int64_t kk = cs.k * cs.k, C = cs.c;
        kernel_bytes = cs.oh * kk * cs.ow * C * elem_bytes(cs.w_type);
        copy_stride = (kernel_bytes + 4095) / 4096 * 4096;
        copies = std::max<int64_t>(1, (min_total_bytes + kernel_bytes - 1) / kernel_bytes);
        Rng rng(seed);
        x.resize(n * in_h * in_w * C);
        for (auto& v : x)
            v = rng.uniform();
        y.assign(n * cs.oh * cs.ow * C, 0.0f);
        kernel_block = static_cast<char*>(aligned(copy_stride * copies + 64));
        kernels = kernel_block + off;
        fill_weight(kernels, cs.w_type, kernel_bytes / elem_bytes(cs.w_type), rng);
        for (int64_t i = 1; i < copies; ++i)  // copies of the same values: only their addresses differ
            std::memcpy(kernels + i * copy_stride, kernels, kernel_bytes);
        const int64_t P = tvx::segment_positions(C), S = tvx::segment_floats(C);
        scale_raw.resize(kk * C);
        for (auto& v : scale_raw)
            v = (rng.uniform() + 1.5f) / 127.0f;
        bias_raw.resize(C);
        for (auto& v : bias_raw)
            v = rng.uniform();
        scale_tiled.resize(kk * S + 16);
        for (int64_t t = 0; t < kk; ++t)
            for (int64_t q = 0; q < P; ++q)
                std::memcpy(scale() + t * S + q * C, &scale_raw[t * C], C * sizeof(float));
        bias_tiled.resize(S + 16);
        for (int64_t q = 0; q < P; ++q)
            std::memcpy(bias() + q * C, bias_raw.data(), C * sizeof(float));
    }
    ~Layer() {
        release(kernel_block);
    }
    float* scale() {
        return scale_tiled.data() + off / 4;
    }
    float* bias() {
        return bias_tiled.data() + off / 4;
    }
    Layer(const Layer&) = delete;
    Layer& operator=(const Layer&) = delete;

    tvx::KernelArgs args(int64_t copy) {
        tvx::KernelArgs a{};
        a.x = x.data();
        a.weight = kernels + copy * copy_stride;
        a.scale = cs.w_type == tvx::DType::i8 ? scale() : nullptr;
        a.bias = bias();
        a.y = y.data();
        a.n = n, a.in_h = in_h, a.in_w = in_w, a.c = cs.c;
        a.out_h = cs.oh, a.out_w = cs.ow;
        a.k = cs.k, a.stride = cs.stride, a.pad = pad;
        a.bias_map = false;
        a.x_type = tvx::DType::f32, a.w_type = cs.w_type;
        a.clamp = true, a.lo = 0.0f, a.hi = 6.0f;
        if (const char* nta = std::getenv("TVEXPORT_OV_KERNEL_NTA"); nta && *nta)  // as the op reads it (tv_dwconv.cpp)
            a.sw.kernel_nta = std::string(nta) != "0";
        return a;
    }
};

void print_samples(const std::vector<int64_t>& ns) {
    std::printf("[");
    for (size_t i = 0; i < ns.size(); ++i)
        std::printf(i ? ",%lld" : "%lld", static_cast<long long>(ns[i]));
    std::printf("]");
}

int bench(int argc, char** argv) {
    if (argc < 7)
        return std::fprintf(stderr, "bench MIN_ITERS MIN_MS WARMUP COLD_BYTES CASE...\n"), 2;
    const int64_t iters = std::atoll(argv[2]), min_ns = std::atoll(argv[3]) * 1000000, warmup = std::atoll(argv[4]);
    const int64_t cold_bytes = std::atoll(argv[5]);
    for (int i = 6; i < argc; ++i) {
        const Case cs = parse_case(argv[i]);
        Layer layer(cs, cs.n, cold_bytes, 1000 + i);
        for (const char* state : {"hot", "cold"}) {
            const bool cold = state[0] == 'c';
            const int64_t copies = cold ? layer.copies : 1;
            std::vector<tvx::KernelArgs> args;
            for (int64_t q = 0; q < copies; ++q)
                args.push_back(layer.args(q));
            std::vector<int64_t> ns;
            ns.reserve(iters);
            int64_t next = 0, total = 0;
            for (int64_t it = -warmup; it < iters || total < min_ns; ++it) {
                const tvx::KernelArgs& a = args[next];
                next = next + 1 == copies ? 0 : next + 1;
                const auto t0 = Clock::now();
                tvx::TVX_MICRO_KERNEL(a, 0, a.out_h);
                const auto t1 = Clock::now();
                if (it >= 0) {
                    ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
                    total += ns.back();
                }
            }
            std::printf("{\"case\":\"%s\",\"state\":\"%s\",\"kernel_bytes\":%lld,\"copies\":%lld,\"ns\":", argv[i], state,
                        static_cast<long long>(layer.kernel_bytes), static_cast<long long>(copies));
            print_samples(ns);
            std::printf("}\n");
            std::fflush(stdout);
        }
    }
    return 0;
}

// the target's own vector width (a 64-byte vector without AVX-512 is kept in memory by g++ 12)
#if defined(__AVX512F__)
typedef float v16 __attribute__((vector_size(64)));
#else
typedef float v16 __attribute__((vector_size(32)));
#endif
constexpr int kStreamLanes = sizeof(v16) / sizeof(float);

int stream(int argc, char** argv) {
    if (argc < 4)
        return std::fprintf(stderr, "stream BYTES ITERS\n"), 2;
    const int64_t bytes = std::atoll(argv[2]) / 256 * 256, iters = std::atoll(argv[3]);
    auto* a = static_cast<float*>(aligned(bytes));
    auto* b = static_cast<float*>(aligned(bytes));
    const int64_t n = bytes / 4;
    Rng rng(7);
    for (int64_t i = 0; i < n; ++i)
        a[i] = rng.uniform();
    std::memset(b, 0, bytes);
    float sink = 0.0f;
    for (const char* what : {"read", "copy"}) {
        std::vector<int64_t> ns;
        for (int64_t it = -1; it < iters; ++it) {
            const auto t0 = Clock::now();
            if (what[0] == 'r') {
                v16 s[4] = {};
                for (int64_t i = 0; i < n; i += 4 * kStreamLanes) {
                    for (int v = 0; v < 4; ++v) {
                        v16 w;
                        std::memcpy(&w, a + i + kStreamLanes * v, sizeof w);
                        s[v] += w;
                    }
                }
                const v16 t = (s[0] + s[1]) + (s[2] + s[3]);
                for (int l = 0; l < kStreamLanes; ++l)
                    sink += t[l];
            } else {
                std::memcpy(b, a, bytes);
                sink += b[it & 1023];
            }
            const auto t1 = Clock::now();
            if (it >= 0)
                ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
        }
        std::printf("{\"stream\":\"%s\",\"bytes\":%lld,\"ns\":", what, static_cast<long long>(bytes));
        print_samples(ns);
        std::printf(",\"sink\":%g}\n", static_cast<double>(sink));
        std::fflush(stdout);
    }
    release(a);
    release(b);
    return 0;
}

int clock_ghz() {
    uint64_t x = 1;
    const int64_t n = 400000000;
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < n; ++i)
        __asm__ volatile("add $1, %0" : "+r"(x));  // a 1-cycle dependency chain; the loop overhead runs beside it
    const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
    std::printf("{\"clock_ghz\":%.4f,\"sink\":%llu}\n", n / ns, static_cast<unsigned long long>(x & 1));
    return 0;
}

#if defined(__AVX512F__)
typedef __m512 fvec;
inline fvec fset1(float x) {
    return _mm512_set1_ps(x);
}
inline fvec ffma(fvec a, fvec b, fvec c) {
    return _mm512_fmadd_ps(a, b, c);
}
inline float fsum(fvec a) {
    return _mm512_reduce_add_ps(a);
}
#else  // AVX2 + FMA: 256-bit chains, two per vector of 16 multiply-adds
typedef __m256 fvec;
inline fvec fset1(float x) {
    return _mm256_set1_ps(x);
}
inline fvec ffma(fvec a, fvec b, fvec c) {
    return _mm256_fmadd_ps(a, b, c);
}
inline float fsum(fvec a) {
    float l[8];
    std::memcpy(l, &a, sizeof l);
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}
#endif

int fma_peak() {
    constexpr int kChains = 12;
    fvec acc[kChains];
    for (int c = 0; c < kChains; ++c)
        acc[c] = fset1(static_cast<float>(c));
    const fvec m = fset1(1.0000001f), add = fset1(1e-7f);
    const int64_t n = 40000000;
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < n; ++i) {
#pragma GCC unroll 12
        for (int c = 0; c < kChains; ++c)
            acc[c] = ffma(acc[c], m, add);
    }
    const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
    float sink = 0.0f;
    for (int c = 0; c < kChains; ++c)
        sink += fsum(acc[c]);
    // vectors of 16 multiply-adds
    std::printf("{\"fma_vectors_per_ns\":%.4f,\"sink\":%g}\n", n * kChains * (sizeof(fvec) / 64.0) / ns, static_cast<double>(sink));
    return 0;
}

void write(const std::string& path, const void* p, size_t bytes) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || std::fwrite(p, 1, bytes, f) != bytes) {
        std::fprintf(stderr, "cannot write %s\n", path.c_str());
        std::exit(1);
    }
    std::fclose(f);
}

int check(int argc, char** argv) {
    if (argc < 10)
        return std::fprintf(stderr, "check DIR C k stride out_h out_w dtype N\n"), 2;
    const std::string dir = argv[2];
    const std::string spec = std::string(argv[3]) + "," + argv[4] + "," + argv[5] + "," + argv[6] + "," + argv[7] + "," + argv[8];
    const Case cs = parse_case(spec.c_str());
    Layer layer(cs, std::atoll(argv[9]), 0, 42);
    const tvx::KernelArgs a = layer.args(0);
    tvx::TVX_MICRO_KERNEL(a, 0, a.out_h);
    write(dir + "/x.bin", layer.x.data(), layer.x.size() * 4);
    write(dir + "/weight.bin", layer.kernels, layer.kernel_bytes);
    write(dir + "/scale.bin", layer.scale_raw.data(), layer.scale_raw.size() * 4);
    write(dir + "/bias.bin", layer.bias_raw.data(), layer.bias_raw.size() * 4);
    write(dir + "/y.bin", layer.y.data(), layer.y.size() * 4);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "bench")
        return bench(argc, argv);
    if (mode == "stream")
        return stream(argc, argv);
    if (mode == "clock")
        return clock_ghz();
    if (mode == "fma")
        return fma_peak();
    if (mode == "check")
        return check(argc, argv);
    std::fprintf(stderr, "usage: main bench|stream|clock|fma|check ... (see main.cpp)\n");
    return 2;
}
