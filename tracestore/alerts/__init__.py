"""Alerts: per-project rules over cost per outcome, rolling spend and the unpriced share,
evaluated on a schedule and after analysis; each firing is recorded and posted to a webhook
(docs/alerts.md). :mod:`.rules` holds the rule shapes and the pure decision, :mod:`.service`
the store reads, the events, the delivery and the scheduler thread."""
