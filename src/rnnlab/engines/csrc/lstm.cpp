// The time loops of rnnlab's LSTM BPTT kernel (rnnlab.nn.lstm.LSTMRecurrence) in C++.
//
// Shapes are those of the Python kernel: A (T, B, G) gates in internal order (o, i, f, g)
// or (o, i, g), Hs (T+1, B, P), Cs (T+1, B, H), Phi (T, B, H). The buffers are allocated
// and the vectorised work before and after each loop is done in Python.
//
// Two paths per loop:
// - fused (CPU, float or double, contiguous buffers; every option): per step the matmul
//   stays one ATen call (addmm_ / mm_out, i.e. BLAS) and all the pointwise work of the step
//   (gates, c_t, phi_t, h_t and the layer norms' row moments, the input projections' norm
//   included when X, the raw W_ih x_t, is passed; backward: the gate gradients, the
//   cell-state adjoint and the layer norms' adjoints) is one hand-written loop over the
//   (B, H) elements with raw pointers, in place of ~15-25 small ATen calls. The loops are
//   plain branch-free arithmetic (exp, sigmoid and tanh from Cephes' formulas in vm.h) that
//   the compiler vectorises at -O3; each is built for three x86-64 levels (target_clones:
//   SSE2, AVX2 + FMA, AVX-512) and the one for the running CPU is chosen when the library
//   loads, so one cached build runs on any x86-64 machine (no -march). Same buffers and
//   semantics as the Python kernel; numbers equal to a few ulp (the activations are within
//   4 ulp of torch's), not bit for bit.
// - ATen (CUDA, other dtypes, non-contiguous buffers): the same ATen operations, in the
//   same order, as the Python loops they replace; only the per-step dispatch moves here.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>
#include "vm.h"

using at::Tensor;
using c10::optional;

namespace {

Tensor ln_backward(const Tensor& dy, const Tensor& z, const Tensor& rstd, const Tensor& gamma) {
  // gradient w.r.t. u of y = gamma * (u - mean(u)) * rstd + beta, last dimension
  auto dz = dy * gamma;
  return rstd * (dz - dz.mean(-1, true) - z * (dz * z).mean(-1, true));
}

}  // namespace

