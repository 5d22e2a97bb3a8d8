"""Freshdesk (API v2): tickets polled by ``updated_since`` with ``include=stats``.

The ``stats`` timestamps of a ticket (first and latest agent response, latest requester
response, status changes, resolution, closing, reopening) are turned into its event history;
``fr_due_by`` and ``due_by`` are the helpdesk's own deadlines. Spam and deleted tickets, and
tickets that vanish, are found by a periodic reconciliation.
"""
