"""The installed version of medactive (kept apart so that no module imports the public facade)."""

__version__ = "0.1.0"
