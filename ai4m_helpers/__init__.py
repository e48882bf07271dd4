"""Helpers for 'Trustworthy AI for Media', an executable book: one subpackage per chapter topic,
plus the shared parts (parameters and profiles, seeding and devices, the results record, data
generators and loaders, the papermill runner and the `ai4m` command)."""
__version__ = "0.1.0"
