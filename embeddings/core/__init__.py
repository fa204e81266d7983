"""Plumbing every other part of the package shares: files written atomically, fingerprints,
downloads, torch helpers and vector math. Nothing here knows about models or collections."""
