"""Analysis of finished studies: Pareto fronts, hypervolume and figures.

Reads only the results table (``runs/<name>/trials.csv``, see `analysis.table`)
and never imports torch, ray or msup, so it runs anywhere pandas and
matplotlib do.
"""
