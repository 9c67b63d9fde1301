"""One module per model server: its client, timeouts and the translation of its errors."""
