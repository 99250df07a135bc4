"""Outbound webhooks to CRMs and ticketing tools: configuration, signing, payload, sender."""
