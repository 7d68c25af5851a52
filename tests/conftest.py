"""Shared fixtures: small generated graphs, tiny self-built transformers models, shared data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tokenizer_stage.kg_reader.files import absolute_path

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path | None:
    """``$TOFU_DATA`` or ``../shared/data`` beside the repo, when present; absolute, because tests write
    it into files under temporary folders (a relative ``TOFU_DATA`` would resolve against those)."""
    candidate = absolute_path(os.environ.get("TOFU_DATA", REPO.parent / "shared" / "data"))
    return candidate if candidate.is_dir() else None


@pytest.fixture
def data_root() -> Path:
    root = shared_data()
    if root is None:
        pytest.skip("benchmark data not found: set TOFU_DATA or place shared/data beside the repo")
    return root


@pytest.fixture
def shipped() -> Path:
    """The installation's shipped checkpoint; a test that reads it skips where there is none."""
    from artifacts.shipped import shipped_checkpoint

    checkpoint = shipped_checkpoint()
    if checkpoint is None:
        pytest.skip("no shipped checkpoint in this installation")
    return checkpoint


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="no CUDA device on this machine")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def example_graph(tmp_path_factory) -> Path:
    from pipeline.example import write_example_graph

    return write_example_graph(tmp_path_factory.mktemp("graphs") / "example", people=40, seed=0)


@pytest.fixture(scope="session")
def second_graph(tmp_path_factory) -> Path:
    """Another graph of the same family (other people), for frozen-codebook and Dask tests."""
    from pipeline.example import write_example_graph

    folder = write_example_graph(tmp_path_factory.mktemp("graphs2") / "second", people=30, seed=7)
    (folder / "kg.toml").write_text('name = "second"\n')
    return folder


@pytest.fixture(scope="session")
def fast_config():
    """Real shipped encoders, small codebooks so fitting is quick."""
    from tokenizer_stage.config import EncoderSpec
    from tokenizer_stage.config import TokenizerConfig

    return TokenizerConfig(text_encoder=EncoderSpec("text", "minilm", batch_size=32),
                           image_encoder=EncoderSpec("image", "efficientnet-lite0", batch_size=16),
                           text_codebook_size=64, image_codebook_size=32, structure_codebook_size=16,
                           tokens_per_entity=6)


@pytest.fixture(scope="session")
def codebooks_dir(tmp_path_factory, example_graph, fast_config) -> Path:
    """A codebook set fitted once on the example graph and then frozen."""
    from tokenizer_stage.tokenize import fit_codebooks

    folder = tmp_path_factory.mktemp("books") / "codebooks"
    fit_codebooks([example_graph], fast_config).save(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_text_model(tmp_path_factory) -> Path:
    """A 1-layer BERT with a word-piece vocabulary, built and saved by the test itself."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_bert")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz0123456789") + \
        ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"] + [".", ",", ":"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_vision_model(tmp_path_factory) -> Path:
    """A 1-layer ViT (32x32 input, 8x8 patches) with its image processor, saved by the test."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = tmp_path_factory.mktemp("tiny_vit")
    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=64)
    ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder
