"""On call: people, schedules and who is on call when (pure)."""
