"""Shared core: settings, embedding model loading and the on-disk index format.

Imports nothing else of ragqa, so both the ingestion job and the service can use it.
"""
