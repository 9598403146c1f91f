"""inril_ros.episode_record: the /inril/episode fields the policy server and the executor act on; a malformed record
is refused with the key that is wrong, and a node drops it (logged) instead of stopping."""
from __future__ import annotations

import json

import pytest
from std_msgs.msg import String

from inril_ros.convert import MessageError
from inril_ros.episode_record import EpisodeRecord, parse_episode_record, read_episode_record


def test_a_record_gives_its_stamps_in_nanoseconds() -> None:
    record = parse_episode_record({"episode": 3, "state": "ended", "start_stamp": 1.5, "end_stamp": 2.25})
    assert record == EpisodeRecord(3, "ended", 1_500_000_000, 2_250_000_000)
    assert parse_episode_record({"episode": 4, "state": "done"}) == EpisodeRecord(4, "done", None, None)


@pytest.mark.parametrize(("payload", "reason"), [
    ({"state": "running", "start_stamp": 1.0}, "needs integer 'episode' and 'state'"),
    ({"episode": 1, "state": "paused", "start_stamp": 1.0}, "state 'paused' is not one of"),
    ({"episode": 1, "state": "running", "start_stamp": float("nan")}, "start_stamp=nan is not a time"),
    ({"episode": 1, "state": "ended", "start_stamp": 1.0, "end_stamp": "soon"}, "end_stamp='soon' is not a time"),
    ({"episode": 1, "state": "running"}, "running episode record has no start_stamp"),
])
def test_a_malformed_record_is_refused_naming_what_is_wrong(payload: dict, reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        parse_episode_record(payload)


class _Logger:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, text: str) -> None:
        self.errors.append(text)


def test_a_node_drops_a_malformed_message_and_logs_why() -> None:
    logger = _Logger()
    assert read_episode_record(String(data="{not json"), logger) is None
    assert read_episode_record(String(data=json.dumps({"episode": 2, "state": "running"})), logger) is None
    assert len(logger.errors) == 2 and all(e.startswith("/inril/episode: ") for e in logger.errors)
    good = String(data=json.dumps({"episode": 2, "state": "running", "start_stamp": 0.1}))
    assert read_episode_record(good, logger) == EpisodeRecord(2, "running", 100_000_000, None)
    assert len(logger.errors) == 2