namespace {

// ------------------------------------------------------------------ the fused pointwise steps
// One step of the plain, peephole or 1997 cell, forward: a (B, G) holds the pre-activations
// (input projection + recurrent term) and leaves with the activations (o, i, f, g); c (B, H)
// is c_{t-1}; writes c_t, phi_t = phi(c_t) and out = o * phi_t (h_t, or m_t before W_hr).
// Backward: from dm (B, H) = dL/dm_t and the incoming dc = dL/dc_t, writes da (B, G) and
// leaves dc = dL/dc_{t-1} (the adjoint recursion in rnnlab/nn/lstm.py's docstring).
template <typename T>
struct Step {
  int64_t B, H;
  bool fg;
  const T* pi;  // peepholes (H,), or null
  const T* pf;
  const T* po;
  const T* gh;  // layer norm: gamma_hh (G,), gamma_c, beta_c (H,); null without
  const T* gc;
  const T* bc;
  // the input projections' layer norm in the step (compiled path): gamma_ih, beta_ih (G,)
  // (beta null without biases), the raw rows X_t = W_ih x_t (B, G) and their statistics;
  // null where the input projections come normalised
  const T* gi;
  const T* bi;
  const T* x;
  T* mean_x;
  T* rstd_x;
  T eps;
  // forward
  T* a;
  const T* c;
  T* cn;
  T* phi;
  T* out;
  const T* u;  // layer norm: the recurrent projections W_hh h_{t-1} (B, G)
  T* mean_h;   // and the statistics written per row (B,)
  T* rstd_h;
  T* mean_c;
  T* rstd_c;
  // backward
  const T* dm;
  const T* act;  // activations (B, G)
  const T* phic;
  const T* cprev;
  T* dc;
  T* da;
  // layer norm (with u, cn = c_t and the statistics above): dU out, two rows of scratch,
  // and this step's sums of the gains' gradients (added to, over the batch)
  T* du;     // dL/dU (B, G)
  T* dchat;  // (H,) scratch: dL/dc_hat of a row
  T* zrow;   // (H,) scratch: the row's normalised c_t
  T* dgh;    // (G,) sum over b of dL/du_hat * z(U)
  T* dgc;    // (H,) sum over b of dL/dc_hat * z(c_t)
  T* dbc;    // (H,) sum over b of dL/dc_hat
  T* dx;     // dL/dX_t (B, G), with x
  T* dgi;    // (G,) sum over b of dL/da * z(X_t)
  T* dbi;    // (G,) sum over b of dL/da (null without beta_ih)
};

// A row's sum of f(j), j < n, in one vector's worth of partial sums, so that the loop
// vectorises without reassociation flags (and the order is fixed, not the compiler's);
// the partial sums are then added pairwise (4 dependent adds, not 16 in a chain: with
// 4 such sums a row under layer norm, the chain was most of the norm's cost per step).
template <typename T, typename F>
RNNLAB_AI T row_sum(int64_t n, F f) {
  constexpr int K = 64 / sizeof(T);
  T acc[K] = {};
  int64_t j = 0;
  for (; j + K <= n; j += K)
    for (int k = 0; k < K; ++k) acc[k] += f(j + k);
  for (int k = 0; j + k < n; ++k) acc[k] += f(j + k);
  for (int w = K / 2; w > 0; w /= 2)
    for (int k = 0; k < w; ++k) acc[k] += acc[k + w];
  return acc[0];
}

// mean and 1 / sqrt(var + eps) of each of the B rows of x (n each; biased variance, two
// passes, as layer_norm), one phase at a time over all rows: the rows' reductions are then
// independent chains the CPU overlaps, where row by row each waited on the previous row's
// sqrt and divisions
template <typename T>
RNNLAB_AI void rows_moments(const T* __restrict x, int64_t B, int64_t n, T eps,
                            T* __restrict mean, T* __restrict rstd) {
  for (int64_t b = 0; b < B; ++b) {
    const T* __restrict r = x + b * n;
    mean[b] = row_sum<T>(n, [&](int64_t j) { return r[j]; }) / T(n);
  }
  for (int64_t b = 0; b < B; ++b) {
    const T* __restrict r = x + b * n;
    const T m = mean[b];
    rstd[b] = row_sum<T>(n, [&](int64_t j) { return (r[j] - m) * (r[j] - m); }) / T(n);
  }
  for (int64_t b = 0; b < B; ++b) rstd[b] = T(1) / std::sqrt(rstd[b] + eps);
}

template <typename T, bool FG, bool PEEP, bool LN>
RNNLAB_AI void forward_rows(const Step<T>& s) {
  const int64_t H = s.H, G = (FG ? 4 : 3) * H;
  if (LN) rows_moments(s.u, s.B, G, s.eps, s.mean_h, s.rstd_h);
  if (LN && s.x) rows_moments(s.x, s.B, G, s.eps, s.mean_x, s.rstd_x);
  for (int64_t b = 0; b < s.B; ++b) {
    T* __restrict ao = s.a + b * G;
    T* __restrict ai = ao + H;
    T* __restrict af = ao + 2 * H;  // the forget gate (FG only)
    T* __restrict ag = ao + G - H;
    const T* __restrict c = s.c + b * H;
    T* __restrict cn = s.cn + b * H;
    T* __restrict phi = s.phi + b * H;
    T* __restrict out = s.out + b * H;
    const T* __restrict pi = s.pi;
    const T* __restrict pf = s.pf;
    const T* __restrict po = s.po;
    if (LN) {  // a += LN(u; gamma_hh)
      const T* __restrict u = s.u + b * G;
      const T* __restrict gh = s.gh;
      const T mean = s.mean_h[b], rstd = s.rstd_h[b];
      if (s.x) {  // a = LN(X_t; gamma_ih, beta_ih) + LN(u; gamma_hh)
        const T* __restrict x = s.x + b * G;
        const T* __restrict gi = s.gi;
        const T* __restrict bi = s.bi;
        const T mx = s.mean_x[b], rx = s.rstd_x[b];
        if (bi) {
#pragma GCC ivdep
          for (int64_t k = 0; k < G; ++k)
            ao[k] = ((x[k] - mx) * rx * gi[k] + bi[k]) + (u[k] - mean) * rstd * gh[k];
        } else {
#pragma GCC ivdep
          for (int64_t k = 0; k < G; ++k)
            ao[k] = (x[k] - mx) * rx * gi[k] + (u[k] - mean) * rstd * gh[k];
        }
      } else {
#pragma GCC ivdep
        for (int64_t k = 0; k < G; ++k) ao[k] += (u[k] - mean) * rstd * gh[k];
      }
    }
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      const T cp = c[j];
      const T i = vm::sigmoid_(PEEP ? ai[j] + pi[j] * cp : ai[j]);
      T g, cj;
      if (FG) {
        const T f = vm::sigmoid_(PEEP ? af[j] + pf[j] * cp : af[j]);
        g = vm::tanh_(ag[j]);
        cj = f * cp + i * g;
        af[j] = f;
      } else {  // 1997: g in [-2, 2], no forget gate
        g = T(4) * vm::sigmoid_(ag[j]) - T(2);
        cj = cp + i * g;
      }
      const T o = vm::sigmoid_(PEEP ? ao[j] + po[j] * cj : ao[j]);
      ao[j] = o;
      ai[j] = i;
      ag[j] = g;
      cn[j] = cj;
      if (!LN) {
        const T p = FG ? vm::tanh_(cj) : T(2) * vm::sigmoid_(cj) - T(1);
        phi[j] = p;
        out[j] = o * p;
      }
    }
  }
  if (LN) {  // phi(LN(c_t; gamma_c, beta_c)), after all rows' c_t
    rows_moments<T>(s.cn, s.B, H, s.eps, s.mean_c, s.rstd_c);
    const T* __restrict gc = s.gc;
    const T* __restrict bc = s.bc;
    for (int64_t b = 0; b < s.B; ++b) {
      const T* __restrict ao = s.a + b * G;
      const T* __restrict cn = s.cn + b * H;
      T* __restrict phi = s.phi + b * H;
      T* __restrict out = s.out + b * H;
      const T mean = s.mean_c[b], rstd = s.rstd_c[b];
#pragma GCC ivdep
      for (int64_t j = 0; j < H; ++j) {
        const T ch = (cn[j] - mean) * rstd * gc[j] + bc[j];
        const T p = FG ? vm::tanh_(ch) : T(2) * vm::sigmoid_(ch) - T(1);
        phi[j] = p;
        out[j] = ao[j] * p;
      }
    }
  }
}

