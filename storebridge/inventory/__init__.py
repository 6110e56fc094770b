"""Inventory: stock levels per location, reservations that never oversell, and sync with an external system."""
