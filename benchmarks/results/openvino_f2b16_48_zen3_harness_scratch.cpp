// Scratch (issue 17, f2b16_48): one folded TV layer at batch N, one thread, main's kernel (kernel_main)
// against the worktree's (kernel_avx2), interleaved in rounds, median of ITERS calls each.
// Run: ./h C k s oh ow cin N nchw ITERS ROUNDS ROW_BEGIN ROW_END
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include <algorithm>
#include <thread>
#include "kernel.hpp"
namespace tvx { void kernel_main(const KernelArgs&, int64_t, int64_t); }
using namespace tvx;
static float frand(uint64_t& s){ s^=s>>12; s^=s<<25; s^=s>>27; return (float)((s*2685821657736338717ull)>>40)/8388608.0f-1.0f; }
int main(int argc, char** argv){
  int64_t C=atoll(argv[1]),k=atoll(argv[2]),s=atoll(argv[3]),oh=atoll(argv[4]),ow=atoll(argv[5]),cin=atoll(argv[6]),N=atoll(argv[7]);
  int nchw=atoi(argv[8]); int iters=atoi(argv[9]); int rounds=atoi(argv[10]); int64_t r0=atoll(argv[11]), r1=atoll(argv[12]);
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
  std::vector<float> ref;
  std::fill(y.begin(),y.end(),-1.f); kernel_main(a,r0,r1); ref.assign(y.begin(),y.end());
  std::fill(y.begin(),y.end(),-1.f); kernel_avx2(a,r0,r1);
  printf("scratch: %s\n", memcmp(y.data(),ref.data(),y.size()*4)==0?"bit-identical to main":"DIFFERS from main");
  const char* names[2]={"main","new"};
  std::vector<double> med[2];
  double fma = (double)N*(r1-r0)*ow*C*k*k + (double)N*(r1-r0)*s*W*cin*C;
  for(int r=0;r<rounds;++r) for(int vv=0;vv<2;++vv){
    int vi = (r%2)? 1-vv : vv;
    auto f1 = vi==0? kernel_main : kernel_avx2;
    auto f = [&](const KernelArgs& aa, int64_t b, int64_t e){ if(!getenv("T2")) { f1(aa,b,e); return; }
      int64_t m=(b+e)/2; std::thread th([&]{ f1(aa,m,e); }); f1(aa,b,m); th.join(); };
    for(int i=0;i<3;++i) f(a,r0,r1);
    std::vector<double> t;
    for(int i=0;i<iters;++i){ auto t0=std::chrono::steady_clock::now(); f(a,r0,r1); auto t1=std::chrono::steady_clock::now(); t.push_back(std::chrono::duration<double,std::micro>(t1-t0).count()); }
    std::sort(t.begin(),t.end()); med[vi].push_back(t[t.size()/2]);
  }
  printf("C=%ld k=%ld s=%ld oh=%ld ow=%ld cin=%ld N=%ld nchw=%d rows %ld-%ld\n",C,k,s,oh,ow,cin,N,nchw,r0,r1);
  std::vector<double> ratio; for(int r=0;r<rounds;++r) ratio.push_back(med[1][r]/med[0][r]); std::sort(ratio.begin(),ratio.end());
  for(int vi=0;vi<2;++vi){ printf("  %-5s", names[vi]); for(double m:med[vi]) printf(" %6.0f", m);
    auto mm=med[vi]; std::sort(mm.begin(),mm.end()); printf("  | med %6.0f us %5.1f GFMA/s\n", mm[mm.size()/2], fma/mm[mm.size()/2]/1e3); }
  printf("  new/main per round: median %.3f [min %.3f max %.3f]\n", ratio[ratio.size()/2], ratio.front(), ratio.back());
}
