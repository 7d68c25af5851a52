"""Pretraining and fine-tuning over tokenized graphs.

Each step draws one graph (with probability proportional to its number of
training triples), a batch of its training triples, and asks each as a tail
or head query over the graph *without* the batch's edges (so the answer is
never read off the graph). Loss: binary cross-entropy of the answer against
uniformly drawn negatives that are not known true answers, the negatives
weighted self-adversarially (Sun et al. 2019), as in ULTRA.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from artifacts.checkpoint import load_checkpoint, save_checkpoint
from artifacts.token_tables import TokenTables
from artifacts.version import CODE_VERSION
from reasoning_stage.evaluation import evaluate_graph
from reasoning_stage.graph_data import GraphTensors, KnownTriples, graph_tensors
from reasoning_stage.layers import EdgePlan, relation_graph
from reasoning_stage.models import ModelConfig, TofuModel


class CodebookMismatch(ValueError):
    """A graph was tokenized with other codebooks than the model reads."""


@dataclass
class TrainConfig:
    max_steps: int = 1000
    max_seconds: float | None = None  # wall-clock budget of this run (resumes get a fresh one)
    batch_size: int = 16
    negatives: int = 256
    learning_rate: float = 5e-4
    weight_decay: float = 0.0
    adversarial_temperature: float = 1.0
    eval_every: int = 200
    eval_triples: int = 100
    seed: int = 0
    train_split: str = "train"
    valid_split: str = "valid"


@dataclass
class PreparedGraph:
    """Tensors of one graph that stay fixed during training (built once)."""
    name: str
    train_graph: GraphTensors
    train_triples: torch.Tensor
    rel_graph: EdgePlan
    known: KnownTriples
    tables: TokenTables


def model_config_for(tables: TokenTables, base: ModelConfig) -> ModelConfig:
    """Fill token vocabularies from the artifact's codebooks; drop modalities they lack."""
    books = tables.manifest["codebooks"]["modalities"]
    sizes = {}
    for modality in ("structure", "text", "image"):
        if modality in books:
            # Structure codes: own 0..K-1 and neighbours' K..2K-1.
            sizes[modality] = books[modality]["size"] * (2 if modality == "structure" else 1)
    modalities = tuple(m for m in base.modalities if m in sizes)
    data = base.to_json()
    data.update(codebook_sizes={m: sizes[m] for m in modalities}, modalities=list(modalities),
                relation_text_codebook_size=sizes.get("text", 0) if "text" in modalities else 0)
    return ModelConfig.from_json(data)


def check_codebooks(tables: Sequence[TokenTables], codebook_id: str | None) -> None:
    for t in tables:
        if codebook_id is not None and t.codebook_id != codebook_id:
            raise CodebookMismatch(
                f"{t.folder}: tokenized with codebooks {t.codebook_id}, but the model reads codebooks "
                f"{codebook_id}; re-tokenize it with those codebooks (tofu tokenize --codebooks PATH)")


def prepare(tables: TokenTables, split: str, device: torch.device) -> PreparedGraph:
    graph = graph_tensors(tables, split)
    triples = graph.to_local(torch.as_tensor(tables.queries(split), dtype=torch.long)).to(device)
    known = KnownTriples(tables, graph)
    graph = graph.to(device)
    rel = relation_graph(graph.edge_index, graph.edge_type, 2 * graph.num_relations, graph.num_entities)
    return PreparedGraph(tables.name, graph, triples, rel, known, tables)


