// out[v, c] = boundary[v, c] (+ node_shift[v, group[c]]) + sum over edges (u, t) into v of
//             x[u, c] * scale[t, group[c]]  (+ swap(x[u, c]) * swap_scale[t, group[c]])
// with swap(y) = [y[d/2:], y[:d/2]]: the gather, the product and the sum in one pass, with no
// [edges x columns x dim] tensor. Targets are split across torch's threads; each output row has one writer.
#include <torch/extension.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace {

// The inner loop over dim: one multiply-add per float, compiled for AVX-512, AVX2 and the baseline,
// chosen at run time (the build machine's flags do not decide).
__attribute__((target_clones("avx512f", "avx2", "default")))
void add_products(float* out, const float* x, const float* w, int64_t dim) {
  for (int64_t k = 0; k < dim; ++k) out[k] += x[k] * w[k];
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void add_vector(float* out, const float* y, int64_t dim) {
  for (int64_t k = 0; k < dim; ++k) out[k] += y[k];
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void add_swapped_products(float* out, const float* x, const float* w, int64_t dim) {
  const int64_t half = dim / 2;
  for (int64_t k = 0; k < half; ++k) out[k] += x[k + half] * w[k];
  for (int64_t k = half; k < dim; ++k) out[k] += x[k - half] * w[k];
}

void check_states(const torch::Tensor& x) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.dim() == 3 && x.is_contiguous(),
              "x: a contiguous float32 CPU tensor [V, B, dim]");
}

// Ids are int64 CPU tensors, every one in [0, size): checked before any is followed (an O(n) pass), so a
// bad plan is an error, never a read outside the tensors.
void check_ids(const torch::Tensor& ids, int64_t size, const char* what) {
  TORCH_CHECK(ids.device().is_cpu() && ids.scalar_type() == torch::kInt64, what, ": an int64 CPU tensor");
  if (ids.numel() == 0) return;
  const auto range = torch::aminmax(ids);
  TORCH_CHECK(std::get<0>(range).item<int64_t>() >= 0 && std::get<1>(range).item<int64_t>() < size, what,
              ": ids out of range");
}

}  // namespace

