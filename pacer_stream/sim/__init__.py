"""Traffic simulator, baselines and the pacing-quality report (``pacer-stream simulate``).

The simulator drives the *real* core engine (:class:`pacer_stream.core.engine.PacingEngine`)
minute by minute over a synthetic, seeded day and compares it, on identical traffic and
identical faults, with simple baseline controllers it implements itself. Nothing here
re-implements a pacing rule of pacer-stream: the engine decides, the simulator only plays
the bid engine, the ad platform and the clock.

Modules: ``scenario`` (settings), ``traffic`` (the seeded day), ``faults`` (what goes
wrong), ``pacer`` (pacer-stream through the engine), ``baselines`` (the comparison
controllers and the oracle), ``metrics``, ``runner`` (seeds, processes), ``report``,
``charts``, ``kafka`` (the same traffic through a running worker) and ``command``
(the CLI).
"""
