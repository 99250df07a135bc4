"""The bot server: widget gateway, agent API and console, static pages (see docs/server-api.md)."""
