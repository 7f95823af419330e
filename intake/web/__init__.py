"""HTTP inside ``intake serve``: /healthz, /readyz, /metrics and the NOC board (and its API).

It sits beside the edges, below the composition root: ``intake.app`` builds and serves it,
and it reads the store, the supervisor's health and the metrics registry it is given.
"""
