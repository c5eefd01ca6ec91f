"""Datasets of labelled traces: the manifest format the lab writes and training reads (``manifest``).

It lives in core so that training depends on core only: the lab (which also imports the collector's capture
code) is needed to *make* a dataset, not to read one.
"""
