"""Is this replica's Git snapshot older than the one the stack was last updated from?

Each replica clones and fetches on its own. Right after a rollout changes hands
(``--lease-namespace``), the new holder's snapshot can be older than the commit
the previous holder applied (``gitCommit`` in the stack). Deciding from it would
start a canary back to the older template. A commit the replica's clone does not
hold yet is newer than its snapshot (fetches only add commits), so the turn waits
for the next fetch. A commit that never arrives (force-pushed away before this
replica fetched it) must not hold the rollout for ever: after ``WAIT_LIMIT`` the
replica goes on with what it has.
"""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = ["WAIT_LIMIT", "behind_the_stack", "keep_waiting"]

#: how long a turn waits for the commit the stack records before deciding without it
WAIT_LIMIT = timedelta(minutes=5)


def behind_the_stack(recorded: str, snapshot: str, snapshot_holds_recorded: bool) -> bool:
    """The stack was last updated from ``recorded``, a commit this snapshot does not hold."""
    return bool(recorded) and bool(snapshot) and recorded != snapshot and not snapshot_holds_recorded


def keep_waiting(first_seen: datetime, now: datetime) -> bool:
    """Still within ``WAIT_LIMIT`` of the first turn that found the snapshot behind."""
    return now - first_seen < WAIT_LIMIT
