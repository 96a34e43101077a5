"""Stopping rules as plain objects, testable without Ray (`msup.search.execution.scheduler` consults them)."""
