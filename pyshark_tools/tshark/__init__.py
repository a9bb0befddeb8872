"""Running tshark with the plugin: finding it, running it (as an unprivileged user if asked), the
field catalogue, streaming `-T fields`, and the one-pass run that yields one row per conversation."""
from .. import moved
from .conversations import FAST_PREFS, conversation_rows
from .find import TSHARK_ENV, find_tshark
from .program import RUN_AS_ENV, Tshark, last_line
from .stream import SEP, StreamResult, read_rows, split_line, stream_fields

__all__ = [
    "FAST_PREFS", "conversation_rows", "TSHARK_ENV", "find_tshark", "RUN_AS_ENV", "Tshark", "last_line",
    "SEP", "StreamResult", "read_rows", "split_line", "stream_fields",
]


def __getattr__(name: str):
    """Names the old `pyshark_tools.tshark` module held that live elsewhere now (deprecated)."""
    return moved.old_attribute("tshark", name)
