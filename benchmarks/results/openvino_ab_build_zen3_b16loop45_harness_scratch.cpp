// Scratch (issue 17, b16loop45; not a benchmark script). Build (as CMakeLists.txt builds the AVX2 variant):
//   F='-O3 -DNDEBUG -std=c++17 -march=x86-64-v3 -DTVX_CHUNK=16 -DTVX_BATCH_TILE=4 -I<ext>'
//   g++ $F -DTVX_KERNEL_NAME=kernel_main -c <main's kernel.cpp> -o km.o
//   g++ $F -DTVX_KERNEL_NAME=kernel_avx2 -c kabl.cpp -o ks.o   (kabl.cpp: main's kernel.cpp + openvino_ab_build_zen3_b16loop45_sub.patch + openvino_ab_build_zen3_b16loop45_ablation_scratch.patch)
//   g++ -O3 -std=c++17 -march=x86-64-v3 -DTVX_MULTI_ISA=1 -I<ext> -c this.cpp -o h.o && g++ h.o km.o ks.o -o h
// Scratch (issue 17, b16loop45; not a benchmark script): one folded TV layer at batch N, one thread,
// main's kernel (kernel_main) against a scratch copy (kernel_avx2: kSubPositions = g_sub, ablations g_abl),
// variants interleaved in rounds, median of ITERS calls each.
// Run: ./h C k s oh ow cin N nchw ITERS ROUNDS variant... ; variant "m" = main, "SUB:ABL" = scratch
// ("SUB:ABL:PW": PW the prologue's positions per call rounded up to multiples of PW, default 4; ABL bits: 1 no prologue (ring rows left as they are), 2 outputs to an L1 scratch row, 4 every row's kernels = row 0's)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include <algorithm>
#include "kernel.hpp"
namespace tvx { void kernel_main(const KernelArgs&, int64_t, int64_t); extern int64_t g_sub; extern int g_abl; extern int64_t g_pw; }
static void setv(const std::string& v){ using namespace tvx; g_sub=atoll(v.c_str()); const char* c=strchr(v.c_str(),':'); g_abl=c?atoi(c+1):0; const char* c2=c?strchr(c+1,':'):nullptr; g_pw=c2?atoll(c2+1):4; }
using namespace tvx;
static float frand(uint64_t& s){ s^=s>>12; s^=s<<25; s^=s>>27; return (float)((s*2685821657736338717ull)>>40)/8388608.0f-1.0f; }
int main(int argc, char** argv){
  int64_t C=atoll(argv[1]),k=atoll(argv[2]),s=atoll(argv[3]),oh=atoll(argv[4]),ow=atoll(argv[5]),cin=atoll(argv[6]),N=atoll(argv[7]);
  int nchw=atoi(argv[8]); int iters=atoi(argv[9]); int rounds=atoi(argv[10]);
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
  std::vector<std::string> vars(argv+11, argv+argc);
  // check: every scratch variant without ablations equals main bit for bit
  std::vector<float> ref;
  kernel_main(a,0,oh); ref.assign(y.begin(),y.end());
  for(auto& v:vars){ if(v=="m") continue; setv(v); if(g_abl) continue;
    std::fill(y.begin(),y.end(),-1.f); kernel_avx2(a,0,oh);
    printf("%s: %s\n", v.c_str(), memcmp(y.data(),ref.data(),y.size()*4)==0?"bit-identical to main":"DIFFERS from main"); }
  std::vector<std::vector<double>> med(vars.size());
  double fma = (double)N*oh*ow*C*k*k + (double)N*H*W*cin*C;
  for(int r=0;r<rounds;++r) for(size_t vi=0;vi<vars.size();++vi){
    auto& v=vars[vi]; bool m=v=="m"; if(!m) setv(v);
    auto f = m? kernel_main : kernel_avx2;
    for(int i=0;i<3;++i) f(a,0,oh);
    std::vector<double> t;
    for(int i=0;i<iters;++i){ auto t0=std::chrono::steady_clock::now(); f(a,0,oh); auto t1=std::chrono::steady_clock::now(); t.push_back(std::chrono::duration<double,std::micro>(t1-t0).count()); }
    std::sort(t.begin(),t.end()); med[vi].push_back(t[t.size()/2]);
  }
  printf("C=%ld k=%ld s=%ld oh=%ld cin=%ld N=%ld nchw=%d BB=%s\n",C,k,s,oh,cin,N,nchw,getenv("BB")?getenv("BB"):"-");
  for(size_t vi=0;vi<vars.size();++vi){ printf("  %-6s", vars[vi].c_str()); for(double m:med[vi]) printf(" %7.0f", m);
    auto mm=med[vi]; std::sort(mm.begin(),mm.end()); printf("  | med %7.0f us  %5.1f GFMA/s\n", mm[mm.size()/2], fma/mm[mm.size()/2]/1e3); }
}
