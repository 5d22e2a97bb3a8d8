"""The long-running daemon and its integration with the service manager."""
