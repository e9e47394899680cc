"""The streaming HTML rewriter: holds back trackers and inserts the banner block at the top of ``<head>``.

Layers, from the bytes up (as lol-html separates its lexer, tokenizer and handlers):

* ``scanner`` finds *candidates*: ``<script``, ``<iframe``, ``<img``, ``<link``, ``<head``, ``<noscript``,
  comments, raw-text elements, ``<svg``/``<math`` and their ends. Text and every other tag are consumed in C
  (a compiled regex, or one optional hyperscan pass per buffer); Python only wakes up at candidates.
* ``states`` names the tokenizer's states; ``tokenizer`` (the data state, tags, svg/math) and
  ``text_states`` (comments, raw text, script data, ``<noscript>``, long tags) are the state machine. Every
  decision is taken on complete tokens, so the output is the same whatever the chunking.
* ``holdback`` decides per tag whether the visitor's decision holds it back, and writes the held-back form
  the banner restores from. Failure is closed: what cannot be read is made inert, never let through.
* ``cache`` keeps rewritten chunks (sites serve the same bytes again and again), keyed by the tokenizer
  state at the chunk's start.
* ``rewriter`` drives them: ``HoldbackRewriter.feed(chunk) -> bytes``, ``close() -> bytes``. No layer
  knows ASGI.

Memory is bounded: only a tag split across chunks, or the body of an inline script being classified, is
buffered, up to ``max_buffer_bytes``.
"""

from __future__ import annotations

from .cache import CHUNK_CACHE, ChunkCache
from .decisions import make_inert
from .rewriter import PRESCAN_BYTES, HoldbackRewriter, use_accelerators

__all__ = ["CHUNK_CACHE", "PRESCAN_BYTES", "ChunkCache", "HoldbackRewriter", "make_inert", "use_accelerators"]
