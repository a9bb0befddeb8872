"""The tables: typed pandas DataFrames of sessions, transactions, packets, latencies and their summary.

Their functions are the package's public API (`pyshark_tools.sessions`, ...); schema.py says which plugin
field feeds which column, columns.py turns text cells into typed columns, write.py writes tables out.
"""
