"""Benchmarks: scripts that measure the pipeline on this machine and report numbers.

Each module holds one benchmark and exposes a click command that `outbid bench` mounts.
"""
