"""Vision-document encoders (page images, text queries), by checkpoint layout.

Importing this package registers its families with :mod:`latestore.encoders.registry`
(the registry does so on its first lookup), in the order a model folder is tried:

- ``colmodernvbert_engine``, ``colidefics3``: colpali-engine's Idefics3-based
  checkpoints (``idefics`` holds their shared encoder). First: their folders also hold
  a ``linear`` projection, which the generic ColBERT layout would take.
- ``transformers_native``: the ``*ForRetrieval`` checkpoints transformers ships
  (ColPali, ColQwen2/2.5, ColModernVBert ``-hf``).
- ``colpali_engine``, ``colgemma3``: colpali-engine's PaliGemma and Gemma 3 models.
- ``colqwen35``, ``colqwen3``, ``colqwen2_engine``: the Qwen-VL families (``qwen``
  holds their shared backbone); 3.5 before 3, whose names it also starts with.

``common`` holds what every vision family uses (strict loading, batching, images).
"""

# The order below is the order a model folder is tried.
# isort: off
from latestore.encoders.vision import colmodernvbert_engine
from latestore.encoders.vision import colidefics3
from latestore.encoders.vision import transformers_native
from latestore.encoders.vision import colpali_engine
from latestore.encoders.vision import colgemma3
from latestore.encoders.vision import colqwen35
from latestore.encoders.vision import colqwen3
from latestore.encoders.vision import colqwen2_engine

# isort: on

__all__ = [
    "colgemma3",
    "colidefics3",
    "colmodernvbert_engine",
    "colpali_engine",
    "colqwen2_engine",
    "colqwen3",
    "colqwen35",
    "transformers_native",
]
