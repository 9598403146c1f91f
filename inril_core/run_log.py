"""Run logging: TensorBoard event files for looking, CSV files for reading and for the benchmark summaries.

Each CSV row carries the iteration it belongs to; on resume, rows written after the checkpoint being resumed
from are dropped, so the files describe exactly one uninterrupted history.
"""

from __future__ import annotations

import csv
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter


class RunLog:
    def __init__(self, run_dir: str | Path, resume_iteration: int | None = None) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if resume_iteration is not None:
            for path in self.dir.glob("*.csv"):
                _truncate_after(path, resume_iteration)
        self.tb = SummaryWriter(str(self.dir / "tb"))
        self._fields: dict[str, list[str]] = {}  # column names of each CSV, read from disk once

    def write(self, name: str, row: dict, env_steps: int) -> None:
        """Append `row` to `<name>.csv` and each numeric value to TensorBoard as `<name>/<key>`."""
        path = self.dir / f"{name}.csv"
        fields = self._fields[name] if name in self._fields else _header(path)
        added = [key for key in row if key not in fields]
        if fields and added:  # a key this file has not seen yet (e.g. actor_grad_norm after critic warm-up)
            _rewrite(path, fields + added, read_csv(path))
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields + added)
            if not fields:
                writer.writeheader()
            writer.writerow(row)
        self._fields[name] = fields + added
        for key, value in row.items():
            if isinstance(value, (int, float)) and key not in ("iteration", "env_steps"):
                self.tb.add_scalar(f"{name}/{key}", value, env_steps)

    def close(self) -> None:
        self.tb.close()


def read_csv(path: str | Path) -> list[dict]:
    with Path(path).open() as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(value: str):
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def _header(path: Path) -> list[str]:
    """The column names of an existing CSV file, [] when it does not exist yet."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return next(csv.reader(f), [])


def _rewrite(path: Path, fields: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _truncate_after(path: Path, iteration: int) -> None:
    rows = read_csv(path)
    if not rows:
        return
    _rewrite(path, _header(path), [r for r in rows if int(r["iteration"]) <= iteration])
