// Scratch (issue 17, int8loop44; not a benchmarks/ script): instruction throughput on this core, cycles per
// instruction group, best of 30, clock from a 1-cycle add chain. Build and run (one CPU, under cpu bench):
//   g++ -O2 -std=c++17 -march=x86-64-v3 openvino_int8loop44_zen3_throughput_scratch.cpp -o tp && taskset -c 1 ./tp
// Zen 3 VM result: benchmarks/results/README.md (row of this file) and kernel.cpp's comment before kL1ChunksAhead.
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <algorithm>
alignas(64) float buf[1024];
#define REP8(x) x x x x x x x x
template <typename F> double best_ns(F f, int64_t n) {
    double best = 1e30;
    for (int r = 0; r < 30; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        f(n);
        best = std::min(best, std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
}
int main() {
    const int64_t n = 2000000;
    const float* p = buf;
    double clk = n / best_ns([](int64_t n) { uint64_t x = 0; for (int64_t i = 0; i < n; ++i) __asm__ volatile("add $1, %0" : "+r"(x)); }, n);
    std::printf("clock %.2f GHz\n", clk);
#define T(name, per, body) { double ns = best_ns([&](int64_t n) { for (int64_t i = 0; i < n; ++i) __asm__ volatile(body :: "r"(p) : "xmm0","xmm1","xmm2","xmm3","xmm4","xmm5","xmm6","xmm7","xmm8","xmm9","xmm10","xmm11","xmm12","xmm13","xmm14","xmm15","memory"); }, n); \
    std::printf("%-34s %.2f cycles per %s\n", name, ns * clk / n / 1.0, per); }
    T("8 vpmovsxbd ymm,m64", "8", "vpmovsxbd (%0),%%ymm0\n vpmovsxbd 8(%0),%%ymm1\n vpmovsxbd 16(%0),%%ymm2\n vpmovsxbd 24(%0),%%ymm3\n vpmovsxbd 32(%0),%%ymm4\n vpmovsxbd 40(%0),%%ymm5\n vpmovsxbd 48(%0),%%ymm6\n vpmovsxbd 56(%0),%%ymm7\n")
    T("8 vpmovsxbd ymm,xmm", "8", "vpmovsxbd %%xmm8,%%ymm0\n vpmovsxbd %%xmm8,%%ymm1\n vpmovsxbd %%xmm8,%%ymm2\n vpmovsxbd %%xmm8,%%ymm3\n vpmovsxbd %%xmm8,%%ymm4\n vpmovsxbd %%xmm8,%%ymm5\n vpmovsxbd %%xmm8,%%ymm6\n vpmovsxbd %%xmm8,%%ymm7\n")
    T("8 vpmovsxbd xmm,m32", "8", "vpmovsxbd (%0),%%xmm0\n vpmovsxbd 4(%0),%%xmm1\n vpmovsxbd 8(%0),%%xmm2\n vpmovsxbd 12(%0),%%xmm3\n vpmovsxbd 16(%0),%%xmm4\n vpmovsxbd 20(%0),%%xmm5\n vpmovsxbd 24(%0),%%xmm6\n vpmovsxbd 28(%0),%%xmm7\n")
    T("8 vcvtdq2ps ymm", "8", "vcvtdq2ps %%ymm8,%%ymm0\n vcvtdq2ps %%ymm8,%%ymm1\n vcvtdq2ps %%ymm8,%%ymm2\n vcvtdq2ps %%ymm8,%%ymm3\n vcvtdq2ps %%ymm8,%%ymm4\n vcvtdq2ps %%ymm8,%%ymm5\n vcvtdq2ps %%ymm8,%%ymm6\n vcvtdq2ps %%ymm8,%%ymm7\n")
    T("8 vmulps ymm,m256", "8", "vmulps (%0),%%ymm8,%%ymm0\n vmulps 32(%0),%%ymm8,%%ymm1\n vmulps 64(%0),%%ymm8,%%ymm2\n vmulps 96(%0),%%ymm8,%%ymm3\n vmulps (%0),%%ymm8,%%ymm4\n vmulps 32(%0),%%ymm8,%%ymm5\n vmulps 64(%0),%%ymm8,%%ymm6\n vmulps 96(%0),%%ymm8,%%ymm7\n")
    T("8 vmovaps ymm,m256", "8", "vmovaps (%0),%%ymm0\n vmovaps 32(%0),%%ymm1\n vmovaps 64(%0),%%ymm2\n vmovaps 96(%0),%%ymm3\n vmovaps 128(%0),%%ymm4\n vmovaps 160(%0),%%ymm5\n vmovaps 192(%0),%%ymm6\n vmovaps 224(%0),%%ymm7\n")
    T("8 vmulps ymm reg", "8", "vmulps %%ymm9,%%ymm8,%%ymm0\n vmulps %%ymm9,%%ymm8,%%ymm1\n vmulps %%ymm9,%%ymm8,%%ymm2\n vmulps %%ymm9,%%ymm8,%%ymm3\n vmulps %%ymm9,%%ymm8,%%ymm4\n vmulps %%ymm9,%%ymm8,%%ymm5\n vmulps %%ymm9,%%ymm8,%%ymm6\n vmulps %%ymm9,%%ymm8,%%ymm7\n")
    T("8 vfmadd231ps ymm,m256 (8 chains)", "8", "vfmadd231ps (%0),%%ymm8,%%ymm0\n vfmadd231ps 32(%0),%%ymm8,%%ymm1\n vfmadd231ps 64(%0),%%ymm8,%%ymm2\n vfmadd231ps 96(%0),%%ymm8,%%ymm3\n vfmadd231ps 128(%0),%%ymm8,%%ymm4\n vfmadd231ps 160(%0),%%ymm8,%%ymm5\n vfmadd231ps 192(%0),%%ymm8,%%ymm6\n vfmadd231ps 224(%0),%%ymm8,%%ymm7\n")
    // per 16 values of the int8 loop: 2 x (movsx m64, cvt, mul m256, fma m256), 8 accumulators over 4 steps
#define I8(t, c, o) "vpmovsxbd " #o "(%0),%%ymm" #t "\n vcvtdq2ps %%ymm" #t ",%%ymm" #t "\n vmulps 256+" #o "*4(%0),%%ymm" #t ",%%ymm" #t "\n vfmadd231ps 512+" #o "*4(%0),%%ymm" #t ",%%ymm" #c "\n"
    T("int8 step x8 (m64, cvt, mul m, fma m)", "64 values", I8(0,8,0) I8(1,9,8) I8(2,10,16) I8(3,11,24) I8(4,12,32) I8(5,13,40) I8(6,14,48) I8(0,15,56))
#define I8R(t, c, o) "vpmovsxbd " #o "(%0),%%ymm" #t "\n vcvtdq2ps %%ymm" #t ",%%ymm" #t "\n vmulps %%ymm7,%%ymm" #t ",%%ymm" #t "\n vfmadd231ps 512+" #o "*4(%0),%%ymm" #t ",%%ymm" #c "\n"
    T("int8 step x8, scale in reg", "64 values", I8R(0,8,0) I8R(1,9,8) I8R(2,10,16) I8R(3,11,24) I8R(4,12,32) I8R(5,13,40) I8R(6,14,48) I8R(0,15,56))
#define I8N(t, c, o) "vpmovsxbd " #o "(%0),%%ymm" #t "\n vcvtdq2ps %%ymm" #t ",%%ymm" #t "\n vfmadd231ps 512+" #o "*4(%0),%%ymm" #t ",%%ymm" #c "\n"
    T("int8 step x8, no scale", "64 values", I8N(0,8,0) I8N(1,9,8) I8N(2,10,16) I8N(3,11,24) I8N(4,12,32) I8N(5,13,40) I8N(6,14,48) I8N(0,15,56))
#define F32(t, c, o) "vmovaps 256+" #o "*4(%0),%%ymm" #t "\n vfmadd231ps 512+" #o "*4(%0),%%ymm" #t ",%%ymm" #c "\n"
    T("f32 step x8 (load, fma m)", "64 values", F32(0,8,0) F32(1,9,8) F32(2,10,16) F32(3,11,24) F32(4,12,32) F32(5,13,40) F32(6,14,48) F32(0,15,56))
#define I8L(t, c, o) "vpmovsxbd " #o "(%0),%%ymm" #t "\n vmovaps 256+" #o "*4(%0),%%ymm" #t "\n vmovaps 512+" #o "*4(%0),%%ymm" #c "\n"
    T("int8 step loads only (m64 + 2 m256)", "64 values", I8L(0,8,0) I8L(1,9,8) I8L(2,10,16) I8L(3,11,24) I8L(4,12,32) I8L(5,13,40) I8L(6,14,48) I8L(0,15,56))
    return 0;
}
