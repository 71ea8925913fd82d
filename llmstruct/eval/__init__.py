"""Offline evaluation: hand-labelled gold data and the tools that keep it honest."""
