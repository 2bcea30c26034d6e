"""Benchmarks (`make bench`): ratios measured side by side against baselines, never timed tests."""
