"""Runnable examples; tests/adapters/test_examples.py runs them."""
