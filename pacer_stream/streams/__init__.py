"""The Kafka stream processor: faust app, agents, timers, request/reply, CLI commands.

The modules are split by what they depend on, so most of the logic is testable without
a broker:

* :mod:`.clock`, :mod:`.names`, :mod:`.auth`, :mod:`.stored` -- small pure helpers;
* :mod:`.processor` -- decode -> engine -> encoded outputs, shared by the faust agents,
  the benchmark's plain aiokafka loop and the component tests (no faust import);
* :mod:`.app` -- the faust app itself (imported only by the worker and its tests);
* :mod:`.admin` -- topic creation; :mod:`.commands` -- the ``pacer-stream`` commands.
"""