template <typename T, bool FG, bool PEEP, bool LN>
RNNLAB_AI void backward_rows(const Step<T>& s) {
  const int64_t H = s.H, G = (FG ? 4 : 3) * H;
  for (int64_t b = 0; b < s.B; ++b) {
    const T* __restrict o_ = s.act + b * G;
    const T* __restrict i_ = o_ + H;
    const T* __restrict f_ = o_ + 2 * H;
    const T* __restrict g_ = o_ + G - H;
    T* __restrict dao = s.da + b * G;
    T* __restrict dai = dao + H;
    T* __restrict daf = dao + 2 * H;
    T* __restrict dag = dao + G - H;
    const T* __restrict dm = s.dm + b * H;
    const T* __restrict phi = s.phic + b * H;
    const T* __restrict cp = s.cprev + b * H;
    T* __restrict dc = s.dc + b * H;
    const T* __restrict pi = s.pi;
    const T* __restrict pf = s.pf;
    const T* __restrict po = s.po;
    // layer norm of c_t: dc += LN'(dc_hat), dz = gamma_c dc_hat, through the row's means
    T s1 = 0, s2 = 0, rstd = 0;
    T* __restrict zc = s.zrow;
    T* __restrict dch = s.dchat;
    const T* __restrict gc = s.gc;
    if (LN) {
      const T* __restrict cn = s.cn + b * H;
      const T mean = s.mean_c[b];
      T* __restrict dgc = s.dgc;
      T* __restrict dbc = s.dbc;
      rstd = s.rstd_c[b];
#pragma GCC ivdep
      for (int64_t j = 0; j < H; ++j) {
        const T o = o_[j], p = phi[j];
        const T dphi = FG ? T(1) - p * p : (T(1) - p * p) / T(2);
        const T d = dm[j] * (o * dphi), z = (cn[j] - mean) * rstd;
        dch[j] = d;
        zc[j] = z;
        dgc[j] += d * z;
        dbc[j] += d;
      }
      s1 = row_sum<T>(H, [&](int64_t j) { return dch[j] * gc[j]; }) / T(H);
      s2 = row_sum<T>(H, [&](int64_t j) { return dch[j] * gc[j] * zc[j]; }) / T(H);
    }
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      const T o = o_[j], i = i_[j], g = g_[j], p = phi[j], d = dm[j];
      const T d_o = d * (p * o * (T(1) - o));
      T dcj;
      if (LN) {
        dcj = dc[j] + rstd * (dch[j] * gc[j] - s1 - zc[j] * s2);
      } else {
        const T dphi = FG ? T(1) - p * p : (T(1) - p * p) / T(2);  // phi'(c_hat)
        dcj = dc[j] + d * (o * dphi);
      }
      if (PEEP) dcj += d_o * po[j];
      const T dg = FG ? T(1) - g * g : (T(4) - g * g) / T(4);  // tanh' or (4 sigma - 2)'
      const T d_i = dcj * (g * (i * (T(1) - i)));
      const T d_g = dcj * (i * dg);
      dao[j] = d_o;
      dai[j] = d_i;
      dag[j] = d_g;
      if (FG) {
        const T f = f_[j];
        const T d_f = dcj * (cp[j] * (f * (T(1) - f)));
        daf[j] = d_f;
        dcj = dcj * f;
        if (PEEP) dcj += d_i * pi[j] + d_f * pf[j];
      } else if (PEEP) {
        dcj += d_i * pi[j];
      }
      dc[j] = dcj;
    }
    if (LN) {  // du = LN'(da) of the recurrent projections' layer norm
      const T* __restrict u = s.u + b * G;
      const T* __restrict gh = s.gh;
      T* __restrict du = s.du + b * G;
      T* __restrict dgh = s.dgh;
      const T* __restrict da = dao;
      const T mean = s.mean_h[b], r = s.rstd_h[b];
      const T m1 = row_sum<T>(G, [&](int64_t k) { return da[k] * gh[k]; }) / T(G);
      const T m2 = row_sum<T>(G, [&](int64_t k) {
        return da[k] * gh[k] * ((u[k] - mean) * r);
      }) / T(G);
#pragma GCC ivdep
      for (int64_t k = 0; k < G; ++k) {
        const T zh = (u[k] - mean) * r;
        du[k] = r * (da[k] * gh[k] - m1 - zh * m2);
        dgh[k] += da[k] * zh;
      }
    }
    if (LN && s.x) {  // dX_t = LN'(da) of the input projections' layer norm; dX_t may be
      // da itself (s.dx == s.da: then written over it, each element after its last read)
      const T* __restrict x = s.x + b * G;
      const T* __restrict gi = s.gi;
      T* const dx = s.dx == s.da ? dao : s.dx + b * G;
      T* __restrict dgi = s.dgi;
      const T mx = s.mean_x[b], rx = s.rstd_x[b];
      const T n1 = row_sum<T>(G, [&](int64_t k) { return dao[k] * gi[k]; }) / T(G);
      const T n2 = row_sum<T>(G, [&](int64_t k) {
        return dao[k] * gi[k] * ((x[k] - mx) * rx);
      }) / T(G);
      if (s.dbi) {
        T* __restrict dbi = s.dbi;
#pragma GCC ivdep
        for (int64_t k = 0; k < G; ++k) dbi[k] += dao[k];
      }
#pragma GCC ivdep
      for (int64_t k = 0; k < G; ++k) {
        const T d = dao[k], zx = (x[k] - mx) * rx;
        dgi[k] += d * zx;
        dx[k] = rx * (d * gi[k] - n1 - zx * n2);
      }
    }
  }
}


