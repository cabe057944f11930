"""Wire layer: one typed model per topic record (:mod:`.models`) and the JSON Schemas
generated from them (:mod:`.schemas`, ``pacer-stream schemas export``)."""
