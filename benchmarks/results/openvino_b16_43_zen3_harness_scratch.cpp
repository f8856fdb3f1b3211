// Scratch (issue 17, b16_43; not a benchmark script): one folded TV layer (pointwise prologue) of kernel.cpp alone,
// one thread, synthetic data (NHWC or NCHW narrow input, per-channel bias, ReLU6 before and after), median of ITERS calls.
// Build (as CMakeLists.txt builds the AVX2 variant):
//   g++ -O3 -DNDEBUG -std=c++17 -march=x86-64-v3 -DTVX_KERNEL_NAME=kernel_avx2 -DTVX_CHUNK=16 -DTVX_BATCH_TILE=4 -c kernel.cpp -o k.o
//   g++ -O3 -std=c++17 -march=x86-64-v3 -DTVX_MULTI_ISA=1 -I<ext> -c this.cpp -o h.o && g++ h.o k.o -o h
// Run: taskset -c 1 ./h C k stride out_h out_w cin N nchw ITERS   (BB=N: Switches::block_bytes)
// scratch harness: one folded layer (pointwise prologue) at batch N, one thread, hot
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <algorithm>
#include "kernel.hpp"
using namespace tvx;
static float frand(uint64_t& s){ s^=s>>12; s^=s<<25; s^=s>>27; return (float)((s*2685821657736338717ull)>>40)/8388608.0f-1.0f; }
int main(int argc, char** argv){
  // C k s oh ow cin N nchw iters [rows_begin rows_end]
  int64_t C=atoll(argv[1]),k=atoll(argv[2]),s=atoll(argv[3]),oh=atoll(argv[4]),ow=atoll(argv[5]),cin=atoll(argv[6]),N=atoll(argv[7]);
  int nchw=atoi(argv[8]); int iters=atoi(argv[9]);
  int64_t p=(k-1)/2, H=oh*s, W=ow*s;
  uint64_t sd=12345;
  std::vector<float,Aligned<float>> x(N*H*W*cin), w(oh*k*k*ow*C), y(N*oh*ow*C), pw(cin*pointwise_columns(C)), pb(pointwise_columns(C)), bias(segment_floats(C));
  for(auto& v:x) v=frand(sd); for(auto& v:w) v=frand(sd)*0.3f; for(auto& v:pw) v=frand(sd)*0.5f; for(auto& v:pb) v=frand(sd);
  for(int64_t i=0;i<segment_floats(C);++i) bias[i]=0.01f*(i%C);
  for(int64_t c=C;c<pointwise_columns(C);++c){ pb[c]=0; for(int64_t ci=0;ci<cin;++ci) pw[ci*pointwise_columns(C)+c]=0; }
  KernelArgs a{};
  a.x=x.data(); a.weight=w.data(); a.scale=nullptr; a.bias=bias.data(); a.y=y.data();
  a.n=N; a.in_h=H; a.in_w=W; a.c=C; a.out_h=oh; a.out_w=ow; a.k=k; a.stride=s; a.pad=p; a.bias_map=false;
  a.x_type=DType::f32; a.w_type=DType::f32; a.clamp=true; a.lo=0; a.hi=6;
  a.pw_weight=pw.data(); a.pw_bias=pb.data(); a.cin=cin; a.pw_nchw=nchw; a.pre_clamp=true; a.pre_lo=0; a.pre_hi=6;
  if(getenv("BB")) a.sw.block_bytes=atoll(getenv("BB"));
  for(int i=0;i<5;++i) kernel_avx2(a,0,oh);
  std::vector<double> t;
  for(int i=0;i<iters;++i){ auto t0=std::chrono::steady_clock::now(); kernel_avx2(a,0,oh); auto t1=std::chrono::steady_clock::now(); t.push_back(std::chrono::duration<double,std::micro>(t1-t0).count()); }
  std::sort(t.begin(),t.end());
  double sum=0; for(auto v:y) sum+=v;
  double fma = (double)N*oh*ow*C*k*k + (a.pw_weight? (double)N*H*W*cin*C:0);
  printf("C=%ld s=%ld oh=%ld cin=%ld N=%ld: med %.1f us p10 %.1f  GFMA/s %.1f  chk %.6g\n",C,s,oh,cin,N,t[t.size()/2],t[t.size()/10], fma/t[t.size()/2]/1e3, sum);
}
