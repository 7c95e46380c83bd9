"""What the leak check of tests/conftest.py reads of objects there before a run (a module of its
own: a test can import it, while ``conftest`` names several modules in one run)."""

from __future__ import annotations


def earlier_test_objects(before: dict[str, str]) -> list[str]:
    """What was there before the run and only a test makes (``npt-`` namespaces and
    containers): an earlier run's, interrupted before its cleanup. The demo's objects and a
    developer's hosts are not among them."""
    return sorted(
        line
        for key, line in before.items()
        if key.startswith(("netns npt-", "docker container npt-"))
    )
