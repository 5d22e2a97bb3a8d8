"""Configuration: YAML files validated by pydantic-settings, compiled into runtime objects."""

from sladaemon.config.loader import Config, Settings, build_calendar, load_config

__all__ = ["Config", "Settings", "build_calendar", "load_config"]
