"""The search for the accuracy-against-size front: study files, sampling, stopping, stored state, Ray Tune.

The map of the packages and the rules between them: docs/architecture.md.
"""
