"""Adapters between the pure core and the outside world.

The fast-path allowance store lives here: ``keys`` (every Redis key in one place),
``store`` (the ``AllowanceStore`` port and its result types), ``memory_store`` (pure
Python, injected clock) and ``redis_store`` (Lua scripts in ``lua/``), plus the
worker-side ``redis_publisher``.
"""
