"""Support contracts as data and business time: pure, never touches the store."""
