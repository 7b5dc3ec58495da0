"""Zoom: `policy` decides (pure), `client` reads, repairs and reads back."""
