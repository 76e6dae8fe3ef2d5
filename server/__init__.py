"""The Tally server: one shared, durable total broadcast to every dashboard."""