#define RNNLAB_STEP(NAME, ROWS, T)                                  \
  RNNLAB_CLONES void NAME(const Step<T>& s) {                       \
    FlushDenormals ftz;                                             \
    const bool pe = s.pi != nullptr;                                \
    if (s.gh) {                                                     \
      if (s.fg) {                                                   \
        pe ? ROWS<T, true, true, true>(s) : ROWS<T, true, false, true>(s);    \
      } else {                                                      \
        pe ? ROWS<T, false, true, true>(s) : ROWS<T, false, false, true>(s);  \
      }                                                             \
    } else if (s.fg) {                                              \
      pe ? ROWS<T, true, true, false>(s) : ROWS<T, true, false, false>(s);    \
    } else {                                                        \
      pe ? ROWS<T, false, true, false>(s) : ROWS<T, false, false, false>(s);  \
    }                                                               \
  }
RNNLAB_STEP(forward_step, forward_rows, float)
RNNLAB_STEP(forward_step, forward_rows, double)
RNNLAB_STEP(backward_step, backward_rows, float)
RNNLAB_STEP(backward_step, backward_rows, double)
#undef RNNLAB_STEP

template <typename T>
Step<T> make_step(int64_t B, int64_t H, bool fg, const optional<Tensor>& p_i,
                  const optional<Tensor>& p_f, const optional<Tensor>& p_o,
                  const optional<Tensor>& g_hh, const optional<Tensor>& g_c,
                  const optional<Tensor>& b_c, double eps) {
  Step<T> s{};
  s.B = B, s.H = H, s.fg = fg, s.eps = T(eps);
  if (p_i) {
    s.pi = p_i->data_ptr<T>(), s.po = p_o->data_ptr<T>();
    s.pf = fg ? p_f->data_ptr<T>() : nullptr;
  }
  if (g_hh) {
    s.gh = g_hh->data_ptr<T>(), s.gc = g_c->data_ptr<T>();
    s.bc = b_c ? b_c->data_ptr<T>() : nullptr;
  }
  return s;
}

// The fused path applies to CPU float/double buffers that are contiguous (the Python kernel
// allocates them so).
bool fusable(std::initializer_list<const Tensor*> ts,
             std::initializer_list<const optional<Tensor>*> opts) {
  const Tensor& a = **ts.begin();
  if (!a.device().is_cpu()) return false;
  if (a.scalar_type() != at::kFloat && a.scalar_type() != at::kDouble) return false;
  for (const Tensor* t : ts)
    if (t->scalar_type() != a.scalar_type() || !t->is_contiguous()) return false;
  for (const optional<Tensor>* t : opts)
    if (*t && ((*t)->scalar_type() != a.scalar_type() || !(*t)->is_contiguous())) return false;
  return true;
}

