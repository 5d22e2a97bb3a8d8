"""SLA evaluation, pure: policy matching, a ticket's clocks (the replay), batch evaluation,
backtest and explain."""
