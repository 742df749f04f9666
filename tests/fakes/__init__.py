"""Test doubles that speak real protocols over loopback (see ``bulk_server``)."""
