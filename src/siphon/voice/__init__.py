"""The per-call voice pipeline: VAD segments (``vad``), endpointing (``turns``),
phrase chunking of the streamed reply (``chunker``)."""
