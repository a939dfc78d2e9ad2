"""The typed errors the layers raise; `cli` turns each into one line and an exit code."""


class ClaudeSyncError(Exception):
    """A failure the user can act on. The message is one line, with no secrets in it."""

    exit_code = 1


class ConfigError(ClaudeSyncError):
    """config.yaml, a template or a command-line value is missing or malformed."""

    exit_code = 2


class KeyFileError(ClaudeSyncError):
    """The key file is missing or unusable, or the key does not match the remote."""


class RcloneError(ClaudeSyncError):
    """rclone is missing, or a transfer failed."""


class RemoteFormatError(ClaudeSyncError):
    """The remote holds something this version refuses to use: tampered, corrupt or unknown."""


class NotForThisKey(RemoteFormatError):
    """age found no stanza this identity opens: the data was encrypted to another key."""


class DamagedObject(RemoteFormatError):
    """An object a version names is missing on the remote, or does not decrypt to the bytes
    it is named for. Only what needs it is refused: one damaged object must not stop every
    other file, and `verify --repair` on a device that has the bytes restores it."""

    def __init__(self, path: str, object_path: str, why: str) -> None:
        self.path = path  # the remote path whose version names the object
        self.object_path = object_path
        self.why = why
        super().__init__(f"object {object_path} of {path} {why}")


class RemoteFolderMissing(ClaudeSyncError):
    """The remote is a folder on this machine (a disk, a Dropbox or NAS folder) and it is
    gone: an unmounted disk or a moved folder, not a remote that was never set up."""

    HINT = "mount it, or if it moved: `claude-sync init --local NEW-PATH --force`"

    def __init__(self, folder: object, hint: str = HINT) -> None:
        self.detail = (
            f"the remote folder {folder} does not exist: "
            "is its disk mounted, or was the folder moved?"
        )
        super().__init__(f"{self.detail} ({hint})")


class LockedError(ClaudeSyncError):
    """Another claude-sync run holds the lock for this home."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: handled like Ctrl-C, exit 128 + the signal's number."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal_number)
        self.signal_number = signal_number