torch::Tensor fused_propagate(const torch::Tensor& x, const torch::Tensor& boundary, const torch::Tensor& indptr,
                              const torch::Tensor& edge_source, const torch::Tensor& edge_type,
                              const torch::Tensor& column_group, const torch::Tensor& scale,
                              const c10::optional<torch::Tensor>& swap_scale,
                              const c10::optional<torch::Tensor>& node_shift) {
  check_states(x);
  TORCH_CHECK(boundary.device().is_cpu() && boundary.sizes() == x.sizes() &&
                  boundary.scalar_type() == torch::kFloat32,
              "boundary: float32 on the CPU, the shape of x");
  TORCH_CHECK(scale.device().is_cpu() && scale.dim() == 3 && scale.size(2) == x.size(2) &&
                  scale.scalar_type() == torch::kFloat32,
              "scale: float32 on the CPU, [T, G, dim]");
  TORCH_CHECK(column_group.numel() == x.size(1), "column_group: one entry per column of x");
  TORCH_CHECK(indptr.numel() == x.size(0) + 1, "indptr: V + 1 offsets");
  TORCH_CHECK(edge_source.numel() == edge_type.numel(), "edge_source and edge_type: one entry per edge");
  const int64_t nodes = x.size(0), columns = x.size(1), dim = x.size(2);
  const int64_t groups = scale.size(1), types = scale.size(0);
  check_ids(edge_source, nodes, "edge_source");
  check_ids(edge_type, types, "edge_type");
  check_ids(column_group, groups, "column_group");
  check_ids(indptr, edge_source.numel() + 1, "indptr");
  if (indptr.numel() > 0) {
    TORCH_CHECK(indptr[0].item<int64_t>() == 0 && indptr[-1].item<int64_t>() == edge_source.numel() &&
                    (nodes == 0 || (indptr.diff() >= 0).all().item<bool>()),
                "indptr: non-decreasing offsets from 0 to the number of edges");
  }
  torch::Tensor out = boundary.clone(at::MemoryFormat::Contiguous);
  const torch::Tensor sc = scale.contiguous();
  torch::Tensor swap;
  if (swap_scale.has_value()) {
    swap = swap_scale->contiguous();
    TORCH_CHECK(swap.device().is_cpu() && swap.scalar_type() == torch::kFloat32 && swap.sizes() == sc.sizes() &&
                    dim % 2 == 0,
                "swap_scale: float32 on the CPU, the shape of scale, an even dim");
  }
  torch::Tensor shift;
  if (node_shift.has_value()) {
    shift = node_shift->contiguous();
    TORCH_CHECK(shift.device().is_cpu() && shift.scalar_type() == torch::kFloat32 && shift.dim() == 3 &&
                    shift.size(0) == nodes && shift.size(1) == groups && shift.size(2) == dim,
                "node_shift: float32 on the CPU, [V, G, dim]");
  }
  const torch::Tensor ptr = indptr.contiguous(), src = edge_source.contiguous(), typ = edge_type.contiguous();
  const torch::Tensor grp = column_group.contiguous();
  const int64_t* p = ptr.data_ptr<int64_t>();
  const int64_t* s = src.data_ptr<int64_t>();
  const int64_t* t = typ.data_ptr<int64_t>();
  const int64_t* g = grp.data_ptr<int64_t>();
  const float* xs = x.data_ptr<float>();
  const float* w = sc.data_ptr<float>();
  const float* ws = swap.defined() ? swap.data_ptr<float>() : nullptr;
  const float* ns = shift.defined() ? shift.data_ptr<float>() : nullptr;
  float* o = out.data_ptr<float>();
  const int64_t row = columns * dim;
  // Torch's own thread pool (not a second OpenMP runtime beside torch's), which splits a range into one
  // contiguous share per thread: the targets are cut into runs of about equal edge counts first, so
  // that a share of runs is a share of the work however the in-degrees vary.
  const int64_t edges = p[nodes], runs = 8 * std::max<int64_t>(1, at::get_num_threads());
  std::vector<int64_t> run_start{0};
  for (int64_t v = 0; v < nodes; ++v) {
    if ((p[v + 1] + v + 1) * runs >= (edges + nodes) * static_cast<int64_t>(run_start.size())) run_start.push_back(v + 1);
  }
  if (run_start.back() != nodes) run_start.push_back(nodes);
  const int64_t num_runs = static_cast<int64_t>(run_start.size()) - 1;
  at::parallel_for(0, num_runs, 1, [&](int64_t first_run, int64_t last_run) {
    for (int64_t v = run_start[first_run]; v < run_start[last_run]; ++v) {
      float* out_row = o + v * row;
      if (ns) {
        for (int64_t c = 0; c < columns; ++c) add_vector(out_row + c * dim, ns + (v * groups + g[c]) * dim, dim);
      }
      for (int64_t e = p[v]; e < p[v + 1]; ++e) {
        const float* x_row = xs + s[e] * row;
        const float* w_type = w + t[e] * groups * dim;
        const float* ws_type = ws ? ws + t[e] * groups * dim : nullptr;
        for (int64_t c = 0; c < columns; ++c) {
          add_products(out_row + c * dim, x_row + c * dim, w_type + g[c] * dim, dim);
          if (ws_type) add_swapped_products(out_row + c * dim, x_row + c * dim, ws_type + g[c] * dim, dim);
        }
      }
    }
  });
  return out;
}

