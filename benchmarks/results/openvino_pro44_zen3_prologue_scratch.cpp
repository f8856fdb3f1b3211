// Scratch (issue 17, pro44; not a benchmark script). Build beside copies named variants.hpp (openvino_pro44_zen3_variants_scratch.hpp),
// skew.hpp (openvino_pro44_zen3_skew_scratch.hpp; needs skew_asm.hpp from openvino_pro44_zen3_skew_gen_scratch.py 8 and 16), the C++ one-loop chunk (-DSKEW -DCPL) is at the end of the skew file:
//   g++ -O3 -DNDEBUG -std=c++17 -march=x86-64-v3 -DTVX_CHUNK=16 -DTVX_BATCH_TILE=4 -I<ext> -I. -DVARIANT=<n> [-DSKEW ...] this.cpp -o m<n>
// Run: taskset -c 1 ./m<n> nchw images reps
// scratch micro: the stride-2 cin-8 C-48 pointwise prologue as load_row calls it, one thread
#define TVX_KERNEL_NAME kernel_avx2
#include "kernel.cpp"
#include <chrono>
#include <cstdio>
#include <algorithm>
#ifndef VARIANT
#define VARIANT 0
#endif
#include "variants.hpp"
using namespace tvx;
static float frand(uint64_t& s){ s^=s>>12; s^=s<<25; s^=s>>27; return (float)((s*2685821657736338717ull)>>40)/8388608.0f-1.0f; }
int main(int argc, char** argv){
  int64_t C=48, cin=8, H=96, W=96, s=2; int nchw=atoi(argv[1]); int64_t N=atoll(argv[2]); int reps=atoi(argv[3]);
  int64_t cols=pointwise_columns(C);
  uint64_t sd=1;
  std::vector<float,Aligned<float>> x(N*H*W*cin), pw(cin*cols), pb(cols);
  for(auto& v:x) v=frand(sd); for(auto& v:pw) v=frand(sd)*0.5f; for(auto& v:pb) v=frand(sd);
  int64_t span=W/s+1, phase=span*C, k=3;
  std::vector<float,Aligned<float>> ring(k*s*phase+64), ref;
  KernelArgs a{}; a.x=x.data(); a.n=N; a.in_h=H; a.in_w=W; a.c=C; a.k=3; a.stride=s; a.pad=1;
  a.pw_weight=pw.data(); a.pw_bias=pb.data(); a.cin=cin; a.pw_nchw=nchw; a.pre_clamp=true; a.pre_lo=0; a.pre_hi=6;
  auto input=[&](int64_t n,int64_t iy,int64_t ix){ return nchw? x.data()+(n*cin*H+iy)*W+ix : x.data()+((n*H+iy)*W+ix)*cin; };
  int64_t step = nchw?1:cin;
  double chk=0; std::vector<double> t;
  for(int rep=0;rep<reps;++rep){
    auto t0=std::chrono::steady_clock::now();
    for(int64_t n=0;n<N;++n) for(int64_t iy=0;iy<H;++iy) for(int64_t r=0;r<s;++r){
      float* dst=ring.data()+(iy%k)*s*phase+r*phase;
      int64_t lo = r==0?1:0;  // column m*2+r-1 >= 0
      int64_t hi = (W-1+1-r)/s+1;
      RUN(a, dst+lo*C, input(n,iy,lo*s+r-1), hi-lo, s*step);
    }
    auto t1=std::chrono::steady_clock::now();
    t.push_back(std::chrono::duration<double,std::micro>(t1-t0).count());
    for(int64_t i=0;i<(int64_t)ring.size();i+=7) chk+=ring[i];
  }
  std::sort(t.begin(),t.end());
  double fma=(double)N*H*W*cin*C;
  printf("V%d nchw=%d N=%ld: med %.1f us min %.1f  GFMA/s med %.1f best %.1f chk %.9g\n",VARIANT,nchw,N,t[t.size()/2],t[0],fma/t[t.size()/2]/1e3,fma/t[0]/1e3,chk);
}