template <typename T>
void forward_fused(Tensor& A, Tensor& Hs, Tensor& Cs, Tensor& Phi, const optional<Tensor>& M,
                   const optional<Tensor>& U, const optional<Tensor>& stats_h,
                   const optional<Tensor>& stats_c, const Tensor& w_hh,
                   const optional<Tensor>& w_hr, const optional<Tensor>& p_i,
                   const optional<Tensor>& p_f, const optional<Tensor>& p_o,
                   const optional<Tensor>& g_hh, const optional<Tensor>& g_c,
                   const optional<Tensor>& b_c, const optional<Tensor>& rmask, bool fg,
                   double eps, const optional<Tensor>& X, const optional<Tensor>& stats_x,
                   const optional<Tensor>& g_ih, const optional<Tensor>& b_ih) {
  const int64_t T_ = A.size(0), B = A.size(1), G = A.size(2), H = Cs.size(2), P = Hs.size(2);
  // (P, G), made contiguous once: BLAS is markedly faster on it than on the transposed view
  const Tensor w_hh_t = w_hh.t().contiguous();
  Step<T> s = make_step<T>(B, H, fg, p_i, p_f, p_o, g_hh, g_c, b_c, eps);
  T* const a0 = A.data_ptr<T>();
  T* const c0 = Cs.data_ptr<T>();
  T* const phi0 = Phi.data_ptr<T>();
  T* const out0 = M ? M->data_ptr<T>() : Hs.data_ptr<T>() + B * P;  // m_t or h_t, t >= 1
  const bool ln = g_hh.has_value();
  T* const u0 = ln ? U->data_ptr<T>() : nullptr;
  T* const sh = ln ? stats_h->data_ptr<T>() : nullptr;  // (2, T, B, 1): mean, rstd
  T* const sc = ln ? stats_c->data_ptr<T>() : nullptr;
  const T* const x0 = X ? X->data_ptr<T>() : nullptr;  // raw input projections (T, B, G)
  T* const sx = X ? stats_x->data_ptr<T>() : nullptr;
  if (X) s.gi = g_ih->data_ptr<T>(), s.bi = b_ih ? b_ih->data_ptr<T>() : nullptr;
  const Tensor w_hr_t = w_hr ? w_hr->t().contiguous() : Tensor();  // (H, P)
  const auto As = A.unbind(0), Hss = Hs.unbind(0);
  const std::vector<Tensor> Us = ln ? U->unbind(0) : std::vector<Tensor>();
  for (int64_t t = 0; t < T_; ++t) {
    Tensor a = ln ? Us[t] : As[t];  // (B, G)
    const Tensor hin = rmask ? Hss[t] * *rmask : Hss[t];
    if (ln) {
      at::mm_out(a, hin, w_hh_t);
    } else {
      a.addmm_(hin, w_hh_t);
    }
    s.a = a0 + t * B * G;
    s.c = c0 + t * B * H;
    s.cn = c0 + (t + 1) * B * H;
    s.phi = phi0 + t * B * H;
    s.out = out0 + t * B * H;
    if (ln) {
      s.u = u0 + t * B * G;
      s.mean_h = sh + t * B, s.rstd_h = sh + (T_ + t) * B;
      s.mean_c = sc + t * B, s.rstd_c = sc + (T_ + t) * B;
    }
    if (X) s.x = x0 + t * B * G, s.mean_x = sx + t * B, s.rstd_x = sx + (T_ + t) * B;
    forward_step(s);
    if (M) {
      Tensor hn = Hss[t + 1];
      at::mm_out(hn, (*M)[t], w_hr_t);
    }
  }
}

