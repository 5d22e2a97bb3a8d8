"""Persistent state: ticket events, source cursors, the outbox."""
