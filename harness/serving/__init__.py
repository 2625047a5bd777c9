"""Serving: loopback scoring server and gateway processes, the typed route, gateway
clients and the route-backed model (the seed's Step 8)."""
