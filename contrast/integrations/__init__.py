"""Adapters that let the field's tools score contrast models (top floor: nothing below imports them)."""
