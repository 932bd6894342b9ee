// The recurrence of one GRU layer-direction, forward and backward, for CPU training.
//
// Built on first use by medseq.models.fused_gru_compiled (torch.utils.cpp_extension.load);
// the maths, names and buffers are those of medseq.models.fused_gru's Python path:
//
//   r_t = sigmoid(a_r + W_hr h + b_hr),  z_t = sigmoid(a_z + W_hz h + b_hz)
//   g_n = W_hn h + b_hn,                 n_t = tanh(a_n + r_t * g_n)
//   h_t = (1 - z_t) * n_t + z_t * h_{t-1}
//
// Why C++: per step the Python path dispatches ~6 element-wise ATen ops (forward) and
// separate coefficient passes (backward); here a step is one matrix product (at::mm_out into
// a preallocated buffer) and ONE plain loop over the B x H elements, with no allocation in
// the loop (the per-step views are made before it). The input projection before the loop
// and the weight gradients after it stay large products.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#define ALWAYS_INLINE inline __attribute__((always_inline))

namespace {

// exp, sigmoid and tanh. float64 uses the C library (exact to the last bits: the float64
// tests compare to nn.GRU at 1e-12). float32 uses a branch-free exp (Cephes' expf: range
// reduction by ln 2 and a degree-6 polynomial, ~1 ulp) that the compiler vectorises, and
// tanh(x) = 2 sigmoid(2x) - 1 as in the Python path: a scalar libm call per element was
// slower than torch's vectorised (SLEEF) kernels.
template <typename scalar_t>
ALWAYS_INLINE scalar_t exp_(scalar_t x) {
  return std::exp(x);
}

template <>
ALWAYS_INLINE float exp_<float>(float x) {
  // plain ternaries and arithmetic only: a library call (std::min, floor) is not inlined
  // into the AVX2 clone below and would stop the loop from being vectorised
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to the nearest integer
  const float k = (x * 1.44269504088896341f + magic) - magic;  // x = k ln 2 + f
  const float f = x - k * 0.693359375f + k * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * f + 1.3981999507e-3f;
  y = y * f + 8.3334519073e-3f;
  y = y * f + 4.1665795894e-2f;
  y = y * f + 1.6666665459e-1f;
  y = y * f + 5.0000001201e-1f;
  y = y * f * f + f + 1.0f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;  // 2^k
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}

template <typename scalar_t>
ALWAYS_INLINE scalar_t sigmoid(scalar_t x) {
  return scalar_t(1) / (scalar_t(1) + exp_(-x));
}

template <typename scalar_t>
ALWAYS_INLINE scalar_t tanh_(scalar_t x) {
  return std::tanh(x);
}

template <>
ALWAYS_INLINE float tanh_<float>(float x) {
  return 2.0f * sigmoid(2.0f * x) - 1.0f;
}

void check_cpu(const at::Tensor& t, const char* name, at::ScalarType dtype) {
  TORCH_CHECK(t.device().is_cpu(), "fused_gru_step: ", name, " must be on the CPU, got ",
              t.device());
  TORCH_CHECK(t.scalar_type() == dtype, "fused_gru_step: ", name, " must be ", dtype, ", got ",
              t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), "fused_gru_step: ", name, " must be contiguous");
}

// One forward step's element-wise work: gates_t holds W_hh h_{t-1} (B, 3H) on entry and
// [r, z, g_n] on exit; n_t and h_t (B, H) are written.
template <typename scalar_t>
ALWAYS_INLINE void forward_gates(const scalar_t* __restrict__ gi, scalar_t* __restrict__ gates,
                                 const scalar_t* __restrict__ bias, const scalar_t* __restrict__ h,
                                 scalar_t* __restrict__ n_out, scalar_t* __restrict__ h_out,
                                 int64_t batch, int64_t hidden) {
  const int64_t three = 3 * hidden;
  for (int64_t b = 0; b < batch; ++b) {
    const scalar_t* a = gi + b * three;
    scalar_t* g = gates + b * three;
    const scalar_t* hp = h + b * hidden;
    scalar_t* nb = n_out + b * hidden;
    scalar_t* hb = h_out + b * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
      const scalar_t r = sigmoid(a[j] + g[j] + bias[j]);
      const scalar_t z = sigmoid(a[hidden + j] + g[hidden + j] + bias[hidden + j]);
      const scalar_t gn = g[2 * hidden + j] + bias[2 * hidden + j];
      const scalar_t n = tanh_(a[2 * hidden + j] + r * gn);
      g[j] = r;
      g[hidden + j] = z;
      g[2 * hidden + j] = gn;
      nb[j] = n;
      hb[j] = n + z * (hp[j] - n);
    }
  }
}

