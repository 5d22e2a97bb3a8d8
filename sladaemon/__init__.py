"""sladaemon: SLA monitoring and escalation daemon for helpdesks."""

__version__ = "0.1.0"
