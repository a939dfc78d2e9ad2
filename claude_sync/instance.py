"""This home's instance: which copy of a CLAUDE_SYNC_HOME writes a device's journal.

A home copied to another machine (or another folder) keeps the device id, and two machines
would then write one device's journal. `instance.json` holds a random id, when it was
made, and where: the machine's name and the home folder's real path and inode. A home
that finds itself elsewhere makes a new instance, so a copy is always the younger one, and
the machine it was copied *from* keeps the older: when both write, the younger stops (see
`Session.check_journal`), and a home moved for good (the old machine gone) goes on.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .files import write_private

INSTANCE_FILE = "instance.json"


@dataclass(frozen=True)
class Instance:
    id: str
    created: int  # nanoseconds since the epoch


def _place(home: Path) -> str:
    import socket  # a run that reads or writes the journal only: kept off the start-up path

    info = os.stat(home)
    return f"{socket.gethostname()}:{os.path.realpath(home)}:{info.st_dev}:{info.st_ino}"


def load_instance(home: Path) -> Instance:
    """This home's instance, made anew when the home is not where it was made."""
    place = _place(home)
    try:
        document = json.loads((home / INSTANCE_FILE).read_text())
        if document["place"] == place:
            return Instance(str(document["id"]), int(document["created"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    instance = Instance(os.urandom(8).hex(), time.time_ns())
    write_private(
        home / INSTANCE_FILE,
        json.dumps({"id": instance.id, "created": instance.created, "place": place}) + "\n",
    )
    return instance