template <typename T>
Tensor backward_fused(Tensor& dY, Tensor& dA, const optional<Tensor>& dU, Tensor& dc,
                      const Tensor& dcT, const std::vector<Tensor>& ends, const Tensor& A,
                      const Tensor& Phi, const Tensor& Cs, const optional<Tensor>& U,
                      const optional<Tensor>& stats_h, const optional<Tensor>& stats_c,
                      const optional<Tensor>& d_ghh, const optional<Tensor>& d_gc,
                      const optional<Tensor>& d_bc, const Tensor& w_hh,
                      const optional<Tensor>& w_hr, const optional<Tensor>& p_i,
                      const optional<Tensor>& p_f, const optional<Tensor>& p_o,
                      const optional<Tensor>& g_hh, const optional<Tensor>& g_c,
                      const optional<Tensor>& rmask, bool fg, const optional<Tensor>& X,
                      const optional<Tensor>& stats_x, const optional<Tensor>& g_ih,
                      const optional<Tensor>& dX, const optional<Tensor>& d_gih,
                      const optional<Tensor>& d_bih) {
  const int64_t T_ = A.size(0), B = A.size(1), G = A.size(2), H = dc.size(1);
  Step<T> s = make_step<T>(B, H, fg, p_i, p_f, p_o, g_hh, g_c, c10::nullopt, 0.0);
  s.dc = dc.data_ptr<T>();
  const T* const a0 = A.data_ptr<T>();
  const T* const phi0 = Phi.data_ptr<T>();
  const T* const c0 = Cs.data_ptr<T>();
  T* const da0 = dA.data_ptr<T>();
  const bool ln = g_hh.has_value();
  // layer norm: one step's gains-gradient sums in T, the totals over steps in double
  // (d_ghh (G), d_gc, d_bc (H), then d_gih, d_bih (G) with the input norm in the step)
  const int64_t nsum = ln ? G + 2 * H + (X ? 2 * G : 0) : 0;
  std::vector<T> scratch(ln ? 2 * H + nsum : 0);
  std::vector<double> tot(nsum, 0.0);
  if (ln) {
    s.dchat = scratch.data(), s.zrow = s.dchat + H;
    s.dgh = s.zrow + H, s.dgc = s.dgh + G, s.dbc = s.dgc + H;
  }
  if (ln && X) {
    s.gi = g_ih->data_ptr<T>(), s.dgi = s.dbc + H;
    s.dbi = d_bih ? s.dgi + G : nullptr;
  }
  const auto dYs = dY.unbind(0);
  const auto dUs = ln ? dU->unbind(0) : dA.unbind(0);  // what W_hh's adjoint sees
  Tensor dh0;
  for (int64_t t = T_ - 1; t >= 0; --t) {
    if (!ends.empty() && ends[t].numel() > 0) {
      const Tensor& idx = ends[t];
      dc.index_put_({idx}, dc.index({idx}) + dcT.index({idx}));
    }
    const Tensor dm = w_hr ? dYs[t].mm(*w_hr) : dYs[t];  // (B, H), contiguous
    s.dm = dm.data_ptr<T>();
    s.act = a0 + t * B * G;
    s.phic = phi0 + t * B * H;
    s.cprev = c0 + t * B * H;
    s.da = da0 + t * B * G;
    if (ln) {
      T* const sh = stats_h->data_ptr<T>();  // (2, T, B, 1): mean, rstd
      T* const sc = stats_c->data_ptr<T>();
      s.u = U->data_ptr<T>() + t * B * G, s.cn = const_cast<T*>(c0) + (t + 1) * B * H;
      s.mean_h = sh + t * B, s.rstd_h = sh + (T_ + t) * B;
      s.mean_c = sc + t * B, s.rstd_c = sc + (T_ + t) * B;
      s.du = dU->data_ptr<T>() + t * B * G;
      if (X) {
        T* const sx = stats_x->data_ptr<T>();
        s.x = X->data_ptr<T>() + t * B * G, s.dx = dX->data_ptr<T>() + t * B * G;
        s.mean_x = sx + t * B, s.rstd_x = sx + (T_ + t) * B;
      }
      std::fill(s.dgh, s.dgh + nsum, T(0));
    }
    backward_step(s);
    for (int64_t k = 0; k < nsum; ++k) tot[k] += s.dgh[k];
    if (t > 0) {
      Tensor prev = dYs[t - 1];
      if (rmask) {
        prev.addcmul_(dUs[t].mm(w_hh), *rmask);
      } else {
        prev.addmm_(dUs[t], w_hh);
      }
    } else {
      dh0 = rmask ? dUs[t].mm(w_hh) * *rmask : dUs[t].mm(w_hh);
    }
  }
  if (ln) {
    T* const out[3] = {d_ghh->data_ptr<T>(), d_gc->data_ptr<T>(), d_bc->data_ptr<T>()};
    for (int64_t k = 0; k < G; ++k) out[0][k] = T(tot[k]);
    for (int64_t j = 0; j < H; ++j) out[1][j] = T(tot[G + j]), out[2][j] = T(tot[G + H + j]);
  }
  if (ln && X) {
    T* const gi = d_gih->data_ptr<T>();
    T* const bi = d_bih ? d_bih->data_ptr<T>() : nullptr;
    for (int64_t k = 0; k < G; ++k) {
      gi[k] = T(tot[G + 2 * H + k]);
      if (bi) bi[k] = T(tot[2 * G + 2 * H + k]);
    }
  }
  return dh0;
}

}  // namespace

