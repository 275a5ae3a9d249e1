"""Ingest: bytes → decoded items → validated, redacted rows → priced upsert and roll-ups.

:mod:`.pipeline` is the entry (the writer and its queue), :mod:`.otlp` decodes and maps OTLP,
:mod:`.redact` masks secrets, :mod:`.admission` bounds what may be in flight, and :mod:`.write`
builds node rows, prices them and upserts them with the trace roll-ups.
"""