// One backward step's element-wise work. dh (B, H) is the total gradient of h_t; writes the
// gradient of the hidden pre-activations dgh (B, 3H) (for dW_hh, db_hh and dh_{t-1}), that
// of the input projection dgi (B, 3H), and dh_prev = grad_prev + dh * z (the product
// dgh W_hh is added after by the caller).
template <typename scalar_t>
ALWAYS_INLINE void backward_gates(const scalar_t* __restrict__ gates,
                                  const scalar_t* __restrict__ n_in,
                                  const scalar_t* __restrict__ h_prev,
                                  const scalar_t* __restrict__ dh,
                                  const scalar_t* __restrict__ grad_prev,
                                  scalar_t* __restrict__ dgh, scalar_t* __restrict__ dgi,
                                  scalar_t* __restrict__ dh_prev, int64_t batch, int64_t hidden) {
  const int64_t three = 3 * hidden;
  for (int64_t b = 0; b < batch; ++b) {
    const scalar_t* g = gates + b * three;
    const scalar_t* nb = n_in + b * hidden;
    const scalar_t* hp = h_prev + b * hidden;
    const scalar_t* d = dh + b * hidden;
    scalar_t* oh = dgh + b * three;
    scalar_t* oi = dgi + b * three;
    scalar_t* dp = dh_prev + b * hidden;
    const scalar_t* gp = grad_prev + b * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
      const scalar_t r = g[j], z = g[hidden + j], gn = g[2 * hidden + j], n = nb[j];
      const scalar_t dhj = d[j];
      const scalar_t dn_pre = dhj * (scalar_t(1) - z) * (scalar_t(1) - n * n);
      const scalar_t dr_pre = dn_pre * gn * r * (scalar_t(1) - r);
      const scalar_t dz_pre = dhj * (hp[j] - n) * z * (scalar_t(1) - z);
      oh[j] = dr_pre;
      oh[hidden + j] = dz_pre;
      oh[2 * hidden + j] = dn_pre * r;
      oi[j] = dr_pre;
      oi[hidden + j] = dz_pre;
      oi[2 * hidden + j] = dn_pre;
      dp[j] = gp[j] + dhj * z;
    }
  }
}

// GRU-D's backward, after dbar = dL/dh~_t is complete: h~_t = gamma_t * h_{t-1}, so
// dL/dgamma_t = dbar * h_{t-1} and dL/dh_{t-1} = dout_{t-1} + gamma_t * dbar.
template <typename scalar_t>
ALWAYS_INLINE void decay_backward(const scalar_t* __restrict__ dbar,
                                  const scalar_t* __restrict__ gamma,
                                  const scalar_t* __restrict__ h_prev,
                                  const scalar_t* __restrict__ grad_prev,
                                  scalar_t* __restrict__ dgamma, scalar_t* __restrict__ dh_prev,
                                  int64_t size) {
  for (int64_t i = 0; i < size; ++i) {
    dgamma[i] = dbar[i] * h_prev[i];
    dh_prev[i] = grad_prev[i] + gamma[i] * dbar[i];
  }
}

// The entry points, compiled twice (AVX2 + FMA, and the baseline) with the one that fits the
// CPU picked when the library loads: the build stays portable across the machines sharing a
// cache, and the float32 loops run 8 wide where they can.
#define CLONES __attribute__((target_clones("arch=haswell", "default")))

template <typename scalar_t>
struct Loops;

