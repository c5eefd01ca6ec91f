"""The REST API's routes, one module per resource (``main`` in ``app.py`` only assembles them):

* ``health``: ``/healthz``, ``/readyz``, ``/metrics`` (no auth except ``/metrics`` unless public)
* ``pods``: ``/v1/pods``, ``/v1/pods/{namespace}/{pod}``
* ``explanations``: ``/v1/pods/{namespace}/{pod}/explanation``, ``/v1/explain``
* ``models``: ``/v1/models``, ``/v1/whoami``, ``/v1/admin/...``
"""
