"""The engine log rotates by size and `nodes logs` reads its end."""

from __future__ import annotations

from pathlib import Path

from sparkplane.agent.logfile import RotatingLog


def test_the_log_rotates_and_keeps_its_backups(tmp_path: Path) -> None:
    log = RotatingLog(tmp_path / "e.log", max_bytes=100, backups=2)
    for i in range(30):
        log.write(f"line {i:03d} ........\n".encode())
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["e.log", "e.log.1", "e.log.2"]
    assert all(p.stat().st_size <= 100 for p in tmp_path.iterdir())
    assert log.tail(3).splitlines() == [
        "line 027 ........",
        "line 028 ........",
        "line 029 ........",
    ]


def test_the_tail_reaches_into_the_rotated_file(tmp_path: Path) -> None:
    log = RotatingLog(tmp_path / "e.log", max_bytes=60, backups=1)
    for i in range(6):
        log.write(f"line {i} ..........\n".encode())
    log.close()
    tail = log.tail(5).splitlines()
    assert tail[-1] == "line 5 .........."
    assert len(tail) >= 3


def test_an_empty_log(tmp_path: Path) -> None:
    assert RotatingLog(tmp_path / "none.log").tail(10) == ""
