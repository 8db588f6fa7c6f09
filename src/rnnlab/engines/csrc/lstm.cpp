// The time loops of rnnlab's LSTM BPTT kernel (rnnlab.nn.lstm.LSTMRecurrence) in C++.
//
// The same ATen operations, in the same order, as the Python loops they replace: the
// buffers are allocated and the vectorised work before and after each loop is done in
// Python; only the per-step dispatch moves here. Shapes are those of the Python kernel:
// A (T, B, G) gates in internal order (o, i, f, g) or (o, i, g), Hs (T+1, B, P),
// Cs (T+1, B, H), Phi (T, B, H).
#include <torch/extension.h>

#include <vector>

using at::Tensor;
using c10::optional;

namespace {

Tensor ln_backward(const Tensor& dy, const Tensor& z, const Tensor& rstd, const Tensor& gamma) {
  // gradient w.r.t. u of y = gamma * (u - mean(u)) * rstd + beta, last dimension
  auto dz = dy * gamma;
  return rstd * (dz - dz.mean(-1, true) - z * (dz * z).mean(-1, true));
}

}  // namespace

void lstm_forward(Tensor A, Tensor Hs, Tensor Cs, Tensor Phi, optional<Tensor> M,
                  optional<Tensor> U, optional<Tensor> stats_h, optional<Tensor> stats_c,
                  Tensor w_hh, optional<Tensor> w_hr, optional<Tensor> p_i,
                  optional<Tensor> p_f, optional<Tensor> p_o, optional<Tensor> g_hh,
                  optional<Tensor> g_c, optional<Tensor> b_c, optional<Tensor> rmask, bool fg,
                  double eps) {
  const int64_t T = A.size(0), G = A.size(2), H = Cs.size(2);
  const bool peep = p_i.has_value(), ln = g_hh.has_value();
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

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lstm_forward", &lstm_forward, "LSTM BPTT kernel: the forward loop over time");
  m.def("lstm_backward", &lstm_backward, "LSTM BPTT kernel: the backward loop over time");
}
