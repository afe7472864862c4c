"""The Explore tab: what a checkpoint makes of a text, character by character (see view.py)."""
