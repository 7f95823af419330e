"""Everything we send: rendering, the one budgeted and signed enqueue path, and COMMIT 3."""
