"""Messaging channels other than the widget: each turns its platform's events into gateway calls."""
