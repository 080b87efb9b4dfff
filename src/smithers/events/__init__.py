"""Where committed events go besides the database: the NDJSON log and live views."""
