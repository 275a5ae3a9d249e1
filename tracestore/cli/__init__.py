"""The ``tracestore`` command line: one module per command group, thin over the packages below.

:mod:`.main` holds the root group and the ingest/serve/demo/schema commands and registers the
groups defined in :mod:`.keys`, :mod:`.prices`, :mod:`.reports`, :mod:`.analysis` and
:mod:`.digest`; :mod:`.options` holds the options they share.
"""
