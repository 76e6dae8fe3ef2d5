"""Helpers shared by every layer of the tests: peers, servers, waiting, dashboards, faults."""
