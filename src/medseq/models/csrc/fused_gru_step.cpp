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

#include <cmath>
#include <optional>
#include <vector>

namespace {

template <typename scalar_t>
inline scalar_t sigmoid(scalar_t x) {
  return scalar_t(1) / (scalar_t(1) + std::exp(-x));
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
void forward_gates(const scalar_t* gi, scalar_t* gates, const scalar_t* bias, const scalar_t* h,
                   scalar_t* n_out, scalar_t* h_out, int64_t batch, int64_t hidden) {
  const int64_t three = 3 * hidden;
  for (int64_t b = 0; b < batch; ++b) {
    const scalar_t* a = gi + b * three;
    scalar_t* g = gates + b * three;
    const scalar_t* hp = h + b * hidden;
    scalar_t* nb = n_out + b * hidden;
    scalar_t* hb = h_out + b * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
      const scalar_t br = bias ? bias[j] : scalar_t(0);
      const scalar_t bz = bias ? bias[hidden + j] : scalar_t(0);
      const scalar_t bn = bias ? bias[2 * hidden + j] : scalar_t(0);
      const scalar_t r = sigmoid(a[j] + g[j] + br);
      const scalar_t z = sigmoid(a[hidden + j] + g[hidden + j] + bz);
      const scalar_t gn = g[2 * hidden + j] + bn;
      const scalar_t n = std::tanh(a[2 * hidden + j] + r * gn);
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
void backward_gates(const scalar_t* gates, const scalar_t* n_in, const scalar_t* h_prev,
                    const scalar_t* dh, const scalar_t* grad_prev, scalar_t* dgh, scalar_t* dgi,
                    scalar_t* dh_prev, int64_t batch, int64_t hidden) {
  const int64_t three = 3 * hidden;
  for (int64_t b = 0; b < batch; ++b) {
    const scalar_t* g = gates + b * three;
    const scalar_t* nb = n_in + b * hidden;
    const scalar_t* hp = h_prev + b * hidden;
    const scalar_t* d = dh + b * hidden;
    scalar_t* oh = dgh + b * three;
    scalar_t* oi = dgi + b * three;
    scalar_t* dp = dh_prev + b * hidden;
    const scalar_t* gp = grad_prev ? grad_prev + b * hidden : nullptr;
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
      dp[j] = (gp ? gp[j] : scalar_t(0)) + dhj * z;
    }
  }
}

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
  at::Tensor bias;
  if (bias_hh.has_value() && bias_hh->defined()) bias = bias_hh->contiguous();
  auto gates_t = gates.unbind(0);  // views made once, before the loop
  const auto states_t = states.unbind(0);
  AT_DISPATCH_FLOATING_TYPES(dtype, "gru_forward", [&] {
    const scalar_t* bias_p = bias.defined() ? bias.data_ptr<scalar_t>() : nullptr;
    const scalar_t* gi_p = gi.data_ptr<scalar_t>();
    const int64_t plane = batch * hidden;
    for (int64_t t = 0; t < n_steps; ++t) {
      at::mm_out(gates_t[t], states_t[t], weight_t);  // W_hh h_{t-1}, (B, 3H)
      forward_gates<scalar_t>(gi_p + t * 3 * plane, gates_t[t].data_ptr<scalar_t>(),
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
  AT_DISPATCH_FLOATING_TYPES(dtype, "gru_backward", [&] {
    const scalar_t* gates_p = gates.data_ptr<scalar_t>();
    const scalar_t* n_p = n.data_ptr<scalar_t>();
    const scalar_t* states_p = states.data_ptr<scalar_t>();
    const scalar_t* grad_p = grad_out.data_ptr<scalar_t>();
    for (int64_t t = n_steps - 1; t >= 0; --t) {
      const int64_t cur = (n_steps - 1 - t) % 2;
      const at::Tensor& dh_cur = dh_t[cur];
      const at::Tensor& dh_prev = dh_t[1 - cur];
      backward_gates<scalar_t>(gates_p + t * 3 * plane, n_p + t * plane, states_p + t * plane,
                               dh_cur.data_ptr<scalar_t>(),
                               t > 0 ? grad_p + (t - 1) * plane : nullptr,
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

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gru_forward", &gru_forward, "GRU layer recurrence, forward (gates, n, states)");
  m.def("gru_backward", &gru_backward, "GRU layer recurrence, backward (dgi, dh0, dW_hh, db_hh)");
}
