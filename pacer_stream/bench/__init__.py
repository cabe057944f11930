"""Benchmarks behind ``pacer-stream bench`` (QUALITY.md section 2).

Each module measures one thing beside its own baseline from the same run and returns
a JSON-able dict; ``command.py`` prints and stores them.
"""
