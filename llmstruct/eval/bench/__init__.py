"""Benchmarks that print numbers: structuring, retrieval at scale, chat latency, load."""
