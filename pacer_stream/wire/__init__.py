"""Wire layer: what travels on the topics, defined once.

Read top-down: :mod:`.topics` (names, keys, partitioning, retention, from
``topics/topics.yaml``), :mod:`.models` (one typed msgspec model per topic record: field
names, JSON types, bounds, descriptions), :mod:`.records` (the records the rest of the
code uses -- each is its topic's model plus the conversions to and from the core's
types -- and the strict decoder/encoder that maps every fault to a stable DLQ code), and
:mod:`.schemas` (the JSON Schemas generated from the models,
``pacer-stream schemas export``).
"""
