"""Mail to customers: the transcript of a chat (compose, send over SMTP, retry in the background)."""