#define DEFINE_LOOPS(T)                                                                        \
  CLONES void forward_##T(const T* gi, T* gates, const T* bias, const T* h, T* n, T* out,      \
                          int64_t batch, int64_t hidden) {                                     \
    forward_gates<T>(gi, gates, bias, h, n, out, batch, hidden);                               \
  }                                                                                            \
  CLONES void backward_##T(const T* gates, const T* n, const T* h_prev, const T* dh,           \
                           const T* grad_prev, T* dgh, T* dgi, T* dh_prev, int64_t batch,      \
                           int64_t hidden) {                                                   \
    backward_gates<T>(gates, n, h_prev, dh, grad_prev, dgh, dgi, dh_prev, batch, hidden);      \
  }                                                                                            \
  CLONES void decay_backward_##T(const T* dbar, const T* gamma, const T* h_prev,              \
                                 const T* grad_prev, T* dgamma, T* dh_prev, int64_t size) {    \
    decay_backward<T>(dbar, gamma, h_prev, grad_prev, dgamma, dh_prev, size);                  \
  }                                                                                            \
  template <>                                                                                  \
  struct Loops<T> {                                                                            \
    static constexpr auto forward = &forward_##T;                                              \
    static constexpr auto backward = &backward_##T;                                            \
    static constexpr auto decay_backward = &decay_backward_##T;                                \
  };

DEFINE_LOOPS(float)
DEFINE_LOOPS(double)

}  // namespace

// gi (T, B, 3H) contiguous, h0 (B, H), weight_hh (3H, H), bias_hh (3H) or None.
// Returns gates (T, B, 3H) = [r, z, g_n], n (T, B, H) and states (T + 1, B, H) = h0, h_0, ...
std::vector<at::Tensor> gru_forward(const at::Tensor& gi, const at::Tensor& h0,
                                    const at::Tensor& weight_hh,
                                    const std::optional<at::Tensor>& bias_hh) {
  TORCH_CHECK(gi.dim() == 3 && gi.size(2) % 3 == 0, "fused_gru_step: gi must be (T, B, 3H), got ",
              gi.sizes());
  const auto dtype = gi.scalar_type();
  check_cpu(gi, "gi", dtype);
  const int64_t n_steps = gi.size(0), batch = gi.size(1), hidden = gi.size(2) / 3;
  TORCH_CHECK(h0.sizes() == at::IntArrayRef({batch, hidden}),
              "fused_gru_step: h0 must be (B, H) = (", batch, ", ", hidden, "), got ", h0.sizes());
  auto gates = at::empty_like(gi);
  auto n = at::empty({n_steps, batch, hidden}, gi.options());
  auto states = at::empty({n_steps + 1, batch, hidden}, gi.options());
  states[0].copy_(h0);
  const auto weight_t = weight_hh.t();
  // no bias: zeros, so that the element loop has no branch
  const at::Tensor bias = (bias_hh.has_value() && bias_hh->defined())
                              ? bias_hh->contiguous()
                              : at::zeros({3 * hidden}, gi.options());
  auto gates_t = gates.unbind(0);  // views made once, before the loop
  const auto states_t = states.unbind(0);
  AT_DISPATCH_FLOATING_TYPES(dtype, "gru_forward", [&] {
    const scalar_t* bias_p = bias.data_ptr<scalar_t>();
    const scalar_t* gi_p = gi.data_ptr<scalar_t>();
    const int64_t plane = batch * hidden;
    for (int64_t t = 0; t < n_steps; ++t) {
      at::mm_out(gates_t[t], states_t[t], weight_t);  // W_hh h_{t-1}, (B, 3H)
      Loops<scalar_t>::forward(gi_p + t * 3 * plane, gates_t[t].data_ptr<scalar_t>(),
                              bias_p, states_t[t].data_ptr<scalar_t>(),
                              n.data_ptr<scalar_t>() + t * plane,
                              states_t[t + 1].data_ptr<scalar_t>(), batch, hidden);
    }
  });
  return {gates, n, states};
}

