"""Benchmarks behind `raftoral-lab bench`: every figure beside a baseline taken in the same run."""
