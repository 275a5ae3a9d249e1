"""Reports over stored traces: per-trace attribution summaries (:mod:`.summaries`), their
aggregate queries (:mod:`.queries`), unit economics (:mod:`.economics`) and paths
(:mod:`.paths`)."""