// From the gradients of the outputs (T, B, H) and of h_T (B, H) or None: the gradients of
// gi (T, B, 3H), h0 (B, H), weight_hh (3H, H) and bias_hh (3H).
std::vector<at::Tensor> gru_backward(const at::Tensor& grad_out,
                                     const std::optional<at::Tensor>& grad_hn,
                                     const at::Tensor& gates, const at::Tensor& n,
                                     const at::Tensor& states, const at::Tensor& weight_hh) {
  const auto dtype = gates.scalar_type();
  check_cpu(grad_out, "grad_out", dtype);
  check_cpu(gates, "gates", dtype);
  const int64_t n_steps = gates.size(0), batch = gates.size(1), hidden = gates.size(2) / 3;
  auto dgh = at::empty_like(gates);
  auto dgi = at::empty_like(gates);
  auto dh = at::empty({2, batch, hidden}, gates.options());  // ping-pong: h_t and h_{t-1}
  TORCH_CHECK(n_steps > 0, "fused_gru_step: expected at least one time step");
  dh[0].copy_(grad_out[n_steps - 1]);
  if (grad_hn.has_value() && grad_hn->defined()) dh[0].add_(*grad_hn);
  const auto dh_t = dh.unbind(0);
  const auto dgh_t = dgh.unbind(0);
  const int64_t plane = batch * hidden;
  const auto zeros = at::zeros({batch, hidden}, gates.options());  // no output before h0
  AT_DISPATCH_FLOATING_TYPES(dtype, "gru_backward", [&] {
    const scalar_t* zeros_p = zeros.data_ptr<scalar_t>();
    const scalar_t* gates_p = gates.data_ptr<scalar_t>();
    const scalar_t* n_p = n.data_ptr<scalar_t>();
    const scalar_t* states_p = states.data_ptr<scalar_t>();
    const scalar_t* grad_p = grad_out.data_ptr<scalar_t>();
    for (int64_t t = n_steps - 1; t >= 0; --t) {
      const int64_t cur = (n_steps - 1 - t) % 2;
      const at::Tensor& dh_cur = dh_t[cur];
      const at::Tensor& dh_prev = dh_t[1 - cur];
      Loops<scalar_t>::backward(gates_p + t * 3 * plane, n_p + t * plane, states_p + t * plane,
                               dh_cur.data_ptr<scalar_t>(),
                               t > 0 ? grad_p + (t - 1) * plane : zeros_p,
                               dgh_t[t].data_ptr<scalar_t>(),
                               dgi.data_ptr<scalar_t>() + t * 3 * plane,
                               dh_prev.data_ptr<scalar_t>(), batch, hidden);
      dh_prev.addmm_(dgh_t[t], weight_hh);  // + dg_t W_hh, (B, H)
    }
  });
  const auto flat = dgh.view({n_steps * batch, 3 * hidden});
  const auto h_prev = states.narrow(0, 0, n_steps).reshape({n_steps * batch, hidden});
  auto grad_weight = at::mm(flat.t(), h_prev);
  auto grad_bias = flat.sum(0);
  return {dgi, dh[n_steps % 2].clone(), grad_weight, grad_bias};
}

// GRU-D's hidden loop (medseq.models.grud_recurrence): a GRU step on the decayed state
// h~_t = gamma_t * h_{t-1}, h_{-1} = 0. gi (T, B, 3H), gamma (T, B, H) contiguous.
// Returns gates (T, B, 3H) = [r, z, g_n], n, h_dec = h~ and out = h (each (T, B, H)).
std::vector<at::Tensor> grud_forward(const at::Tensor& gi, const at::Tensor& gamma,
                                     const at::Tensor& weight_hh, const at::Tensor& bias_hh) {
  const auto dtype = gi.scalar_type();
  check_cpu(gi, "gi", dtype);
  check_cpu(gamma, "gamma", dtype);
  const int64_t n_steps = gamma.size(0), batch = gamma.size(1), hidden = gamma.size(2);
  TORCH_CHECK(n_steps > 0 && gi.sizes() == at::IntArrayRef({n_steps, batch, 3 * hidden}),
              "fused_gru_step: gi must be (T, B, 3H) with gamma (T, B, H), got ", gi.sizes(),
              " and ", gamma.sizes());
  auto gates = at::empty_like(gi);
  auto n = at::empty_like(gamma);
  auto h_dec = at::empty_like(gamma);
  auto out = at::empty_like(gamma);
  const auto weight_t = weight_hh.t();
  const auto bias = bias_hh.contiguous();
  auto gates_t = gates.unbind(0);
  auto h_dec_t = h_dec.unbind(0);
  const int64_t plane = batch * hidden;
  AT_DISPATCH_FLOATING_TYPES(dtype, "grud_forward", [&] {
    const scalar_t* gi_p = gi.data_ptr<scalar_t>();
    const scalar_t* gamma_p = gamma.data_ptr<scalar_t>();
    scalar_t* hd_p = h_dec.data_ptr<scalar_t>();
    scalar_t* out_p = out.data_ptr<scalar_t>();
    for (int64_t t = 0; t < n_steps; ++t) {
      scalar_t* hd = hd_p + t * plane;
      if (t == 0) {
        std::fill(hd, hd + plane, scalar_t(0));
      } else {
        const scalar_t* g = gamma_p + t * plane;
        const scalar_t* h = out_p + (t - 1) * plane;
        for (int64_t i = 0; i < plane; ++i) hd[i] = g[i] * h[i];
      }
      at::mm_out(gates_t[t], h_dec_t[t], weight_t);
      Loops<scalar_t>::forward(gi_p + t * 3 * plane, gates_t[t].data_ptr<scalar_t>(),
                               bias.data_ptr<scalar_t>(), hd, n.data_ptr<scalar_t>() + t * plane,
                               out_p + t * plane, batch, hidden);
    }
  });
  return {gates, n, h_dec, out};
}

