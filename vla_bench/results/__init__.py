"""Run folders: schema, writer/reader, summaries, provenance."""
