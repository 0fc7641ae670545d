"""Prefect flows: they wire the steps in tasks/ and publish what each did."""
