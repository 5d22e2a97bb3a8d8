"""Notifications: what a message says (message.py), delivery through apprise
(apprise_notifier.py)."""
