"""`inril bench latency --quick`: real node processes measured end to end, one Markdown page, nothing left running.

One quick run (under a minute on a loaded 2-core machine) serves every assertion: the page is what the full run
writes, with fewer samples. The policy is runs/pretrain/lift when this checkout has it, else the benchmark's tiny
one, so both paths are exercised by one machine or another.
"""
from __future__ import annotations

import re

import psutil
import pytest

from inril_ros.latency_bench import QUICK, run

NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def table_rows(page: str, heading: str) -> list[list[str]]:
    """The data rows of the first table under the section whose heading starts with ``heading``."""
    section = page.split("\n## " + heading, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]  # after header + rule


def is_number(cell: str) -> bool:
    return bool(NUMBER.match(cell))


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[str, dict]:
    root = tmp_path_factory.mktemp("bench")
    out = root / "benchmarks.md"
    # an empty policy dir: the tiny policy every time, so a fresh clone (no runs/) tests what a dev checkout does
    results = run(out, quick=True, progress=lambda _: None, policy_dir=root / "no-policy")
    return out.read_text(), results


def test_quick_run_leaves_no_process_behind(quick):
    assert psutil.Process().children(recursive=True) == []


def test_page_states_command_and_machine_facts(quick):
    page, _ = quick
    assert "`inril bench latency --quick" in page
    for fact in ("| date |", "| CPUs |", "| load average (1, 5, 15 min) before / after |", "| torch device |",
                 "| policy |"):
        assert fact in page, fact


def test_obs_to_chunk_latency_has_cpu_percentiles_and_says_what_of_cuda(quick):
    page, results = quick
    cpu = next(row for row in table_rows(page, "1.") if row[0] == "cpu")
    assert int(cpu[1]) == QUICK.chunks and all(is_number(cell) for cell in cpu[2:])
    assert 0 < results["obs_to_chunk"]["cpu"]["p50_ms"] <= results["obs_to_chunk"]["cpu"]["p99_ms"]
    cuda = next(row for row in table_rows(page, "1.") if row[0] == "cuda")
    assert is_number(cuda[2]) or cuda[1] == "no GPU on this machine"


def test_executor_jitter_has_percentiles_of_logged_ticks(quick):
    page, results = quick
    (row,) = table_rows(page, "2.")
    assert all(is_number(cell) for cell in row)
    assert results["executor_jitter"]["n"] >= QUICK.jitter_s * 10 * 0.5  # 10 Hz, allowing for a slow start


def test_images_report_delivery_for_both_sizes_and_both_transports(quick):
    page, _ = quick
    rows = table_rows(page, "3.")
    assert {(row[0], row[1]) for row in rows} == {(transport, size) for transport in ("default transports",
                                                                                     "graph DDS profile")
                                                  for size in ("640x480", "1280x720")}
    for row in rows:
        assert int(row[2]) == QUICK.frames and is_number(row[3])
    profile = [row for row in rows if row[0] == "graph DDS profile"]
    assert all(is_number(row[4]) for row in profile), "the graph's profile delivered no frame at all"


def test_learner_rates_in_graph_and_offline_and_their_ratio(quick):
    page, results = quick
    rows = {row[0]: row for row in table_rows(page, "4.")}
    assert is_number(rows["offline (update + save)"][2])
    assert is_number(rows["in the graph (last record -> announcement)"][2])
    learner = results["learner"]
    assert len(learner["graph_s"]) == len(learner["offline_s"]) == QUICK.updates
    assert learner["graph_rl_steps"] == learner["offline_rl_steps"] and learner["graph_rl_steps"][-1] > 0
    assert re.search(r"Ratio graph / offline: \*\*\d+\.\d+\*\*", page)


def test_every_announced_checkpoint_reaches_a_chunk(quick):
    page, results = quick
    cpu = next(row for row in table_rows(page, "5.") if row[0] == "cpu")
    assert cpu[1] == f"{QUICK.swaps}/{QUICK.swaps}" and all(is_number(cell) for cell in cpu[2:])
    assert results["weight_swap"]["cpu"]["p50_ms"] > 0
