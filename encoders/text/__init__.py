"""Text encoders, by checkpoint layout: the ColBERT families and the bundled MiniLM.

Importing this package registers its families with :mod:`latestore.encoders.registry`
(the registry does so on its first lookup). The order is the order a model folder is
tried: the specific layouts first; ``colbert`` registers itself as generic (any folder
with a top-level projection), so it is tried after every other package's layouts too.

- ``colbert``: colbert-ai's ``HF_ColBERT`` folders and Jina's (``jina`` holds its
  rotary XLM-RoBERTa); ``pylate``: PyLate / sentence-transformers folders; ``bgem3``:
  BGE-M3 with its ``colbert_linear.pt`` head. ``colbert_model``, ``loading`` and
  ``options`` are what they share.
- ``minilm``: the bundled all-MiniLM-L6-v2, registered by name, run by ``bert_lite``.
"""

# The order below is the order a model folder is tried.
# isort: off
from latestore.encoders.text import bgem3
from latestore.encoders.text import pylate
from latestore.encoders.text import colbert
from latestore.encoders.text import minilm

# isort: on

__all__ = ["bgem3", "colbert", "minilm", "pylate"]
