"""Calendar providers: one module each, one Protocol in base.py."""
