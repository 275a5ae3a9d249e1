"""OTLP/HTTP trace ingest: decode (protobuf and JSON) → map spans to ``TraceIn`` parts.

The route (``tracestore/api/routes/otlp.py``) turns them into rows with the same
``store.build_rows`` as native ingest (in worker processes, :mod:`tracestore.ingest.otlp.prepare`)
and stores them with the same ``Writer.write_rows``, so merging, idempotency and roll-ups are
identical.
"""

from tracestore.ingest.otlp.decode import (
           Rejected,
           Span,
           decode_json_request,
           decode_protobuf_request,
)
from tracestore.ingest.otlp.mapping import ToolCallJoiner, spans_to_traces

__all__ = [
           "Rejected",
           "Span",
           "ToolCallJoiner",
           "decode_json_request",
           "decode_protobuf_request",
           "spans_to_traces",
]
