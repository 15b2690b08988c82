"""`opens demo`: the whole pipeline on the local stack, with traffic whose truth is known.

``run.run_demo`` orchestrates; ``pipeline`` holds the steps a test or the fault drill can reuse;
``records`` keeps the hand-made Kinesis records some tests feed straight into a stream.
"""

from processor.demo.records import Request, ensure_stream, generate, record_for, render_realtime

__all__ = ["Request", "ensure_stream", "generate", "record_for", "render_realtime"]
