"""Data layer: record files (append-only JSONL), the trajectory schema and converters."""
