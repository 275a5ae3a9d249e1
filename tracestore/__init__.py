"""tracestore: an agent trace store and decision-trace analyzer.

The package holds everything with I/O (settings, ingest, storage, pricing, graph building, the
REST API and the CLI). Pure analysis lives in the sibling package :mod:`analyzers`.
"""

__version__ = "0.1.0"
