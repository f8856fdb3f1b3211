// scratch: one thread's read rate of a buffer of a given size, sequential and as 9 interleaved
// tap-like streams; and the in-L1 cost of a kernel vector's conversion (f32 / f16 / int8)
#include <immintrin.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <algorithm>
#include <sched.h>
static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
__attribute__((noinline)) float seq(const char* p, size_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t o = 0; o < n; o += 256) {
        a0 = _mm512_add_ps(a0, _mm512_load_ps((const float*)(p + o)));
        a1 = _mm512_add_ps(a1, _mm512_load_ps((const float*)(p + o + 64)));
        a2 = _mm512_add_ps(a2, _mm512_load_ps((const float*)(p + o + 128)));
        a3 = _mm512_add_ps(a3, _mm512_load_ps((const float*)(p + o + 192)));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}
// 9 streams of `run` bytes each (consecutive), read 128 bytes per stream in turn (a chunk of 4
// f16 vectors per tap), hint: 0 none, 1 t1 1024 ahead, 2 nta, 3 t0
template <int H>
__attribute__((noinline)) float taps(const char* p, size_t n, size_t run) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    for (size_t row = 0; row + 9 * run <= n; row += 9 * run)
        for (size_t u = 0; u < run; u += 128)
            for (int t = 0; t < 9; ++t) {
                const char* q = p + row + t * run + u;
                if (H == 1) { _mm_prefetch(q + 1024, _MM_HINT_T1); _mm_prefetch(q + 1088, _MM_HINT_T1); }
                if (H == 2) { _mm_prefetch(q + 1024, _MM_HINT_NTA); _mm_prefetch(q + 1088, _MM_HINT_NTA); }
                if (H == 3) { _mm_prefetch(q + 1024, _MM_HINT_T0); _mm_prefetch(q + 1088, _MM_HINT_T0); }
                a0 = _mm512_add_ps(a0, _mm512_load_ps((const float*)q));
                a1 = _mm512_add_ps(a1, _mm512_load_ps((const float*)(q + 64)));
            }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}
template <class F>
double best(F f, int reps) {
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) { double t0 = now(); f(); t.push_back(now() - t0); }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}
volatile float sink;
// in L1: 9 taps x 4 vectors, accumulators 4, kernel type K
template <int K>
__attribute__((noinline)) void loop(const void* w, const float* x, float* out, int iters) {
    __m512 acc[4];
    for (int v = 0; v < 4; ++v) acc[v] = _mm512_setzero_ps();
    const __m512 sc = _mm512_set1_ps(0.01f);
    for (int it = 0; it < iters; ++it) {
        for (int t = 0; t < 9; ++t)
            for (int v = 0; v < 4; ++v) {
                __m512 k;
                const int e = (t * 4 + v) * 16;
                if (K == 0) k = _mm512_load_ps((const float*)w + e);
                else if (K == 1) k = _mm512_cvtph_ps(_mm256_load_si256((const __m256i*)((const uint16_t*)w + e)));
                else k = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_load_si128((const __m128i*)((const int8_t*)w + e)))), sc);
                acc[v] = _mm512_fmadd_ps(k, _mm512_load_ps(x + e + (t % 3) * 16), acc[v]);
            }
        __asm__ volatile("" ::: "memory");
    }
    for (int v = 0; v < 4; ++v) _mm512_store_ps(out + 16 * v, acc[v]);
}
int main() {
    cpu_set_t s; CPU_ZERO(&s); CPU_SET(0, &s); sched_setaffinity(0, sizeof s, &s);
    const size_t sizes[] = {16 << 10, 256 << 10, 768 << 10, 2 << 20, 4 << 20, 8 << 20, 16 << 20, 256 << 20};
    char* buf = (char*)aligned_alloc(4096, 256 << 20);
    memset(buf, 1, 256 << 20);
    for (size_t n : sizes) {
        int reps = std::max<int>(5, int((256ull << 20) / n / 4));
        reps = std::min(reps, 2000);
        double ts = best([&] { sink = seq(buf, n); }, reps);
        double t0 = best([&] { sink = taps<0>(buf, n, 1536); }, reps);
        double t1 = best([&] { sink = taps<1>(buf, n, 1536); }, reps);
        double t2 = best([&] { sink = taps<2>(buf, n, 1536); }, reps);
        double t3 = best([&] { sink = taps<3>(buf, n, 1536); }, reps);
        double r4 = n >= 9 * 6144 ? best([&] { sink = taps<1>(buf, n, 6144); }, reps) : 0.0;
        printf("%8zu KiB  seq %6.1f GB/s  taps(1.5K runs) none %6.1f t1 %6.1f nta %6.1f t0 %6.1f  taps(6K runs) t1 %6.1f\n", n >> 10,
               n / ts / 1e9, n / t0 / 1e9, n / t1 / 1e9, n / t2 / 1e9, n / t3 / 1e9, r4 > 0 ? n / r4 / 1e9 : 0.0);
    }
    alignas(64) static float w[9 * 4 * 16 * 2], x[9 * 4 * 16 + 64], out[64];
    for (auto& v : w) v = 0.001f; for (auto& v : x) v = 0.5f;
    const int iters = 200000;
    for (int K = 0; K < 3; ++K) {
        double t = best([&] { if (K == 0) loop<0>(w, x, out, iters); else if (K == 1) loop<1>(w, x, out, iters); else loop<2>(w, x, out, iters); }, 7);
        printf("L1 loop %s: %.3f ns per tap-vector\n", K == 0 ? "f32" : K == 1 ? "f16" : "int8", t / (iters * 36.0) * 1e9);
    }
}