void lstm_forward(Tensor A, Tensor Hs, Tensor Cs, Tensor Phi, optional<Tensor> M,
                  optional<Tensor> U, optional<Tensor> stats_h, optional<Tensor> stats_c,
                  Tensor w_hh, optional<Tensor> w_hr, optional<Tensor> p_i,
                  optional<Tensor> p_f, optional<Tensor> p_o, optional<Tensor> g_hh,
                  optional<Tensor> g_c, optional<Tensor> b_c, optional<Tensor> rmask, bool fg,
                  double eps, optional<Tensor> X, optional<Tensor> stats_x,
                  optional<Tensor> g_ih, optional<Tensor> b_ih) {
  const bool peep = p_i.has_value(), ln = g_hh.has_value();
  const bool fuse = fusable({&A, &Hs, &Cs, &Phi, &w_hh},
                            {&M, &U, &stats_h, &stats_c, &w_hr, &p_i, &p_f, &p_o, &g_hh, &g_c,
                             &b_c, &rmask, &X, &stats_x, &g_ih, &b_ih});
  // the raw input projections (X) are taken by the fused path only (the Python side
  // passes them on CPU float/double, whose buffers it allocates contiguous)
  TORCH_CHECK(!X || (fuse && ln), "lstm_forward: X needs the fused layer-norm path");
  if (fuse) {
    AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "lstm_forward", [&] {
      forward_fused<scalar_t>(A, Hs, Cs, Phi, M, U, stats_h, stats_c, w_hh, w_hr, p_i, p_f, p_o,
                              g_hh, g_c, b_c, rmask, fg, eps, X, stats_x, g_ih, b_ih);
    });
    return;
  }
  const int64_t T = A.size(0), G = A.size(2), H = Cs.size(2);
  const Tensor w_hh_t = w_hh.t();
  const optional<Tensor> w_hr_t = w_hr ? optional<Tensor>(w_hr->t()) : c10::nullopt;
  const optional<Tensor> none;
  for (int64_t t = 0; t < T; ++t) {
    Tensor c = Cs[t], cn = Cs[t + 1], a = A[t];
    Tensor hin = rmask ? Hs[t] * *rmask : Hs[t];
    if (ln) {
      Tensor u = (*U)[t];
      at::mm_out(u, hin, w_hh_t);
      auto r = at::native_layer_norm(u, {G}, g_hh, none, eps);
      (*stats_h)[0][t].copy_(std::get<1>(r));
      (*stats_h)[1][t].copy_(std::get<2>(r));
      a.add_(std::get<0>(r));
    } else {
      a.addmm_(hin, w_hh_t);
    }
    Tensor a_o = a.narrow(1, 0, H), a_i = a.narrow(1, H, H), a_g = a.narrow(1, G - H, H);
    if (peep) {
      a_i.addcmul_(*p_i, c);
      if (fg) a.narrow(1, 2 * H, H).addcmul_(*p_f, c);
      a.narrow(1, H, G - 2 * H).sigmoid_();
    } else {
      a.narrow(1, 0, G - H).sigmoid_();
    }
    if (fg) {
      a_g.tanh_();
      at::mul_out(cn, a.narrow(1, 2 * H, H), c);
      cn.addcmul_(a_i, a_g);
    } else {
      a_g.sigmoid_().mul_(4).sub_(2);
      at::addcmul_out(cn, c, a_i, a_g);
    }
    if (peep) a_o.addcmul_(*p_o, cn).sigmoid_();
    Tensor chat = cn;
    if (ln) {
      auto r = at::native_layer_norm(cn, {H}, g_c, b_c, eps);
      chat = std::get<0>(r);
      (*stats_c)[0][t].copy_(std::get<1>(r));
      (*stats_c)[1][t].copy_(std::get<2>(r));
    }
    Tensor phi = Phi[t];
    if (fg) {
      at::tanh_out(phi, chat);
    } else {
      at::sigmoid_out(phi, chat).mul_(2).sub_(1);
    }
    Tensor hn = Hs[t + 1];
    if (M) {
      Tensor m = (*M)[t];
      at::mul_out(m, a_o, phi);
      at::mm_out(hn, m, *w_hr_t);
    } else {
      at::mul_out(hn, a_o, phi);
    }
  }
}

