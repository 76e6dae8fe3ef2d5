"""The servers Tally is measured against."""
