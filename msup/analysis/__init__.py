"""Pareto fronts, hypervolume and figures from a study's results table; imports neither torch nor Ray.

`table` is the results-table contract, `pareto` the front and hypervolume,
`plots` and `interactive` the figures, `report` what a finished study gets,
`command` the ``msup pareto`` command line.
"""
