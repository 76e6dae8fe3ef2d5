"""The Tally dashboard: a Textual app that shows the shared total live."""
