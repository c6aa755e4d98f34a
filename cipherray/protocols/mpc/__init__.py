"""Secure computation on additive shares over Z_2^64, written against `Engine`."""
