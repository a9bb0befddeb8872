"""Which frames carry credentials, and which of their fields may still be shown.

A frame carries credentials when the plugin flags it (`smtpdiag.credentials`: every frame that
contributed bytes to an AUTH/LOGIN/PASS line), when Wireshark's own dissectors found a user name
or password in it, when it is a POP3 PASS/APOP/AUTH or IMAP LOGIN/AUTHENTICATE command, or when
Wireshark reassembled its bytes into such a frame (`tcp.reassembled_in`). On those frames every
field but addressing, timing and TCP bookkeeping is blanked; password-like fields always are.
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping, Optional

CRED_FLAG = "smtpdiag.credentials"
REDACTED = "[redacted]"

# Wireshark's own fields whose presence alone marks a credential frame.
AUTH_FIELDS = ("smtp.auth.username", "smtp.auth.password", "smtp.auth.username_password",
               "imap.request.username", "imap.request.password")
# Commands whose arguments are credentials (field -> verbs, upper case).
AUTH_COMMANDS: Mapping[str, frozenset[str]] = {
    "pop.request.command": frozenset({"PASS", "APOP", "AUTH"}),
    "imap.request.command": frozenset({"LOGIN", "AUTHENTICATE"}),
}
REASSEMBLED_IN = "tcp.reassembled_in"
FRAME_NUMBER = "frame.number"
# Everything the flag decision reads, besides what the caller asked for.
DETECT_FIELDS = (FRAME_NUMBER, CRED_FLAG, *AUTH_FIELDS, *AUTH_COMMANDS, REASSEMBLED_IN)

# Fields that never hold a secret: addressing, timing, TCP bookkeeping, and the plugin's own
# (it shows "(AUTH data)" for credentials and the user name, never a password).
SAFE = re.compile(r"^(frame\.|eth\.|sll\.|ip\.|ipv6\.|udp\.|tcp\.(stream|srcport|dstport|port|len|seq|seq_raw|ack|"
                  r"ack_raw|nxtseq|flags|flags\..*|analysis\..*|time_.*|window_size.*|hdr_len|checksum.*|"
                  r"reassembled_in|completeness)$|smtpdiag\.)")
SECRET_NAME = re.compile(r"pass(word|wd)?\b|\.password|auth\.(password|username)|username_password|credential",
                         re.I)


def is_truthy(value: Optional[str]) -> bool:
    """A tshark boolean cell: 1/True (4.0 / 4.4+); several occurrences: any."""
    return bool(value) and any(v.strip().lower() in ("1", "true", "yes") for v in re.split(r"[\x1f,]", value))


def carries_credentials(cells: Mapping[str, Optional[str]]) -> bool:
    """Does one frame (field name -> its text, '' or None when absent) carry credentials?"""
    if is_truthy(cells.get(CRED_FLAG)):
        return True
    if any(cells.get(f) for f in AUTH_FIELDS):
        return True
    for f, verbs in AUTH_COMMANDS.items():
        v = cells.get(f) or ""
        if any(w.strip().upper() in verbs for w in re.split(r"[\x1f,]", v)):
            return True
    return False


def spread_to_segments(flagged: set[int], reassembled_in: Iterable[tuple[int, str]]) -> set[int]:
    """Frames whose bytes Wireshark reassembled into a flagged frame are flagged too.

    `reassembled_in`: (frame number, its tcp.reassembled_in cell) for every frame seen.
    """
    out = set(flagged)
    for number, target in reassembled_in:
        for t in re.split(r"[\x1f,]", target or ""):
            if t.strip().isdigit() and int(t) in flagged:
                out.add(number)
    return out


def must_blank(field: str, flagged: bool) -> bool:
    """Is `field` blanked on a frame (flagged or not)?"""
    if field == CRED_FLAG:
        return False
    if SECRET_NAME.search(field):
        return True
    return flagged and not SAFE.match(field)
