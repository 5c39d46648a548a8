"""Endpoint modules: query parameters in, HTTP answers out; they sit above selection, solutions and formats."""
