"""Pure pipeline steps with thin Prefect wrappers; see design.md for the flow of data."""
