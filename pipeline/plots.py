"""Small PNG charts drawn with Pillow (no plotting library in the dependency set)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from artifacts.atomic import atomic_write_bytes


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str, path: Path,
              counts: Sequence[int] | None = None, max_value: float = 1.0) -> Path:
    """Horizontal bars, one per label, values in ``[0, max_value]``; written atomically as PNG."""
    import io

    from PIL import Image, ImageDraw, ImageFont

    if len(labels) != len(values):
        raise ValueError("one value per label")
    font = ImageFont.load_default()
    row, label_width, bar_width, margin = 18, 260, 420, 12
    height = margin * 3 + row * (len(labels) + 2)
    image = Image.new("RGB", (label_width + bar_width + 120, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((margin, margin), title, fill="black", font=font)
    top = margin * 2 + row
    for i, (label, value) in enumerate(zip(labels, values)):
        y = top + i * row
        text = label if len(label) <= 40 else label[:37] + "..."
        draw.text((margin, y + 3), text, fill="black", font=font)
        length = int(bar_width * max(0.0, min(value, max_value)) / max_value)
        draw.rectangle([label_width, y + 2, label_width + max(length, 1), y + row - 3], fill=(70, 120, 180))
        note = f"{value:.3f}" + (f"  (n={counts[i]})" if counts is not None else "")
        draw.text((label_width + length + 6, y + 3), note, fill="black", font=font)
    axis_y = top + len(labels) * row + 2
    draw.line([label_width, axis_y, label_width + bar_width, axis_y], fill="gray")
    draw.text((label_width, axis_y + 3), "0", fill="gray", font=font)
    draw.text((label_width + bar_width - 10, axis_y + 3), f"{max_value:g}", fill="gray", font=font)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)
