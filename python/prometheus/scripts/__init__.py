"""Entry points kept under the original workflow's module paths."""