// The gradients of fused_propagate's relation terms: for each edge (u, t) -> v and column c,
//   d_scale[t, group[c]]      += x[u, c] * d_out[v, c]
//   d_swap_scale[t, group[c]] += swap(x[u, c]) * d_out[v, c]     (when with_swap)
// The edges are cut into one slice per thread, each summed into its own [T, G, dim] buffers, which are
// added at the end: no two slices share a buffer, and the order of the sums is fixed by the thread
// count alone. (The buffers hold relation terms: threads x T x G x dim floats, G the query runs.)
std::vector<torch::Tensor> relation_term_grads(const torch::Tensor& x, const torch::Tensor& d_out,
                                               const torch::Tensor& edge_source, const torch::Tensor& edge_target,
                                               const torch::Tensor& edge_type, const torch::Tensor& column_group,
                                               int64_t types, int64_t groups, bool with_swap) {
  check_states(x);
  TORCH_CHECK(d_out.sizes() == x.sizes() && d_out.scalar_type() == torch::kFloat32 && d_out.device().is_cpu(),
              "d_out: float32 on the CPU, the shape of x");
  TORCH_CHECK(edge_source.numel() == edge_target.numel() && edge_source.numel() == edge_type.numel(),
              "edge_source, edge_target, edge_type: one entry per edge");
  TORCH_CHECK(column_group.numel() == x.size(1), "column_group: one entry per column of x");
  const int64_t nodes = x.size(0), columns = x.size(1), dim = x.size(2), edges = edge_source.numel();
  TORCH_CHECK(!with_swap || dim % 2 == 0, "swapped terms need an even dim");
  check_ids(edge_source, nodes, "edge_source");
  check_ids(edge_target, nodes, "edge_target");
  check_ids(edge_type, types, "edge_type");
  check_ids(column_group, groups, "column_group");
  const torch::Tensor xs = x, dout = d_out.contiguous();
  const torch::Tensor src = edge_source.contiguous(), tgt = edge_target.contiguous(), typ = edge_type.contiguous();
  const torch::Tensor grp = column_group.contiguous();
  const int64_t slices = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), edges));
  const int64_t slab = types * groups * dim;
  torch::Tensor buffers = torch::zeros({slices, with_swap ? 2 : 1, slab}, x.options());
  const float* xp = xs.data_ptr<float>();
  const float* dp = dout.data_ptr<float>();
  const int64_t* s = src.data_ptr<int64_t>();
  const int64_t* t = tgt.data_ptr<int64_t>();
  const int64_t* r = typ.data_ptr<int64_t>();
  const int64_t* g = grp.data_ptr<int64_t>();
  float* bp = buffers.data_ptr<float>();
  const int64_t row = columns * dim;
  at::parallel_for(0, slices, 1, [&](int64_t first_slice, int64_t last_slice) {
    for (int64_t slice = first_slice; slice < last_slice; ++slice) {
      float* d_scale = bp + slice * (with_swap ? 2 : 1) * slab;
      float* d_swap = with_swap ? d_scale + slab : nullptr;
      for (int64_t e = edges * slice / slices; e < edges * (slice + 1) / slices; ++e) {
        const float* x_row = xp + s[e] * row;
        const float* d_row = dp + t[e] * row;
        for (int64_t c = 0; c < columns; ++c) {
          const int64_t term = (r[e] * groups + g[c]) * dim;
          const float* xc = x_row + c * dim;
          const float* dc = d_row + c * dim;
          add_products(d_scale + term, xc, dc, dim);
          if (d_swap) add_swapped_products(d_swap + term, xc, dc, dim);
        }
      }
    }
  });
  torch::Tensor summed = buffers.sum(0);
  std::vector<torch::Tensor> grads{summed[0].view({types, groups, dim})};
  if (with_swap) grads.push_back(summed[1].view({types, groups, dim}));
  return grads;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("fused_propagate", &fused_propagate,
        "boundary + the sum of x[source] * scale[type, column group] over each target's edges (CPU, float32)",
        py::arg("x"), py::arg("boundary"), py::arg("indptr"), py::arg("edge_source"), py::arg("edge_type"),
        py::arg("column_group"), py::arg("scale"), py::arg("swap_scale") = py::none(),
        py::arg("node_shift") = py::none(),
        py::call_guard<py::gil_scoped_release>());
  m.def("relation_term_grads", &relation_term_grads,
        "gradients of fused_propagate's scale (and swap_scale) from its output's gradient (CPU, float32)",
        py::arg("x"), py::arg("d_out"), py::arg("edge_source"), py::arg("edge_target"), py::arg("edge_type"),
        py::arg("column_group"), py::arg("types"), py::arg("groups"), py::arg("with_swap"),
        py::call_guard<py::gil_scoped_release>());
}
