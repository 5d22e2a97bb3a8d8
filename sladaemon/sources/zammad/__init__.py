"""Zammad connector: ticket search with ``expand=true`` as the change feed, articles for replies,
ticket history for when states, priorities and groups changed, ``*_escalation_at`` as the
helpdesk's own deadlines."""