// Returns dh0; fills dA (and dU, dChat under layer norm) and dc (in place, ends as dc_0).
Tensor lstm_backward(Tensor dY, Tensor dA, optional<Tensor> dU, optional<Tensor> dChat,
                     Tensor dc, Tensor dcT, std::vector<Tensor> ends, Tensor A, Tensor K_o,
                     Tensor K_c, Tensor K3, optional<Tensor> Zh, optional<Tensor> Zc,
                     optional<Tensor> stats_h, optional<Tensor> stats_c, Tensor w_hh,
                     optional<Tensor> w_hr, optional<Tensor> p_i, optional<Tensor> p_f,
                     optional<Tensor> p_o, optional<Tensor> g_hh, optional<Tensor> g_c,
                     optional<Tensor> rmask, bool fg) {
  const int64_t T = A.size(0), B = A.size(1), G = A.size(2), H = dc.size(1);
  const int64_t nc = G / H - 1;
  const bool peep = p_i.has_value(), ln = g_hh.has_value();
  Tensor dh0;
  for (int64_t t = T - 1; t >= 0; --t) {
    if (!ends.empty() && ends[t].numel() > 0) {
      const Tensor& idx = ends[t];
      dc.index_put_({idx}, dc.index({idx}) + dcT.index({idx}));
    }
    Tensor dy = dY[t], da = dA[t];
    Tensor dm = w_hr ? dy.mm(*w_hr) : dy;
    Tensor da_o = da.narrow(1, 0, H);
    at::mul_out(da_o, dm, K_o[t]);
    if (ln) {
      Tensor dch = (*dChat)[t];
      at::mul_out(dch, dm, K_c[t]);
      dc.add_(ln_backward(dch, (*Zc)[t], (*stats_c)[1][t], *g_c));
    } else {
      dc.addcmul_(dm, K_c[t]);
    }
    if (peep) dc.addcmul_(da_o, *p_o);
    Tensor da_c = da.narrow(1, H, G - H).view({B, nc, H});
    at::mul_out(da_c, dc.unsqueeze(1), K3[t]);
    if (fg) dc.mul_(A[t].narrow(1, 2 * H, H));
    if (peep) {
      dc.addcmul_(da.narrow(1, H, H), *p_i);
      if (fg) dc.addcmul_(da.narrow(1, 2 * H, H), *p_f);
    }
    Tensor du = da;
    if (ln) {
      du = (*dU)[t];
      du.copy_(ln_backward(da, (*Zh)[t], (*stats_h)[1][t], *g_hh));
    }
    if (t > 0) {
      Tensor prev = dY[t - 1];
      if (rmask) {
        prev.addcmul_(du.mm(w_hh), *rmask);
      } else {
        prev.addmm_(du, w_hh);
      }
    } else {
      dh0 = rmask ? du.mm(w_hh) * *rmask : du.mm(w_hh);
    }
  }
  return dh0;
}

// The backward loop with the fused pointwise step (CPU, float or double, contiguous; None
// where the buffers do not qualify: then the Python side runs lstm_backward): the adjoint
// factors are computed per element from A, Phi and Cs inside the step, so the Python kernel
// skips K_o, K_c and K3 (and, under layer norm, the normalised U and c_t: the gains'
// gradients d_ghh, d_gc, d_bc are summed inside and written). With X (the raw input
// projections, the compiled engine's layer-norm path) also the input norm's adjoint dX and
// its gain and bias gradients d_gih, d_bih (d_bih null without biases). Returns dh0; fills
// dA (and dU under layer norm) and dc (in place, ends as dc_0).
optional<Tensor> lstm_backward_fused(Tensor dY, Tensor dA, optional<Tensor> dU, Tensor dc,
                                     Tensor dcT, std::vector<Tensor> ends, Tensor A, Tensor Phi,
                                     Tensor Cs, optional<Tensor> U, optional<Tensor> stats_h,
                                     optional<Tensor> stats_c, optional<Tensor> d_ghh,
                                     optional<Tensor> d_gc, optional<Tensor> d_bc, Tensor w_hh,
                                     optional<Tensor> w_hr, optional<Tensor> p_i,
                                     optional<Tensor> p_f, optional<Tensor> p_o,
                                     optional<Tensor> g_hh, optional<Tensor> g_c,
                                     optional<Tensor> rmask, bool fg, optional<Tensor> X,
                                     optional<Tensor> stats_x, optional<Tensor> g_ih,
                                     optional<Tensor> dX, optional<Tensor> d_gih,
                                     optional<Tensor> d_bih) {
  if (!fusable({&A, &dY, &dA, &dc, &Phi, &Cs, &w_hh},
               {&dU, &U, &stats_h, &stats_c, &d_ghh, &d_gc, &d_bc, &w_hr, &p_i, &p_f, &p_o,
                &g_hh, &g_c, &rmask, &X, &stats_x, &g_ih, &dX, &d_gih, &d_bih}))
    return c10::nullopt;
  TORCH_CHECK(!X || g_hh, "lstm_backward_fused: X needs layer norm");
  Tensor dh0;
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "lstm_backward_fused", [&] {
    dh0 = backward_fused<scalar_t>(dY, dA, dU, dc, dcT, ends, A, Phi, Cs, U, stats_h, stats_c,
                                   d_ghh, d_gc, d_bc, w_hh, w_hr, p_i, p_f, p_o, g_hh, g_c,
                                   rmask, fg, X, stats_x, g_ih, dX, d_gih, d_bih);
  });
  return dh0;
}

Tensor reservoir_drive(const Tensor& crow, const Tensor& col, const Tensor& values,
                       const Tensor& drive, const Tensor& x0, double leak, bool tanh);  // reservoir.cpp

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lstm_forward", &lstm_forward, "LSTM BPTT kernel: the forward loop over time");
  m.def("lstm_backward", &lstm_backward, "LSTM BPTT kernel: the backward loop over time");
  m.def("lstm_backward_fused", &lstm_backward_fused,
        "LSTM BPTT kernel: the backward loop with the fused pointwise step");
  m.def("reservoir_drive", &reservoir_drive,
        "echo state network: an open-loop reservoir's states over time, sparse W");
}
