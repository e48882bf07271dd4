"""Data that works offline: loaders for data shipped in packages, generators, and loaders for the
published formats of real datasets (for readers with internet)."""
