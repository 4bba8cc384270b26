"""Text encoders, by checkpoint layout: the ColBERT families and the bundled MiniLM.

Its family modules register themselves with :mod:`latestore.encoders.registry` when
the registry imports them (:data:`FAMILIES`, on its first lookup). The order is the
order a model folder is tried: the specific layouts first; ``colbert`` registers
itself as generic (any folder with a top-level projection), so it is tried after every
other package's layouts too.

- ``colbert``: colbert-ai's ``HF_ColBERT`` folders and Jina's (``jina`` holds its
  rotary XLM-RoBERTa); ``pylate``: PyLate / sentence-transformers folders; ``bgem3``:
  BGE-M3 with its ``colbert_linear.pt`` head. ``colbert_model``, ``loading`` and
  ``options`` are what they share.
- ``minilm``: the bundled all-MiniLM-L6-v2, registered by name, run by ``bert_lite``.
"""

# The order a model folder is tried; the registry imports these modules (which
# register themselves) on its first lookup, not this package: most import torch.
FAMILIES = ("bgem3", "pylate", "colbert", "minilm")
# Families looked up by name, and their modules: "minilm" (the default, named on every
# cold CLI call) imports only its own module, so a one-off search needs no torch.
NAMED = {"minilm": "minilm"}