def training_step(model: TofuModel, prepared: PreparedGraph, batch: torch.Tensor, config: TrainConfig,
                  generator: torch.Generator, task: int = 0) -> torch.Tensor:
    """Loss of one batch of triples ``[B, 3]``."""
    graph = prepared.train_graph.without_edges(batch)
    num_rel = graph.num_relations
    flip = torch.rand(len(batch), generator=generator) < 0.5
    flip = flip.to(batch.device)
    heads = torch.where(flip, batch[:, 2], batch[:, 0])
    relations = torch.where(flip, batch[:, 1] + num_rel, batch[:, 1])
    targets = torch.where(flip, batch[:, 0], batch[:, 2])
    queries = torch.stack([heads, relations], dim=1)
    scores = model(graph, queries, task=task, rel_graph=prepared.rel_graph)
    negatives = torch.randint(0, graph.num_entities, (len(batch), config.negatives), generator=generator)
    negatives = negatives.to(batch.device)
    true_mask = prepared.known.mask(heads, relations).to(batch.device)
    valid = ~true_mask.gather(1, negatives)
    positive = scores.gather(1, targets.unsqueeze(1)).squeeze(1)
    negative = scores.gather(1, negatives)
    with torch.no_grad():
        weights = torch.softmax((negative * config.adversarial_temperature).masked_fill(~valid, -1e9), dim=1)
        weights = weights * valid
    loss = -F.logsigmoid(positive) - (weights * F.logsigmoid(-negative)).sum(dim=1)
    return loss.mean()


def evaluate_mrr(model: TofuModel, tables: TokenTables, split: str, max_triples: int | None,
                 device: torch.device, seed: int = 0) -> float:
    """Filtered MRR on (a seeded sample of) a split's queries."""
    return evaluate_graph(model, tables, [split], device, max_triples=max_triples, seed=seed).metrics()["mrr"]


def train(model: TofuModel, graphs: Sequence[TokenTables], config: TrainConfig, checkpoint: Path,
          device: torch.device, resume_from: Path | None = None, progress: Callable | None = None,
          log: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Train ``model`` on ``graphs``; save the checkpoint at every evaluation and at the end."""
    codebook_id = graphs[0].codebook_id
    check_codebooks(graphs, codebook_id)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    step, history = 0, []
    if resume_from is not None:
        manifest, state, opt_state = load_checkpoint(resume_from, with_optimizer=True)
        model.load_state_dict(state, strict=True)
        if opt_state is not None:
            optimizer.load_state_dict(opt_state)
        step = int(manifest["training"].get("step", 0))
        history = list(manifest["training"].get("history", []))
    prepared = [prepare(t, config.train_split, device) for t in graphs]
    sizes = np.array([len(p.train_triples) for p in prepared], dtype=np.float64)
    if sizes.sum() == 0:
        raise ValueError("no training triples in the given graphs")
    probabilities = sizes / sizes.sum()
    bar = progress(total=config.max_steps, initial=step, desc="training", unit="step") if progress else None
    losses: list[float] = []
    started = time.perf_counter()

    def save(final: bool) -> None:
        save_checkpoint(checkpoint, model.state_dict(), model.config.to_json(), codebook_id, {
            "step": step, "history": history, "config": asdict(config), "final": final,
            "graphs": [p.name for p in prepared], "code_version": CODE_VERSION,
        }, optimizer.state_dict())

    def out_of_time() -> bool:
        return config.max_seconds is not None and time.perf_counter() - started >= config.max_seconds

    while step < config.max_steps and not out_of_time():
        model.train()
        choice = prepared[int(rng.choice(len(prepared), p=probabilities))]
        picks = torch.as_tensor(rng.choice(len(choice.train_triples), min(config.batch_size, len(choice.train_triples)),
                                           replace=False))
        loss = training_step(model, choice, choice.train_triples[picks], config, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        losses.append(float(loss.detach()))
        if bar:
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        last = step == config.max_steps or out_of_time()
        if step % config.eval_every == 0 or last:
            record: dict[str, Any] = {"step": step, "loss": float(np.mean(losses[-config.eval_every:])),
                                      "seconds": round(time.perf_counter() - started, 1)}
            for p in prepared:
                if config.valid_split in p.tables.splits and len(p.tables.queries(config.valid_split)):
                    record[f"valid_mrr/{p.name}"] = round(evaluate_mrr(
                        model, p.tables, config.valid_split, config.eval_triples, device, config.seed), 4)
            history.append(record)
            if log:
                log(record)
            save(final=last)
    if bar:
        bar.close()
    return history


def log_to_file(path: Path) -> Callable[[dict[str, Any]], None]:
    def write(record: dict[str, Any]) -> None:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
    return write
