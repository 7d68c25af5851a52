"""Task-aware routing and the gated mixture of experts (MtaIMKG, second seed paper).

The same entity can need different evidence per task: link prediction leans
on structure, alignment on names and neighbourhoods shared across graphs,
linking on text alone. The :class:`TaskRouter` turns a task id into priors
over the modalities and over the experts; the :class:`GatedMixtureOfExperts`
(shared by every task) refines the fused modality vector of each entity
through a few small experts chosen per entity by a gate that reads the
entity's own features plus the task's prior. A load-balance term keeps every
expert in use (Switch Transformer form, Fedus et al. 2022).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Route:
    """What a task asks of the entity encoder."""
    task_vector: torch.Tensor      # [dim]
    modality_bias: torch.Tensor    # [num_modalities] added to every entity's modality logits
    expert_bias: torch.Tensor      # [num_experts] added to every entity's expert logits


class TaskRouter(nn.Module):
    """Task id -> :class:`Route`: a task embedding read by two small heads (modality and expert priors)."""

    def __init__(self, num_tasks: int, dim: int, num_modalities: int, num_experts: int):
        super().__init__()
        self.task_embedding = nn.Embedding(num_tasks, dim)
        self.modality_prior = nn.Linear(dim, num_modalities)
        self.expert_prior = nn.Linear(dim, num_experts)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.task_embedding.weight, std=1.0)
        for layer in (self.modality_prior, self.expert_prior):
            # Small priors: tasks start apart but no modality or expert is shut off before training.
            nn.init.normal_(layer.weight, std=0.05)
            nn.init.zeros_(layer.bias)

    def forward(self, task: int) -> Route:
        vector = self.task_embedding.weight[task]
        return Route(vector, self.modality_prior(vector), self.expert_prior(vector))


@dataclass
class ExpertOutput:
    values: torch.Tensor        # [n, dim] refined features
    weights: torch.Tensor       # [n, num_experts] gate weights (zero outside each row's top-k)
    balance_loss: torch.Tensor  # scalar, 1.0 when perfectly balanced


class GatedMixtureOfExperts(nn.Module):
    r"""``y = x + \sum_e g_e(x, task)\, E_e(x)`` with top-``k`` softmax gating.

    Experts are two-layer MLPs held as stacked weights so all of them run as
    two batched products (a few thousand entities x a handful of experts is
    cheaper dense than dispatched). Rows with all-zero input (no content)
    stay zero.

    Shapes: x ``[n, dim]``, expert_bias ``[num_experts]`` -> :class:`ExpertOutput`.
    """

    def __init__(self, dim: int, num_experts: int, top_k: int, hidden: int | None = None):
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must be in 1..{num_experts}, got {top_k}")
        hidden = hidden or 2 * dim
        self.num_experts, self.top_k = num_experts, top_k
        self.gate = nn.Linear(dim, num_experts)
        self.w1 = nn.Parameter(torch.empty(num_experts, dim, hidden))
        self.b1 = nn.Parameter(torch.zeros(num_experts, hidden))
        self.w2 = nn.Parameter(torch.empty(num_experts, hidden, dim))
        self.b2 = nn.Parameter(torch.zeros(num_experts, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.gate.reset_parameters()
        nn.init.normal_(self.w1, std=self.w1.shape[1] ** -0.5)
        # Experts start near zero: the block begins as the identity and learns a residual.
        nn.init.normal_(self.w2, std=0.01 * self.w2.shape[1] ** -0.5)
        nn.init.zeros_(self.b1)
        nn.init.zeros_(self.b2)

    def gate_weights(self, x: torch.Tensor, expert_bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sparse top-k weights [n, E], full softmax [n, E])``."""
        probabilities = torch.softmax(self.gate(x) + expert_bias, dim=-1)
        top, index = probabilities.topk(self.top_k, dim=-1)
        # Renormalised, one expert's weight would always be 1 and no gradient would reach the gate:
        # with top_k = 1 its probability is kept (as the Switch Transformer does).
        share = top if self.top_k == 1 else top / top.sum(-1, keepdim=True)
        weights = torch.zeros_like(probabilities).scatter(-1, index, share)
        return weights, probabilities

    def forward(self, x: torch.Tensor, expert_bias: torch.Tensor) -> ExpertOutput:
        weights, probabilities = self.gate_weights(x, expert_bias)
        hidden = torch.relu(torch.einsum("nd,edh->neh", x, self.w1) + self.b1)
        outputs = torch.einsum("neh,ehd->ned", hidden, self.w2) + self.b2
        has_content = (x != 0).any(dim=-1, keepdim=True)
        values = x + (weights.unsqueeze(-1) * outputs).sum(dim=1) * has_content
        return ExpertOutput(values, weights, self.balance_loss(weights, probabilities, has_content.squeeze(-1)))

    def balance_loss(self, weights: torch.Tensor, probabilities: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``E * sum_e f_e * P_e``: f = share of rows whose first choice is e, P = mean gate probability."""
        if not rows.any():
            return probabilities.new_tensor(1.0)
        first = torch.nn.functional.one_hot(weights[rows].argmax(-1), self.num_experts).float().mean(0)
        return self.num_experts * (first * probabilities[rows].mean(0)).sum()
