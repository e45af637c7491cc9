"""The ingestion job: load a folder, split, embed, and write a collection through app.core.store."""