// Gradients of gi (T, B, 3H), gamma (T, B, H), weight_hh (3H, H) and bias_hh (3H) from that
// of the outputs (T, B, H).
std::vector<at::Tensor> grud_backward(const at::Tensor& grad_out, const at::Tensor& gates,
                                      const at::Tensor& n, const at::Tensor& h_dec,
                                      const at::Tensor& out, const at::Tensor& gamma,
                                      const at::Tensor& weight_hh) {
  const auto dtype = gates.scalar_type();
  check_cpu(grad_out, "grad_out", dtype);
  check_cpu(gamma, "gamma", dtype);
  const int64_t n_steps = gamma.size(0), batch = gamma.size(1), hidden = gamma.size(2);
  const int64_t plane = batch * hidden;
  auto dgh = at::empty_like(gates);
  auto dgi = at::empty_like(gates);
  auto dgamma = at::empty_like(gamma);
  auto dh = grad_out.select(0, n_steps - 1).clone();  // total gradient of h_t
  auto dbar = at::empty({batch, hidden}, gates.options());  // gradient of h~_t
  const auto zeros = at::zeros({batch, hidden}, gates.options());
  auto dgh_t = dgh.unbind(0);
  AT_DISPATCH_FLOATING_TYPES(dtype, "grud_backward", [&] {
    const scalar_t* gates_p = gates.data_ptr<scalar_t>();
    const scalar_t* n_p = n.data_ptr<scalar_t>();
    const scalar_t* hd_p = h_dec.data_ptr<scalar_t>();
    const scalar_t* out_p = out.data_ptr<scalar_t>();
    const scalar_t* gamma_p = gamma.data_ptr<scalar_t>();
    const scalar_t* grad_p = grad_out.data_ptr<scalar_t>();
    const scalar_t* zeros_p = zeros.data_ptr<scalar_t>();
    scalar_t* dh_p = dh.data_ptr<scalar_t>();
    scalar_t* dbar_p = dbar.data_ptr<scalar_t>();
    scalar_t* dgamma_p = dgamma.data_ptr<scalar_t>();
    for (int64_t t = n_steps - 1; t >= 0; --t) {
      Loops<scalar_t>::backward(gates_p + t * 3 * plane, n_p + t * plane, hd_p + t * plane, dh_p,
                                zeros_p, dgh_t[t].data_ptr<scalar_t>(),
                                dgi.data_ptr<scalar_t>() + t * 3 * plane, dbar_p, batch, hidden);
      dbar.addmm_(dgh_t[t], weight_hh);  // dL/dh~_t = dh_t * z_t + dg_t W_hh
      // dh becomes the total gradient of h_{t-1}; at t = 0 (h_{-1} = 0) only dgamma matters
      Loops<scalar_t>::decay_backward(dbar_p, gamma_p + t * plane,
                                      t > 0 ? out_p + (t - 1) * plane : zeros_p,
                                      t > 0 ? grad_p + (t - 1) * plane : zeros_p,
                                      dgamma_p + t * plane, dh_p, plane);
    }
  });
  const auto flat = dgh.view({n_steps * batch, 3 * hidden});
  auto grad_weight = at::mm(flat.t(), h_dec.view({n_steps * batch, hidden}));
  auto grad_bias = flat.sum(0);
  return {dgi, dgamma, grad_weight, grad_bias};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gru_forward", &gru_forward, "GRU layer recurrence, forward (gates, n, states)");
  m.def("gru_backward", &gru_backward, "GRU layer recurrence, backward (dgi, dh0, dW_hh, db_hh)");
  m.def("grud_forward", &grud_forward, "GRU-D hidden loop, forward (gates, n, h_dec, out)");
  m.def("grud_backward", &grud_backward, "GRU-D hidden loop, backward (dgi, dgamma, dW, db)");
}
