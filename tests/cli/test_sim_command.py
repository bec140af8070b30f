"""`raftoral-lab sim`: random fault schedules over many seeds, zero violations (issue 3)."""

from __future__ import annotations

import pytest

from raftoral_lab.cli.main import main
from raftoral_lab.errors import RaftError
from raftoral_lab.sim import Simulation, schedule


def test_two_hundred_seeds_with_all_faults_have_no_violation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["sim", "--seeds", "200", "--ticks", "3000", "--faults", "all"])
    out = capsys.readouterr().out
    assert "violations: 0" in out, out
    assert code == 0, out


def test_a_violation_is_reported_with_its_seed_and_a_replay_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = schedule.run_schedule

    def broken(seed: int, *args: object, **kwargs: object) -> schedule.Outcome:
        outcome = real(seed, *args, **kwargs)  # type: ignore[arg-type]
        if seed == 3:
            return schedule.Outcome(seed, "election safety: nodes 1 and 2 lead term 4", 10, 0)
        return outcome

    monkeypatch.setattr("raftoral_lab.cli.sim.run_schedule", broken)
    code = main(["sim", "--seeds", "5", "--ticks", "50", "--jobs", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "violations: 1" in out
    assert "seed 3: election safety" in out
    assert "replay: raftoral-lab sim --seed 3 --ticks 50 --nodes 5 --faults all --verbose" in out


def test_an_exception_in_one_seed_is_reported_as_a_crash_and_the_others_still_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Simulation.step

    def step(self: Simulation) -> None:
        if self.seed == 2 and self.tick == 20:
            raise RaftError("tick 20: messages still flowing after 10000 rounds")
        real(self)

    monkeypatch.setattr(Simulation, "step", step)
    code = main(["sim", "--seeds", "4", "--ticks", "50", "--jobs", "1"])
    captured = capsys.readouterr()
    out, err = captured.out, captured.err
    assert code == 1, out
    assert "violations: 1" in out, out
    assert "seed 2: crash: RaftError: tick 20: messages still flowing" in out, out
    assert "replay: raftoral-lab sim --seed 2 --ticks 50 --nodes 5 --faults all --verbose" in out
    assert "seeds 4/4 violations: 1" in err, err  # every seed ran; progress goes to stderr
    assert "seeds 4/4" not in out, out


def test_one_seed_replays_with_its_fault_schedule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--seed", "11", "--ticks", "400"]) == 0
    first = capsys.readouterr().out
    assert main(["sim", "--seed", "11", "--ticks", "400"]) == 0
    second = capsys.readouterr().out
    assert "tick " in first and first == second


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["sim", "--faults", "fire"], "unknown fault"),
        (["sim", "--seeds", "0"], "at least 1"),
        (["sim", "--ticks", "many"], "whole number"),
    ],
)
def test_bad_flags_say_what_is_wrong(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    assert code == 2
    assert words in capsys.readouterr().err
