"""The ``tracestore`` command line: one module per command group, thin over the packages below.

:mod:`.main` holds the root group and the serve/demo/export-schema commands and registers the
commands and groups defined in :mod:`.ingest`, :mod:`.keys`, :mod:`.prices`, :mod:`.reports`,
:mod:`.analysis` and :mod:`.digest`; :mod:`.options` holds the options they share. Command
modules import only :mod:`.options` and each other downwards (``reports`` uses ``ingest``), never
:mod:`.main`.
"""
