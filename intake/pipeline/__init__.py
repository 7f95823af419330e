"""The pipeline: COMMIT 1 (ingest) and COMMIT 2 (one stored message -> its effects).

assess (pure) -> decide (pure, typed) -> apply (writes), with threading, follow-ups, the
customer directory and the processing worker.
"""
