"""Storage: the engine and its pragmas (:mod:`.engine`), table models (:mod:`.tables`), read
queries (:mod:`.read`) and graph building from stored rows (:mod:`.graph`). Knows nothing of
pricing, ingest or reports."""
