"""Benchmarks behind ``pacer-stream bench`` (targets: docs/targets.md).

Each module measures one thing beside its own baseline from the same run and returns
a JSON-able dict; ``command.py`` prints and stores them.
"""
