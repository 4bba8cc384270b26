"""Issue 15's GPU figures: pages per second encoding page images, latestore's encoder path
against colpali-engine's own forward pass, same model, same pages, same batch sizes.

    python -m bench.gpu_encoders --out DIR            # CUDA, bfloat16, real sizes
    python -m bench.gpu_encoders --tiny --device cpu  # toy configs: a smoke run anywhere

Models are random-weight, of the published sizes (see :mod:`bench.gpu_encoder_models`);
no weights are downloaded. Pages are synthetic 150 dpi US-letter pages (1275 x 1650
pixels of text lines, a figure and a table, drawn here), since ../shared is not carried
to a GPU machine; each family's processor resizes them into its visual-token budget.

Both sides are timed as a caller sees them: preprocessing on the CPU, the forward pass,
and per-page float32 vectors on the host, CUDA-synchronised, after one warm-up batch.
Checkpoint saving and loading are timed apart, outside the measurement. Where both sides
run one checkpoint, the run also reports token counts and the vectors' max difference.
Writes DIR/gpu_encoders.json after every model, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.gpu_encoder_models import MODELS, Built

LETTER_150DPI = (1275, 1650)


def synthetic_pages(n: int, size: tuple[int, int] = LETTER_150DPI, seed: int = 0) -> list[Any]:
    """Pages that look like documents to a vision tower: text lines, a figure, a table."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    width, height = size
    margin = width // 12
    pages = []
    for _ in range(n):
        page = Image.new("RGB", size, "white")
        draw = ImageDraw.Draw(page)
        draw.rectangle((margin, margin, width - margin, margin + height // 40), fill=(20, 20, 60))
        y = margin + height // 25
        line = max(8, height // 66)
        figure_at = rng.randrange(height // 4, height // 2)
        while y < height - margin:
            if figure_at <= y < figure_at + line:
                box = (margin, y, width // 2, y + height // 6)
                draw.rectangle(box, outline="black", fill=(rng.randrange(256), 180, 220))
                for _ in range(12):
                    x0, y0 = rng.randrange(margin, width // 2), rng.randrange(y, y + height // 6)
                    draw.line((x0, y0, x0 + 40, y0 - 30), fill="black", width=2)
                y += height // 6 + line
                continue
            x = margin
            while x < width - margin - 40:
                word = "".join(
                    rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))
                )
                draw.text((x, y), word, fill="black")
                x += 7 * len(word) + 8
            y += line
        cell = width // 10
        for row in range(4):
            for col in range(5):
                x0, y0 = width // 2 + 20 + col * cell // 2, height - margin - (row + 1) * line * 2
                draw.rectangle((x0, y0, x0 + cell // 2, y0 + line * 2), outline="black")
        pages.append(page)
    return pages


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reference_vectors(
    built: Built, images: Sequence[Any], batch: int, device: str
) -> list[np.ndarray]:
    """colpali-engine as its README shows: process_images, model(**batch), unpad."""
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for lo in range(0, len(images), batch):
            inputs = built.processor.process_images(images=list(images[lo : lo + batch]))
            inputs = inputs.to(device)
            embeddings = built.reference(**inputs)
            mask = inputs["attention_mask"].bool()
            out.extend(
                embeddings[row][mask[row]].float().cpu().numpy() for row in range(mask.shape[0])
            )
    return out


def timed(
    run: Callable[[], list[np.ndarray]], warm: Callable[[], Any], device: str
) -> tuple[float, list[np.ndarray]]:
    warm()
    sync(device)
    start = time.perf_counter()
    vectors = run()
    sync(device)
    return time.perf_counter() - start, vectors


def figures(seconds: float, vectors: list[np.ndarray]) -> dict[str, Any]:
    return {
        "pages_per_s": len(vectors) / seconds,
        "seconds": seconds,
        "tokens_per_page": float(np.mean([len(v) for v in vectors])),
        "dim": int(vectors[0].shape[1]),
    }


def agreement(ours: list[np.ndarray], theirs: list[np.ndarray]) -> dict[str, Any]:
    counts = all(len(a) == len(b) for a, b in zip(ours, theirs, strict=True))
    diff = max(
        float(np.abs(a - b).max()) for a, b in zip(ours, theirs, strict=True) if a.shape == b.shape
    )
    return {"token_counts_equal": counts, "max_abs_diff": diff}


def run_model(
    name: str,
    images: list[Any],
    batches: list[int],
    device: str,
    dtype: torch.dtype,
    tiny: bool,
    scratch: Path,
) -> dict[str, Any]:
    row: dict[str, Any] = {"batch_sizes": batches}
    start = time.perf_counter()
    built = MODELS[name].build(scratch / name, device, dtype, tiny)
    row["build_s"] = time.perf_counter() - start - built.save_s
    row["save_s"] = built.save_s
    row["weights"] = built.note
    row["parameters"] = sum(p.numel() for p in built.reference.parameters())
    theirs = _reference_side(built, images, batches, device, row)
    checkpoint, same_weights = built.checkpoint, built.note.startswith("one checkpoint")
    del built  # the reference model leaves the device before latestore loads its own
    _free(device)
    ours = _latestore_side(checkpoint, images, batches, device, dtype, row)
    _free(device)
    for batch in batches:
        if same_weights:
            row.setdefault("agreement", {})[str(batch)] = agreement(ours[batch], theirs[batch])
        row.setdefault("speedup", {})[str(batch)] = (
            row["latestore"][str(batch)]["pages_per_s"]
            / row["colpali_engine"][str(batch)]["pages_per_s"]
        )
    return row


def _reference_side(
    built: Built, images: list[Any], batches: list[int], device: str, row: dict[str, Any]
) -> dict[int, list[np.ndarray]]:
    vectors: dict[int, list[np.ndarray]] = {}
    for batch in batches:
        seconds, vectors[batch] = timed(
            lambda b=batch: reference_vectors(built, images, b, device),
            lambda b=batch: reference_vectors(built, images[:b], b, device),
            device,
        )
        row.setdefault("colpali_engine", {})[str(batch)] = figures(seconds, vectors[batch])
    return vectors


def _latestore_side(
    checkpoint: Path,
    images: list[Any],
    batches: list[int],
    device: str,
    dtype: torch.dtype,
    row: dict[str, Any],
) -> dict[int, list[np.ndarray]]:
    from latestore.encoders.base import PageContent
    from latestore.encoders.registry import load_encoder

    start = time.perf_counter()
    encoder = load_encoder(checkpoint, device=device, dtype=dtype)
    row["latestore_load_s"] = time.perf_counter() - start
    pages = [PageContent(image=image) for image in images]
    vectors: dict[int, list[np.ndarray]] = {}
    for batch in batches:
        encoder.batch_size = batch  # type: ignore[attr-defined]
        seconds, vectors[batch] = timed(
            lambda: encoder.encode_pages(pages),
            lambda b=batch: encoder.encode_pages(pages[:b]),
            device,
        )
        row.setdefault("latestore", {})[str(batch)] = figures(seconds, vectors[batch])
    return vectors


def _free(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--pages", type=int, default=97)
    parser.add_argument("--batch-sizes", default="4,16")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default=None, help="bfloat16 on CUDA, float32 on a CPU")
    parser.add_argument("--tiny", action="store_true", help="toy configs (a smoke run)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(
            "bench.gpu_encoders: no CUDA here (use --tiny --device cpu for a smoke run)"
        )
    dtype_name = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    dtype = getattr(torch, dtype_name)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    images = synthetic_pages(args.pages)
    import transformers

    result: dict[str, Any] = {
        "machine": _machine(args.device),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "pages": {
            "count": args.pages,
            "size_px": list(LETTER_150DPI),
            "source": "synthetic 150 dpi US-letter pages drawn by bench/gpu_encoders.py",
            "render_s": time.perf_counter() - start,
        },
        "dtype": dtype_name,
        "tiny": args.tiny,
        "models": {},
    }
    # RAM where it is large enough (a container's /dev/shm is often 64 MB): each
    # checkpoint (up to 6 GB) is written once and read back once.
    shm = Path("/dev/shm")
    roomy = shm.is_dir() and shutil.disk_usage(shm).free > 16 << 30
    result["checkpoints_in"] = "RAM (/dev/shm)" if roomy else "a temporary directory"
    with tempfile.TemporaryDirectory(dir=shm if roomy else None) as tmp:
        for name in args.models.split(","):
            begin = time.perf_counter()
            try:
                result["models"][name] = run_model(
                    name, images, batches, args.device, dtype, args.tiny, Path(tmp)
                )
            except Exception:  # keep the other models' figures
                result["models"][name] = {"error": traceback.format_exc(limit=8)}
                _free(args.device)
            finally:
                shutil.rmtree(Path(tmp) / name, ignore_errors=True)
            took = time.perf_counter() - begin
            print(
                f"[{took:6.1f} s] {name}: {json.dumps(result['models'][name])[:1200]}", flush=True
            )
            (args.out / "gpu_encoders.json").write_text(json.dumps(result, indent=1, default=str))
    return result


def _machine(device: str) -> dict[str, Any]:
    machine: dict[str, Any] = {"python": platform.python_version(), "cpu": platform.processor()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        machine |= {"gpu": props.name, "gpu_memory_gib": props.total_memory / 2**30}
    return machine


if __name__ == "__main__":
    main()
