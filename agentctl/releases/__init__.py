"""Releases: (exact model version, prompt template digest, tool schema digest) as one artifact."""
