"""A Qwen checkpoint loads where AutoImageProcessor needs torchvision (transformers
<= 5.17 without torchvision, as on the GPU machine's image).

Test double: AutoImageProcessor.from_pretrained raises ImportError, as that transformers
does; nothing else is replaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import transformers
from PIL import Image

from latestore.encoders.base import PageContent
from latestore.encoders.registry import load_encoder
from tests.encoders.vision_checkpoints import build_colqwen35


def _needs_torchvision(*args: Any, **kwargs: Any) -> Any:
    raise ImportError("AutoImageProcessor requires the Torchvision library")


def test_qwen_pages_encode_the_same_without_auto_image_processor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = build_colqwen35(tmp_path / "colqwen35")
    page = PageContent(image=Image.new("RGB", (90, 120), (200, 30, 60)))
    want = load_encoder(model_dir, device="cpu").encode_pages([page])
    # On the class: transformers' lazy module may rebind its module attribute on import.
    monkeypatch.setattr(transformers.AutoImageProcessor, "from_pretrained", _needs_torchvision)
    got = load_encoder(model_dir, device="cpu").encode_pages([page])
    assert got[0].shape == want[0].shape
    np.testing.assert_array_equal(got[0], want[0])
