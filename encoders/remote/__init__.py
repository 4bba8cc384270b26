"""Encoders served by another process: the vLLM pooling client (``vllm``).

``latestore.encoders.remote`` keeps the names it had as a module.
"""

from latestore.encoders.remote.vllm import PROMPT_PRESETS, PromptContract, VLLMEncoder

__all__ = ["PROMPT_PRESETS", "PromptContract", "VLLMEncoder"]
