"""Pure analysis: a trace graph in, findings out; aggregates in, attribution and digest out.

This package imports only the standard library, numpy and networkx. It never touches a
database, the network or the clock.
"""
