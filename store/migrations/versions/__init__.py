"""One migration per schema change since the first landed release (0001 is that release)."""
