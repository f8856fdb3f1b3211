// scratch: does vbroadcastss ymm,m32 / vmovups ymm,m256 / vpermps take FMA slots on this core?
#include <chrono>
#include <cstdio>
#include <cstdint>
alignas(64) float buf[1024];
#define F12 "vfmadd231ps %%ymm12,%%ymm13,%%ymm0\n vfmadd231ps %%ymm12,%%ymm13,%%ymm1\n vfmadd231ps %%ymm12,%%ymm13,%%ymm2\n vfmadd231ps %%ymm12,%%ymm13,%%ymm3\n" \
 "vfmadd231ps %%ymm12,%%ymm13,%%ymm4\n vfmadd231ps %%ymm12,%%ymm13,%%ymm5\n vfmadd231ps %%ymm12,%%ymm13,%%ymm6\n vfmadd231ps %%ymm12,%%ymm13,%%ymm7\n" \
 "vfmadd231ps %%ymm12,%%ymm13,%%ymm8\n vfmadd231ps %%ymm12,%%ymm13,%%ymm9\n vfmadd231ps %%ymm12,%%ymm13,%%ymm10\n vfmadd231ps %%ymm12,%%ymm13,%%ymm11\n"
#define B4 "vbroadcastss (%0),%%ymm14\n vbroadcastss 4(%0),%%ymm15\n vbroadcastss 8(%0),%%ymm14\n vbroadcastss 12(%0),%%ymm15\n"
#define L3 "vmovups 32(%0),%%ymm14\n vmovups 64(%0),%%ymm15\n vmovups 96(%0),%%ymm14\n"
#define P4 "vpermps %%ymm13,%%ymm12,%%ymm14\n vpermps %%ymm13,%%ymm12,%%ymm15\n vpermps %%ymm13,%%ymm12,%%ymm14\n vpermps %%ymm13,%%ymm12,%%ymm15\n"
#define MF3 "vfmadd231ps 32(%0),%%ymm13,%%ymm0\n vfmadd231ps 64(%0),%%ymm13,%%ymm1\n vfmadd231ps 96(%0),%%ymm13,%%ymm2\n"
template <int V> double run(long n) {
  const float* p = buf;
  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
    if (V == 0) asm volatile(F12 F12 ::"r"(p):"memory");
    if (V == 1) asm volatile(F12 B4 F12 B4 ::"r"(p):"memory");
    if (V == 2) asm volatile(F12 B4 L3 F12 B4 L3 ::"r"(p):"memory");
    if (V == 3) asm volatile(F12 P4 F12 P4 ::"r"(p):"memory");
    if (V == 4) asm volatile(F12 L3 L3 F12 L3 L3 ::"r"(p):"memory");
    if (V == 5) asm volatile(F12 B4 B4 F12 B4 B4 ::"r"(p):"memory");
    if (V == 6) asm volatile(F12 MF3 B4 F12 MF3 B4::"r"(p):"memory");
  }
  auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / n;
}
int main() {
  const long n = 20000000;
  const char* names[] = {"24 FMA", "24 FMA + 8 bcast", "24 FMA + 8 bcast + 6 load", "24 FMA + 8 vpermps", "24 FMA + 12 load", "24 FMA + 16 bcast", "30 FMA (6 mem) + 8 bcast"};
  for (int r = 0; r < 2; ++r) {
    double t[7] = {run<0>(n), run<1>(n), run<2>(n), run<3>(n), run<4>(n), run<5>(n), run<6>(n)};
    for (int v = 0; v < 7; ++v) printf("%-28s %.3f ns/iter  %.1f GFMA/s\n", names[v], t[v], (v == 6 ? 30 : 24) * 8 / t[v]);
  }
}
