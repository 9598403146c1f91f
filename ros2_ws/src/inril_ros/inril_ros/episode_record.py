"""The fields of an ``/inril/episode`` record that the policy server and the executor act on.

Both nodes need to know where one episode ends and the next begins: a chunk answers an observation of one episode
and must never drive the next one (in lock-step a reset's observation is stamped one step after the previous
episode's last, so by stamp alone the last chunk of an episode still "covers" the first steps of the next).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from std_msgs.msg import String

from inril_ros import interfaces as ifc
from inril_ros.convert import MessageError, json_payload

EPISODE_STATES = ("running", "ended", "done")
STAMP_MATCH_NS = 1000  # a stamp given in seconds (JSON) matches an observation stamp within 1 us


@dataclass(frozen=True)
class EpisodeRecord:
    episode: int
    state: str
    start_ns: int | None
    end_ns: int | None


def parse_episode_record(payload: dict) -> EpisodeRecord:
    """The record's episode, state and stamps (ns); a malformed record raises MessageError naming the key."""
    try:
        episode, state = int(payload["episode"]), str(payload["state"])
    except (KeyError, TypeError, ValueError) as error:
        raise MessageError(f"episode record needs integer 'episode' and 'state', got {payload}: {error}") from None
    if state not in EPISODE_STATES:
        raise MessageError(f"episode record state {state!r} is not one of {EPISODE_STATES}")
    stamps = {}
    for key in ("start_stamp", "end_stamp"):
        value = payload.get(key)
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise MessageError(f"episode record {key}={value!r} is not a time in seconds")
        stamps[key] = None if value is None else int(round(float(value) * 1e9))
    if state == "running" and stamps["start_stamp"] is None:
        raise MessageError(f"running episode record has no start_stamp: {payload}")
    return EpisodeRecord(episode, state, stamps["start_stamp"], stamps["end_stamp"])


def read_episode_record(msg: String, logger: Any) -> EpisodeRecord | None:
    """The message's record, or None after logging why it was dropped: a malformed record must not stop a node."""
    try:
        return parse_episode_record(json_payload(msg))
    except MessageError as error:
        logger.error(f"{ifc.EPISODE}: {error}; record dropped")
        return None
