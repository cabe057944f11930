"""Adapters between the pure core and the outside world.

The fast-path allowance store lives here: ``keys`` (every Redis key in one place),
``store`` (the ``AllowanceStore`` port, its result types and argument checks) and
``redis_store`` (the Lua scripts in ``lua/``, the only implementation of the fast-path
rules), plus the worker-side ``redis_publisher``.
"""
