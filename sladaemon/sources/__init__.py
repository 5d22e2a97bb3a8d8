"""Where tickets come from: one folder per helpdesk, each with the same shape."""
