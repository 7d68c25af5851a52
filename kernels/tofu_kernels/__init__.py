"""Fused message passing for TOFU's reasoner on the CPU (see ``fused.cpp``)."""
import torch  # noqa: F401  (loads the torch libraries the extension links against)

from tofu_kernels._fused import fused_propagate, relation_term_grads

__all__ = ["fused_propagate", "relation_term_grads"]
