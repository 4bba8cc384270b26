"""Vision-document encoders (page images, text queries), by checkpoint layout.

Its family modules register themselves with :mod:`latestore.encoders.registry` when
the registry imports them (:data:`FAMILIES`, on its first lookup), in the order a
model folder is tried:

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

# The order a model folder is tried; the registry imports these modules (which
# register themselves) on its first lookup.
FAMILIES = (
    "colmodernvbert_engine",
    "colidefics3",
    "transformers_native",
    "colpali_engine",
    "colgemma3",
    "colqwen35",
    "colqwen3",
    "colqwen2_engine",
)
NAMED: dict[str, str] = {}
