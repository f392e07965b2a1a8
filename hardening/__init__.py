"""Hostile-input corpus and crash campaigns for ocibuild (see hardening/README.md)."""
