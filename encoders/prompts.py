"""The prompt contracts of the served and local ColVision families, in one place.

A contract is the text a checkpoint was trained to see around a query and beside a page
image. The local encoders (:mod:`~latestore.encoders.vision.qwen`) and the vLLM client
(:mod:`~latestore.encoders.remote`) both read their contract from here, so the two can
never drift apart. The values are those of the reference processors: colpali-engine
0.3.18 for checkpoints saved by colpali-engine (and the ColQwen3/3.5 remote-code
families, whose reference class is colpali-engine's), transformers' own processors for
the ``*-hf`` checkpoints. ``tests/oracle`` checks them token for token.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "COLGEMMA3_ENGINE",
    "COLPALI_ENGINE",
    "IDEFICS3_ENGINE",
    "MODERNVBERT_ENGINE",
    "PROMPT_PRESETS",
    "QWEN_ENGINE",
    "PromptContract",
    "QwenPrompts",
]

QWEN_VISION_SPAN = "<|vision_start|><|image_pad|><|vision_end|>"


@dataclass(frozen=True)
class PromptContract:
    """The text a model expects around queries and pages.

    ``query_augmentation`` is appended to every query (ColBERT-style query expansion,
    e.g. ``"<|endoftext|>" * 10``) and ``query_suffix`` after it. ``image_prompt`` is the
    instruction beside a page image; ``page_template`` is the whole page text a local
    encoder tokenizes, with ``{image}`` where the vision span goes (a served model builds
    it from its chat template instead).
    """

    query_prefix: str = ""
    query_augmentation: str = ""
    query_suffix: str = ""
    page_prefix: str = ""
    image_prompt: str = ""
    page_template: str = "{image}"

    def query(self, text: str) -> str:
        return f"{self.query_prefix}{text}{self.query_augmentation}{self.query_suffix}"

    def page(self, text: str) -> str:
        return f"{self.page_prefix}{text}"

    def page_with_image(self, image_span: str) -> str:
        return self.page_template.format(image=image_span)


# colpali-engine's ColQwen2 / 2.5 / 3 / 3.5 processors (no query prefix).
QWEN_ENGINE = PromptContract(
    query_augmentation="<|endoftext|>" * 10,
    image_prompt="Describe the image.",
    page_template="<|im_start|>user\n{image}Describe the image.<|im_end|><|endoftext|>",
)

# colpali-engine's ColPaliProcessor: queries are <bos> + text + <pad> x10 (no prefix, no
# newline); pages are "<image><bos>Describe the image." passed through PaliGemma's
# processor, which adds a second <bos> after the image tokens and a final newline.
COLPALI_ENGINE = PromptContract(
    query_prefix="<bos>",
    query_augmentation="<pad>" * 10,
    image_prompt="Describe the image.",
    page_template="{image}<bos><bos>Describe the image.\n",
)
# colpali-engine's ColGemmaProcessor3: the checkpoint's chat template around one user
# turn, "Query: " + query with no augmentation, or the image and "Describe this image".
COLGEMMA3_ENGINE = PromptContract(query_prefix="Query: ", image_prompt="Describe this image")
# colpali-engine's Idefics3Processor-based processors (ColModernVBert and
# ColIdefics3; transformers' ColModernVBertProcessor writes the same text). No query
# prefix; ten <end_of_utterance> as query augmentation; the page is a one-turn chat.
_IDEFICS_PAGE = "User:{image}Describe the image.<end_of_utterance>\nAssistant:"
MODERNVBERT_ENGINE = PromptContract(
    query_augmentation="<end_of_utterance>" * 10,
    image_prompt="Describe the image.",
    page_template="<|begin_of_text|>" + _IDEFICS_PAGE,
)
IDEFICS3_ENGINE = PromptContract(
    query_augmentation="<end_of_utterance>" * 10,
    image_prompt="Describe the image.",
    page_template="<|im_start|>" + _IDEFICS_PAGE,
)

# Kept for one release: the name the ColQwen encoders took their prompts under.
QwenPrompts = PromptContract

PROMPT_PRESETS: dict[str, PromptContract] = {
    "none": PromptContract(),
    # transformers' ColPaliProcessor (vidore/colpali-v1.3-hf): it writes the <bos> itself
    # (the tokenizer it saves has add_bos_token off) and ends queries with a newline.
    "colpali": PromptContract(
        query_prefix="<bos>Question: ",
        query_augmentation="<pad>" * 10,
        query_suffix="\n",
        image_prompt="Describe the image.",
    ),
    # transformers' ColQwen2Processor (vidore/colqwen2-v1.0-hf): a prefix and a newline.
    "colqwen2": PromptContract(
        query_prefix="Query: ",
        query_augmentation="<|endoftext|>" * 10,
        query_suffix="\n",
        image_prompt="Describe the image.",
        page_template=QWEN_ENGINE.page_template,
    ),
    "colqwen-engine": QWEN_ENGINE,
    "colpali-engine": COLPALI_ENGINE,
    "colqwen3": QWEN_ENGINE,
    "colqwen3.5": QWEN_ENGINE,
    "colmodernvbert": MODERNVBERT_ENGINE,
    "colidefics3": IDEFICS3_ENGINE,
}
